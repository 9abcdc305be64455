"""Which task class serves ``visionkit TASK ...``."""

from __future__ import annotations

# (task, mode) pairs this version provides; export and detect/segment predict come next.
AVAILABLE = frozenset(
    {
        ("classify", "train"),
        ("classify", "val"),
        ("classify", "predict"),
        ("detect", "train"),
        ("detect", "val"),
        ("segment", "train"),
        ("segment", "val"),
    }
)


def get_task(name: str):
    """The task object for ``classify``, ``detect`` or ``segment``."""
    if name == "classify":
        from visionkit.tasks.classify import ClassifyTask

        return ClassifyTask()
    if name == "detect":
        from visionkit.tasks.detect import DetectTask

        return DetectTask()
    if name == "segment":
        from visionkit.tasks.segment import SegmentTask

        return SegmentTask()
    raise ValueError(f"unknown task {name!r}: classify, detect or segment")
