"""YOLO-style anchor-free detectors: backbone (P3–P5) → PAN-FPN neck → decoupled head.

``build_yolo(backbone=..., num_classes=..., input_shape=...)`` assembles the model; the
registered variants (``yolo_n``, ``yolo_s``, ``yolo_lite0``, ``yolo_mobilenetv2``,
``yolo_resnet18``) are small builders over it. The model maps uint8-range RGB images
(preprocessing inside) to the raw output (B, A, 4·reg_max + C), float32; see
``visionkit.models.yolo.head`` for the layout and ``anchors.decode`` / ``nms.postprocess``
for turning it into boxes.
"""

from __future__ import annotations

import keras

from visionkit.models.classic.common import image_input
from visionkit.models.errors import ModelError
from visionkit.models.registry import register_model
from visionkit.models.yolo.anchors import REG_MAX, STRIDES
from visionkit.models.yolo.csp import SCALES, csp_features
from visionkit.models.yolo.head import decoupled_head
from visionkit.models.yolo.neck import pan_fpn

# Neck/head multiples used when the backbone is not a CSP scale (the "n" neck).
DEFAULT_WIDTH, DEFAULT_DEPTH = 0.25, 0.33


def num_anchors(image_size, strides=STRIDES) -> int:
    """A = Σ (H / s)·(W / s) over the strides."""
    return sum((int(image_size[0]) // s) * (int(image_size[1]) // s) for s in strides)


def build_yolo(
    *,
    backbone: str,
    num_classes: int,
    input_shape=(640, 640, 3),
    weights: str | None = None,
    width: float | None = None,
    depth: float | None = None,
    reg_max: int = REG_MAX,
    name: str | None = None,
) -> keras.Model:
    """Build an anchor-free YOLO detector.

    Args:
        backbone: ``"csp_n"`` / ``"csp_s"`` (from-scratch CSP, ``visionkit.models.yolo.csp``)
            or any name from ``visionkit.backbones.list_backbones()`` (P3–P5 are used).
        num_classes: C.
        input_shape: (H, W, 3), H and W divisible by 32; uint8-range RGB input.
        weights: backbone weights passed to ``create_backbone`` (``None``, ``"imagenet"``
            or a path); ignored (must be None) for CSP backbones.
        width, depth: neck (and CSP backbone) multiples; default the CSP scale's, or
            0.25 / 0.33 for other backbones.
        reg_max: distance bins per box side.

    Returns:
        ``keras.Model`` (B, H, W, 3) → (B, A, 4·reg_max + C) float32.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ModelError(f"input_shape must be (height, width, 3), got {shape!r}")
    if any(d is None or d % 32 for d in shape[:2]):
        raise ModelError(
            f"YOLO detectors need a static input size divisible by 32, got {shape[0]}×{shape[1]}"
        )
    if backbone.startswith("csp_"):
        scale = backbone[4:]
        if scale not in SCALES:
            raise ModelError(f"unknown CSP backbone {backbone!r}; use csp_n or csp_s")
        if weights is not None:
            raise ModelError(f"{backbone} is trained from scratch; use weights=None")
        d, w, max_channels = SCALES[scale]
        width = w if width is None else width
        depth = d if depth is None else depth
        inputs, x = image_input(shape)
        features = csp_features(x, depth=depth, width=width, max_channels=max_channels)
    else:
        from visionkit.backbones import create_backbone

        base = create_backbone(backbone, input_shape=shape, weights=weights)
        inputs, features = base.input, base.output
        width = DEFAULT_WIDTH if width is None else width
        depth = DEFAULT_DEPTH if depth is None else depth
        max_channels = 1024
    maps = pan_fpn(features, width=width, depth=depth, max_channels=max_channels)
    outputs = decoupled_head(maps, num_classes=num_classes, reg_max=reg_max)
    return keras.Model(inputs, outputs, name=name or f"yolo_{backbone}")


_PAPER = (
    "Jocher et al. 2023, Ultralytics YOLOv8 (layout); Ge et al. 2021, YOLOX (decoupled "
    "anchor-free head); Wang et al. 2020, CSPNet; Lin et al. 2017, FPN; Liu et al. 2018, PANet"
)
_PREPROCESSING = "inside the model (the backbone's own; x / 255 for CSP)"

_DOC = """YOLO detector, {title} backbone + PAN-FPN neck + decoupled anchor-free head.

Input: (640, 640, 3) uint8-range RGB (any static size divisible by 32, at least 64);
{prep}. Output: raw (B, A, 64 + C) float32, A = Σ (S/s)² over strides 8, 16, 32
(8,400 at 640); decode with ``visionkit.models.yolo.anchors.decode`` and
``visionkit.models.yolo.nms.postprocess``. {params:,} parameters at 640 px and 80 classes.
{note}Options: ``backbone_weights`` (``None``, ``"imagenet"`` or a path: the backbone only),
``width``, ``depth``, ``reg_max``.
"""


def _register(name: str, backbone: str, title: str, prep: str, params: int):
    def builder(
        *,
        num_classes: int = 80,
        input_shape=(640, 640, 3),
        backbone_weights: str | None = None,
        width: float | None = None,
        depth: float | None = None,
        reg_max: int = REG_MAX,
    ) -> keras.Model:
        return build_yolo(
            backbone=backbone,
            num_classes=num_classes,
            input_shape=input_shape,
            weights=backbone_weights,
            width=width,
            depth=depth,
            reg_max=reg_max,
            name=name,
        )

    builder.__name__ = builder.__qualname__ = name
    note = (
        f"Trainable parameters match Ultralytics YOLOv8{name[-1]} minus the 16 fixed DFL weights.\n"
        if backbone.startswith("csp_")
        else ""
    )
    builder.__doc__ = _DOC.format(title=title, prep=prep, params=params, note=note)
    return register_model(
        task="detect",
        family="yolo",
        paper=_PAPER,
        input_shape=(640, 640, 3),
        num_classes=80,
        preprocessing=_PREPROCESSING,
        params=params,
        min_input_size=64,
        backbone=None if backbone.startswith("csp_") else backbone,
    )(builder)


# name: (backbone, title, preprocessing, parameters at 640 px / 80 classes incl. BN statistics)
VARIANTS = {
    "yolo_n": (
        "csp_n",
        "CSP-n (from scratch, depth 0.33, width 0.25)",
        "x / 255 inside",
        3_167_776,
    ),
    "yolo_s": (
        "csp_s",
        "CSP-s (from scratch, depth 0.33, width 0.50)",
        "x / 255 inside",
        11_186_576,
    ),
    "yolo_lite0": ("efficientnet_lite0", "EfficientNet-Lite0", "(x - 127) / 128 inside", 5_692_752),
    "yolo_mobilenetv2": ("mobilenet_v2", "MobileNetV2", "x / 127.5 - 1 inside", 4_606_832),
    "yolo_resnet18": ("resnet18", "ResNet-18 (visionkit zoo)", "x / 255 inside", 13_194_992),
}

for _name, (_backbone, _title, _prep, _params) in VARIANTS.items():
    _register(_name, _backbone, _title, _prep, _params)
