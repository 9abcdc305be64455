"""Class-aware non-maximum suppression and the detector's post-processing (decode + NMS).

Boxes of different classes never suppress each other. Built on
``tf.image.combined_non_max_suppression`` with ``clip_boxes=False``: it computes IoU from
the min/max of each coordinate pair, so xyxy pixel boxes work as given (its documented
y1, x1, y2, x2 order only swaps the axes, which IoU does not see) and come back unchanged.
This is a graph-mode TF op for Keras/SavedModel use; the TFLite export replaces it with
the builtin ``TFLite_Detection_PostProcess``.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from visionkit.models.yolo.anchors import REG_MAX, decode

# The score threshold of every mAP computation (validation, per-epoch metrics, export
# parity), as in COCO-style YOLO evaluation: low, so the PR curve reaches full recall.
EVAL_SCORE_THRESHOLD = 0.001


def class_aware_nms(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    *,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.7,
    max_detections: int = 300,
    max_per_class: int | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-class NMS over a batch.

    Args:
        boxes: (B, A, 4) xyxy (pixels or normalised; any consistent units).
        scores: (B, A, C) per-class scores in [0, 1].
        score_threshold: candidates must score above this.
        iou_threshold: a box is dropped when its IoU with a kept box of the same class
            is above this.
        max_detections: K, the number of rows returned per image (padded).
        max_per_class: cap per class and image (default ``max_detections``).

    Returns:
        ``boxes`` (B, K, 4) float32, ``scores`` (B, K) float32 (sorted, descending),
        ``classes`` (B, K) int32 and ``valid`` (B,) int32, the number of real rows; rows
        past ``valid`` are zeros.
    """
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    per_class = max_detections if max_per_class is None else max_per_class
    out_boxes, out_scores, out_classes, valid = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :],
        scores,
        max_output_size_per_class=int(per_class),
        max_total_size=int(max_detections),
        iou_threshold=float(iou_threshold),
        score_threshold=float(score_threshold),
        pad_per_class=False,
        clip_boxes=False,
    )
    return out_boxes, out_scores, tf.cast(out_classes, tf.int32), tf.cast(valid, tf.int32)


def postprocess(
    raw: tf.Tensor,
    image_size: Sequence[int],
    *,
    reg_max: int = REG_MAX,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.7,
    max_detections: int = 300,
    max_per_class: int | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Raw head output (B, A, 4·reg_max + C) → NMS'd detections in input-image pixels.

    ``decode`` then ``class_aware_nms``; returns (boxes (B, K, 4) xyxy, scores (B, K),
    classes (B, K) int32, valid (B,)).
    """
    boxes, scores = decode(raw, image_size, reg_max=reg_max)
    return class_aware_nms(
        boxes,
        scores,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        max_per_class=max_per_class,
    )
