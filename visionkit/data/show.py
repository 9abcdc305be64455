"""A grid of (augmented) training examples, as the pipeline feeds them to a model.

``show_examples`` draws the first ``n`` elements of the task's pipeline: class names
(classification; the two largest weights after MixUp/CutMix), boxes with class labels
(detection) or a colour overlay of the mask (segmentation, ignore value transparent).
Used by ``visionkit data show PATH n=16 out=grid.png`` and by notebooks. Rendering uses
matplotlib's Agg canvas (no display needed, no pyplot state); files are written
atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from visionkit.data.types import Dataset
from visionkit.io import save_figure

CELL_INCHES = 2.0  # each grid cell is CELL_INCHES × CELL_INCHES at ``dpi``


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for ``n`` cells."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _colours(k: int) -> np.ndarray:
    """A fixed RGB palette (k × 3, floats in [0, 1]) for class ids."""
    rng = np.random.default_rng(12345)
    pal = rng.uniform(0.2, 1.0, size=(max(k, 1), 3))
    pal[0] = (0.0, 0.0, 0.0)
    return pal


def _name(names: list[str], k: int) -> str:
    return names[k] if 0 <= k < len(names) else str(k)


def show_examples(
    dataset: Dataset,
    *,
    task: str | None = None,
    n: int = 16,
    imgsz: int = 256,
    augment: bool = True,
    seed: int = 0,
    out: str | None = None,
    dpi: int = 100,
    **pipeline_kw,
) -> Figure:
    """Draw ``n`` examples of ``dataset`` through its training pipeline (or evaluation
    pipeline when ``augment=False``); save to ``out`` (PNG) when given.

    The figure is ``cols × rows`` cells of ``CELL_INCHES`` inches at ``dpi``, so its pixel
    size is (rows·200, cols·200) at the defaults. Extra keyword arguments go to
    :func:`visionkit.data.pipeline.build_pipeline` (e.g. ``mask_value_map``).
    """
    from visionkit.data.pipeline import build_pipeline

    task = task or dataset.task
    n = max(1, min(n, len(dataset)))
    ds = build_pipeline(
        dataset,
        task=task,
        imgsz=imgsz,
        batch=n,
        training=augment,
        augment=None if augment else False,
        seed=seed,
        shuffle=augment,
        **pipeline_kw,
    )
    images, targets = next(iter(ds.take(1)))
    images = np.clip(images.numpy() / 255.0, 0, 1)
    names = list(dataset.class_names)
    rows, cols = grid_shape(n)
    fig = Figure(figsize=(cols * CELL_INCHES, rows * CELL_INCHES), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.02, hspace=0.02)
    palette = _colours(max(len(names), 256))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], interpolation="nearest")
        if task == "classify":
            y = targets.numpy()[i]
            top = np.argsort(-y)[:2]
            text = _name(names, int(top[0]))
            if y[top[1]] > 1e-3:
                text = f"{text} {y[top[0]]:.2f} / {_name(names, int(top[1]))} {y[top[1]]:.2f}"
            ax.text(
                2,
                2,
                text,
                fontsize=7,
                va="top",
                color="white",
                bbox=dict(facecolor="black", alpha=0.6, pad=1, lw=0),
            )
        elif task == "detect":
            boxes, classes = targets["boxes"].numpy()[i], targets["classes"].numpy()[i]
            for (x0, y0, x1, y1), k in zip(boxes, classes, strict=False):
                if k < 0:
                    continue
                c = palette[int(k) % len(palette)]
                ax.add_patch(
                    Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=c, lw=1)
                )
                ax.text(
                    x0,
                    y0,
                    _name(names, int(k)),
                    fontsize=6,
                    va="bottom",
                    color="black",
                    bbox=dict(facecolor=c, alpha=0.8, pad=0.5, lw=0),
                )
        else:
            mask = targets.numpy()[i]
            overlay = np.zeros((*mask.shape, 4))
            valid = (mask > 0) & (mask != 255)
            overlay[..., :3] = palette[np.clip(mask, 0, len(palette) - 1)]
            overlay[..., 3] = np.where(valid, 0.45, 0.0)
            ax.imshow(overlay, interpolation="nearest")
    if out is not None:
        save_figure(fig, out, tight=False, close=False)
    return fig
