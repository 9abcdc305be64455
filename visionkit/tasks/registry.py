"""Which task class serves ``visionkit TASK MODE ...``, and which modes it provides."""

from __future__ import annotations

TASKS = ("classify", "detect", "segment")
MODE_METHODS = {"val": "val_command", "predict": "predict_command", "export": "export_command"}


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


def is_available(task: str, mode: str) -> bool:
    """True when ``visionkit TASK MODE`` is built: train always; the other modes when the
    task class provides (overrides) the mode's command."""
    if task not in TASKS:
        return False
    if mode == "train":
        return True
    method = MODE_METHODS.get(mode)
    if method is None:
        return False
    implementation = getattr(type(get_task(task)), method, None)
    return implementation is not None and getattr(implementation, "available", True)


def available_modes() -> list[tuple[str, str]]:
    """Every (task, mode) pair this version provides."""
    modes = ("train", *MODE_METHODS)
    return [(t, m) for t in TASKS for m in modes if is_available(t, m)]
