"""`visionkit TASK export` from the command line, and `visionkit TASK predict` on every
exported form giving the Keras model's answers (the same code path users run)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from visionkit.cli import main


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _export(run: Path, formats: str, tmp: Path, *extra: str) -> Path:
    copy = tmp / "run"
    shutil.copytree(run, copy)
    args = [_task(run), "export", f"model={copy}", f"formats={formats}", "verbose=0", *extra]
    assert main(args) == 0
    return copy / "export"


def _task(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["task"]


def test_classify_export_then_predict_each_format(classify_run, tmp_path):
    export = _export(classify_run, "saved_model,tflite_fp32", tmp_path)
    report = json.loads((export / "report.json").read_text())
    assert report["tflite_fp32"]["max_abs_diff"] <= 1e-4
    images = Path(_config(classify_run)["data"])
    outputs = {}
    for name, model in {
        "keras": tmp_path / "run",
        "saved_model": export / "saved_model",
        "tflite": export / "model_fp32.tflite",
    }.items():
        args = ["classify", "predict", f"model={model}", f"source={images}", "topk=2"]
        assert main([*args, f"out={tmp_path / 'p'}", f"name={name}", "verbose=0"]) == 0
        outputs[name] = _rows(tmp_path / "p" / name / "predictions.csv")
    keras_rows = outputs["keras"]
    for name in ("saved_model", "tflite"):
        rows = outputs[name]
        assert [r["class1"] for r in rows] == [r["class1"] for r in keras_rows], name
        diff = max(
            abs(float(a["prob1"]) - float(b["prob1"]))
            for a, b in zip(rows, keras_rows, strict=True)
        )
        # exports take uint8: the resized pixels are rounded (≤ 0.5 grey levels), Keras
        # gets them unrounded; the report's 1e-4 parity is on identical uint8 inputs
        assert diff <= 2e-3, name


def _config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def test_segment_predict_from_tflite_matches_keras(segment_run, tmp_path):
    export = _export(segment_run, "tflite_fp32", tmp_path)
    images = Path(_config(segment_run)["data"]) / "image"
    for name, model in {"keras": tmp_path / "run", "tflite": export / "model_fp32.tflite"}.items():
        args = ["segment", "predict", f"model={model}", f"source={images}"]
        assert main([*args, f"out={tmp_path / 'p'}", f"name={name}", "verbose=0"]) == 0
    from PIL import Image

    for mask in sorted((tmp_path / "p" / "keras" / "masks").glob("*.png")):
        a = np.asarray(Image.open(mask))
        b = np.asarray(Image.open(tmp_path / "p" / "tflite" / "masks" / mask.name))
        assert (a == b).mean() >= 0.995, mask.name  # uint8 rounding flips a few edge pixels


def test_detect_predict_from_tflite_with_nms_matches_keras(detection_run, tmp_path):
    # NMS is built into the file (score ≥ 0.001, the export default; at most max_det boxes);
    # predict's conf filters on top, as it does for the Keras model
    export = _export(detection_run, "tflite_fp32", tmp_path, "max_det=50")
    images = Path(_config(detection_run)["data"]) / "images"
    found = {}
    for name, model in {"keras": tmp_path / "run", "tflite": export / "model_fp32.tflite"}.items():
        args = ["detect", "predict", f"model={model}", f"source={images}", "conf=0.005"]
        assert (
            main([*args, "max_det=50", f"out={tmp_path / 'p'}", f"name={name}", "verbose=0"]) == 0
        )
        found[name] = json.loads((tmp_path / "p" / name / "predictions.json").read_text())
    assert len(found["keras"]) == len(found["tflite"])
    for a, b in zip(found["keras"], found["tflite"], strict=True):
        top_a = sorted(a["detections"], key=lambda d: -d["score"])[:5]
        top_b = sorted(b["detections"], key=lambda d: -d["score"])[:5]
        assert len(top_a) == len(top_b)
        for da, db in zip(top_a, top_b, strict=True):
            assert da["score"] == pytest.approx(db["score"], abs=1e-4)
            np.testing.assert_allclose(da["box"], db["box"], atol=0.05)


def test_export_errors_are_usage_errors(classify_run, tmp_path, capsys):
    assert main(["classify", "export", f"model={classify_run}", "formats=tflite_fp64"]) == 2
    assert "tflite_fp64" in capsys.readouterr().err
    assert main(["classify", "export", "formats=saved_model"]) == 2
