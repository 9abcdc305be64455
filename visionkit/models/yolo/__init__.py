"""Anchor-free YOLO detectors (CSP backbone, PAN-FPN neck, decoupled head), their anchor
points, DFL decoding and class-aware NMS. Importing this package registers ``yolo_n``,
``yolo_s``, ``yolo_lite0``, ``yolo_mobilenetv2`` and ``yolo_resnet18`` (task ``detect``).
"""

from visionkit.models.yolo.anchors import (
    REG_MAX,
    STRIDES,
    decode,
    dfl_decode,
    distances_to_boxes,
    make_anchors,
)
from visionkit.models.yolo.csp import csp_backbone
from visionkit.models.yolo.detector import build_yolo, num_anchors
from visionkit.models.yolo.nms import class_aware_nms, postprocess

__all__ = [
    "REG_MAX",
    "STRIDES",
    "build_yolo",
    "class_aware_nms",
    "csp_backbone",
    "decode",
    "dfl_decode",
    "distances_to_boxes",
    "make_anchors",
    "num_anchors",
    "postprocess",
]
