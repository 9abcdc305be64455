"""COCO-style detection metrics in vectorised NumPy, and a YOLO-style confusion matrix.

:func:`evaluate_detections` reproduces pycocotools' ``COCOeval`` for ``iouType="bbox"``
(the protocol of Lin et al. 2014, "Microsoft COCO: Common Objects in Context",
https://cocodataset.org/#detection-eval): AP averaged over IoU 0.50:0.05:0.95 and 101
recall points, per area range (small < 32², medium 32²–96², large > 96²) and per number
of detections kept per image (1, 10, 100). It agrees with ``COCOeval.stats`` to float
round-off (tests compare both on synthetic data); the details it replicates are listed
in :func:`evaluate_detections`.

Boxes are ``xyxy`` pixel floats throughout the toolkit. Inputs, one dict per image and
the same order in both lists:

- ground truth: ``boxes`` (N, 4) ``xyxy`` float, ``classes`` (N,) int in ``[0, C)``,
  optional ``iscrowd`` (N,) bool (crowd regions, COCO ``iscrowd=1``);
- predictions: ``boxes`` (M, 4) ``xyxy`` float, ``scores`` (M,) float, ``classes`` (M,) int.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from visionkit.evaluate.boxes import as_boxes, box_iou, coco_box_iou, xyxy_to_xywh

#: COCO's IoU thresholds, built exactly as pycocotools' ``Params.iouThrs`` (10 values).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10, endpoint=True)
#: COCO's 101 recall points, as pycocotools' ``Params.recThrs``.
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101, endpoint=True)
#: COCO's area ranges in pixels² (bounds inclusive on both sides, as in pycocotools).
COCO_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
#: Largest (pairs × area ranges × IoU thresholds × ground truths) block matched at once.
_MATCH_BLOCK = 2_000_000


@dataclass
class DetectionResult:
    """What :func:`evaluate_detections` returns.

    ``metrics`` is the JSON-able dict for ``metrics.json``. The arrays follow pycocotools'
    ``COCOeval.eval`` layout, with T IoU thresholds, R recall points, K classes, A area
    ranges and M max-detection settings, and ``-1`` where a class has no (non-ignored)
    ground truth in that area range:

    - ``precision`` (T, R, K, A, M): interpolated precision at each recall point
      (``eval['precision']``);
    - ``recall`` (T, K, A, M): the recall reached with all kept detections
      (``eval['recall']``);
    - ``scores`` (T, R, K, A, M): the detection score at which each recall point is
      reached (``eval['scores']``), useful to pick a confidence threshold.
    """

    metrics: dict
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    area_ranges: dict[str, tuple[float, float]]
    max_detections: tuple[int, ...]
    class_names: list[str] = field(default_factory=list)

    def iou_index(self, iou: float) -> int:
        """Index of ``iou`` in ``iou_thresholds`` (KeyError when it is not one of them)."""
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, iou, rtol=0, atol=1e-9))
        if not hits.size:
            raise KeyError(f"IoU {iou} not among {self.iou_thresholds.tolist()}")
        return int(hits[0])

    def pr_curve(
        self, class_index: int, *, iou: float = 0.5, area: str = "all", max_dets: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(recall points (R,), interpolated precision (R,)) for one class; precision is -1
        throughout when the class has no ground truth."""
        a = list(self.area_ranges).index(area)
        m = self.max_detections.index(max_dets or self.max_detections[-1])
        return self.recall_thresholds, self.precision[self.iou_index(iou), :, class_index, a, m]


