"""The anchor-free YOLO detection loss (YOLOv8 style) as a ``keras.losses.Loss``.

Raw detector output (the contract shared with ``visionkit.models.yolo``): one float32
tensor ``(B, A, 4 * reg_max + C)``. ``A = Σ_l H_l · W_l`` over the levels P3, P4, P5
(strides 8, 16, 32, in that order), row-major (y then x) inside a level. Columns
``[:4 * reg_max]`` are box-distribution logits ordered (left, top, right, bottom) ×
``reg_max`` bins; columns ``[4 * reg_max:]`` are class logits (before the sigmoid).

Anchor points are pixel centres ``((x + 0.5) s, (y + 0.5) s)``; the distribution focal
loss (DFL) decoding gives distances in bins ``d = Σ softmax(logits) · arange(reg_max)`` and
boxes ``(x - l s, y - t s, x + r s, y + b s)`` in pixels.

Ground truth: ``{"boxes": (B, M, 4) xyxy pixels, "classes": (B, M) int, -1 = padding}``, or
the same packed as one ``(B, M, 5)`` float tensor ``[x1, y1, x2, y2, class]`` (see
:func:`pack_targets`). **Use the packed form with** ``model.compile(loss=YoloLoss(...))``:
Keras 3.15 ``fit`` refuses a dict ``y_true`` for a single-output model ("y_true and y_pred
have different structures"), checked on a toy model. A dict works when the loss is called
directly (custom ``train_step``/``compute_loss``, evaluation code).

Loss (Jocher et al., Ultralytics YOLOv8; assignment from TOOD, Feng et al. 2021):

* cls: binary cross-entropy of the class logits against the soft targets of the
  task-aligned assigner, summed, divided by ``max(Σ target scores, 1)``;
* box: ``1 - CIoU`` (Zheng et al., 2020) on the foreground anchors, each weighted by the
  sum of its target scores, divided by the same normaliser;
* dfl: Distribution Focal Loss (Li et al., 2020, Generalized Focal Loss): cross-entropy to
  the two bins around the target distance (in bins, clipped to ``reg_max - 1 - 0.01``),
  weighted by the linear-interpolation weights, averaged over the four sides, weighted
  and normalised like the box term;
* total = ``7.5 box + 0.5 cls + 1.5 dfl`` (YOLOv8 default gains).

Normalisation: the sums and the normaliser run over the whole batch, so the value is a
mean per target over the batch (Ultralytics multiplies the total by the batch size; this
loss does not, so its scale does not depend on the batch size). ``call`` returns a scalar;
``sample_weight`` is not meaningful for this loss. Everything is computed in float32, also
under a ``mixed_float16`` policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from visionkit.train.losses.assigner import Assignment, TaskAlignedAssigner
from visionkit.train.losses.box_iou import ciou

__all__ = [
    "YoloLoss",
    "decode_dfl_boxes",
    "make_anchor_points",
    "num_anchor_points",
    "pack_targets",
    "trim_padding",
    "unpack_targets",
]


def _make_anchors_local(
    image_size: Sequence[int], strides: Sequence[int] = (8, 16, 32)
) -> tuple[tf.Tensor, tf.Tensor]:
    """Fallback identical to ``visionkit.models.yolo.anchors.make_anchors``."""
    height, width = int(image_size[0]), int(image_size[1])
    points, stride_col = [], []
    for s in strides:
        h, w = height // s, width // s
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        xy = np.stack([xs.reshape(-1), ys.reshape(-1)], axis=-1).astype(np.float32)
        points.append((xy + 0.5) * s)
        stride_col.append(np.full((h * w, 1), s, np.float32))
    return tf.constant(np.concatenate(points, 0)), tf.constant(np.concatenate(stride_col, 0))


try:  # the detector's own helpers, so that training and inference decode identically
    from visionkit.models.yolo.anchors import make_anchors as _make_anchors
except ImportError:  # pragma: no cover - only while the models package is absent
    _make_anchors = _make_anchors_local


def make_anchor_points(
    image_size: Sequence[int], strides: Sequence[int] = (8, 16, 32)
) -> tuple[tf.Tensor, tf.Tensor]:
    """Anchor centres and per-anchor strides for an input of ``image_size = (H, W)``.

    Returns ``points (A, 2)`` float32 ``(x, y)`` pixel centres ``((x + 0.5) s, (y + 0.5) s)``
    and ``stride (A, 1)`` float32, levels in the order of ``strides``, row-major (y then x)
    inside a level, ``H_l = H // s``. Delegates to ``visionkit.models.yolo.anchors``.
    """
    return _make_anchors(image_size, strides)


def num_anchor_points(image_size: Sequence[int], strides: Sequence[int] = (8, 16, 32)) -> int:
    """``A = Σ_l (H // s_l) · (W // s_l)``."""
    return sum((int(image_size[0]) // s) * (int(image_size[1]) // s) for s in strides)


def decode_dfl_boxes(
    box_logits: tf.Tensor,
    anchor_points: tf.Tensor,
    stride: tf.Tensor,
    reg_max: int = 16,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Decode DFL box logits ``(B, A, 4 * reg_max)`` into boxes.

    Returns ``boxes (B, A, 4)`` xyxy pixels and ``distances (B, A, 4)`` (l, t, r, b) in bins.
    Same math as ``visionkit.models.yolo.anchors.dfl_decode`` + ``distances_to_boxes``.
    """
    box_logits = tf.cast(box_logits, tf.float32)
    shape = tf.shape(box_logits)
    logits = tf.reshape(box_logits, [shape[0], shape[1], 4, reg_max])
    bins = tf.range(reg_max, dtype=tf.float32)
    dist = tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * bins, axis=-1)
    anchor_points = tf.cast(anchor_points, tf.float32)
    stride = tf.cast(stride, tf.float32)
    lt = dist[..., :2] * stride
    rb = dist[..., 2:] * stride
    boxes = tf.concat([anchor_points - lt, anchor_points + rb], axis=-1)
    return boxes, dist


def pack_targets(targets: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """``{"boxes": (..., M, 4), "classes": (..., M)}`` → one ``(..., M, 5)`` float32 tensor.

    Use it in ``tf.data`` before ``fit``: ``ds.map(lambda x, y: (x, pack_targets(y)))``.
    """
    boxes = tf.cast(targets["boxes"], tf.float32)
    classes = tf.cast(targets["classes"], tf.float32)[..., None]
    return tf.concat([boxes, classes], axis=-1)


def trim_padding(packed: tf.Tensor, multiple: int = 8) -> tf.Tensor:
    """A batch of packed targets ``(B, M, 5)`` cut after its last real box (class ≥ 0),
    rounded up to a multiple of ``multiple`` slots (at most ``M``).

    The assigner's work grows with ``B · M · A``, and ``max_boxes`` pads every image to 100
    slots where a batch may hold a handful of boxes; padding slots are never assigned, so the
    loss is unchanged. Rounding keeps the number of distinct shapes (and traces) small.
    """
    slots = tf.shape(packed)[1]
    real = packed[..., 4] >= 0
    used = tf.reduce_max(tf.where(real, tf.range(1, slots + 1)[None, :], 0))
    keep = tf.minimum(tf.maximum((used + multiple - 1) // multiple, 1) * multiple, slots)
    return packed[:, :keep]


def unpack_targets(y_true: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """The dict or the packed ``(B, M, 5)`` form → ``boxes (B, M, 4)``, ``classes (B, M)`` int32."""
    if isinstance(y_true, Mapping):
        boxes = tf.cast(y_true["boxes"], tf.float32)
        classes = y_true["classes"]
    else:
        y_true = tf.convert_to_tensor(y_true)
        boxes = tf.cast(y_true[..., :4], tf.float32)
        classes = y_true[..., 4]
    classes = tf.cast(tf.round(tf.cast(classes, tf.float32)), tf.int32)
    return boxes, classes


def _dfl(logits: tf.Tensor, target: tf.Tensor, reg_max: int) -> tf.Tensor:
    """Distribution focal loss (Li et al., 2020) per anchor, mean over the 4 sides.

    ``logits (B, A, 4, reg_max)``, ``target (B, A, 4)`` in bins → ``(B, A)``.
    """
    target = tf.clip_by_value(target, 0.0, reg_max - 1 - 0.01)
    left = tf.floor(target)
    weight_left = left + 1.0 - target
    weight_right = 1.0 - weight_left
    left_i = tf.cast(left, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    loss = ce(labels=left_i, logits=logits) * weight_left
    loss += ce(labels=left_i + 1, logits=logits) * weight_right
    return tf.reduce_mean(loss, axis=-1)


@keras.saving.register_keras_serializable(package="visionkit")
class YoloLoss(keras.losses.Loss):
    """YOLOv8-style detection loss: CIoU + DFL box terms and BCE classification.

    Args:
        image_size: ``(H, W)`` of the model input; fixes the anchors.
        num_classes: number of classes ``C``.
        reg_max: bins of the box distribution (16).
        strides: strides of the output levels, in output order (8, 16, 32).
        box_gain, cls_gain, dfl_gain: term weights (7.5, 0.5, 1.5).
        top_k, alpha, beta: task-aligned assigner settings (10, 0.5, 6.0).
        name, reduction: as for ``keras.losses.Loss``; the per-batch value is a scalar.

    ``y_true``: dict ``{"boxes", "classes"}`` or packed ``(B, M, 5)``; ``y_pred``: raw
    ``(B, A, 4 * reg_max + C)`` (any float dtype). Returns a float32 scalar.
    """

    def __init__(
        self,
        image_size: Sequence[int],
        num_classes: int,
        reg_max: int = 16,
        strides: Sequence[int] = (8, 16, 32),
        box_gain: float = 7.5,
        cls_gain: float = 0.5,
        dfl_gain: float = 1.5,
        top_k: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        name: str = "yolo_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("dtype", None)  # the loss always computes in float32
        super().__init__(name=name, reduction=reduction, dtype="float32", **kwargs)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = int(num_classes)
        self.reg_max = int(reg_max)
        self.strides = tuple(int(s) for s in strides)
        self.box_gain = float(box_gain)
        self.cls_gain = float(cls_gain)
        self.dfl_gain = float(dfl_gain)
        self.top_k = int(top_k)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.num_anchors = num_anchor_points(self.image_size, self.strides)
        self.assigner = TaskAlignedAssigner(
            self.num_classes, top_k=self.top_k, alpha=self.alpha, beta=self.beta
        )

    # ------------------------------------------------------------------ internals
    def _check(self, y_pred: tf.Tensor) -> None:
        channels = 4 * self.reg_max + self.num_classes
        if y_pred.shape.rank != 3:
            raise ValueError(f"y_pred must be (B, A, {channels}), got shape {y_pred.shape}")
        a, c = y_pred.shape[1], y_pred.shape[2]
        if c is not None and c != channels:
            raise ValueError(
                f"y_pred has {c} channels; expected 4 * reg_max + num_classes = {channels}"
            )
        if a is not None and a != self.num_anchors:
            raise ValueError(
                f"y_pred has {a} anchors; image_size={self.image_size} with strides "
                f"{self.strides} gives {self.num_anchors}"
            )

    def assign(self, y_true: Any, y_pred: tf.Tensor) -> tuple[Assignment, dict[str, tf.Tensor]]:
        """Run the assigner; returns the :class:`Assignment` and the decoded predictions."""
        y_pred = tf.cast(y_pred, tf.float32)
        self._check(y_pred)
        gt_boxes, gt_classes = unpack_targets(y_true)
        points, stride = make_anchor_points(self.image_size, self.strides)
        box_logits = y_pred[..., : 4 * self.reg_max]
        cls_logits = y_pred[..., 4 * self.reg_max :]
        pred_boxes, _ = decode_dfl_boxes(box_logits, points, stride, self.reg_max)
        assignment = self.assigner(tf.sigmoid(cls_logits), pred_boxes, points, gt_boxes, gt_classes)
        decoded = {
            "box_logits": box_logits,
            "cls_logits": cls_logits,
            "pred_boxes": pred_boxes,
            "points": points,
            "stride": stride,
        }
        return assignment, decoded

    def components(self, y_true: Any, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        """The weighted terms for logging: ``box``, ``cls``, ``dfl`` and their sum ``loss``.

        Each is a float32 scalar already multiplied by its gain.
        """
        assignment, d = self.assign(y_true, y_pred)
        fg = tf.cast(assignment.foreground, tf.float32)  # (B, A)
        target_scores = assignment.scores
        norm = tf.maximum(tf.reduce_sum(target_scores), 1.0)

        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target_scores, logits=d["cls_logits"])
        cls_loss = tf.reduce_sum(bce) / norm

        weight = tf.reduce_sum(target_scores, axis=-1) * fg  # (B, A)
        overlap = ciou(d["pred_boxes"], assignment.boxes)
        box_loss = tf.reduce_sum((1.0 - overlap) * weight) / norm

        shape = tf.shape(d["box_logits"])
        logits = tf.reshape(d["box_logits"], [shape[0], shape[1], 4, self.reg_max])
        points, stride = d["points"], d["stride"]
        target_dist = (
            tf.concat(
                [points - assignment.boxes[..., :2], assignment.boxes[..., 2:] - points], axis=-1
            )
            / stride
        )
        dfl = _dfl(logits, target_dist, self.reg_max)
        dfl_loss = tf.reduce_sum(dfl * weight) / norm

        box_loss = box_loss * self.box_gain
        cls_loss = cls_loss * self.cls_gain
        dfl_loss = dfl_loss * self.dfl_gain
        return {
            "box": box_loss,
            "cls": cls_loss,
            "dfl": dfl_loss,
            "loss": box_loss + cls_loss + dfl_loss,
        }

    def call(self, y_true: Any, y_pred: tf.Tensor) -> tf.Tensor:
        """Total loss, a float32 scalar (mean per target over the batch, see the module)."""
        return self.components(y_true, y_pred)["loss"]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            image_size=list(self.image_size),
            num_classes=self.num_classes,
            reg_max=self.reg_max,
            strides=list(self.strides),
            box_gain=self.box_gain,
            cls_gain=self.cls_gain,
            dfl_gain=self.dfl_gain,
            top_k=self.top_k,
            alpha=self.alpha,
            beta=self.beta,
        )
        return config
