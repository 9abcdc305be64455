"""Intersection over union and its regression variants for ``xyxy`` boxes, in TensorFlow.

All functions take boxes as ``(..., 4)`` tensors ``[x1, y1, x2, y2]`` (any consistent unit,
pixels in the detection losses), compute in float32 and are safe for degenerate boxes
(zero width or height) through a small ``eps``.

* IoU: area of intersection / area of union.
* GIoU (Rezatofighi et al., 2019, "Generalized Intersection over Union"):
  ``IoU - (|C| - |A ∪ B|) / |C|`` with ``C`` the smallest enclosing box; in ``[-1, 1]``.
* CIoU (Zheng et al., 2020, "Distance-IoU Loss"): ``IoU - ρ²/c² - α·v`` with ``ρ`` the
  distance between the centres, ``c`` the diagonal of the enclosing box,
  ``v = 4/π² · (atan(w_gt/h_gt) - atan(w/h))²`` and ``α = v / (1 - IoU + v)``; ``α`` is a
  trade-off weight and carries no gradient (``tf.stop_gradient``), as in the paper.

The elementwise functions broadcast their two arguments against each other (NumPy rules on
the leading axes); the ``pairwise_*`` functions take ``(..., N, 4)`` and ``(..., M, 4)`` and
return ``(..., N, M)``. For CIoU the aspect term is symmetric in its arguments, so the order
(prediction, ground truth) does not matter for the value.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = [
    "EPS",
    "box_area",
    "ciou",
    "giou",
    "iou",
    "pairwise_ciou",
    "pairwise_giou",
    "pairwise_iou",
]

EPS = 1e-7


def _split(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    boxes = tf.cast(boxes, tf.float32)
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def box_area(boxes: tf.Tensor) -> tf.Tensor:
    """Area of ``(..., 4)`` xyxy boxes → ``(...)``; negative extents count as zero."""
    x1, y1, x2, y2 = _split(boxes)
    return tf.maximum(x2 - x1, 0.0) * tf.maximum(y2 - y1, 0.0)


def _iou_parts(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float) -> dict[str, tf.Tensor]:
    """IoU and the geometry shared by GIoU and CIoU (broadcast elementwise)."""
    ax1, ay1, ax2, ay2 = _split(boxes1)
    bx1, by1, bx2, by2 = _split(boxes2)
    aw, ah = tf.maximum(ax2 - ax1, 0.0), tf.maximum(ay2 - ay1, 0.0)
    bw, bh = tf.maximum(bx2 - bx1, 0.0), tf.maximum(by2 - by1, 0.0)
    inter_w = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0)
    inter_h = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0)
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter + eps
    enclose_w = tf.maximum(ax2, bx2) - tf.minimum(ax1, bx1)
    enclose_h = tf.maximum(ay2, by2) - tf.minimum(ay1, by1)
    return {
        "iou": inter / union,
        "union": union,
        "aw": aw,
        "ah": ah,
        "bw": bw,
        "bh": bh,
        "cw": enclose_w,
        "ch": enclose_h,
        "dx": (ax1 + ax2 - bx1 - bx2) * 0.5,
        "dy": (ay1 + ay2 - by1 - by2) * 0.5,
    }


def iou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """Elementwise IoU of broadcastable ``(..., 4)`` xyxy boxes → ``(...)`` in ``[0, 1]``."""
    return _iou_parts(boxes1, boxes2, eps)["iou"]


def giou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """Elementwise GIoU (Rezatofighi et al., 2019) → ``(...)`` in ``[-1, 1]``.

    The GIoU loss is ``1 - giou``: 0 for identical boxes, up to 2 for far-apart boxes.
    """
    p = _iou_parts(boxes1, boxes2, eps)
    enclose = p["cw"] * p["ch"] + eps
    return p["iou"] - (enclose - p["union"]) / enclose


def ciou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """Elementwise Complete IoU (Zheng et al., 2020) → ``(...)`` in ``[-1.5, 1]`` roughly.

    ``IoU - ρ²/c² - α v`` with ``α = v / (1 - IoU + v)`` held constant for the gradient.
    The CIoU loss is ``1 - ciou``.
    """
    p = _iou_parts(boxes1, boxes2, eps)
    c2 = tf.square(p["cw"]) + tf.square(p["ch"]) + eps
    rho2 = tf.square(p["dx"]) + tf.square(p["dy"])
    v = (4.0 / math.pi**2) * tf.square(
        tf.atan(p["bw"] / (p["bh"] + eps)) - tf.atan(p["aw"] / (p["ah"] + eps))
    )
    alpha = tf.stop_gradient(v / (v - p["iou"] + (1.0 + eps)))
    return p["iou"] - (rho2 / c2 + alpha * v)


def _pairwise(fn, boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float) -> tf.Tensor:
    return fn(tf.expand_dims(boxes1, -2), tf.expand_dims(boxes2, -3), eps)


def pairwise_iou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """IoU of every pair: ``(..., N, 4)`` × ``(..., M, 4)`` → ``(..., N, M)``."""
    return _pairwise(iou, boxes1, boxes2, eps)


def pairwise_giou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """GIoU of every pair: ``(..., N, 4)`` × ``(..., M, 4)`` → ``(..., N, M)``."""
    return _pairwise(giou, boxes1, boxes2, eps)


def pairwise_ciou(boxes1: tf.Tensor, boxes2: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """CIoU of every pair: ``(..., N, 4)`` × ``(..., M, 4)`` → ``(..., N, M)``."""
    return _pairwise(ciou, boxes1, boxes2, eps)
