"""Segmentation metrics against keras.metrics.MeanIoU and a plain NumPy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionkit.evaluate.segmentation import (
    SegmentationMetrics,
    format_segmentation_report,
    probabilities_to_labels,
    segmentation_metrics,
)

C = 5  # class 4 is absent from both ground truth and predictions


def _masks(seed=0, shape=(3, 16, 16)):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, size=shape)
    p = np.where(rng.random(shape) < 0.6, t, rng.integers(0, 4, size=shape))
    t[rng.random(shape) < 0.1] = 255
    t[t == 3] = 2  # class 3: only in predictions
    return t, p


def _reference(t, p, c=C):
    keep = t != 255
    t, p = t[keep], p[keep]
    ious, dices = {}, {}
    for k in range(c):
        tp = np.sum((t == k) & (p == k))
        fp = np.sum((t != k) & (p == k))
        fn = np.sum((t == k) & (p != k))
        if tp + fp + fn:
            ious[k] = tp / (tp + fp + fn)
            dices[k] = 2 * tp / (2 * tp + fp + fn)
    return ious, dices, np.mean(t == p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_numpy_and_keras_mean_iou(seed):
    t, p = _masks(seed)
    names = [f"c{i}" for i in range(C)]
    acc = SegmentationMetrics(C)
    acc.update(t[:2], p[:2]).update(t[2:], p[2:])  # two batches accumulate
    m = acc.result(names, split="test")
    ious, dices, pa = _reference(t, p)
    assert m["miou"] == pytest.approx(np.mean(list(ious.values())), abs=1e-6)
    assert m["dice"] == pytest.approx(np.mean(list(dices.values())), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx(pa, abs=1e-6)
    assert m["per_class_iou"]["c4"] is None and m["per_class_iou"]["c3"] == 0.0
    for k, v in ious.items():
        assert m["per_class_iou"][f"c{k}"] == pytest.approx(v, abs=1e-6)
    assert m["num_examples"] == 3 and m["split"] == "test"
    keras_miou = keras.metrics.MeanIoU(num_classes=C)
    w = (t != 255).astype("int32")
    keras_miou.update_state(np.where(t == 255, 0, t).reshape(-1), p.reshape(-1), w.reshape(-1))
    assert m["miou"] == pytest.approx(float(keras_miou.result()), abs=1e-6)
    keras_ignore = keras.metrics.MeanIoU(num_classes=C, ignore_class=255)
    keras_ignore.update_state(t.reshape(-1), p.reshape(-1))
    assert m["miou"] == pytest.approx(float(keras_ignore.result()), abs=1e-6)
    cm = np.asarray(m["confusion_matrix"])
    assert cm.sum() == np.sum(t != 255) and np.array_equal(
        cm, keras_miou.total_cm.numpy().astype(int)
    )


def test_ignored_pixels_do_not_count_whatever_the_prediction():
    t, p = _masks(3)
    p2 = p.copy()
    p2[t == 255] = (p2[t == 255] + 1) % 4
    names = list("abcde")
    a, b = segmentation_metrics(t, p, names), segmentation_metrics(t, p2, names)
    assert a == b


def test_shapes_perfect_and_empty():
    t = np.array([[0, 1], [1, 1]])
    m = segmentation_metrics(t, t, ["bg", "fg"])  # one (H, W) mask
    assert m["miou"] == m["dice"] == m["pixel_accuracy"] == 1.0 and m["num_examples"] == 1
    m4 = segmentation_metrics(t[None, ..., None], t[None, ..., None], ["bg", "fg"])
    assert m4["num_examples"] == 1 and m4["miou"] == 1.0
    empty = segmentation_metrics(np.full((1, 2, 2), 255), np.zeros((1, 2, 2)), ["bg", "fg"])
    assert empty["miou"] == 0.0 and empty["per_class_iou"] == {"bg": None, "fg": None}
    with pytest.raises(ValueError, match="outside"):
        segmentation_metrics(t, t + 5, ["bg", "fg"])
    with pytest.raises(ValueError, match="shape"):
        SegmentationMetrics(2).update(t, t[0])


def test_probabilities_to_labels_and_report():
    probs = np.random.default_rng(0).random((2, 4, 4, 3))
    assert np.array_equal(probabilities_to_labels(probs), probs.argmax(-1))
    sig = np.array([[[[0.2], [0.7]]]])
    assert probabilities_to_labels(sig).tolist() == [[[0, 1]]]
    t, p = _masks(0)
    text = format_segmentation_report(segmentation_metrics(t, p, list("abcde")))
    assert "mIoU" in text and "     -" in text
