"""Classification metrics: accuracy, top-5, per-class precision/recall/F1 and the confusion
matrix, vectorised in NumPy, in the ``metrics.json`` layout of the design card."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C×C counts, rows = true class, columns = predicted class."""
    index = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of examples whose true class is among the k highest scores (ILSVRC top-5: k=5).

    Ties are broken by class index (stable sort), so the result is deterministic.
    """
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1))) if len(top) else 0.0


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    split: str = "val",
) -> dict:
    """Metrics for ``probs`` (N, C) against integer labels ``y_true`` (N,).

    Returns ``accuracy``, ``top5_accuracy`` (only with 5 or more classes), ``per_class``
    (name → precision, recall, f1, support), ``macro_f1``, ``confusion_matrix`` (list of
    rows, true × predicted), ``num_examples`` and ``split``. Precision of a class never
    predicted is 0, as in scikit-learn's ``zero_division=0``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"probs must be (N, {num_classes}), got {probs.shape}")
    if len(y_true) != len(probs):
        raise ValueError(f"{len(y_true)} labels but {len(probs)} predictions")
    y_pred = np.argmax(probs, axis=1)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    metrics: dict = {"accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else 0.0}
    if num_classes >= 5:
        metrics["top5_accuracy"] = top_k_accuracy(y_true, probs, 5)
    metrics["per_class"] = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    present = support > 0
    metrics["macro_f1"] = float(f1[present].mean()) if present.any() else 0.0
    metrics["confusion_matrix"] = cm.tolist()
    metrics["num_examples"] = len(y_true)
    metrics["split"] = split
    return metrics


def format_classification_report(metrics: dict) -> str:
    """The per-class table (precision, recall, F1, support) with the overall numbers."""
    names = list(metrics["per_class"])
    width = max([len("class"), *(len(n) for n in names)])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )
    lines.append("")
    lines.append(
        f"accuracy {metrics['accuracy']:.4f} on {metrics['num_examples']} examples ({metrics['split']})"
    )
    if "top5_accuracy" in metrics:
        lines.append(f"top-5 accuracy {metrics['top5_accuracy']:.4f}")
    lines.append(f"macro F1 {metrics['macro_f1']:.4f}")
    return "\n".join(lines)
