"""Which task class serves ``visionkit TASK ...``."""

from __future__ import annotations


def get_task(name: str):
    """The task object for ``classify`` or ``detect`` (segment arrives with its issue)."""
    if name == "classify":
        from visionkit.tasks.classify import ClassifyTask

        return ClassifyTask()
    if name == "detect":
        from visionkit.tasks.detect import DetectTask

        return DetectTask()
    raise NotImplementedError(
        f"visionkit {name} is not available in this version; classify and detect train are"
    )
