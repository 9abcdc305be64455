"""Anchor points and distribution-focal (DFL) box decoding for the anchor-free YOLO head.

Anchor points are the pixel centres of every feature-map cell, levels P3, P4, P5 (strides
8, 16, 32) in that order, row-major (y then x) within a level, matching the rows of the raw
head output. A box is predicted as four distances (left, top, right, bottom) from its
anchor point, each a discrete distribution over ``reg_max`` bins (Li et al. 2020,
*Generalized Focal Loss*): distance = Σ softmax(logits) · [0, 1, …, reg_max − 1], in units
of the level's stride. All functions are TensorFlow ops in float32, separate from the
Keras model so that the head can be exported raw and decoded elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

STRIDES = (8, 16, 32)
REG_MAX = 16


def make_anchors(
    image_size: Sequence[int], strides: Sequence[int] = STRIDES
) -> tuple[tf.Tensor, tf.Tensor]:
    """Anchor centres and strides for an ``image_size = (height, width)`` input.

    Returns ``points`` (A, 2) float32 pixel centres ``((x + 0.5)·s, (y + 0.5)·s)`` in x, y
    order and ``strides`` (A, 1) float32, with A = Σ (H / s)·(W / s).
    """
    height, width = int(image_size[0]), int(image_size[1])
    points, stride_rows = [], []
    for s in strides:
        h, w = height // s, width // s
        xs = (tf.range(w, dtype=tf.float32) + 0.5) * s
        ys = (tf.range(h, dtype=tf.float32) + 0.5) * s
        grid_y, grid_x = tf.meshgrid(ys, xs, indexing="ij")  # (h, w), row-major
        points.append(tf.reshape(tf.stack([grid_x, grid_y], axis=-1), (-1, 2)))
        stride_rows.append(tf.fill((h * w, 1), tf.constant(float(s), tf.float32)))
    return tf.concat(points, axis=0), tf.concat(stride_rows, axis=0)


def dfl_decode(box_logits: tf.Tensor, reg_max: int | None = None) -> tf.Tensor:
    """(B, A, 4·reg_max) distance-bin logits → (B, A, 4) expected distances in bin units.

    ``reg_max`` defaults to the last dimension / 4.
    """
    box_logits = tf.cast(box_logits, tf.float32)
    if reg_max is None:
        reg_max = box_logits.shape[-1] // 4
    shape = tf.shape(box_logits)
    logits = tf.reshape(box_logits, tf.concat([shape[:-1], [4, reg_max]], axis=0))
    bins = tf.range(reg_max, dtype=tf.float32)
    return tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * bins, axis=-1)


def distances_to_boxes(points: tf.Tensor, distances: tf.Tensor, strides: tf.Tensor) -> tf.Tensor:
    """(l, t, r, b) distances in stride units → xyxy pixel boxes.

    ``points`` (A, 2) x, y; ``distances`` (B, A, 4); ``strides`` (A, 1). Returns (B, A, 4)
    ``(x − l·s, y − t·s, x + r·s, y + b·s)``.
    """
    distances = tf.cast(distances, tf.float32) * strides
    left_top, right_bottom = distances[..., :2], distances[..., 2:]
    return tf.concat([points - left_top, points + right_bottom], axis=-1)


def decode(
    raw: tf.Tensor, image_size: Sequence[int], reg_max: int = REG_MAX
) -> tuple[tf.Tensor, tf.Tensor]:
    """Raw head output (B, A, 4·reg_max + C) → (boxes xyxy pixels (B, A, 4), scores (B, A, C)).

    Scores are ``sigmoid`` of the class logits; ``image_size`` is the model input (H, W).
    """
    raw = tf.cast(raw, tf.float32)
    points, strides = make_anchors(image_size)
    distances = dfl_decode(raw[..., : 4 * reg_max], reg_max)
    boxes = distances_to_boxes(points, distances, strides)
    return boxes, tf.sigmoid(raw[..., 4 * reg_max :])
