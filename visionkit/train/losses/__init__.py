"""Detection losses: box overlaps, the task-aligned assigner, YOLOv8-style and YOLOv1 losses.

Importing this package imports TensorFlow and Keras. ``YoloLoss`` and ``YoloV1Loss`` are
registered Keras serializables (package ``"visionkit"``).
"""

from visionkit.train.losses.assigner import Assignment, TaskAlignedAssigner
from visionkit.train.losses.box_iou import (
    box_area,
    ciou,
    giou,
    iou,
    pairwise_ciou,
    pairwise_giou,
    pairwise_iou,
)
from visionkit.train.losses.yolo_loss import (
    YoloLoss,
    decode_dfl_boxes,
    make_anchor_points,
    num_anchor_points,
    pack_targets,
    trim_padding,
    unpack_targets,
)
from visionkit.train.losses.yolov1_loss import YoloV1Loss

__all__ = [
    "Assignment",
    "TaskAlignedAssigner",
    "YoloLoss",
    "YoloV1Loss",
    "box_area",
    "ciou",
    "decode_dfl_boxes",
    "giou",
    "iou",
    "make_anchor_points",
    "num_anchor_points",
    "pack_targets",
    "pairwise_ciou",
    "pairwise_giou",
    "pairwise_iou",
    "trim_padding",
    "unpack_targets",
]
