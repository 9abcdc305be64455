"""ImageNet-1k class names, shipped with the package (no download), and top-k decoding.

``visionkit/resources/imagenet_classes.txt`` holds the 1000 names, one per line, in the
standard index order (sorted WordNet ids; the order of Keras' ``imagenet_class_index.json``):
0 tench, 1 goldfish, ..., 285 Egyptian cat, ..., 967 espresso, ..., 999 toilet tissue.
The names are torchvision's (``torchvision.models._meta._IMAGENET_CATEGORIES``, BSD-3),
which spell the two duplicated Keras names apart: 134 "crane bird" / 517 "crane",
638 "maillot" / 639 "maillot tank suit".
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = ["decode_predictions", "imagenet_class_names"]


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    text = (resources.files("visionkit") / "resources" / "imagenet_classes.txt").read_text(
        encoding="utf-8"
    )
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order."""
    return list(_names())


def decode_predictions(probs, top: int = 5) -> list[list[tuple[int, str, float]]]:
    """Top-``top`` ``(index, name, probability)`` per row of a ``(batch, 1000)`` array."""
    probs = np.asarray(probs)
    if probs.ndim == 1:
        probs = probs[None]
    if probs.ndim != 2 or probs.shape[1] != 1000:
        raise ValueError(f"expected predictions of shape (batch, 1000), got {probs.shape}")
    names = _names()
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [
        [(int(i), names[i], float(row[i])) for i in idx]
        for row, idx in zip(probs, order, strict=True)
    ]