def _mean_valid(values: np.ndarray) -> float:
    """Mean over entries > -1, or -1 when there are none (pycocotools' ``_summarize``)."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _flatten(records: Sequence[Mapping], num_classes: int, *, predictions: bool) -> dict:
    """Concatenate per-image dicts into flat arrays with an ``image`` index column."""
    boxes, classes, extra, image = [], [], [], []
    what = "predictions" if predictions else "ground_truth"
    for i, record in enumerate(records):
        b = as_boxes(record["boxes"])
        c = np.asarray(record["classes"], dtype=np.int64).reshape(-1)
        if predictions:
            e = np.asarray(record["scores"], dtype=np.float64).reshape(-1)
        else:
            crowd = record.get("iscrowd")
            e = np.zeros(len(b), bool) if crowd is None else np.asarray(crowd, bool).reshape(-1)
        if not len(b) == len(c) == len(e):
            raise ValueError(f"{what}[{i}]: {len(b)} boxes, {len(c)} classes, {len(e)} other")
        if len(c) and (c.min() < 0 or c.max() >= num_classes):
            raise ValueError(f"{what}[{i}]: class index outside [0, {num_classes})")
        boxes.append(b)
        classes.append(c)
        extra.append(e)
        image.append(np.full(len(b), i, dtype=np.int64))
    xywh = xyxy_to_xywh(np.concatenate(boxes)) if boxes else np.zeros((0, 4))
    out = {
        "xywh": xywh,
        "area": xywh[:, 2] * xywh[:, 3],
        "cls": np.concatenate(classes) if classes else np.zeros(0, np.int64),
        "image": np.concatenate(image) if image else np.zeros(0, np.int64),
    }
    out["score" if predictions else "crowd"] = (
        np.concatenate(extra) if extra else np.zeros(0, np.float64 if predictions else bool)
    )
    return out


def _greedy_match(
    ious: np.ndarray,
    gt_valid: np.ndarray,
    gt_crowd: np.ndarray,
    gt_ignore: np.ndarray,
    det_valid: np.ndarray,
    thresholds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching for P (image, class) pairs at once.

    ``ious`` (P, D, G) with detections in descending score order, ``gt_valid`` (P, G) and
    ``det_valid`` (P, D) padding masks, ``gt_crowd`` (P, G), ``gt_ignore`` (P, A, G),
    ``thresholds`` (T,). Returns ``matched`` and ``matched_ignored`` (P, D, A, T): whether
    detection d found a ground truth, and whether that ground truth is an ignored one.

    Each detection in score order takes, among the ground truths still free (crowd ones
    are never used up) with IoU ≥ t, the non-ignored one of highest IoU, the *last* one
    in annotation order on ties (pycocotools replaces its candidate when ``iou >= best``);
    only when no non-ignored one qualifies does it fall back to the ignored ones (their
    loop is reached after the ground truths are stably sorted by ignore flag). The
    threshold is ``min(t, 1 - 1e-10)``, as in pycocotools.
    """
    p, d, g = ious.shape
    a = gt_ignore.shape[1]
    thr = np.minimum(thresholds, 1 - 1e-10)[None, None, :, None]
    taken = np.zeros((p, a, len(thresholds), g), dtype=bool)
    reusable = gt_crowd[:, None, None, :]
    ignored = gt_ignore[:, :, None, :]
    valid = gt_valid[:, None, None, :]
    matched = np.zeros((p, d, a, len(thresholds)), dtype=bool)
    matched_ignored = np.zeros_like(matched)
    for r in range(d):
        iou = ious[:, r, None, None, :]
        ok = valid & (~taken | reusable) & (iou >= thr) & det_valid[:, r, None, None, None]
        regular = ok & ~ignored
        has_regular = regular.any(axis=-1)
        candidates = np.where(has_regular[..., None], regular, ok & ignored)
        found = candidates.any(axis=-1)
        score = np.where(candidates, iou, -np.inf)
        best = score.max(axis=-1, keepdims=True)
        last = g - 1 - np.argmax((score == best)[..., ::-1], axis=-1)[..., None]
        hit = np.take_along_axis(taken, last, axis=-1) | found[..., None]
        np.put_along_axis(taken, last, hit, axis=-1)
        matched[:, r] = found
        matched_ignored[:, r] = found & ~has_regular
    return matched, matched_ignored


def _chunks(sizes: np.ndarray, per_item: int) -> list[np.ndarray]:
    """Split item indices (sorted by ``sizes``) into blocks of ≤ _MATCH_BLOCK elements."""
    order = np.argsort(sizes, kind="stable")
    blocks, start = [], 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order) and (stop - start + 1) * per_item * sizes[order[stop]] <= _MATCH_BLOCK
        ):
            stop += 1
        blocks.append(order[start:stop])
        start = stop
    return blocks


