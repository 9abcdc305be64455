"""Box utilities for detection metrics: format conversion, areas and IoU matrices,
vectorised with NumPy broadcasting (no Python loop over box pairs).

Two IoU flavours live here. :func:`box_iou` is the plain IoU of ``xyxy`` boxes.
:func:`coco_box_iou` reproduces pycocotools' ``maskUtils.iou`` for boxes (the C routine
``bbIou`` in ``maskApi.c``) operation for operation, on ``xywh`` boxes: the right edge is
``x + w`` (no ``+1`` pixel convention, COCO boxes are continuous floats), and for a *crowd*
ground-truth box the union is the detection's own area, so the value is the fraction of the
detection that lies inside the crowd region (Lin et al. 2014, "Microsoft COCO: Common
Objects in Context"). Computing it the same way keeps the evaluator bit-identical with
pycocotools on the same ``xywh`` inputs, which matters at the IoU thresholds.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """``boxes`` as a float64 (N, 4) array; an empty input (``[]``, shape (0,)) gives (0, 4)."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {array.shape}")
    return array


def xyxy_to_xywh(boxes) -> np.ndarray:
    """(N, 4) ``x1, y1, x2, y2`` → ``x, y, w, h`` (COCO's ``bbox`` layout)."""
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def xywh_to_xyxy(boxes) -> np.ndarray:
    """(N, 4) ``x, y, w, h`` → ``x1, y1, x2, y2``."""
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def box_area(boxes) -> np.ndarray:
    """(N,) areas ``w * h`` of (N, 4) ``xyxy`` boxes (no ``+1``; degenerate boxes give ≤ 0)."""
    b = as_boxes(boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(boxes1, boxes2) -> np.ndarray:
    """(N, M) IoU between (N, 4) and (M, 4) ``xyxy`` boxes; 0 where the union is empty."""
    a, b = as_boxes(boxes1), as_boxes(boxes2)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def coco_box_iou(dt_xywh: np.ndarray, gt_xywh: np.ndarray, iscrowd: np.ndarray) -> np.ndarray:
    """IoU as pycocotools computes it for boxes: ``maskUtils.iou(dt, gt, iscrowd)``.

    Shapes: ``dt_xywh`` (..., D, 4), ``gt_xywh`` (..., G, 4), ``iscrowd`` (..., G) → (..., D, G)
    (leading batch dimensions broadcast). Per pair, as in ``bbIou``: ``w = min(xd + wd,
    xg + wg) - max(xd, xg)`` (likewise ``h``), 0 when ``w <= 0`` or ``h <= 0``, otherwise
    ``i / u`` with ``i = w * h`` and ``u = area_dt`` for a crowd ground truth, else
    ``area_gt + area_dt - i`` (areas ``w * h`` of the ``xywh`` boxes).
    """
    d = np.asarray(dt_xywh, dtype=np.float64)[..., :, None, :]
    g = np.asarray(gt_xywh, dtype=np.float64)[..., None, :, :]
    crowd = np.asarray(iscrowd, dtype=bool)[..., None, :]
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da = d[..., 2] * d[..., 3]
    ga = g[..., 2] * g[..., 3]
    union = np.where(crowd, da, ga + da - inter)
    overlap = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)
