"""Export writes are all-or-nothing; clear errors for what cannot be exported."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import visionkit.export.tflite as tflite
from visionkit.config import ConfigError
from visionkit.export import export_run, load_predictor


def _leftovers(run):
    return sorted(p.name for p in run.iterdir() if p.name.startswith(".export"))


def test_a_failure_midway_leaves_no_partial_export(classify_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(classify_run, run, ignore=shutil.ignore_patterns("export"))
    real = tflite.convert_saved_model
    calls = []

    def failing(source, mode="fp32", **kwargs):
        calls.append(mode)
        if mode == "fp16":
            raise RuntimeError("converter crashed")
        return real(source, mode, **kwargs)

    monkeypatch.setattr(tflite, "convert_saved_model", failing)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_run(run, ["saved_model", "tflite_fp32", "tflite_fp16"], progress=False)
    assert calls == ["fp32", "fp16"]  # it failed after writing saved_model and fp32
    assert not (run / "export").exists() and _leftovers(run) == []

    # a good export stays untouched by a later failed one
    export_run(run, ["tflite_fp32"], progress=False, latency_runs=1)
    before = sorted(p.name for p in (run / "export").iterdir())
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_run(run, ["tflite_fp32", "tflite_fp16"], progress=False)
    assert sorted(p.name for p in (run / "export").iterdir()) == before
    assert _leftovers(run) == []
    assert set(json.loads((run / "export" / "report.json").read_text())) == {"keras", "tflite_fp32"}


def test_a_bare_keras_file_exports_with_random_parity_inputs(classify_run, tmp_path):
    shutil.copy(classify_run / "model.keras", tmp_path / "lenet.keras")
    out = export_run(
        tmp_path / "lenet.keras", "tflite_fp32", task="classify", progress=False, latency_runs=1
    )
    report = json.loads((out / "report.json").read_text())
    assert out == tmp_path / "export"
    assert report["tflite_fp32"]["split"] == "random" and "accuracy" not in report["tflite_fp32"]
    assert report["tflite_fp32"]["max_abs_diff"] <= 1e-4
    assert (out / "labels.txt").read_text() == "0\n1\n"
    with pytest.raises(ConfigError, match="tflite_int8 needs calibration images"):
        export_run(tmp_path / "lenet.keras", ["tflite_int8"], progress=False)


def test_task_mismatch_and_unknown_format(classify_run):
    with pytest.raises(ConfigError, match="classify export"):
        export_run(classify_run, ["saved_model"], task="segment", progress=False)
    with pytest.raises(ValueError, match="'tflite_int4'"):
        export_run(classify_run, ["tflite_int4"], progress=False)


def test_load_predictor_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_predictor(tmp_path / "missing.tflite")
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.keras, \.tflite"):
        load_predictor(tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="neither a SavedModel"):
        load_predictor(tmp_path)


def test_quantised_io_is_handled(tmp_path):
    """A file converted elsewhere with int8 input and uint8 output: quantise/dequantise."""
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(
        lambda x: {"y": tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]) / 64.0)},
        input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.f})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    rng = np.random.default_rng(0)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)] for _ in range(16)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.uint8
    (tmp_path / "q.tflite").write_bytes(converter.convert())
    predictor = load_predictor(tmp_path / "q.tflite")
    images = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = np.concatenate(
        [module.f(tf.constant(image[None], tf.float32))["y"].numpy() for image in images]
    )
    outputs = predictor(images)
    assert outputs.dtype == np.float32 and outputs.shape == (2, 3)
    np.testing.assert_allclose(outputs, expected, atol=0.02)
