"""The command line's verbs as Python functions, for notebooks and scripts.

Each takes the same ``key=value`` settings as ``visionkit TASK MODE`` (every key of
``visionkit keys``, checked the same way), optionally on top of a pipeline file::

    from visionkit import api as vk

    run = vk.train("classify", data="photos/", epochs=5)      # RunResult: .run.dir, .metrics
    vk.val("classify", model=run.run.dir, data="photos_test/")  # metrics dict
    vk.predict("detect", model="saved_models/exp", source="street.jpg")  # output folder
    vk.train(pipeline="pipelines/detect_yolo.yaml", data="raccoon/train_labels.csv")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def settings(
    task: str | None = None, mode: str = "train", pipeline: str | Path | None = None, **keys: Any
) -> dict[str, Any]:
    """The resolved configuration: defaults, then ``pipeline``, then ``keys`` (checked)."""
    from visionkit.cfg import load_pipeline, resolve

    layers = [load_pipeline(str(pipeline))] if pipeline else []
    top = {**keys, "mode": mode}
    if task is not None:
        top["task"] = task
    keys = {k: str(v) if isinstance(v, Path) else v for k, v in top.items()}
    return resolve(*layers, keys, where="visionkit.api")


def _task(config: dict[str, Any]):
    from visionkit.backend import import_tensorflow_quietly
    from visionkit.tasks.registry import get_task

    import_tensorflow_quietly()
    return get_task(config["task"])


def train(task: str | None = None, *, pipeline: str | Path | None = None, **keys: Any):
    """``visionkit TASK train key=value ...``: returns the ``RunResult`` (``.run.dir``,
    ``.metrics``, ``.test_metrics``, ``.summary()``)."""
    from visionkit.train.trainer import train as run_training

    config = settings(task, "train", pipeline, **keys)
    return run_training(_task(config), config)


def val(task: str | None = None, *, pipeline: str | Path | None = None, **keys: Any) -> dict:
    """``visionkit TASK val model=RUN data=PATH``: the metrics (also in ``out/name``)."""
    config = settings(task, "val", pipeline, **keys)
    return _task(config).val_command(config)


def predict(task: str | None = None, *, pipeline: str | Path | None = None, **keys: Any) -> Path:
    """``visionkit TASK predict model=... source=FILE|DIR``: the output folder."""
    config = settings(task, "predict", pipeline, **keys)
    return _task(config).predict_command(config)


def export(task: str | None = None, *, pipeline: str | Path | None = None, **keys: Any) -> Path:
    """``visionkit TASK export model=RUN formats=...``: the export folder."""
    config = settings(task, "export", pipeline, **keys)
    return _task(config).export_command(config)
