"""A mixed-precision run exports as float32 (float16 casts would become Flex ops)."""

from __future__ import annotations

import json
import shutil

import keras

from visionkit.export import export_run
from visionkit.export.precision import as_float32, is_float32


def test_mixed_precision_run_exports_a_float32_copy(classify_run, tmp_path):
    from visionkit.models import create_model
    from visionkit.train.trainer import load_run_model

    trained, _ = load_run_model(classify_run)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = create_model("lenet5", num_classes=2, input_shape=(32, 32, 1), weights=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(trained.get_weights())
    run = tmp_path / "run"
    shutil.copytree(classify_run, run, ignore=shutil.ignore_patterns("export", "model.keras"))
    mixed.save(run / "model.keras")

    assert not is_float32(mixed) and is_float32(as_float32(mixed))
    out = export_run(run, ["tflite_fp32"], progress=False, latency_runs=1)
    report = json.loads((out / "report.json").read_text())
    assert report["tflite_fp32"]["max_abs_diff"] <= 1e-2  # float16 rounding of the reference
    assert report["tflite_fp32"]["accuracy"] == report["keras"]["accuracy"]
