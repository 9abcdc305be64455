"""Task-aligned label assignment (TOOD, Feng et al., 2021, as used by YOLOv8), in TensorFlow.

For each ground-truth box (GT) the candidates are the anchor points whose centre lies
strictly inside it. Each candidate gets the alignment metric ``t = s^α · u^β``, with ``s``
the predicted (sigmoid) score of the GT's class and ``u`` the CIoU (clipped at 0) between
the predicted box and the GT; the ``top_k`` candidates by ``t`` become positives of that GT.
An anchor claimed by several GTs goes to the one it overlaps most (highest IoU of its
predicted box). Targets per anchor: the GT box, its class, a foreground mask and the soft
class scores ``one_hot(class) · t / max_anchors(t) · max_anchors(u)`` (per GT, over its
positives), the normalisation of TOOD.

Everything is vectorised over ``(B, M, A)``: ``B`` images, ``M`` GT slots (class ``-1`` is
padding and is never assigned), ``A`` anchors. The assignment carries no gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from visionkit.train.losses.box_iou import EPS, ciou, iou

__all__ = ["Assignment", "TaskAlignedAssigner"]


class Assignment(NamedTuple):
    """Per-anchor targets from :class:`TaskAlignedAssigner`.

    Attributes:
        boxes: ``(B, A, 4)`` float32 xyxy target box (zeros on background).
        classes: ``(B, A)`` int32 target class, ``-1`` on background.
        scores: ``(B, A, C)`` float32 soft targets (one-hot × normalised alignment).
        foreground: ``(B, A)`` bool, True for positive anchors.
        gt_index: ``(B, A)`` int32 index of the assigned GT slot (0 on background).
    """

    boxes: tf.Tensor
    classes: tf.Tensor
    scores: tf.Tensor
    foreground: tf.Tensor
    gt_index: tf.Tensor


class TaskAlignedAssigner:
    """Task-aligned assigner of TOOD (Feng et al., 2021) with the YOLOv8 defaults.

    Args:
        num_classes: number of classes ``C``.
        top_k: positives per GT (10).
        alpha: exponent of the classification score (0.5).
        beta: exponent of the overlap (6.0).
        overlap: ``"ciou"`` (YOLOv8) or ``"iou"`` for the ``u`` of the metric.
        eps: numerical guard.
    """

    def __init__(
        self,
        num_classes: int,
        top_k: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        overlap: str = "ciou",
        eps: float = 1e-9,
    ) -> None:
        if overlap not in ("ciou", "iou"):
            raise ValueError(f"overlap must be 'ciou' or 'iou', got {overlap!r}")
        self.num_classes = int(num_classes)
        self.top_k = int(top_k)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.overlap = overlap
        self.eps = float(eps)

    def __call__(
        self,
        pred_scores: tf.Tensor,
        pred_boxes: tf.Tensor,
        anchor_points: tf.Tensor,
        gt_boxes: tf.Tensor,
        gt_classes: tf.Tensor,
    ) -> Assignment:
        """Assign GTs to anchors.

        Args:
            pred_scores: ``(B, A, C)`` predicted class probabilities (after sigmoid).
            pred_boxes: ``(B, A, 4)`` decoded predicted boxes, xyxy pixels.
            anchor_points: ``(A, 2)`` anchor centres ``(x, y)`` in pixels.
            gt_boxes: ``(B, M, 4)`` GT boxes, xyxy pixels.
            gt_classes: ``(B, M)`` integer classes, ``-1`` for padding.

        Returns:
            An :class:`Assignment`; all tensors are gradient-free.
        """
        pred_scores = tf.stop_gradient(tf.cast(pred_scores, tf.float32))
        pred_boxes = tf.stop_gradient(tf.cast(pred_boxes, tf.float32))
        anchor_points = tf.cast(anchor_points, tf.float32)
        gt_boxes = tf.cast(gt_boxes, tf.float32)
        gt_classes = tf.cast(tf.round(tf.cast(gt_classes, tf.float32)), tf.int32)
        batch = tf.shape(pred_scores)[0]
        num_anchors = tf.shape(pred_scores)[1]
        # One extra padding slot keeps M >= 1 (argmax over an empty axis is undefined).
        gt_boxes = tf.concat([gt_boxes, tf.zeros([batch, 1, 4], tf.float32)], axis=1)
        gt_classes = tf.concat([gt_classes, -tf.ones([batch, 1], tf.int32)], axis=1)
        num_gt = tf.shape(gt_classes)[1]
        valid_gt = gt_classes >= 0  # (B, M)

        # Candidates: anchor centre strictly inside the GT box.   (B, M, A)
        px = anchor_points[:, 0][None, None, :]
        py = anchor_points[:, 1][None, None, :]
        gx1, gy1, gx2, gy2 = (gt_boxes[..., i][:, :, None] for i in range(4))
        min_delta = tf.reduce_min(tf.stack([px - gx1, py - gy1, gx2 - px, gy2 - py], -1), -1)
        candidate = (min_delta > self.eps) & valid_gt[:, :, None]
        candidate_f = tf.cast(candidate, tf.float32)

        # Alignment metric t = s^alpha * u^beta over the candidates.
        overlap_fn = ciou if self.overlap == "ciou" else iou
        overlaps = overlap_fn(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :], EPS)
        overlaps = tf.maximum(overlaps, 0.0) * candidate_f  # (B, M, A)
        class_idx = tf.maximum(gt_classes, 0)
        scores_bca = tf.transpose(pred_scores, [0, 2, 1])  # (B, C, A)
        gt_scores = tf.gather(scores_bca, class_idx, batch_dims=1) * candidate_f  # (B, M, A)
        metric = tf.pow(gt_scores, self.alpha) * tf.pow(overlaps, self.beta)

        # Top-k candidates per GT.
        k = tf.minimum(self.top_k, num_anchors)
        _, topk_idx = tf.math.top_k(metric, k=k)  # (B, M, k)
        # The (B, M, A) indicator of the top-k anchors, scattered (a one-hot would be B·M·k·A).
        rows = tf.range(batch * num_gt, dtype=tf.int32)[:, None] * num_anchors
        flat = tf.reshape(tf.reshape(topk_idx, [batch * num_gt, k]) + rows, [-1, 1])
        in_topk = tf.scatter_nd(flat, tf.ones([batch * num_gt * k]), [batch * num_gt * num_anchors])
        in_topk = tf.reshape(in_topk, [batch, num_gt, num_anchors])
        positive = in_topk * candidate_f  # (B, M, A)

        # An anchor claimed by several GTs goes to the GT with the highest overlap.
        claims = tf.reduce_sum(positive, axis=1, keepdims=True)  # (B, 1, A)
        best_gt = tf.one_hot(tf.argmax(overlaps, axis=1), num_gt, axis=1, dtype=tf.float32)
        positive = tf.where(claims > 1.0, best_gt, positive)
        foreground = tf.reduce_sum(positive, axis=1) > 0.0  # (B, A)
        gt_index = tf.cast(tf.argmax(positive, axis=1), tf.int32)  # (B, A)

        target_classes = tf.gather(gt_classes, gt_index, batch_dims=1)
        target_classes = tf.where(foreground, target_classes, -1)
        target_boxes = tf.gather(gt_boxes, gt_index, batch_dims=1)
        target_boxes = target_boxes * tf.cast(foreground, tf.float32)[..., None]

        # Soft scores: one-hot(class) * t / max t (per GT) * max u (per GT).
        metric = metric * positive
        max_metric = tf.reduce_max(metric, axis=-1, keepdims=True)  # (B, M, 1)
        max_overlap = tf.reduce_max(overlaps * positive, axis=-1, keepdims=True)
        norm = tf.reduce_max(metric * max_overlap / (max_metric + self.eps), axis=1)  # (B, A)
        one_hot = tf.one_hot(tf.maximum(target_classes, 0), self.num_classes, dtype=tf.float32)
        target_scores = one_hot * (norm * tf.cast(foreground, tf.float32))[..., None]
        return Assignment(
            boxes=tf.stop_gradient(target_boxes),
            classes=tf.stop_gradient(target_classes),
            scores=tf.stop_gradient(target_scores),
            foreground=tf.stop_gradient(foreground),
            gt_index=tf.stop_gradient(gt_index),
        )
