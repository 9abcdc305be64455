"""COCO detection metrics against pycocotools' COCOeval on synthetic scenes, the detection
confusion matrix on a hand-made case, and the detection plots."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from visionkit.evaluate.boxes import box_iou, coco_box_iou, xyxy_to_xywh
from visionkit.evaluate.detection import (
    coco_stats,
    detection_confusion_matrix,
    evaluate_detections,
    format_detection_report,
)

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

SIZE = 640.0


# ---------------------------------------------------------------- reference: pycocotools
def run_cocoeval(ground_truth, predictions, num_classes):
    """COCOeval on the same data (ids from 1; ``area`` = w*h as the evaluator uses)."""
    images = [{"id": i + 1, "width": SIZE, "height": SIZE} for i in range(len(ground_truth))]
    annotations, detections = [], []
    for i, (truth, pred) in enumerate(zip(ground_truth, predictions, strict=True)):
        crowd = truth.get("iscrowd", np.zeros(len(truth["classes"]), bool))
        for box, cls, is_crowd in zip(
            xyxy_to_xywh(truth["boxes"]), truth["classes"], crowd, strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(is_crowd),
                }
            )
        for box, score, cls in zip(
            xyxy_to_xywh(pred["boxes"]), pred["scores"], pred["classes"], strict=True
        ):
            detections.append(
                {
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "bbox": [float(v) for v in box],
                    "score": float(score),
                }
            )
    categories = [{"id": k + 1, "name": f"c{k}"} for k in range(num_classes)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def assert_matches_cocoeval(ground_truth, predictions, num_classes) -> float:
    names = [f"class{k}" for k in range(num_classes)]
    result = evaluate_detections(ground_truth, predictions, names)
    reference = run_cocoeval(ground_truth, predictions, num_classes)
    stats = np.array(coco_stats(result.metrics))
    diff = float(np.max(np.abs(stats - reference.stats)))
    assert diff <= 1e-6, (stats, reference.stats)
    np.testing.assert_allclose(result.precision, reference.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.recall, reference.eval["recall"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.scores, reference.eval["scores"], rtol=0, atol=1e-12)
    for k, name in enumerate(names):
        curve = reference.eval["precision"][0, :, k, 0, 2]
        expected = curve[curve > -1].mean() if (curve > -1).any() else -1.0
        assert result.metrics["per_class_ap50"][name] == pytest.approx(expected, abs=1e-6)
    json.dumps(result.metrics)  # JSON-able
    return diff


# ---------------------------------------------------------------- synthetic scenes
def random_boxes(rng, n, min_side=6.0, max_side=320.0):
    """n xyxy boxes with log-uniform sides, inside the image."""
    wh = np.exp(rng.uniform(np.log(min_side), np.log(max_side), size=(n, 2)))
    xy = rng.uniform(0, 1, size=(n, 2)) * (SIZE - wh)
    return np.concatenate([xy, xy + wh], axis=1)


def jitter(rng, boxes, scale):
    wh = boxes[:, 2:] - boxes[:, :2]
    return boxes + rng.normal(0, scale, size=boxes.shape) * np.concatenate([wh, wh], axis=1)


def scene(rng, num_classes, n_gt, *, n_fp=3, recall=0.8, copies=(1, 2), confuse=0.1, jit=0.08):
    """One image: ground truth, and predictions = jittered copies of the detected ground
    truth (sometimes with the wrong class) plus random false positives."""
    gt_boxes = random_boxes(rng, n_gt)
    gt_classes = rng.integers(0, num_classes, n_gt)
    found = rng.random(n_gt) < recall
    reps = rng.integers(copies[0], copies[1] + 1, n_gt) * found
    src = np.repeat(np.arange(n_gt), reps)
    boxes = np.concatenate([jitter(rng, gt_boxes[src], jit), random_boxes(rng, n_fp)])
    classes = np.concatenate([gt_classes[src], rng.integers(0, num_classes, n_fp)])
    wrong = rng.random(len(classes)) < confuse
    classes[wrong] = rng.integers(0, num_classes, wrong.sum())
    scores = np.concatenate([rng.uniform(0.3, 1.0, len(src)), rng.uniform(0.0, 0.7, n_fp)])
    return (
        {"boxes": gt_boxes, "classes": gt_classes},
        {"boxes": boxes, "scores": scores, "classes": classes},
    )


def dataset(seed, n_images, num_classes, **kw):
    rng = np.random.default_rng(seed)
    pairs = [scene(rng, num_classes, int(rng.integers(1, 9)), **kw) for _ in range(n_images)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# ---------------------------------------------------------------- COCOeval agreement
def test_iou_is_bit_identical_to_mask_utils():
    rng = np.random.default_rng(0)
    dt, gt = xyxy_to_xywh(random_boxes(rng, 30)), xyxy_to_xywh(random_boxes(rng, 20))
    gt[:5] = dt[:5]  # exact copies
    crowd = rng.random(20) < 0.3
    expected = mask_utils.iou(dt.tolist(), gt.tolist(), crowd.astype(np.uint8).tolist())
    np.testing.assert_array_equal(coco_box_iou(dt, gt, crowd), expected)
    plain = box_iou(random_boxes(rng, 4), random_boxes(rng, 3))
    assert plain.shape == (4, 3) and np.all((plain >= 0) & (plain <= 1))


def test_random_jittered_predictions():
    gt, pred = dataset(1, 20, 3)
    assert_matches_cocoeval(gt, pred, 3)


def test_crowded_scenes_with_duplicates():
    rng = np.random.default_rng(2)
    gt, pred = [], []
    for _ in range(8):
        centre = random_boxes(rng, 1, 40, 200)
        n = int(rng.integers(5, 15))
        boxes = jitter(rng, np.repeat(centre, n, axis=0), 0.15)
        boxes[-2:] = boxes[0]  # identical ground truths: IoU ties between them
        classes = np.zeros(n, np.int64)
        classes[: n // 4] = 1
        src = np.repeat(np.arange(n), rng.integers(1, 4, n))  # duplicate detections
        det = jitter(rng, boxes[src], 0.05)
        det[: len(src) // 5] = boxes[src[: len(src) // 5]]  # exact hits, IoU 1
        gt.append({"boxes": boxes, "classes": classes})
        pred.append({"boxes": det, "scores": rng.random(len(src)), "classes": classes[src]})
    assert_matches_cocoeval(gt, pred, 2)


def test_images_without_predictions_or_ground_truth():
    gt, pred = dataset(3, 12, 3)
    empty_pred = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)}
    for i in (0, 4, 5):
        pred[i] = dict(empty_pred)
    for i in (2, 7):
        gt[i] = {"boxes": [], "classes": []}
    assert_matches_cocoeval(gt, pred, 3)


def test_class_without_ground_truth_and_class_without_predictions():
    gt, pred = dataset(4, 10, 4)
    for truth in gt:  # class 3: predicted but never in the ground truth
        truth["classes"] = np.where(truth["classes"] == 3, 0, truth["classes"])
    for p in pred:  # class 2: in the ground truth but never predicted
        p["classes"] = np.where(p["classes"] == 2, 1, p["classes"])
    pred[0]["classes"][0] = 3
    assert_matches_cocoeval(gt, pred, 4)
    metrics = evaluate_detections(gt, pred, list("abcd")).metrics
    assert metrics["per_class_ap50"]["d"] == -1.0  # excluded from the means
    assert metrics["per_class_ap50"]["c"] == 0.0
    valid = [metrics["per_class_ap50"][k] for k in "abc"]
    assert metrics["map50"] == pytest.approx(np.mean(valid), abs=1e-12)


def test_crowd_annotations():
    gt, pred = dataset(5, 12, 2, n_fp=4)
    rng = np.random.default_rng(55)
    for truth, p in zip(gt, pred, strict=True):
        n = len(truth["classes"])
        crowd = rng.random(n) < 0.3
        region = random_boxes(rng, 1, 150, 400)  # a big crowd box absorbing detections
        truth["boxes"] = np.concatenate([truth["boxes"], region])
        truth["classes"] = np.concatenate([truth["classes"], [0]])
        truth["iscrowd"] = np.concatenate([crowd, [True]])
        inside = region[0, :2] + rng.uniform(0, 0.5, (5, 2)) * (region[0, 2:] - region[0, :2])
        extra = np.concatenate([inside, inside + 30], axis=1)
        p["boxes"] = np.concatenate([p["boxes"], extra])
        p["scores"] = np.concatenate([p["scores"], rng.random(5)])
        p["classes"] = np.concatenate([p["classes"], np.zeros(5, int)])
    assert_matches_cocoeval(gt, pred, 2)


def test_more_than_max_detections_per_image():
    rng = np.random.default_rng(6)
    gt, pred = dataset(6, 4, 2, n_fp=3)
    # Image 0: 160 detections of class 0 (cut to 100); image 1: 90 + 90 over two classes
    # (the cut is per image and class, so none is cut).
    for i, (n, classes) in enumerate([(160, [0]), (180, [0, 1])]):
        src = rng.integers(0, len(gt[i]["classes"]), n)
        pred[i] = {
            "boxes": np.concatenate(
                [jitter(rng, gt[i]["boxes"][src[: n // 2]], 0.1), random_boxes(rng, n - n // 2)]
            ),
            "scores": rng.random(n),
            "classes": np.resize(classes, n),
        }
    assert_matches_cocoeval(gt, pred, 2)


def test_area_ranges_and_their_boundaries():
    rng = np.random.default_rng(7)
    gt, pred = [], []
    for _ in range(10):
        sides = rng.choice([8.0, 20.0, 32.0, 50.0, 96.0, 150.0, 300.0], size=(8, 1))
        xy = rng.uniform(0, SIZE - 300, (8, 2))
        boxes = np.concatenate([xy, xy + sides], axis=1)  # squares exactly at 32² and 96² too
        classes = rng.integers(0, 2, 8)
        det = np.concatenate([jitter(rng, boxes, 0.1), boxes[:2], random_boxes(rng, 3)])
        gt.append({"boxes": boxes, "classes": classes})
        pred.append(
            {
                "boxes": det,
                "scores": rng.random(len(det)),
                "classes": np.concatenate([classes, classes[:2], [0, 1, 0]]),
            }
        )
    assert_matches_cocoeval(gt, pred, 2)


def test_ties_in_scores():
    gt, pred = dataset(8, 15, 3, copies=(1, 3))
    for p in pred:
        p["scores"] = np.round(p["scores"], 1)  # many ties, within and across images
    pred[3]["scores"][:] = 0.5
    assert_matches_cocoeval(gt, pred, 3)


def test_iou_ties_between_ground_truths():
    # The first detection overlaps A and B with exactly the same IoU (2/3); pycocotools
    # keeps the *last* of equal candidates, so it takes B and the second detection (A's
    # exact copy) matches A: two true positives. Taking A first would leave B at IoU 0.43.
    a, b = [8.0, 0.0, 18.0, 10.0], [12.0, 0.0, 22.0, 10.0]
    pred = {"boxes": [[10.0, 0.0, 20.0, 10.0], a], "scores": [0.9, 0.8], "classes": [0, 0]}
    gt = [{"boxes": [a, b], "classes": [0, 0]}, {"boxes": [b, a], "classes": [0, 0]}]
    # A third image where B is a crowd region: the regular A is preferred over it.
    gt.append({"boxes": [a, b], "classes": [0, 0], "iscrowd": [False, True]})
    assert_matches_cocoeval(gt, [dict(pred) for _ in gt], 1)
    metrics = evaluate_detections(gt[:1], [pred], ["x"]).metrics
    assert metrics["mar_100"] == pytest.approx(
        np.mean([1.0] * 4 + [0.5] * 6)
    )  # IoU .5–.65 then .7+


def test_many_seeds_agree():
    worst = max(
        assert_matches_cocoeval(*dataset(100 + s, 6, 3, copies=(1, 3)), 3) for s in range(6)
    )
    assert worst <= 1e-6


def test_degenerate_inputs():
    names = ["a", "b"]
    gt = [{"boxes": [[0, 0, 10, 10]], "classes": [0]}]
    none = [{"boxes": [], "scores": [], "classes": []}]
    metrics = evaluate_detections(gt, none, names).metrics
    assert metrics["map50"] == 0.0 and metrics["mar_100"] == 0.0
    assert metrics["per_class_ap50"] == {"a": 0.0, "b": -1.0}
    assert metrics["num_examples"] == 1 and metrics["split"] == "val"
    perfect = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]}]
    metrics = evaluate_detections(gt, perfect, names, split="test").metrics
    assert (
        metrics["map50_95"] == pytest.approx(1.0)
        and metrics["map_small"] == pytest.approx(1.0)
        and metrics["map_large"] == -1.0
    )
    assert "mAP@.5 1.0000" in format_detection_report(metrics)
    with pytest.raises(ValueError):
        evaluate_detections(gt, [], names)
    with pytest.raises(ValueError):
        evaluate_detections(gt, [{"boxes": [[0, 0, 1, 1]], "scores": [1.0], "classes": [5]}], names)


# ---------------------------------------------------------------- confusion matrix
def test_detection_confusion_matrix_hand_made():
    gt = [
        {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], "classes": [0, 1, 2]},
        {
            "boxes": [[0, 0, 10, 10], [100, 100, 120, 120]],
            "classes": [1, 0],
            "iscrowd": [False, True],
        },
    ]
    pred = [
        {
            "boxes": [
                [0, 0, 10, 10],
                [0, 0, 10, 9],
                [20, 20, 30, 30],
                [70, 70, 80, 80],
                [50, 50, 60, 60],
            ],
            "scores": [0.9, 0.8, 0.7, 0.6, 0.1],  # the last is below the score threshold
            "classes": [0, 0, 2, 1, 2],
        },
        {"boxes": [[1, 0, 10, 10], [100, 100, 120, 120]], "scores": [0.5, 0.9], "classes": [1, 0]},
    ]
    matrix = detection_confusion_matrix(gt, pred, num_classes=3)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1  # exact hit (IoU 1 beats the 0.9 duplicate)
    expected[1, 2] = 1  # class confusion 1 → 2
    expected[2, 3] = 1  # missed (its prediction is under the score threshold)
    expected[3, 0] = 1  # duplicate → false positive
    expected[3, 1] = 1  # prediction on nothing
    expected[1, 1] = 1  # image 2: IoU 0.9 match
    expected[3, 0] += 1  # the crowd box is left out: its prediction is a false positive
    np.testing.assert_array_equal(matrix, expected)


# ---------------------------------------------------------------- plots
def test_plots_write_pngs(tmp_path):
    from visionkit.evaluate.detection_plots import plot_detection_confusion_matrix, plot_pr_curves

    gt, pred = dataset(9, 6, 3)
    names = ["cat", "dog", "bird"]
    result = evaluate_detections(gt, pred, names)
    out = plot_pr_curves(result, names, tmp_path / "pr.png")
    matrix = detection_confusion_matrix(gt, pred, 3)
    out2 = plot_detection_confusion_matrix(matrix, names, tmp_path / "cm.png")
    for path in (out, out2):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recall, precision = result.pr_curve(0)
    assert recall.shape == precision.shape == (101,)
