"""Seeded, stratified train/validation splits of a Dataset.

Strata: classification by label; detection by each image's rarest box class (rarest over
the whole dataset, ties to the lower id; images without boxes form their own stratum);
segmentation has one stratum (a plain seeded shuffle). The validation size is
``round(len * val_fraction)``, shared among strata by largest remainder; a stratum with
two or more examples always keeps at least one in train, and afterwards any class with
two or more images that is absent from train gets one image moved back to train. The
result depends only on the dataset order and ``seed``; examples keep their order.
Faults stay with the train part (so they are counted once).
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import replace

import numpy as np

from .errors import DataError
from .types import Dataset, Example


def _classes_of(example: Example, task: str) -> list[int]:
    if task == "classify":
        return [] if example.label is None else [int(example.label)]
    if task == "detect" and example.box_classes is not None:
        return sorted({int(c) for c in np.asarray(example.box_classes).ravel()})
    return []


def strata(dataset: Dataset) -> list[int]:
    """The stratum key of each example (see the module docstring)."""
    if dataset.task == "segment":
        return [0] * len(dataset)
    per_example = [_classes_of(e, dataset.task) for e in dataset.examples]
    if dataset.task == "classify":
        return [c[0] if c else -1 for c in per_example]
    freq = Counter(c for cs in per_example for c in cs)
    return [min(cs, key=lambda c: (freq[c], c)) if cs else -1 for cs in per_example]


def stratified_split(
    dataset: Dataset, val_fraction: float = 0.2, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Split ``dataset`` into ``(train, val)`` Datasets (``split`` set to ``"train"``/``"val"``)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(dataset)
    if n < 2:
        raise DataError(
            f"{dataset.root or 'dataset'}: {n} example(s) cannot be split into train and val"
        )
    keys = strata(dataset)
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    total = min(n - 1, max(1, round(n * val_fraction)))
    quota = {k: len(ix) * total / n for k, ix in groups.items()}
    take = {k: min(int(q), max(len(groups[k]) - 1, 0)) for k, q in quota.items()}
    by_remainder = sorted(groups, key=lambda k: (-(quota[k] - int(quota[k])), k))
    missing = total - sum(take.values())
    for k in by_remainder * 2:
        if missing <= 0:
            break
        if take[k] < len(groups[k]) - 1:
            take[k] += 1
            missing -= 1
    val_idx: set[int] = set()
    for k in sorted(groups):
        rng = np.random.default_rng([seed, zlib.crc32(str(k).encode())])
        order = rng.permutation(len(groups[k]))
        val_idx.update(groups[k][j] for j in order[: take[k]])
    _keep_classes_in_train(dataset, val_idx)
    train = [e for i, e in enumerate(dataset.examples) if i not in val_idx]
    val = [e for i, e in enumerate(dataset.examples) if i in val_idx]
    return (
        replace(dataset, examples=train, split="train"),
        replace(dataset, examples=val, split="val", faults=[]),
    )


def _keep_classes_in_train(dataset: Dataset, val_idx: set[int]) -> None:
    """Move one val image back to train for each class with ≥2 images but none in train."""
    per_example = [_classes_of(e, dataset.task) for e in dataset.examples]
    counts = Counter(c for cs in per_example for c in cs)
    in_train = Counter(c for i, cs in enumerate(per_example) if i not in val_idx for c in cs)
    for cls in sorted(counts):
        if counts[cls] >= 2 and in_train[cls] == 0:
            i = min(i for i in val_idx if cls in per_example[i])
            val_idx.discard(i)
            in_train.update(per_example[i])
