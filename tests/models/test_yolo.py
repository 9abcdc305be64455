"""YOLO detectors (anchor-free CSP/PAN-FPN/decoupled head and YOLOv1): the raw-output
contract shared with the losses, anchors and DFL decoding, class-aware NMS, mixed precision,
.keras round trips and the registry's parameter counts. Small inputs (64 px), 3 classes.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import visionkit.models.yolo  # registers the detectors
import visionkit.models.yolov1  # noqa: F401
from visionkit.models import ModelError, create_model, model_info
from visionkit.models.yolo import (
    build_yolo,
    class_aware_nms,
    decode,
    dfl_decode,
    make_anchors,
    num_anchors,
    postprocess,
)
from visionkit.models.yolov1 import decode_yolov1, postprocess_yolov1

DETECTORS = ["yolo_n", "yolo_s", "yolo_lite0", "yolo_mobilenetv2", "yolo_resnet18"]
SIZE, CLASSES, REG_MAX = 64, 3, 16
# Ultralytics YOLOv8n / YOLOv8s report 3,157,200 / 11,166,560 parameters; theirs include the
# 16 fixed weights of the DFL 1×1 conv that ``anchors.dfl_decode`` does in TF ops instead.
YOLOV8_TRAINABLE = {"yolo_n": 3_157_200 - 16, "yolo_s": 11_166_560 - 16}
A64 = (64 // 8) ** 2 + (64 // 16) ** 2 + (64 // 32) ** 2  # 84


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


def _images(batch: int = 2, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_raw_output_contract(name):
    model = create_model(name, num_classes=CLASSES, input_shape=(SIZE, SIZE, 3))
    assert model_info(name).task == "detect"
    assert model.output_shape == (None, A64, 4 * REG_MAX + CLASSES)
    assert num_anchors((SIZE, SIZE)) == A64
    out = model(_images(), training=False)
    assert out.shape == (2, A64, 4 * REG_MAX + CLASSES)
    assert out.dtype == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(out)).all()


@pytest.mark.parametrize("name", DETECTORS)
def test_registry_params_equal_built_count_at_defaults(name):
    # Builds at 640 px / 80 classes take about a second each here.
    model = create_model(name)
    assert model.output_shape == (None, 8400, 4 * REG_MAX + 80)
    assert model.count_params() == model_info(name).params
    if name in YOLOV8_TRAINABLE:
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert trainable == YOLOV8_TRAINABLE[name]


def test_head_and_neck_layers_are_prefixed_and_biases_initialised():
    from visionkit.backbones import create_backbone

    model = create_model("yolo_lite0", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3))
    base = {
        layer.name
        for layer in create_backbone("efficientnet_lite0", input_shape=(64, 64, 3)).layers
    }
    new = [layer.name for layer in model.layers if layer.name not in base]
    assert new and all(n.startswith(("det_neck_", "det_head_")) for n in new)
    prior = -math.log((1 - 0.01) / 0.01)
    for level in (3, 4, 5):
        cls_bias = model.get_layer(f"det_head_p{level}_cls_out").bias.numpy()
        box_bias = model.get_layer(f"det_head_p{level}_box_out").bias.numpy()
        np.testing.assert_allclose(cls_bias, prior, rtol=1e-6)
        np.testing.assert_allclose(box_bias, 1.0)
    # Fresh head: class scores start around the 0.01 prior.
    _, scores = decode(model(_images(1), training=False), (SIZE, SIZE))
    assert 0.002 < float(np.median(scores.numpy())) < 0.05


def test_output_stays_float32_under_mixed_precision():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = create_model("yolo_n", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3))
        assert model.get_layer("det_neck_out3_cv2_conv").compute_dtype == "float16"
        out = model(_images(), training=False)
        assert out.dtype == "float32"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_keras_round_trip_safe_mode(tmp_path):
    model = create_model("yolo_n", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3))
    path = tmp_path / "yolo_n.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _images()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(loaded(x, training=False)),
    )


def test_input_size_must_be_divisible_by_32():
    with pytest.raises(ModelError, match="divisible by 32"):
        build_yolo(backbone="csp_n", num_classes=3, input_shape=(80, 80, 3))


def test_csp_s_is_wider_than_csp_n():
    n = build_yolo(backbone="csp_n", num_classes=3, input_shape=(SIZE, SIZE, 3))
    s = build_yolo(backbone="csp_s", num_classes=3, input_shape=(SIZE, SIZE, 3))
    assert n.get_layer("csp_P5").output.shape[-1] == 256
    assert s.get_layer("csp_P5").output.shape[-1] == 512
    assert n.get_layer("csp_P3").output.shape[1:] == (8, 8, 64)


def test_make_anchors_exact_for_64():
    points, strides = make_anchors((64, 64))
    expected_points, expected_strides = [], []
    for s in (8, 16, 32):
        n = 64 // s
        for y in range(n):
            for x in range(n):
                expected_points.append(((x + 0.5) * s, (y + 0.5) * s))
                expected_strides.append([s])
    assert points.dtype == tf.float32 and strides.dtype == tf.float32
    np.testing.assert_array_equal(points.numpy(), np.array(expected_points, "float32"))
    np.testing.assert_array_equal(strides.numpy(), np.array(expected_strides, "float32"))
    assert points.shape == (A64, 2)
    np.testing.assert_array_equal(points.numpy()[:2], [[4, 4], [12, 4]])  # x first, row-major


def test_make_anchors_non_square():
    points, _ = make_anchors((32, 64), strides=(32,))
    np.testing.assert_array_equal(points.numpy(), [[16, 16], [48, 16]])


def _one_hot_logits(bins, reg_max=REG_MAX, high=60.0):
    logits = np.full((len(bins), reg_max), -high, "float32")
    logits[np.arange(len(bins)), bins] = high
    return logits.reshape(-1)


def test_dfl_decode_of_one_hot_logits_gives_the_bin():
    bins = [[0, 3, 7, 15], [1, 2, 4, 8]]
    logits = np.stack([_one_hot_logits(b) for b in bins])[None]  # (1, 2, 64)
    np.testing.assert_allclose(dfl_decode(logits).numpy(), [bins], atol=1e-4)
    uniform = dfl_decode(np.zeros((1, 1, 64), "float32")).numpy()
    np.testing.assert_allclose(uniform, 7.5, atol=1e-5)  # mean of 0..15


def _raw_with(entries, num_classes=CLASSES, size=SIZE):
    """Raw tensor with box logits near zero distance except the given anchors."""
    a = num_anchors((size, size))
    raw = np.zeros((1, a, 4 * REG_MAX + num_classes), "float32")
    raw[..., : 4 * REG_MAX] = _one_hot_logits([0, 0, 0, 0] * a).reshape(a, -1)
    raw[..., 4 * REG_MAX :] = -20.0
    for index, bins, cls, logit in entries:
        raw[0, index, : 4 * REG_MAX] = _one_hot_logits(bins)
        raw[0, index, 4 * REG_MAX + cls] = logit
    return raw


def test_decode_of_a_constructed_raw_tensor():
    # Anchor 0: P3 point (4, 4), stride 8; anchor 64: P4 point (8, 8), stride 16;
    # anchor 83: P5 point (48, 48), stride 32.
    raw = _raw_with(
        [(0, [1, 2, 3, 4], 1, 0.0), (64, [0, 1, 1, 0], 2, 2.0), (83, [1, 1, 0, 0], 0, 0.0)]
    )
    boxes, scores = decode(raw, (SIZE, SIZE))
    assert boxes.shape == (1, A64, 4) and scores.shape == (1, A64, CLASSES)
    np.testing.assert_allclose(boxes.numpy()[0, 0], [4 - 8, 4 - 16, 4 + 24, 4 + 32], atol=1e-3)
    np.testing.assert_allclose(boxes.numpy()[0, 64], [8, 8 - 16, 8 + 16, 8], atol=1e-3)
    np.testing.assert_allclose(boxes.numpy()[0, 83], [16, 16, 48, 48], atol=1e-3)
    np.testing.assert_allclose(boxes.numpy()[0, 1], [12, 4, 12, 4], atol=1e-3)  # zero distance
    np.testing.assert_allclose(scores.numpy()[0, 0], [0, 0.5, 0], atol=1e-6)
    np.testing.assert_allclose(scores.numpy()[0, 64, 2], 1 / (1 + math.exp(-2.0)), rtol=1e-6)


def test_postprocess_returns_the_constructed_boxes():
    raw = _raw_with([(0, [1, 2, 3, 4], 1, 0.0), (64, [0, 1, 1, 0], 2, 2.0)])
    boxes, scores, classes, valid = postprocess(raw, (SIZE, SIZE), max_detections=5)
    assert boxes.shape == (1, 5, 4) and classes.dtype == tf.int32 and int(valid[0]) == 2
    np.testing.assert_allclose(boxes.numpy()[0, :2], [[8, -8, 24, 8], [-4, -12, 28, 36]], atol=1e-3)
    np.testing.assert_array_equal(classes.numpy()[0, :2], [2, 1])
    np.testing.assert_allclose(scores.numpy()[0, 2:], 0)


BOX_A = [10.0, 10.0, 50.0, 50.0]
BOX_B = [12.0, 12.0, 52.0, 52.0]  # IoU with A ≈ 0.82
BOX_C = [100.0, 100.0, 140.0, 140.0]


def _nms(boxes, scores, **kw):
    out = class_aware_nms(np.array([boxes], "float32"), np.array([scores], "float32"), **kw)
    return [t.numpy()[0] for t in out]


def test_nms_overlapping_same_class_keeps_one():
    boxes, scores, classes, valid = _nms([BOX_A, BOX_B], [[0.9, 0.0], [0.8, 0.0]], max_detections=4)
    assert valid == 1
    np.testing.assert_allclose(boxes[0], BOX_A)  # pixel coordinates come back unchanged
    np.testing.assert_allclose(scores, [0.9, 0, 0, 0], rtol=1e-6)
    assert classes[0] == 0 and classes.dtype == np.int32


def test_nms_overlapping_different_classes_keeps_both():
    boxes, _, classes, valid = _nms([BOX_A, BOX_B], [[0.9, 0.0], [0.0, 0.8]], max_detections=4)
    assert valid == 2
    np.testing.assert_array_equal(classes[:2], [0, 1])
    np.testing.assert_allclose(boxes[:2], [BOX_A, BOX_B])


def test_nms_iou_threshold_and_score_threshold():
    _, _, _, valid = _nms([BOX_A, BOX_B], [[0.9], [0.8]], iou_threshold=0.9)
    assert valid == 2  # IoU 0.82 < 0.9: both kept
    _, scores, _, valid = _nms([BOX_A, BOX_C], [[0.9], [0.2]], score_threshold=0.25)
    assert valid == 1 and scores[0] == pytest.approx(0.9)


def test_nms_max_detections_and_padding():
    boxes = [[i * 50.0, 0.0, i * 50.0 + 40.0, 40.0] for i in range(6)]
    scores = [[0.3 + 0.1 * i] for i in range(6)]
    out_boxes, out_scores, _, valid = _nms(boxes, scores, max_detections=3)
    assert valid == 3 and out_boxes.shape == (3, 4)
    np.testing.assert_allclose(out_scores, [0.8, 0.7, 0.6], rtol=1e-6)
    _, _, _, valid = _nms(boxes, scores, max_detections=10, max_per_class=2)
    assert valid == 2
    out_boxes, out_scores, _, valid = _nms(boxes[:1], scores[:1], max_detections=4)
    assert valid == 1 and not out_boxes[1:].any() and not out_scores[1:].any()


def test_yolov1_output_shape_and_parameter_count():
    model = create_model("yolov1", input_shape=(SIZE, SIZE, 3))
    out = model(_images(), training=False)
    assert out.shape == (2, 7, 7, 30) and out.dtype == "float32"  # S=7, B=2, C=20 (seed C55)
    # At 448 px P5 is 14×14 → 7×7 after the head's stride-2 conv; at 64 px it is 1×1, so
    # the registered count differs only in the first FC layer's input (49 vs 1 × 1024).
    info = model_info("yolov1")
    assert info.task == "detect" and info.input_shape == (448, 448, 3)
    assert info.params == model.count_params() + (49 - 1) * 1024 * 4096
    assert model.get_layer("det_head_fc1").units == 4096
    assert model.get_layer("det_head_dropout").rate == 0.5
    small = create_model(
        "yolov1", num_classes=3, input_shape=(SIZE, SIZE, 3), grid=4, boxes_per_cell=1
    )
    assert small.output_shape == (None, 4, 4, 8)


def test_yolov1_decode_and_nms():
    out = np.zeros((1, 7, 7, 30), "float32")
    # Cell (row 3, col 2), box 1: centre at (2.5/7, 3.5/7) of a 448 image, w = h = 0.25.
    out[0, 3, 2, 5:10] = [0.5, 0.5, 0.25, 0.25, 0.9]
    out[0, 3, 2, 10 + 4] = 1.0  # class 4
    boxes, scores = decode_yolov1(out, (448, 448), num_classes=20)
    assert boxes.shape == (1, 98, 4) and scores.shape == (1, 98, 20)
    index = (3 * 7 + 2) * 2 + 1
    np.testing.assert_allclose(boxes.numpy()[0, index], [160 - 56, 224 - 56, 160 + 56, 224 + 56])
    assert scores.numpy()[0, index, 4] == pytest.approx(0.9)
    b, _, c, valid = postprocess_yolov1(out, (448, 448), num_classes=20)
    assert int(valid[0]) == 1 and int(c[0, 0]) == 4
    np.testing.assert_allclose(b.numpy()[0, 0], [104, 168, 216, 280])


def test_yolo_lite0_passes_imagenet_weights_to_the_backbone():
    from visionkit.backbones import WeightsNotFoundError

    try:
        model = create_model(
            "yolo_lite0",
            num_classes=CLASSES,
            input_shape=(SIZE, SIZE, 3),
            backbone_weights="imagenet",
        )
    except WeightsNotFoundError:
        pytest.skip("EfficientNet-Lite0 ImageNet weights are not cached on this machine")
    fresh = create_model("yolo_lite0", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3))
    stem = next(layer.name for layer in model.layers if layer.weights)
    assert not np.array_equal(model.get_layer(stem).weights[0], fresh.get_layer(stem).weights[0])
