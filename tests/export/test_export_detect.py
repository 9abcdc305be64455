"""Detection export: NMS inside the SavedModel (letterbox undone), the builtin
``TFLite_Detection_PostProcess`` inside TFLite, and the raw-head option."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visionkit.export import export_run, load_predictor
from visionkit.export.detection import EXPORT_SCORE_THRESHOLD
from visionkit.export.tflite import tflite_ops


@pytest.fixture(scope="module")
def exported(detection_run):
    out = export_run(detection_run, ["saved_model", "tflite_fp32"], progress=False, latency_runs=2)
    return out, json.loads((out / "report.json").read_text())


def test_report_and_postprocess_op(exported):
    out, report = exported
    assert set(report) == {"keras", "saved_model", "tflite_fp32"}
    for entry in report.values():
        assert {"path", "bytes", "max_abs_diff", "map50_95", "map50", "latency_ms"} <= set(entry)
        assert entry["num_examples"] == 2
    assert report["saved_model"]["max_abs_diff"] <= 1e-4  # raw head, same inputs
    tflite = report["tflite_fp32"]
    assert tflite["agreement"] >= 0.9  # the same detections as Keras + class-aware NMS
    assert tflite["max_abs_diff"] <= 1e-4 and tflite["box_max_abs_diff_px"] <= 1e-2
    # the file keeps every candidate mAP counts (not the run's predict threshold, 0.005)
    assert tflite["nms_score_threshold"] == EXPORT_SCORE_THRESHOLD == 0.001
    content = (out / "model_fp32.tflite").read_bytes()
    assert "TFLite_Detection_PostProcess" in tflite_ops(content)
    info = json.loads((out / "preprocessing.json").read_text())
    assert info["resize"]["method"] == "letterbox" and info["resize"]["pad_value"] == 114
    assert set(info["tflite"]["outputs"]) == {"boxes", "classes", "scores", "num_detections"}
    assert info["nms"]["score_threshold"] == 0.001 and info["nms"]["max_detections"] == 50


def test_tflite_predictor_returns_the_postprocess_outputs(exported):
    out, _ = exported
    outputs = load_predictor(out / "model_fp32.tflite")(np.zeros((2, 64, 64, 3), np.uint8))
    assert set(outputs) == {"boxes", "classes", "scores", "num_detections"}
    assert outputs["boxes"].shape == (2, 50, 4) and outputs["num_detections"].shape == (2,)


def test_saved_model_undoes_the_letterbox(exported, detection_run):
    """serving_default on a 48×80 image equals: the pipeline's letterbox, the Keras model,
    the validation NMS, then boxes mapped back with (box − pad) / factor."""
    import tensorflow as tf

    from visionkit.data.augment.geometric import letterbox
    from visionkit.models.yolo.nms import postprocess
    from visionkit.train.trainer import load_run_model

    out, _ = exported
    rng = np.random.default_rng(3)
    image = rng.integers(0, 60, (48, 80, 3), dtype=np.uint8)
    image[10:30, 20:50] = (230, 200, 40)
    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    result = {k: v.numpy() for k, v in serve(images=tf.constant(image[None])).items()}
    assert result["boxes"].shape == (1, 50, 4) and result["classes"].dtype == np.int32
    n = int(result["num_detections"][0])
    assert n > 0

    model, _ = load_run_model(detection_run)
    boxed = letterbox({"image": tf.constant(image, tf.float32)}, 64, 114.0)["image"]
    raw = model(boxed[None], training=False)
    boxes, scores, _, valid = postprocess(
        raw, (64, 64), score_threshold=0.005, iou_threshold=0.7, max_detections=50
    )
    assert int(valid[0]) == n
    # 80×48 into 64: scale 0.8, resized 64×38 (round(48·0.8)), 13 rows of padding on top
    new_h, top = 38, 13
    factors = np.array([64 / 80, new_h / 48, 64 / 80, new_h / 48])
    expected = (boxes.numpy()[0, :n] - [0, top, 0, top]) / factors
    expected = np.clip(expected, 0, [80, 48, 80, 48])
    np.testing.assert_allclose(result["boxes"][0, :n], expected, atol=1e-3)
    np.testing.assert_allclose(result["scores"][0, :n], scores.numpy()[0, :n], atol=1e-5)
    assert not result["boxes"][0, n:].any()


def test_raw_head_tflite(detection_run, tmp_path):
    """``detection_nms=False``: the TFLite file is the raw head, equal to Keras'."""
    from visionkit.export.exporter import tflite_graph
    from visionkit.export.runtime import KerasPredictor
    from visionkit.export.saved_model import write_static_saved_model
    from visionkit.export.tflite import check_builtin_ops, convert_saved_model
    from visionkit.train.trainer import load_run_model

    model, config = load_run_model(detection_run)
    fn, allow_custom, float_scopes = tflite_graph(model, "detect", config, detection_nms=False)
    assert float_scopes == ()
    assert not allow_custom
    write_static_saved_model(fn, model, tmp_path / "source")
    content = convert_saved_model(tmp_path / "source", "fp32")
    assert "TFLite_Detection_PostProcess" not in check_builtin_ops(content, "raw head")
    (tmp_path / "raw.tflite").write_bytes(content)
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    raw = load_predictor(tmp_path / "raw.tflite")(images)
    assert raw.shape == (2, 84, 65)
    np.testing.assert_allclose(raw, KerasPredictor(model)(images), atol=1e-4)


def test_export_score_threshold_is_its_own_key():
    """The file's NMS threshold is ``export_conf`` (default 0.001), never predict's ``conf``."""
    from visionkit.export.detection import nms_settings, postprocess_signature

    assert nms_settings({"conf": 0.25, "iou": 0.6, "max_det": 100}) == (0.001, 0.6, 100)
    assert nms_settings({"conf": 0.25, "export_conf": 0.3})[0] == pytest.approx(0.3)
    text = postprocess_signature(1, *nms_settings({"conf": 0.25}))
    assert 'key: "nms_score_threshold" value { f: 0.001000 }' in text


def test_int8_keeps_the_box_decoding_float(detection_run, tmp_path):
    """Full-integer detection export: convolutions int8, the ops under the ``decode`` name
    scope float32 (selective quantisation), NMS still the builtin post-processing op."""
    from ai_edge_litert.interpreter import Interpreter

    from visionkit.export.detection import DECODE_SCOPE

    out = export_run(detection_run, ["tflite_int8"], progress=False, latency_runs=1)
    content = (out / "model_int8.tflite").read_bytes()
    ops = tflite_ops(content)
    assert "TFLite_Detection_PostProcess" in ops and not [o for o in ops if o.startswith("Flex")]
    tensors = Interpreter(model_content=content).get_tensor_details()
    decode = [t for t in tensors if f"{DECODE_SCOPE}/" in t["name"]]
    others = [t for t in tensors if f"{DECODE_SCOPE}/" not in t["name"]]
    assert decode and not [t["name"] for t in decode if t["dtype"] in (np.int8, np.uint8)]
    assert sum(t["dtype"] == np.float32 for t in decode) > len(decode) / 2  # the rest: shapes
    assert sum(t["dtype"] == np.int8 for t in others) > len(others) / 2
    report = json.loads((out / "report.json").read_text())
    assert report["tflite_int8"]["num_examples"] == 2 and "map50" in report["tflite_int8"]
