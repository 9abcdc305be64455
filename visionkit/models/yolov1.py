"""YOLOv1 (Redmon, Divvala, Girshick & Farhadi 2016, *You Only Look Once: Unified,
Real-Time Object Detection*, CVPR) head on a visionkit backbone.

The image is divided into an S×S grid; each cell predicts B boxes, each
``[x, y, w, h, confidence]``, and one set of C class probabilities, so the output is
(batch, S, S, B·5 + C) — 7×7×30 for the paper's S = 7, B = 2, C = 20 (PASCAL VOC).
Per cell the last axis holds ``[x, y, w, h, conf] × B`` followed by the C class
probabilities: x, y are the box centre's offset inside its cell (0..1, relative to the
cell), w, h are relative to the whole image (0..1); the loss regresses √w, √h. The
final layer is linear as in the paper (no sigmoid/softmax): the loss sees raw values.

Head: backbone P5 → conv 3×3/2 (1024, BN, leaky ReLU 0.1) → flatten → FC 4096 (leaky
ReLU 0.1) → dropout 0.5 → FC S·S·(B·5 + C) → reshape. The grid size is set by the
last FC, so any input of at least 64 px works; the paper's 448 px gives a 7×7 map before
the FC as in the paper. Head layers are named ``det_head_*``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from visionkit.models.registry import register_model

_PAPER = "Redmon, Divvala, Girshick & Farhadi 2016, You Only Look Once (CVPR)"
PREFIX = "det_head"


def build_yolov1(
    *,
    num_classes: int = 20,
    input_shape=(448, 448, 3),
    grid: int = 7,
    boxes_per_cell: int = 2,
    backbone: str = "resnet18",
    backbone_weights: str | None = None,
    head_filters: int = 1024,
    fc_units: int = 4096,
    dropout: float = 0.5,
) -> keras.Model:
    """YOLOv1 detector: (B, H, W, 3) uint8-range RGB → (B, grid, grid, 5·boxes + C) float32."""
    from visionkit.backbones import create_backbone

    base = create_backbone(backbone, input_shape=tuple(input_shape), weights=backbone_weights)
    depth = boxes_per_cell * 5 + num_classes
    x = base.output["P5"]
    x = layers.Conv2D(
        head_filters, 3, strides=2, padding="same", use_bias=False, name=f"{PREFIX}_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{PREFIX}_bn")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name=f"{PREFIX}_conv_act")(x)
    x = layers.Flatten(name=f"{PREFIX}_flatten")(x)
    x = layers.Dense(fc_units, name=f"{PREFIX}_fc1")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name=f"{PREFIX}_fc1_act")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{PREFIX}_dropout")(x)
    x = layers.Dense(grid * grid * depth, dtype="float32", name=f"{PREFIX}_fc2")(x)
    outputs = layers.Reshape((grid, grid, depth), dtype="float32", name=f"{PREFIX}_output")(x)
    return keras.Model(base.input, outputs, name="yolov1")


YOLOV1_PARAMS = 227_456_382  # at 448 px, 20 classes, resnet18 (built and counted)


@register_model(
    task="detect",
    family="yolov1",
    paper=_PAPER,
    input_shape=(448, 448, 3),
    num_classes=20,
    preprocessing="inside the model (the backbone's own; x / 255 for resnet18)",
    params=YOLOV1_PARAMS,
    min_input_size=64,
    backbone="resnet18",
)
def yolov1(
    *,
    num_classes: int = 20,
    input_shape=(448, 448, 3),
    grid: int = 7,
    boxes_per_cell: int = 2,
    backbone: str = "resnet18",
    **kwargs,
) -> keras.Model:
    """YOLOv1 (Redmon et al. 2016): S×S grid, B boxes and C class probabilities per cell.

    Input: (448, 448, 3) uint8-range RGB, preprocessing inside the backbone (resnet18:
    x / 255). Output: (batch, 7, 7, 30) for S = 7, B = 2, C = 20, per cell
    ``[x, y, w, h, conf] × B`` then C class probabilities (x, y relative to the cell;
    w, h relative to the image). Options: ``backbone``, ``backbone_weights``,
    ``head_filters``, ``fc_units``, ``dropout``. Most parameters sit in the first FC layer
    (7·7·1024 → 4096, 205.5M); see ``YOLOV1_PARAMS``.
    """
    return build_yolov1(
        num_classes=num_classes,
        input_shape=input_shape,
        grid=grid,
        boxes_per_cell=boxes_per_cell,
        backbone=backbone,
        **kwargs,
    )


def decode_yolov1(output, image_size: Sequence[int], *, num_classes: int, boxes_per_cell: int = 2):
    """(B, S, S, 5·boxes + C) YOLOv1 output → (boxes (B, S·S·boxes, 4) xyxy pixels,
    scores (B, S·S·boxes, C)).

    Score of class c for a box = clip(conf, 0, 1) · clip(P(c | object), 0, 1) (the
    paper's class-specific confidence); w, h are clipped at 0. Feed the result to
    ``visionkit.models.yolo.nms.class_aware_nms``.
    """
    import tensorflow as tf

    output = tf.cast(output, tf.float32)
    grid = output.shape[1]
    height, width = float(image_size[0]), float(image_size[1])
    nb = boxes_per_cell
    batch = tf.shape(output)[0]
    box_part = tf.reshape(output[..., : 5 * nb], (batch, grid, grid, nb, 5))
    probs = tf.clip_by_value(output[..., 5 * nb : 5 * nb + num_classes], 0.0, 1.0)
    cols = tf.range(grid, dtype=tf.float32)[None, None, :, None]
    rows = tf.range(grid, dtype=tf.float32)[None, :, None, None]
    cx = (cols + box_part[..., 0]) / grid * width
    cy = (rows + box_part[..., 1]) / grid * height
    w = tf.maximum(box_part[..., 2], 0.0) * width
    h = tf.maximum(box_part[..., 3], 0.0) * height
    boxes = tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    conf = tf.clip_by_value(box_part[..., 4], 0.0, 1.0)
    scores = conf[..., None] * probs[:, :, :, None, :]
    return (
        tf.reshape(boxes, (batch, grid * grid * nb, 4)),
        tf.reshape(scores, (batch, grid * grid * nb, num_classes)),
    )


def postprocess_yolov1(
    output,
    image_size: Sequence[int],
    *,
    num_classes: int,
    boxes_per_cell: int = 2,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
):
    """Decode a YOLOv1 output and run class-aware NMS (see ``class_aware_nms``)."""
    from visionkit.models.yolo.nms import class_aware_nms

    boxes, scores = decode_yolov1(
        output, image_size, num_classes=num_classes, boxes_per_cell=boxes_per_cell
    )
    return class_aware_nms(
        boxes,
        scores,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
    )
