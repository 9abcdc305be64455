"""The images an export needs from the run's own data: calibration images for int8 (from
the training split) and the validation split for parity and the task metric.

The split is the run's: ``config["val"]`` when the run had one, else the same seeded,
stratified carve of ``config["data"]`` as training (``visionkit.data.loader.load_splits``
with ``val_fraction`` and ``seed``), each checked by the doctor (faulty files skipped).
Batches come from ``build_pipeline(..., training=False)``: float32 pixels resized
(classify, segment) or letterboxed (detect, pad 114) to the model's input, then rounded to
uint8, the exports' input type, so every format sees exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionkit.data.types import Dataset


@dataclass
class ExportData:
    """Training and validation examples of a run, with the PIL-decoded paths."""

    train: Dataset | None
    val: Dataset | None
    needs_pil: set[str] = field(default_factory=set)
    note: str = ""


def load_export_data(
    config: dict[str, Any],
    task: str,
    class_names: list[str],
    *,
    val_data: str | Dataset | None = None,
    calibration: int = 100,
    progress: bool = False,
) -> ExportData:
    """The run's training and validation data (see the module docstring).

    ``train`` is a seeded sample of at most ``calibration`` training examples (only those
    are checked and decoded). ``val_data`` (a path or a Dataset) replaces the validation
    split. Without ``data`` in the config (a bare ``.keras`` file) both are None and
    ``note`` says why.
    """
    from visionkit.data.loader import load_dataset, load_splits
    from visionkit.data.prepare import checked

    options = {"data_dir": config["data_dir"]} if config.get("data_dir") else {}
    fmt = config.get("format")
    train = val = None
    note = ""
    if config.get("data"):
        if config.get("val") or val_data is not None:
            train = load_dataset(config["data"], fmt, task, config.get("split"), **options)
        else:
            splits = load_splits(
                config["data"],
                fmt,
                task,
                val_fraction=float(config.get("val_fraction", 0.2)),
                seed=int(config.get("seed", 0)),
                **options,
            )
            train, val = splits["train"], splits["val"]
        train = subset(train, calibration, int(config.get("seed", 0)))
    else:
        note = "the run's config has no data="
    if isinstance(val_data, Dataset):
        val = val_data
    elif val_data is not None:
        val = load_dataset(val_data, fmt, task, None, **options)
    elif val is None and config.get("val"):
        val = load_dataset(config["val"], fmt, task, None, **options)
    pil: set[str] = set()
    checked_sets = []
    for dataset in (train, val):
        if dataset is None:
            checked_sets.append(None)
            continue
        _check_classes(dataset, class_names)
        usable, _, paths, _ = checked(dataset, strict=False, progress=progress)
        pil |= paths
        checked_sets.append(usable if len(usable) else None)
    return ExportData(checked_sets[0], checked_sets[1], pil, note)


def _check_classes(dataset: Dataset, class_names: list[str]) -> None:
    from visionkit.config import ConfigError

    if class_names and dataset.class_names != list(class_names):
        raise ConfigError(
            f"{dataset.root or 'the data'}: classes {dataset.class_names} differ from the "
            f"model's {list(class_names)}; export with the run's own data or pass val_data "
            "labelled with the same classes"
        )


def subset(dataset: Dataset, count: int, seed: int = 0) -> Dataset:
    """A seeded random subset of at most ``count`` examples (order kept)."""
    from dataclasses import replace

    if len(dataset) <= count:
        return dataset
    keep = np.sort(np.random.default_rng(seed).choice(len(dataset), count, replace=False))
    return replace(dataset, examples=[dataset.examples[i] for i in keep])


def batches(
    dataset: Dataset,
    task: str,
    size: tuple[int, int],
    *,
    batch: int = 16,
    needs_pil: set[str] | None = None,
) -> Iterator[tuple[np.ndarray, Any]]:
    """``(images uint8 (B, H, W, 3), targets)`` of the evaluation pipeline at ``size``.

    Targets: classify int labels (B,); segment int masks (B, H, W) (255 = ignore); detect
    ``{"boxes": (B, M, 4), "classes": (B, M)}`` in the letterboxed frame (class −1 = padding).
    """
    from visionkit.data.pipeline import build_pipeline

    pipeline = build_pipeline(
        dataset,
        task=task,
        imgsz=size,
        batch=batch,
        training=False,
        augment=False,
        needs_pil=needs_pil or set(),
    )
    for images, targets in pipeline:
        pixels = np.clip(np.rint(images.numpy()), 0, 255).astype(np.uint8)
        if task == "classify":
            yield pixels, targets.numpy().argmax(axis=-1)
        elif task == "segment":
            yield pixels, targets.numpy()
        else:
            yield pixels, {k: v.numpy() for k, v in targets.items()}


def representative_images(
    dataset: Dataset, task: str, size: tuple[int, int], *, needs_pil: set[str] | None = None
) -> list[np.ndarray]:
    """The images of ``dataset`` as uint8 (1, H, W, 3) arrays (int8 calibration)."""
    out: list[np.ndarray] = []
    for images, _ in batches(dataset, task, size, batch=16, needs_pil=needs_pil):
        out.extend(image[None] for image in images)
    return out
