"""Built-in datasets generated deterministically on the fly (no download).

``builtin:shapes`` — three classes (circle, square, triangle) of filled shapes in random
colours, sizes, positions and rotations on textured backgrounds: a small, honest
classification task (a linear probe on raw pixels does poorly; a CNN learns it) that
the quickstart fine-tunes on. Written once as PNG image folders with train/val/test
splits under ``$VISIONKIT_HOME/datasets/`` (default ``~/.cache/visionkit``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from visionkit.io import atomic_directory

SHAPES = ("circle", "square", "triangle")
SPLITS = {"train": 60, "val": 20, "test": 20}  # images per class
PREFIX = "builtin:"


def home() -> Path:
    """visionkit's cache folder: ``$VISIONKIT_HOME`` or ``~/.cache/visionkit``."""
    return Path(os.environ.get("VISIONKIT_HOME") or Path.home() / ".cache" / "visionkit")


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One ``size``×``size`` RGB image of a ``kind`` shape on a noisy two-tone background."""
    base = rng.integers(0, 256, 3)
    other = rng.integers(0, 256, 3)
    ramp = (
        np.linspace(0, 1, size)[None, :, None]
        if rng.random() < 0.5
        else np.linspace(0, 1, size)[:, None, None]
    )
    background = base * (1 - ramp) + other * ramp + rng.normal(0, 12, (size, size, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in (255 - base + rng.integers(-40, 41, 3)) % 256)
    radius = rng.uniform(0.18, 0.38) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        corners = 4 if kind == "square" else 3
        points = [
            (
                cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                cy + radius * math.sin(angle + 2 * math.pi * k / corners),
            )
            for k in range(corners)
        ]
        draw.polygon(points, fill=colour)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.0)))


def make_shapes(
    root: str | Path, *, size: int = 96, per_split: dict[str, int] | None = None, seed: int = 0
) -> Path:
    """Write ``root/{train,val,test}/{circle,square,triangle}/*.png`` (atomically)."""
    per_split = per_split or SPLITS
    root = Path(root)
    with atomic_directory(root) as tmp:
        for s_index, (split, count) in enumerate(per_split.items()):
            for c_index, kind in enumerate(SHAPES):
                folder = tmp / split / kind
                folder.mkdir(parents=True)
                rng = np.random.default_rng([seed, s_index, c_index])
                for i in range(count):
                    draw_shape(kind, size, rng).save(folder / f"{kind}_{i:03d}.png")
    return root


def resolve_builtin(path: str) -> str:
    """Map ``builtin:shapes`` to its generated folder (created on first use); other paths pass."""
    if not isinstance(path, str) or not path.startswith(PREFIX):
        return path
    name = path[len(PREFIX) :]
    if name != "shapes":
        from visionkit.data.errors import DataError

        raise DataError(f"unknown built-in dataset {path!r}; available: builtin:shapes")
    root = home() / "datasets" / "shapes-v1"
    if not (root / "test").is_dir():
        make_shapes(root)
    return str(root)