def _normalise_max_detections(max_detections: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(max_detections, (int, np.integer)):
        return tuple(sorted({m for m in (1, 10, int(max_detections)) if m <= max_detections}))
    return tuple(sorted({int(m) for m in max_detections}))


def evaluate_detections(
    ground_truth: Sequence[Mapping],
    predictions: Sequence[Mapping],
    class_names: Sequence[str],
    *,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    max_detections: int | Sequence[int] = 100,
    area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
    split: str = "val",
) -> DetectionResult:
    """COCO box AP/AR of ``predictions`` against ``ground_truth`` (one dict per image).

    Shapes (see the module docstring): ground truth ``boxes`` (N, 4) ``xyxy``, ``classes``
    (N,), optional ``iscrowd`` (N,); predictions ``boxes`` (M, 4) ``xyxy``, ``scores`` (M,),
    ``classes`` (M,). ``max_detections`` is the largest number of detections kept per
    image *and class* (an int n means COCO's ``maxDets`` ``[1, 10, n]``; or give the
    list). ``area_ranges`` must contain ``"all"``.

    ``result.metrics`` holds ``map50_95`` (COCO AP@[.5:.95], area all, the largest
    maxDets), ``map50``, ``map75``, ``map_<area>`` and ``mar_<area>`` for the other area
    ranges, ``mar_<n>`` for each maxDets value, ``per_class_ap50`` and
    ``per_class_ap50_95`` (name → AP), ``num_examples``, ``num_ground_truth`` (non-crowd
    boxes), ``num_predictions`` and ``split``. As in COCO, a value is -1 when nothing is
    there to measure (a class without ground truth, no small objects...), and such
    entries are left out of every mean. ``result.precision``/``recall``/``scores`` are
    pycocotools' accumulated arrays, for PR curves.

    What is replicated from pycocotools 2.0 ``COCOeval`` (``evaluate``, ``evaluateImg``,
    ``accumulate``, ``summarize``):

    - every image in ``ground_truth`` and every class in ``class_names`` is evaluated
      (``params.imgIds``/``catIds`` from the ground-truth file);
    - per image and class, detections are sorted by ``-score`` with a stable merge sort
      (input order breaks ties) and only the top ``max(max_detections)`` are kept;
    - IoU as ``maskUtils.iou`` on ``xywh`` boxes (:func:`~visionkit.evaluate.boxes.coco_box_iou`),
      with the detection's own area as the union for crowd ground truth;
    - crowd ground truth is ignored; so is ground truth whose area ``w*h`` lies outside
      the range (``area < lo or area > hi``, both bounds inclusive);
    - greedy matching per IoU threshold (see :func:`_greedy_match`); a detection matched
      to an ignored ground truth is ignored, an unmatched detection whose area is outside
      the range is ignored; crowd ground truth can absorb any number of detections;
    - accumulation per class, area and maxDets: each image contributes its top-maxDets
      detections (images in input order), all are merge-sorted by ``-score``, cumulative
      TP/FP give recall ``tp / n_gt`` and precision ``tp / (tp + fp + eps)``, precision is
      made non-increasing from the right, and sampled at the 101 recall points with
      ``np.searchsorted(recall, points, side="left")`` (0 beyond the last recall reached);
    - AP = mean of the valid (> -1) precision entries; AR = mean of the valid recalls.

    One deliberate difference: pycocotools stores the matched ground truth's ``id`` and
    tests it for truth, so an annotation with ``id == 0`` never counts as a match; here
    matches do not depend on ids.
    """
    if len(ground_truth) != len(predictions):
        raise ValueError(
            f"{len(ground_truth)} ground-truth images but {len(predictions)} predicted"
        )
    if "all" not in area_ranges:
        raise ValueError("area_ranges must contain 'all'")
    names = list(class_names)
    num_classes = len(names)
    iou_thr = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    rec_thr = COCO_RECALL_THRESHOLDS
    max_dets = _normalise_max_detections(max_detections)
    areas = {k: (float(v[0]), float(v[1])) for k, v in area_ranges.items()}
    lo = np.array([v[0] for v in areas.values()])
    hi = np.array([v[1] for v in areas.values()])
    t_n, r_n, k_n, a_n, m_n = len(iou_thr), len(rec_thr), num_classes, len(areas), len(max_dets)

    gt = _flatten(ground_truth, num_classes, predictions=False)
    dt = _flatten(predictions, num_classes, predictions=True)

    # Ground truth grouped by (image, class), annotation order kept inside a group.
    gt_key = gt["image"] * num_classes + gt["cls"]
    order = np.argsort(gt_key, kind="stable")
    gt = {k: v[order] for k, v in gt.items()}
    gt_key = gt_key[order]
    gt_area = gt["area"]
    # (A, N): crowd or outside the area range → ignored.
    gt_ignore = (
        gt["crowd"][None, :] | (gt_area[None, :] < lo[:, None]) | (gt_area[None, :] > hi[:, None])
    )

    # Detections grouped by (image, class) and sorted by -score (stable), top max_dets[-1].
    dt_key = dt["image"] * num_classes + dt["cls"]
    order = np.argsort(-dt["score"], kind="mergesort")
    order = order[np.argsort(dt_key[order], kind="stable")]
    dt = {k: v[order] for k, v in dt.items()}
    dt_key = dt_key[order]
    starts = np.searchsorted(dt_key, dt_key, side="left")
    rank = np.arange(len(dt_key)) - starts
    keep = rank < max_dets[-1]
    dt = {k: v[keep] for k, v in dt.items()}
    dt_key, rank = dt_key[keep], rank[keep]

    # Greedy matching for every (image, class) pair with both detections and ground truth.
    matched = np.zeros((len(dt_key), a_n, t_n), dtype=bool)
    matched_ignored = np.zeros_like(matched)
    pair_keys = np.intersect1d(dt_key, gt_key)
    if len(pair_keys):
        d_start = np.searchsorted(dt_key, pair_keys, side="left")
        d_count = np.searchsorted(dt_key, pair_keys, side="right") - d_start
        g_start = np.searchsorted(gt_key, pair_keys, side="left")
        g_count = np.searchsorted(gt_key, pair_keys, side="right") - g_start
        for block in _chunks(g_count, a_n * t_n):
            d_max, g_max = int(d_count[block].max()), int(g_count[block].max())
            d_valid = np.arange(d_max)[None, :] < d_count[block, None]
            g_valid = np.arange(g_max)[None, :] < g_count[block, None]
            d_idx = np.where(d_valid, d_start[block, None] + np.arange(d_max)[None, :], 0)
            g_idx = np.where(g_valid, g_start[block, None] + np.arange(g_max)[None, :], 0)
            ious = coco_box_iou(dt["xywh"][d_idx], gt["xywh"][g_idx], gt["crowd"][g_idx])
            m, mi = _greedy_match(
                ious,
                g_valid,
                gt["crowd"][g_idx] & g_valid,
                np.moveaxis(gt_ignore[:, g_idx], 0, 1),
                d_valid,
                iou_thr,
            )
            matched[d_idx[d_valid]] = m[d_valid]
            matched_ignored[d_idx[d_valid]] = mi[d_valid]

    # evaluateImg's dtIgnore, then TP/FP per (detection, area, threshold).
    dt_area = dt["area"]
    out_of_range = (dt_area[:, None] < lo[None, :]) | (dt_area[:, None] > hi[None, :])
    dt_ignored = np.where(matched, matched_ignored, out_of_range[:, :, None])
    tps = matched & ~dt_ignored
    fps = ~matched & ~dt_ignored
    # Non-ignored ground truth per (class, area).
    n_gt = np.stack([np.bincount(gt["cls"][~ign], minlength=k_n) for ign in gt_ignore], axis=1)

    precision = -np.ones((t_n, r_n, k_n, a_n, m_n))
    recall = -np.ones((t_n, k_n, a_n, m_n))
    scores = -np.ones((t_n, r_n, k_n, a_n, m_n))
    eps = np.spacing(1)
    for k in range(k_n):
        of_class = dt["cls"] == k
        for mi_, max_det in enumerate(max_dets):
            sel = np.flatnonzero(of_class & (rank < max_det))  # image order, then score order
            order = np.argsort(-dt["score"][sel], kind="mergesort")
            sel = sel[order]
            sorted_scores = dt["score"][sel]
            tp_sum = np.cumsum(tps[sel], axis=0, dtype=np.float64)  # (n, A, T)
            fp_sum = np.cumsum(fps[sel], axis=0, dtype=np.float64)
            n = len(sel)
            for a in range(a_n):
                npig = n_gt[k, a]
                if npig == 0:
                    continue
                if n == 0:
                    recall[:, k, a, mi_] = 0.0
                    precision[:, :, k, a, mi_] = 0.0
                    scores[:, :, k, a, mi_] = 0.0
                    continue
                rc = tp_sum[:, a, :] / npig  # (n, T)
                pr = tp_sum[:, a, :] / (fp_sum[:, a, :] + tp_sum[:, a, :] + eps)
                pr = np.maximum.accumulate(pr[::-1], axis=0)[::-1]
                recall[:, k, a, mi_] = rc[-1]
                for t in range(t_n):
                    inds = np.searchsorted(rc[:, t], rec_thr, side="left")
                    inside = inds < n
                    precision[t, :, k, a, mi_] = np.where(
                        inside, pr[np.minimum(inds, n - 1), t], 0.0
                    )
                    scores[t, :, k, a, mi_] = np.where(
                        inside, sorted_scores[np.minimum(inds, n - 1)], 0.0
                    )

    metrics = _summarize(precision, recall, iou_thr, list(areas), max_dets, names)
    metrics["num_examples"] = len(ground_truth)
    metrics["num_ground_truth"] = int((~gt["crowd"]).sum())
    metrics["num_predictions"] = sum(len(np.asarray(p["scores"]).reshape(-1)) for p in predictions)
    metrics["split"] = split
    return DetectionResult(
        metrics=metrics,
        precision=precision,
        recall=recall,
        scores=scores,
        iou_thresholds=iou_thr,
        recall_thresholds=rec_thr,
        area_ranges=areas,
        max_detections=max_dets,
        class_names=names,
    )


def _summarize(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thr: np.ndarray,
    area_names: list[str],
    max_dets: tuple[int, ...],
    names: list[str],
) -> dict:
    """COCOeval.summarize's numbers (stats[0..11] for the default settings) as a dict."""
    a_all, m_last = area_names.index("all"), len(max_dets) - 1

    def t_index(value: float) -> int | None:
        hits = np.flatnonzero(np.isclose(iou_thr, value, rtol=0, atol=1e-9))
        return int(hits[0]) if hits.size else None

    t50, t75 = t_index(0.5), t_index(0.75)
    metrics: dict = {"map50_95": _mean_valid(precision[:, :, :, a_all, m_last])}
    if t50 is not None:
        metrics["map50"] = _mean_valid(precision[t50, :, :, a_all, m_last])
    if t75 is not None:
        metrics["map75"] = _mean_valid(precision[t75, :, :, a_all, m_last])
    for a, name in enumerate(area_names):
        if a != a_all:
            metrics[f"map_{name}"] = _mean_valid(precision[:, :, :, a, m_last])
    for m, max_det in enumerate(max_dets):
        metrics[f"mar_{max_det}"] = _mean_valid(recall[:, :, a_all, m])
    for a, name in enumerate(area_names):
        if a != a_all:
            metrics[f"mar_{name}"] = _mean_valid(recall[:, :, a, m_last])
    if t50 is not None:
        metrics["per_class_ap50"] = {
            name: _mean_valid(precision[t50, :, k, a_all, m_last]) for k, name in enumerate(names)
        }
    metrics["per_class_ap50_95"] = {
        name: _mean_valid(precision[:, :, k, a_all, m_last]) for k, name in enumerate(names)
    }
    return metrics


def coco_stats(metrics: Mapping) -> list[float]:
    """The 12 numbers of ``COCOeval.stats`` (default settings) from ``result.metrics``:
    AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl."""
    keys = ["map50_95", "map50", "map75", "map_small", "map_medium", "map_large"]
    keys += ["mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    return [float(metrics[k]) for k in keys]


def format_detection_report(metrics: Mapping) -> str:
    """COCO's summary lines followed by the per-class AP table."""
    lines = [
        f"mAP@[.5:.95] {metrics['map50_95']:.4f}   mAP@.5 {metrics.get('map50', -1):.4f}   "
        f"mAP@.75 {metrics.get('map75', -1):.4f}"
    ]
    areas = [k[4:] for k in metrics if k.startswith("map_")]
    if areas:
        lines.append("   ".join(f"AP {a} {metrics[f'map_{a}']:.4f}" for a in areas))
    recalls = [k for k in metrics if k.startswith("mar_")]
    if recalls:
        lines.append("   ".join(f"AR{k[4:]} {metrics[k]:.4f}" for k in recalls))
    ap50 = metrics.get("per_class_ap50", {})
    ap = metrics.get("per_class_ap50_95", {})
    if ap:
        width = max([len("class"), *(len(n) for n in ap)])
        lines += ["", f"{'class':<{width}}  AP@.5   AP@[.5:.95]"]
        for name, value in ap.items():
            lines.append(f"{name:<{width}}  {ap50.get(name, -1):6.3f}  {value:11.3f}")
    lines += [
        "",
        f"{metrics['num_examples']} images ({metrics['split']}); -1 means no ground truth",
    ]
    return "\n".join(lines)


def detection_confusion_matrix(
    ground_truth: Sequence[Mapping],
    predictions: Sequence[Mapping],
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.25,
) -> np.ndarray:
    """(C+1)×(C+1) counts, rows = true class, columns = predicted class, index C = background.

    YOLO-style (as Ultralytics' ``ConfusionMatrix`` for detection, transposed to this
    toolkit's rows-are-truth layout): per image, predictions with ``score >=
    score_threshold`` are matched one-to-one to ground truth, *ignoring class*, greedily by
    descending IoU among pairs with ``IoU >= iou_threshold`` (ties keep ground-truth then
    prediction order). A matched pair counts at ``[true class, predicted class]`` (the
    diagonal when the class is right); unmatched ground truth is a miss at ``[true class,
    C]`` (background column); an unmatched prediction is a false positive at ``[C,
    predicted class]`` (background row). ``[C, C]`` is always 0. Crowd ground truth
    (``iscrowd``) is left out entirely.
    """
    c = int(num_classes)
    matrix = np.zeros((c + 1, c + 1), dtype=np.int64)
    if len(ground_truth) != len(predictions):
        raise ValueError(
            f"{len(ground_truth)} ground-truth images but {len(predictions)} predicted"
        )
    for truth, pred in zip(ground_truth, predictions, strict=True):
        g_boxes = as_boxes(truth["boxes"])
        g_cls = np.asarray(truth["classes"], dtype=np.int64).reshape(-1)
        crowd = truth.get("iscrowd")
        if crowd is not None:
            keep = ~np.asarray(crowd, dtype=bool).reshape(-1)
            g_boxes, g_cls = g_boxes[keep], g_cls[keep]
        p_boxes = as_boxes(pred["boxes"])
        p_cls = np.asarray(pred["classes"], dtype=np.int64).reshape(-1)
        keep = np.asarray(pred["scores"], dtype=np.float64).reshape(-1) >= score_threshold
        p_boxes, p_cls = p_boxes[keep], p_cls[keep]
        g_used = np.zeros(len(g_cls), dtype=bool)
        p_used = np.zeros(len(p_cls), dtype=bool)
        if len(g_cls) and len(p_cls):
            iou = box_iou(g_boxes, p_boxes)
            gi, pi = np.nonzero(iou >= iou_threshold)
            order = np.argsort(-iou[gi, pi], kind="stable")
            for g, p in zip(gi[order], pi[order], strict=True):
                if not (g_used[g] or p_used[p]):
                    g_used[g] = p_used[p] = True
                    matrix[g_cls[g], p_cls[p]] += 1
        np.add.at(matrix, (g_cls[~g_used], c), 1)
        np.add.at(matrix, (c, p_cls[~p_used]), 1)
    return matrix
