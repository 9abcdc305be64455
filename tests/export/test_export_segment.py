"""Segmentation export on a tiny U-Net run: parity, mIoU in the report, and a SavedModel
that answers at the input image's resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visionkit.export import export_run, load_predictor


@pytest.fixture(scope="module")
def exported(segment_run):
    formats = ["saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8"]
    out = export_run(segment_run, formats, progress=False, latency_runs=2)
    return out, json.loads((out / "report.json").read_text())


def test_report_parity_and_miou(exported):
    out, report = exported
    assert set(report) == {"keras", "saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8"}
    for name, entry in report.items():
        assert {"path", "bytes", "max_abs_diff", "miou", "latency_ms"} <= set(entry), name
        assert 0.0 <= entry["miou"] <= 1.0
        assert entry["num_examples"] == 3 and entry["split"] == "val"
    assert report["saved_model"]["max_abs_diff"] <= 1e-4
    assert report["tflite_fp32"]["max_abs_diff"] <= 1e-4
    assert report["tflite_fp16"]["max_abs_diff"] <= 1e-2
    assert report["tflite_int8"]["agreement"] >= 0.9  # pixels with the same class as Keras
    assert abs(report["tflite_fp32"]["miou"] - report["keras"]["miou"]) < 1e-6
    assert (out / "labels.txt").read_text() == "background\nforeground\n"
    info = json.loads((out / "preprocessing.json").read_text())
    assert set(info["saved_model"]["serving_default"]["outputs"]) == {"probabilities", "masks"}


def test_saved_model_answers_at_the_input_resolution(exported, segment_run):
    import tensorflow as tf

    out, _ = exported
    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (2, 40, 48, 3), dtype=np.uint8)
    images[:, 5:25, 10:34] = 210  # a bright square: foreground
    result = serve(images=tf.constant(images))
    assert result["probabilities"].shape == (2, 40, 48, 2)
    assert result["masks"].shape == (2, 40, 48) and result["masks"].dtype == tf.int32
    masks = result["masks"].numpy()
    assert masks[:, 10:20, 15:30].mean() > masks[:, 30:, :8].mean()
    # at the model's own size the signature is the raw model (no resize)
    small = images[:, :32, :32]
    keras_probs = load_predictor(segment_run)(small)
    np.testing.assert_allclose(
        serve(images=tf.constant(small))["probabilities"].numpy(), keras_probs, atol=1e-5
    )


def test_tflite_segmentation_predictor_batches(exported):
    out, _ = exported
    predictor = load_predictor(out / "model_fp32.tflite")
    probs = predictor(np.zeros((3, 32, 32, 3), np.uint8))
    assert probs.shape == (3, 32, 32, 2)
