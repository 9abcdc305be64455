"""Pictures of segmentation masks: a fixed class palette, colour masks, overlays on the
image, error maps (false positives and negatives) and image grids with a colour legend.

Arrays: images uint8 (H, W, 3) RGB; masks integer (H, W) class ids. Figures use
matplotlib's Agg backend and are written atomically (``visionkit.io.save_figure``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionkit.io import save_figure

# Error-map colours (RGB) and what they mean; the worst-images grid shows this legend.
FALSE_POSITIVE = (230, 25, 45)  # red: predicted foreground where the truth is background
FALSE_NEGATIVE = (30, 90, 255)  # blue: true foreground predicted as background
WRONG_CLASS = (255, 200, 0)  # yellow: foreground predicted as another foreground class
ERROR_LEGEND: list[tuple[str, tuple[int, int, int]]] = [
    ("false positive (predicted, not there)", FALSE_POSITIVE),
    ("false negative (missed)", FALSE_NEGATIVE),
    ("wrong class", WRONG_CLASS),
]
IGNORE_COLOUR = (255, 255, 255)


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 RGB colours, the PASCAL VOC colour map: class 0 black,
    1 dark red, 2 dark green, 3 olive, 4 dark blue, ... (the same for every run)."""
    ids = np.arange(int(num_classes))
    colours = np.zeros((len(ids), 3), np.int64)
    c = ids.copy()
    for shift in range(7, -1, -1):
        for channel in range(3):
            colours[:, channel] |= ((c >> channel) & 1) << shift
        c >>= 3
    return colours.astype(np.uint8)


def colourise(mask: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(H, W) class ids → (H, W, 3) uint8 colours; ids outside the palette (255 = ignore)
    are white."""
    mask = np.asarray(mask).astype(np.int64)
    colours = np.asarray(colours, np.uint8)
    inside = (mask >= 0) & (mask < len(colours))
    out = np.empty((*mask.shape, 3), np.uint8)
    out[...] = IGNORE_COLOUR
    out[inside] = colours[mask[inside]]
    return out


def boundaries(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another class (a one-pixel contour)."""
    mask = np.asarray(mask)
    edge = np.zeros(mask.shape, bool)
    vertical = mask[1:, :] != mask[:-1, :]
    horizontal = mask[:, 1:] != mask[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    colours: np.ndarray,
    *,
    alpha: float = 0.5,
    contour: bool = True,
) -> np.ndarray:
    """The image (H, W, 3) with the colour mask of ``mask`` (H, W) blended in at ``alpha``.

    Class 0 (black, usually background) is left as the image; with ``contour`` the
    outline of every other class is drawn in its colour at full strength.
    """
    image = np.asarray(image, np.float32)[..., :3]
    colour = colourise(mask, colours).astype(np.float32)
    mask = np.asarray(mask)
    shaded = mask != 0
    out = image.copy()
    out[shaded] = (1.0 - alpha) * image[shaded] + alpha * colour[shaded]
    if contour:
        edge = boundaries(mask) & shaded
        out[edge] = colour[edge]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def error_overlay(
    image: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    *,
    alpha: float = 0.6,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """The image (H, W, 3) with the wrong pixels of ``pred`` against ``true`` (both (H, W)
    class ids) coloured: false positives red, false negatives blue, wrong classes yellow
    (``ERROR_LEGEND``). Class 0 is the background; ignored pixels are left as they are."""
    return paint_errors(image, error_categories(true, pred, ignore_index=ignore_index), alpha=alpha)


def error_categories(
    true: np.ndarray, pred: np.ndarray, *, ignore_index: int | None = 255
) -> np.ndarray:
    """(H, W) uint8 per pixel: 0 right (or ignored), 1 false positive (truth is class 0),
    2 false negative (prediction is class 0), 3 wrong foreground class."""
    true, pred = np.asarray(true), np.asarray(pred)
    wrong = true != pred
    if ignore_index is not None:
        wrong &= true != ignore_index
    out = np.zeros(true.shape, np.uint8)
    out[wrong & (true == 0)] = 1
    out[wrong & (pred == 0)] = 2
    out[wrong & (true != 0) & (pred != 0)] = 3
    return out


def paint_errors(image: np.ndarray, categories: np.ndarray, *, alpha: float = 0.6) -> np.ndarray:
    """The image (H, W, 3) with the ``error_categories`` map (H, W) blended in at ``alpha``
    in the ``ERROR_LEGEND`` colours; uint8 (H, W, 3)."""
    out = np.asarray(image, np.float32)[..., :3].copy()
    categories = np.asarray(categories)
    for k, (_, colour) in enumerate(ERROR_LEGEND, start=1):
        where = categories == k
        out[where] = (1.0 - alpha) * out[where] + alpha * np.asarray(colour, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def class_legend(
    class_names: Sequence[str], colours: np.ndarray, present: Sequence[int] | None = None
) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, rgb)`` legend entries of the classes in ``present`` (all when None)."""
    ids = range(len(class_names)) if present is None else sorted({int(i) for i in present})
    return [
        (str(class_names[i]), tuple(int(v) for v in colours[i]))
        for i in ids
        if 0 <= i < len(class_names)
    ]


def plot_mask_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | os.PathLike,
    *,
    legend: Sequence[tuple[str, Sequence[int]]] = (),
    suptitle: str | None = None,
    cols: int | None = None,
) -> Path:
    """A grid of (H, W, 3) uint8 images with a title under each and a colour legend
    (``(label, (r, g, b))`` entries, 0..255) below the grid; returns ``path``."""
    from matplotlib.patches import Patch

    from visionkit.evaluate.plots import new_figure

    n = max(1, len(images))
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(rows, cols, figsize=(2.8 * cols, 3.0 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles, strict=False):
        ax.imshow(np.asarray(image, np.uint8))
        ax.set_title(title, fontsize=8)
    if legend:
        handles = [
            Patch(
                facecolor=np.asarray(c, float) / 255.0, edgecolor="grey", label=label, linewidth=0.5
            )
            for label, c in legend
        ]
        ncol = max(1, min(len(handles), 2 * cols, 6))
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=ncol,
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
        legend_rows = int(np.ceil(len(handles) / ncol))
        fig.tight_layout(rect=(0, min(0.5, 0.25 * legend_rows / (3.0 * rows + 0.4)), 1, 0.96))
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)
