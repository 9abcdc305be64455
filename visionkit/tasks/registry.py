"""Which task class serves ``visionkit TASK ...``."""

from __future__ import annotations


def get_task(name: str):
    """The task object for ``classify`` (detect and segment arrive with their issues)."""
    if name == "classify":
        from visionkit.tasks.classify import ClassifyTask

        return ClassifyTask()
    raise NotImplementedError(f"visionkit {name} is not available in this version; classify is")
