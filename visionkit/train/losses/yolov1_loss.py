"""The YOLOv1 loss of Redmon et al., 2016 ("You Only Look Once"), as a ``keras.losses.Loss``.

Output ``(B, S, S, n_boxes * 5 + C)``: per cell ``n_boxes`` predictors ``[x, y, w, h, conf]``
followed by ``C`` class probabilities. ``x, y`` are the box centre relative to the cell
(0..1), ``w, h`` relative to the image, all predicted directly (no activation is assumed).

Ground truth is the detection dict ``{"boxes": (B, M, 4) xyxy pixels, "classes": (B, M),
-1 = padding}`` (or the packed ``(B, M, 5)`` form of :func:`~visionkit.train.losses.yolo_loss.pack_targets`,
which is what ``model.fit`` accepts for a single-output model); ``image_size = (H, W)``
converts pixels to image fractions. A GT belongs to the cell holding its centre; when two
GTs share a cell (YOLOv1 predicts one object per cell) the first slot wins.

The responsible predictor of an object cell is the one whose box has the highest IoU with
the GT. Sum-squared error terms, per image, averaged over the batch:

* ``λ_coord Σ 1^obj_ij [(x - x̂)² + (y - ŷ)²]``
* ``λ_coord Σ 1^obj_ij [(√w - √ŵ)² + (√h - √ĥ)²]``
* ``Σ 1^obj_ij (C - Ĉ)²`` with target ``Ĉ`` = IoU(predicted, GT) as in the paper
  (``confidence_target="iou"``, no gradient through the IoU) or 1 (``"one"``)
* ``λ_noobj Σ 1^noobj_ij C²`` (every predictor that is not responsible for an object)
* ``Σ 1^obj_i Σ_c (p(c) - p̂(c))²``

``λ_coord = 5``, ``λ_noobj = 0.5``. The square root is applied as ``sign(w)·sqrt(|w| + ε)``
to both sides so that negative predicted sizes have a finite gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from visionkit.train.losses.box_iou import iou
from visionkit.train.losses.yolo_loss import unpack_targets

__all__ = ["YoloV1Loss"]

_SQRT_EPS = 1e-9


def _signed_sqrt(x: tf.Tensor) -> tf.Tensor:
    return tf.sign(x) * tf.sqrt(tf.abs(x) + _SQRT_EPS)


@keras.saving.register_keras_serializable(package="visionkit")
class YoloV1Loss(keras.losses.Loss):
    """YOLOv1 sum-squared loss (Redmon et al., 2016).

    Args:
        image_size: ``(H, W)`` in pixels of the model input.
        num_classes: ``C`` (20 for VOC).
        grid_size: ``S`` (7).
        num_boxes: predictors per cell ``B`` (2).
        lambda_coord: weight of the coordinate terms (5).
        lambda_noobj: weight of the no-object confidence term (0.5).
        confidence_target: ``"iou"`` (paper) or ``"one"``.
    """

    def __init__(
        self,
        image_size: Sequence[int],
        num_classes: int = 20,
        grid_size: int = 7,
        num_boxes: int = 2,
        lambda_coord: float = 5.0,
        lambda_noobj: float = 0.5,
        confidence_target: str = "iou",
        name: str = "yolov1_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("dtype", None)
        super().__init__(name=name, reduction=reduction, dtype="float32", **kwargs)
        if confidence_target not in ("iou", "one"):
            raise ValueError(f"confidence_target must be 'iou' or 'one', got {confidence_target!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = int(num_classes)
        self.grid_size = int(grid_size)
        self.num_boxes = int(num_boxes)
        self.lambda_coord = float(lambda_coord)
        self.lambda_noobj = float(lambda_noobj)
        self.confidence_target = confidence_target

    def _targets(self, y_true: Any) -> dict[str, tf.Tensor]:
        """Per-cell targets: object mask (B,S,S), box xyxy/cxcywh in image fractions, classes."""
        s = self.grid_size
        boxes, classes = unpack_targets(y_true)
        h_img, w_img = float(self.image_size[0]), float(self.image_size[1])
        boxes = boxes / tf.constant([w_img, h_img, w_img, h_img], tf.float32)
        valid = classes >= 0  # (B, M)
        cx = (boxes[..., 0] + boxes[..., 2]) * 0.5
        cy = (boxes[..., 1] + boxes[..., 3]) * 0.5
        col = tf.clip_by_value(tf.cast(tf.floor(cx * s), tf.int32), 0, s - 1)
        row = tf.clip_by_value(tf.cast(tf.floor(cy * s), tf.int32), 0, s - 1)
        cell_of_gt = tf.one_hot(row * s + col, s * s, dtype=tf.float32)  # (B, M, S*S)
        cell_of_gt *= tf.cast(valid, tf.float32)[..., None]
        in_cell = tf.transpose(cell_of_gt, [0, 2, 1])  # (B, S*S, M)
        # Pad one empty slot so M >= 1; argmax then picks the first GT of the cell.
        in_cell = tf.concat([in_cell, tf.zeros_like(in_cell[..., :1])], axis=-1)
        boxes = tf.concat([boxes, tf.zeros_like(boxes[:, :1])], axis=1)
        classes = tf.concat([classes, tf.zeros_like(classes[:, :1])], axis=1)
        has_obj = tf.reduce_max(in_cell, axis=-1)  # (B, S*S)
        gt_idx = tf.argmax(in_cell, axis=-1, output_type=tf.int32)
        cell_boxes = tf.gather(boxes, gt_idx, batch_dims=1)  # (B, S*S, 4)
        cell_classes = tf.gather(classes, gt_idx, batch_dims=1)
        batch = tf.shape(has_obj)[0]
        return {
            "obj": tf.reshape(has_obj, [batch, s, s]),
            "boxes": tf.reshape(cell_boxes, [batch, s, s, 4]),
            "classes": tf.reshape(
                tf.one_hot(tf.maximum(cell_classes, 0), self.num_classes), [batch, s, s, -1]
            ),
        }

    def components(self, y_true: Any, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        """Per-image weighted terms ``(B,)``: coord, size, obj, noobj, cls, and their sum ``loss``."""
        s, nb = self.grid_size, self.num_boxes
        y_pred = tf.cast(y_pred, tf.float32)
        expected = nb * 5 + self.num_classes
        if y_pred.shape.rank != 4 or (y_pred.shape[-1] not in (None, expected)):
            raise ValueError(f"y_pred must be (B, {s}, {s}, {expected}), got {y_pred.shape}")
        batch = tf.shape(y_pred)[0]
        t = self._targets(y_true)
        pred_boxes = tf.reshape(y_pred[..., : nb * 5], [batch, s, s, nb, 5])
        pred_cls = y_pred[..., nb * 5 :]

        # Predicted boxes in image fractions (xyxy) for the IoU with the cell's GT.
        grid = tf.cast(tf.range(s), tf.float32)
        gx = tf.reshape(grid, [1, 1, s, 1])
        gy = tf.reshape(grid, [1, s, 1, 1])
        px = (pred_boxes[..., 0] + gx) / s
        py = (pred_boxes[..., 1] + gy) / s
        pw, ph = pred_boxes[..., 2], pred_boxes[..., 3]
        pred_xyxy = tf.stack([px - pw / 2, py - ph / 2, px + pw / 2, py + ph / 2], axis=-1)
        gt_xyxy = t["boxes"][:, :, :, None, :]  # (B, S, S, 1, 4)
        ious = tf.stop_gradient(iou(pred_xyxy, gt_xyxy))  # (B, S, S, nb)
        responsible = tf.one_hot(tf.argmax(ious, axis=-1), nb, dtype=tf.float32)
        obj_ij = responsible * t["obj"][..., None]  # (B, S, S, nb)
        noobj_ij = 1.0 - obj_ij

        gt = t["boxes"]
        gcx = (gt[..., 0] + gt[..., 2]) * 0.5 * s
        gcy = (gt[..., 1] + gt[..., 3]) * 0.5 * s
        tx = (gcx - tf.floor(gcx))[..., None]
        ty = (gcy - tf.floor(gcy))[..., None]
        tw = tf.maximum(gt[..., 2] - gt[..., 0], 0.0)[..., None]
        th = tf.maximum(gt[..., 3] - gt[..., 1], 0.0)[..., None]

        def per_image(x: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(tf.reshape(x, [batch, -1]), axis=-1)

        coord = self.lambda_coord * per_image(
            obj_ij * (tf.square(pred_boxes[..., 0] - tx) + tf.square(pred_boxes[..., 1] - ty))
        )
        size = self.lambda_coord * per_image(
            obj_ij
            * (
                tf.square(_signed_sqrt(pw) - _signed_sqrt(tw))
                + tf.square(_signed_sqrt(ph) - _signed_sqrt(th))
            )
        )
        conf = pred_boxes[..., 4]
        conf_target = ious if self.confidence_target == "iou" else tf.ones_like(ious)
        obj = per_image(obj_ij * tf.square(conf - conf_target))
        noobj = self.lambda_noobj * per_image(noobj_ij * tf.square(conf))
        cls = per_image(t["obj"][..., None] * tf.square(pred_cls - t["classes"]))
        return {
            "coord": coord,
            "size": size,
            "obj": obj,
            "noobj": noobj,
            "cls": cls,
            "loss": coord + size + obj + noobj + cls,
        }

    def call(self, y_true: Any, y_pred: tf.Tensor) -> tf.Tensor:
        """Per-image loss ``(B,)``; the ``reduction`` averages it over the batch."""
        return self.components(y_true, y_pred)["loss"]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            image_size=list(self.image_size),
            num_classes=self.num_classes,
            grid_size=self.grid_size,
            num_boxes=self.num_boxes,
            lambda_coord=self.lambda_coord,
            lambda_noobj=self.lambda_noobj,
            confidence_target=self.confidence_target,
        )
        return config
