"""Detection plots: COCO precision–recall curves per class and the detection confusion
matrix with its background row and column. Agg backend, atomic writes (through
``visionkit.io.save_figure``); each function returns the figure path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionkit.evaluate.detection import DetectionResult
from visionkit.evaluate.plots import new_figure, plot_confusion_matrix
from visionkit.io import save_figure

#: Classes drawn one by one with a legend entry; beyond this only the mean is labelled.
MAX_LABELLED_CLASSES = 20


def plot_pr_curves(
    result: DetectionResult,
    class_names: Sequence[str] | None,
    path: str | os.PathLike,
    *,
    iou: float = 0.5,
    title: str | None = None,
) -> Path:
    """COCO interpolated precision against recall (101 points) at IoU ``iou``, area "all",
    the largest maxDets: one curve per class with its AP in the legend (up to 20 classes;
    with more, thin unlabelled lines) and the mean over classes with ground truth in bold.
    Classes without ground truth (precision -1) are skipped. ``class_names`` defaults to
    ``result.class_names``.
    """
    names = list(class_names) if class_names is not None else list(result.class_names)
    recall = result.recall_thresholds
    a = list(result.area_ranges).index("all")
    curves = result.precision[result.iou_index(iou), :, :, a, -1]  # (R, K)
    valid = (curves > -1).all(axis=0)
    fig, ax = new_figure(figsize=(7.5, 5.5))
    labelled = len(names) <= MAX_LABELLED_CLASSES
    for k in np.flatnonzero(valid):
        if labelled:
            ax.plot(recall, curves[:, k], lw=1.2, label=f"{names[k]} {curves[:, k].mean():.3f}")
        else:
            ax.plot(recall, curves[:, k], lw=0.6, color="grey", alpha=0.5)
    if valid.any():
        mean = curves[:, valid].mean(axis=1)
        ax.plot(
            recall, mean, lw=3, color="black", label=f"all classes {mean.mean():.3f} mAP@{iou:g}"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    if valid.any():
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title=f"AP@{iou:g}")
    ax.set_title(title or f"precision-recall (IoU {iou:g}, COCO 101-point interpolation)")
    return save_figure(fig, path)


def plot_detection_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    normalize: bool = True,
    title: str = "detection confusion matrix",
) -> Path:
    """The (C+1)×(C+1) matrix of :func:`~visionkit.evaluate.detection.detection_confusion_matrix`
    (rows true, columns predicted, last row/column "background": missed objects in the
    background column, false positives in the background row)."""
    counts = np.asarray(matrix)
    if counts.shape != (len(class_names) + 1,) * 2:
        raise ValueError(
            f"matrix {counts.shape} does not fit {len(class_names)} classes + background"
        )
    return plot_confusion_matrix(
        counts, [*class_names, "background"], path, normalize=normalize, title=title
    )
