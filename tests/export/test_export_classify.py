"""Classification export end to end on a tiny LeNet-5 run: every format, the report,
labels and preprocessing files, the SavedModel signature, and the predictors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from visionkit.export import export_run, load_predictor

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("tf2onnx", "onnxruntime"))
ALL = ["saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8"]


@pytest.fixture(scope="module")
def exported(classify_run):
    formats = ALL + (["onnx"] if HAS_ONNX else [])
    out = export_run(classify_run, formats, progress=False, latency_runs=3)
    return out, json.loads((out / "report.json").read_text()), formats


def test_export_folder_and_report(exported, classify_run):
    out, report, formats = exported
    assert out == classify_run / "export"
    names = {p.name for p in out.iterdir()}
    assert {
        "saved_model",
        "model_fp32.tflite",
        "model_fp16.tflite",
        "model_dynamic.tflite",
        "model_int8.tflite",
        "labels.txt",
        "preprocessing.json",
        "report.json",
    } <= names
    assert not [n for n in names if n.startswith(".")]  # no staging leftovers
    assert set(report) == {"keras", *formats}
    for name, entry in report.items():
        assert {"path", "bytes", "max_abs_diff", "accuracy", "latency_ms"} <= set(entry), name
        assert entry["bytes"] > 0 and entry["latency_ms"] > 0
        assert entry["num_examples"] == 8 and entry["split"] == "val"
    assert report["tflite_fp32"]["path"] == "model_fp32.tflite"
    assert report["saved_model"]["max_abs_diff"] <= 1e-4
    assert report["tflite_fp32"]["max_abs_diff"] <= 1e-4
    assert report["tflite_fp16"]["max_abs_diff"] <= 1e-2
    assert report["tflite_int8"]["agreement"] >= 0.875
    assert report["keras"]["accuracy"] == 1.0  # dark vs bright: learnt
    assert report["tflite_int8"]["accuracy"] >= 0.875
    if HAS_ONNX:
        assert report["onnx"]["max_abs_diff"] <= 1e-4


def test_labels_and_preprocessing(exported):
    out, _, _ = exported
    assert (out / "labels.txt").read_text() == "bright\ndark\n"
    info = json.loads((out / "preprocessing.json").read_text())
    assert info["input"]["dtype"] == "uint8" and info["input"]["size"] == [32, 32]
    assert info["resize"]["method"] == "resize" and info["resize"]["interpolation"] == "bilinear"
    assert "probabilities" in info["saved_model"]["serving_default"]["outputs"]


def test_saved_model_takes_any_size_and_batch(exported):
    import tensorflow as tf

    out, _, _ = exported
    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    bright = rng.integers(150, 256, (3, 57, 41, 3), dtype=np.uint8)
    dark = rng.integers(0, 100, (2, 57, 41, 3), dtype=np.uint8)
    result = serve(images=tf.constant(np.concatenate([bright, dark])))
    assert result["probabilities"].shape == (5, 2)
    assert result["class_ids"].dtype == tf.int32
    assert result["class_ids"].numpy().tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_allclose(result["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_every_format_predicts_like_keras(exported, classify_run):
    out, report, formats = exported
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    keras_predictor = load_predictor(classify_run)
    assert keras_predictor.kind == "keras" and keras_predictor.input_size == (32, 32)
    reference = keras_predictor(images)
    assert reference.shape == (3, 2)
    tolerance = {"tflite_fp16": 1e-2, "tflite_dynamic": 0.1, "tflite_int8": 0.1}
    for fmt in formats:
        predictor = load_predictor(out / report[fmt]["path"], num_threads=1)
        assert predictor.input_size == (32, 32)
        outputs = predictor(images)  # B=3 through the batch-1 TFLite models
        assert outputs.shape == (3, 2) and outputs.dtype == np.float32
        assert np.abs(outputs - reference).max() <= tolerance.get(fmt, 1e-4), fmt
    assert load_predictor(out / "model_int8.tflite").kind == "tflite"
    assert load_predictor(out / "saved_model").kind == "saved_model"
    # float pixels are accepted too (rounded to the exports' uint8)
    np.testing.assert_allclose(
        load_predictor(out / "model_fp32.tflite")(images.astype(np.float32)), reference, atol=1e-4
    )


def test_predictor_refuses_the_wrong_size(exported):
    out, _, _ = exported
    predictor = load_predictor(out / "model_fp32.tflite")
    with pytest.raises(ValueError, match=r"\(B, 32, 32, 3\)"):
        predictor(np.zeros((1, 64, 64, 3), np.uint8))
