"""Semantic segmentation metrics from an accumulated confusion matrix, vectorised in NumPy,
in the ``metrics.json`` layout of the design card: ``miou``, ``dice``, ``pixel_accuracy``,
``per_class_iou``, ``num_examples``, ``split`` (and ``per_class_dice``, ``confusion_matrix``).

Definitions (C classes, confusion matrix M over non-ignored pixels, rows = true class,
columns = predicted class; TP_c = M[c, c], FP_c = column sum − TP_c, FN_c = row sum − TP_c):

- IoU_c = TP_c / (TP_c + FP_c + FN_c) (Jaccard; Everingham et al. 2010, PASCAL VOC).
- ``miou``: mean of IoU_c over the classes whose denominator is > 0, i.e. present in the
  ground truth or the predictions; exactly ``keras.metrics.MeanIoU``'s rule. A class absent
  from both is left out (its ``per_class_iou`` is None). No valid pixel at all: 0.0.
- ``dice``: mean of Dice_c = 2·TP_c / (2·TP_c + FP_c + FN_c) (= F1) over the same classes.
- ``pixel_accuracy``: Σ TP_c / number of non-ignored pixels.
Pixels whose ground truth is ``ignore_index`` (default 255) are skipped whatever the
prediction; any other label or prediction outside [0, C) raises ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def probabilities_to_labels(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-pixel labels from model outputs: argmax over (…, C), or ``p > threshold`` for a
    single sigmoid channel (…, 1)."""
    probs = np.asarray(probs)
    if probs.shape[-1] == 1:
        return (probs[..., 0] > threshold).astype(np.int64)
    return np.argmax(probs, axis=-1).astype(np.int64)


class SegmentationMetrics:
    """Confusion-matrix accumulator over batches of masks.

    ``update(y_true, y_pred)`` takes integer label masks: one (H, W) mask, a batch
    (N, H, W) or (N, H, W, 1); ``y_pred`` has the same shape (use
    ``probabilities_to_labels`` on model outputs). ``result(class_names, split)`` returns
    the ``metrics.json`` dict (see the module docstring for the exact definitions).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_examples = 0

    def update(self, y_true, y_pred) -> SegmentationMetrics:
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred)
        if y_true.ndim == 4 and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        if y_pred.ndim == 4 and y_pred.shape[-1] == 1:
            y_pred = y_pred[..., 0]
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
        if y_true.ndim not in (2, 3):
            raise ValueError(f"masks must be (H, W), (N, H, W) or (N, H, W, 1), got {y_true.shape}")
        examples = 1 if y_true.ndim == 2 else y_true.shape[0]
        t = y_true.reshape(-1).astype(np.int64)
        p = y_pred.reshape(-1).astype(np.int64)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            t, p = t[keep], p[keep]
        c = self.num_classes
        if t.size and (t.min() < 0 or t.max() >= c):
            raise ValueError(
                f"ground-truth labels outside [0, {c}) (ignore_index {self.ignore_index})"
            )
        if p.size and (p.min() < 0 or p.max() >= c):
            raise ValueError(f"predicted labels outside [0, {c})")
        self.confusion += np.bincount(t * c + p, minlength=c * c).reshape(c, c)
        self.num_examples += examples
        return self

    def result(self, class_names: Sequence[str] | None = None, split: str = "val") -> dict:
        c = self.num_classes
        names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
        if len(names) != c:
            raise ValueError(f"{len(names)} class names for {c} classes")
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        union = tp + fp + fn
        present = union > 0
        iou = np.divide(tp, union, out=np.zeros(c), where=present)
        dice = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(c), where=present)
        total = cm.sum()
        return {
            "miou": float(iou[present].mean()) if present.any() else 0.0,
            "dice": float(dice[present].mean()) if present.any() else 0.0,
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
            "per_class_iou": {
                n: (float(iou[i]) if present[i] else None) for i, n in enumerate(names)
            },
            "per_class_dice": {
                n: (float(dice[i]) if present[i] else None) for i, n in enumerate(names)
            },
            "confusion_matrix": self.confusion.tolist(),
            "num_examples": int(self.num_examples),
            "split": split,
        }


def segmentation_metrics(
    y_true,
    y_pred,
    class_names: Sequence[str],
    *,
    split: str = "val",
    ignore_index: int | None = 255,
) -> dict:
    """One-shot ``SegmentationMetrics(len(class_names), ignore_index).update(...).result(...)``."""
    acc = SegmentationMetrics(len(class_names), ignore_index=ignore_index)
    return acc.update(y_true, y_pred).result(class_names, split)


def format_segmentation_report(metrics: dict) -> str:
    """The per-class IoU table with mIoU, Dice and pixel accuracy."""
    names = list(metrics["per_class_iou"])
    width = max([len("class"), *(len(n) for n in names)])
    lines = [f"{'class':<{width}}     IoU    Dice"]
    dices = metrics.get("per_class_dice", {})
    for name in names:
        iou, dice = metrics["per_class_iou"][name], dices.get(name)
        fmt = lambda v: "     -" if v is None else f"{v:6.3f}"  # noqa: E731
        lines.append(f"{name:<{width}}  {fmt(iou)}  {fmt(dice)}")
    lines.append("")
    lines.append(
        f"mIoU {metrics['miou']:.4f}  Dice {metrics['dice']:.4f}  pixel accuracy "
        f"{metrics['pixel_accuracy']:.4f} on {metrics['num_examples']} examples ({metrics['split']})"
    )
    return "\n".join(lines)
