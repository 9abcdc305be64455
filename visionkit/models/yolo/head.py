"""Anchor-free decoupled detection head (Ge et al. 2021, *YOLOX: Exceeding YOLO Series in
2021*; the distribution-focal box branch of Li et al. 2020, *Generalized Focal Loss*, as in
Ultralytics YOLOv8 — layout only, our own code).

Per level: a box branch (2 × conv 3×3 → conv 1×1 to ``4 * reg_max``, bias 1.0) and a class
branch (2 × conv 3×3 → conv 1×1 to ``num_classes``, bias −log((1 − 0.01) / 0.01), a 0.01
prior). Each level is reshaped to (B, H·W, ·) row-major, levels P3, P4, P5 are concatenated
and the box and class columns joined into the raw output

    (B, A, 4 * reg_max + num_classes), float32 (also under ``mixed_float16``),

with A = Σ H_l·W_l; columns ``[:4 * reg_max]`` are (left, top, right, bottom) × reg_max
distance-bin logits, columns ``[4 * reg_max:]`` class logits (pre-sigmoid). Decoding
(``visionkit.models.yolo.anchors.decode``) and NMS are kept out of the model so they can be
exported separately (TFLite_Detection_PostProcess). Layer names start with ``det_head_``.
"""

from __future__ import annotations

import math

from keras import initializers, layers

from visionkit.models.yolo.csp import conv

PREFIX = "det_head"
PRIOR_PROBABILITY = 0.01
CLASS_BIAS = -math.log((1.0 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
BOX_BIAS = 1.0


def decoupled_head(feature_maps: list, *, num_classes: int, reg_max: int = 16, name: str = PREFIX):
    """Raw detector output (B, A, 4·reg_max + C) float32 from the neck maps [P3, P4, P5].

    Branch widths follow YOLOv8: box ``max(16, C3 / 4, 4·reg_max)``, class
    ``max(C3, min(num_classes, 100))`` with C3 the P3 map's channels.
    """
    c3 = feature_maps[0].shape[-1]
    box_width = max(16, c3 // 4, 4 * reg_max)
    cls_width = max(c3, min(num_classes, 100))
    boxes, classes = [], []
    for level, x in zip((3, 4, 5), feature_maps, strict=True):
        p = f"{name}_p{level}"
        b = conv(x, box_width, 3, name=f"{p}_box1")
        b = conv(b, box_width, 3, name=f"{p}_box2")
        b = layers.Conv2D(
            4 * reg_max,
            1,
            bias_initializer=initializers.Constant(BOX_BIAS),
            dtype="float32",
            name=f"{p}_box_out",
        )(b)
        c = conv(x, cls_width, 3, name=f"{p}_cls1")
        c = conv(c, cls_width, 3, name=f"{p}_cls2")
        c = layers.Conv2D(
            num_classes,
            1,
            bias_initializer=initializers.Constant(CLASS_BIAS),
            dtype="float32",
            name=f"{p}_cls_out",
        )(c)
        boxes.append(layers.Reshape((-1, 4 * reg_max), dtype="float32", name=f"{p}_box_flat")(b))
        classes.append(layers.Reshape((-1, num_classes), dtype="float32", name=f"{p}_cls_flat")(c))
    box = layers.Concatenate(axis=1, dtype="float32", name=f"{name}_box")(boxes)
    cls = layers.Concatenate(axis=1, dtype="float32", name=f"{name}_cls")(classes)
    return layers.Concatenate(axis=-1, dtype="float32", name=f"{name}_output")([box, cls])
