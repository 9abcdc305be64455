"""Detection losses: IoU family, task-aligned assigner, YoloLoss (YOLOv8-style), YoloV1Loss."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionkit.train.losses import (
    TaskAlignedAssigner,
    YoloLoss,
    YoloV1Loss,
    ciou,
    decode_dfl_boxes,
    giou,
    iou,
    make_anchor_points,
    pack_targets,
    pairwise_ciou,
    pairwise_giou,
    pairwise_iou,
    trim_padding,
)

REG_MAX = 16
C = 3
IMG = (64, 64)  # A = 64 + 16 + 4 = 84


# ----------------------------------------------------------------------------- IoU family
def _np(x):
    return np.asarray(x, np.float32)


def test_identical_boxes_give_one():
    b = tf.constant([[0.0, 0.0, 4.0, 2.0], [10.0, 10.0, 30.0, 50.0]])
    for fn in (iou, giou, ciou):
        np.testing.assert_allclose(fn(b, b).numpy(), [1.0, 1.0], atol=1e-6)


def test_disjoint_boxes():
    a = tf.constant([0.0, 0.0, 1.0, 1.0])
    b = tf.constant([2.0, 0.0, 3.0, 1.0])
    assert iou(a, b).numpy() == pytest.approx(0.0, abs=1e-7)
    assert giou(a, b).numpy() == pytest.approx(-1.0 / 3.0, abs=1e-6)  # enclosing 3, union 2
    assert ciou(a, b).numpy() == pytest.approx(-4.0 / 10.0, abs=1e-6)  # rho²=4, c²=10, v=0


def test_nested_boxes():
    a = tf.constant([0.0, 0.0, 4.0, 4.0])
    b = tf.constant([1.0, 1.0, 3.0, 3.0])
    for fn in (iou, giou, ciou):  # same centre, same aspect: all equal IoU = 4/16
        assert fn(a, b).numpy() == pytest.approx(0.25, abs=1e-6)


def test_known_numeric_cases():
    a = tf.constant([0.0, 0.0, 2.0, 2.0])
    b = tf.constant([1.0, 1.0, 3.0, 3.0])
    assert iou(a, b).numpy() == pytest.approx(1 / 7, abs=1e-6)
    assert giou(a, b).numpy() == pytest.approx(1 / 7 - 2 / 9, abs=1e-6)
    assert ciou(a, b).numpy() == pytest.approx(1 / 7 - 2 / 18, abs=1e-6)
    # Different aspect ratios exercise the v, alpha term.
    a = tf.constant([0.0, 0.0, 2.0, 1.0])
    b = tf.constant([0.0, 0.0, 1.0, 2.0])
    v = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2.0)) ** 2
    alpha = v / (1 - 1 / 3 + v)
    assert ciou(a, b).numpy() == pytest.approx(1 / 3 - 0.5 / 8 - alpha * v, abs=1e-5)


def test_pairwise_matches_elementwise():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 1.0]])
    b = tf.constant([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 2.0], [5.0, 5.0, 6.0, 9.0]])
    for pw, ew in ((pairwise_iou, iou), (pairwise_giou, giou), (pairwise_ciou, ciou)):
        out = pw(a, b).numpy()
        assert out.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                assert out[i, j] == pytest.approx(float(ew(a[i], b[j])), abs=1e-6)


def test_ciou_gradients_finite_for_degenerate_boxes():
    pred = tf.Variable([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 3.0, 1.0]])
    gt = tf.constant([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 3.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(1.0 - ciou(pred, gt))
    grad = tape.gradient(loss, pred)
    assert np.isfinite(grad.numpy()).all()
    assert np.isfinite(loss.numpy())


# ----------------------------------------------------------------------------- assigner
def _line_anchors(n: int = 20) -> tf.Tensor:
    return tf.constant([[5.0 + 10.0 * i, 5.0] for i in range(n)])


def test_assigner_topk_by_alignment_and_normalised_scores():
    anchors = _line_anchors()
    gt = [0.0, 0.0, 200.0, 10.0]
    scores = np.zeros((1, 20, 2), np.float32)
    scores[0, :, 1] = (np.arange(20) + 1) / 21.0
    pred_boxes = np.tile(np.array(gt, np.float32), (1, 20, 1))
    out = TaskAlignedAssigner(2)(
        tf.constant(scores),
        tf.constant(pred_boxes),
        anchors,
        tf.constant([[gt]]),
        tf.constant([[1]], tf.int32),
    )
    fg = out.foreground.numpy()[0]
    np.testing.assert_array_equal(fg, np.arange(20) >= 10)
    np.testing.assert_array_equal(out.classes.numpy()[0], np.where(fg, 1, -1))
    np.testing.assert_allclose(out.boxes.numpy()[0][fg], np.tile(gt, (10, 1)))
    expected = np.where(fg, np.sqrt(scores[0, :, 1] / scores[0, 19, 1]), 0.0)  # t/max t * 1
    np.testing.assert_allclose(out.scores.numpy()[0, :, 1], expected, atol=1e-5)
    np.testing.assert_allclose(out.scores.numpy()[0, :, 0], 0.0)


def test_assigner_ignores_padding_gts():
    anchors = _line_anchors()
    gt = [0.0, 0.0, 200.0, 10.0]
    scores = tf.fill([1, 20, 2], 0.5)
    pred = tf.constant(np.tile(np.array(gt, np.float32), (1, 20, 1)))
    assigner = TaskAlignedAssigner(2)
    padded = assigner(
        scores,
        pred,
        anchors,
        tf.constant([[gt, [0.0, 0.0, 300.0, 300.0], gt]]),
        tf.constant([[-1, -1, -1]], tf.int32),
    )
    assert not padded.foreground.numpy().any()
    assert float(tf.reduce_sum(padded.scores)) == 0.0
    np.testing.assert_array_equal(padded.classes.numpy(), -1)
    # No GT slot at all (M = 0) works too.
    empty = assigner(scores, pred, anchors, tf.zeros([1, 0, 4]), tf.zeros([1, 0], tf.int32))
    assert not empty.foreground.numpy().any()


def test_assigner_anchor_claimed_by_two_gts_goes_to_higher_iou():
    anchors = _line_anchors()
    gt_a = [0.0, 0.0, 120.0, 10.0]  # contains anchors 0..11
    gt_b = [0.0, 0.0, 60.0, 10.0]  # contains anchors 0..5
    pred = np.zeros((1, 20, 4), np.float32)
    pred[0, :6] = gt_b  # anchors 0..5 predict B exactly
    pred[0, 6:] = gt_a  # the others predict A exactly
    scores = tf.fill([1, 20, 2], 0.9)
    out = TaskAlignedAssigner(2)(
        scores,
        tf.constant(pred),
        anchors,
        tf.constant([[gt_a, gt_b]]),
        tf.constant([[0, 1]], tf.int32),
    )
    # A's top-10 holds its 6 exact anchors and 4 of 0..5, which B claims too: they go to B.
    classes = out.classes.numpy()[0]
    np.testing.assert_array_equal(classes[:6], 1)
    np.testing.assert_array_equal(classes[6:12], 0)
    np.testing.assert_array_equal(classes[12:], -1)
    np.testing.assert_array_equal(out.gt_index.numpy()[0, :12], [1] * 6 + [0] * 6)
    np.testing.assert_allclose(out.boxes.numpy()[0, :6], np.tile(gt_b, (6, 1)))


# ----------------------------------------------------------------------------- YoloLoss
GT_BOX = [4.0, 4.0, 44.0, 44.0]  # P3 anchors strictly inside sit at integer bin distances


def _targets(batch: int = 1) -> dict[str, tf.Tensor]:
    boxes = np.zeros((batch, 3, 4), np.float32)
    boxes[:, 0] = GT_BOX
    boxes[:, 1] = [0.0, 0.0, 64.0, 64.0]  # padding slot, must be ignored
    classes = np.full((batch, 3), -1, np.int32)
    classes[:, 0] = 1
    return {"boxes": tf.constant(boxes), "classes": tf.constant(classes)}


def _perfect_raw(batch: int = 1, margin: float = 50.0) -> np.ndarray:
    """Raw output whose P3 anchors inside GT_BOX decode exactly to it, with class 1 sure."""
    points, strides = (t.numpy() for t in make_anchor_points(IMG))
    raw = np.zeros((batch, points.shape[0], 4 * REG_MAX + C), np.float32)
    raw[..., 4 * REG_MAX :] = -10.0
    x1, y1, x2, y2 = GT_BOX
    for a, ((px, py), (s,)) in enumerate(zip(points, strides, strict=True)):
        if s != 8 or not (x1 < px < x2 and y1 < py < y2):
            continue
        dists = [(px - x1) / s, (py - y1) / s, (x2 - px) / s, (y2 - py) / s]
        for side, d in enumerate(dists):
            assert float(d).is_integer()
            raw[:, a, side * REG_MAX + int(d)] = margin
        raw[:, a, 4 * REG_MAX + 1] = 10.0
    return raw


def _loss() -> YoloLoss:
    return YoloLoss(image_size=IMG, num_classes=C)


def test_decoding_matches_the_detector_module():
    anchors = pytest.importorskip("visionkit.models.yolo.anchors")
    raw = tf.random.stateless_normal([2, 84, 4 * REG_MAX + C], seed=[1, 2])
    points, strides = make_anchor_points(IMG)
    mine, _ = decode_dfl_boxes(raw[..., : 4 * REG_MAX], points, strides, REG_MAX)
    theirs, _ = anchors.decode(raw, IMG, REG_MAX)
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-4)


def test_yolo_loss_perfect_prediction_has_zero_box_terms():
    loss = _loss()
    parts = loss.components(_targets(), tf.constant(_perfect_raw()))
    assert float(parts["box"]) < 1e-5
    assert float(parts["dfl"]) < 1e-5
    assert np.isfinite(float(parts["cls"])) and float(parts["cls"]) >= 0.0
    total = float(loss(_targets(), tf.constant(_perfect_raw())))
    assert total == pytest.approx(float(parts["loss"]), rel=1e-6)


def test_yolo_loss_finite_nonnegative_and_worse_is_higher():
    loss = _loss()
    y = _targets(batch=2)
    perfect = _perfect_raw(batch=2)
    worse = perfect.copy()
    worse[..., : 4 * REG_MAX] = np.roll(
        worse[..., : 4 * REG_MAX].reshape(2, 84, 4, REG_MAX), 1, axis=-1
    ).reshape(2, 84, -1)
    random = tf.random.stateless_normal(perfect.shape, seed=[3, 4])
    p, w, r = (loss.components(y, tf.constant(x)) for x in (perfect, worse, random))
    for parts in (p, w, r):
        for value in parts.values():
            assert np.isfinite(float(value)) and float(value) >= 0.0
    assert float(w["box"]) > float(p["box"]) + 0.1
    assert float(w["dfl"]) > float(p["dfl"]) + 1.0
    assert float(r["loss"]) > float(p["loss"])


def test_yolo_loss_dict_and_packed_targets_agree_and_no_gt_is_finite():
    loss = _loss()
    raw = tf.random.stateless_normal([2, 84, 4 * REG_MAX + C], seed=[5, 6])
    y = _targets(batch=2)
    assert float(loss(y, raw)) == pytest.approx(float(loss(pack_targets(y), raw)), rel=1e-6)
    empty = {"boxes": tf.zeros([2, 2, 4]), "classes": -tf.ones([2, 2], tf.int32)}
    parts = loss.components(empty, raw)
    assert float(parts["box"]) == 0.0 and float(parts["dfl"]) == 0.0
    assert np.isfinite(float(parts["cls"])) and float(parts["cls"]) > 0.0


def test_yolo_loss_gradients_reach_raw_tensor():
    raw = tf.Variable(tf.random.stateless_normal([1, 84, 4 * REG_MAX + C], seed=[7, 8]))
    with tf.GradientTape() as tape:
        value = _loss()(_targets(), raw)
    grad = tape.gradient(value, raw).numpy()
    assert np.isfinite(grad).all()
    assert np.abs(grad[..., : 4 * REG_MAX]).sum() > 0.0  # box terms
    assert np.abs(grad[..., 4 * REG_MAX :]).sum() > 0.0  # class term


def test_yolo_loss_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="anchors"):
        _loss()(_targets(), tf.zeros([1, 80, 4 * REG_MAX + C]))
    with pytest.raises(ValueError, match="channels"):
        _loss()(_targets(), tf.zeros([1, 84, 4 * REG_MAX + C + 1]))


def test_yolo_loss_under_mixed_precision_is_float32():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        loss = _loss()
        raw16 = tf.cast(
            tf.random.stateless_normal([1, 84, 4 * REG_MAX + C], seed=[9, 9]), "float16"
        )
        value = loss(_targets(), raw16)
        assert value.dtype == tf.float32
        assert np.isfinite(float(value))
        assert all(v.dtype == tf.float32 for v in loss.components(_targets(), raw16).values())
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_yolo_loss_serialization_round_trip():
    loss = YoloLoss(image_size=IMG, num_classes=C, box_gain=5.0, top_k=7)
    config = keras.losses.serialize(loss)
    back = keras.losses.deserialize(config)
    assert isinstance(back, YoloLoss)
    assert back.get_config() == loss.get_config()
    raw = tf.random.stateless_normal([1, 84, 4 * REG_MAX + C], seed=[1, 1])
    assert float(back(_targets(), raw)) == pytest.approx(float(loss(_targets(), raw)))


def _toy_detector(image_size=(32, 32)) -> keras.Model:
    anchors = sum((image_size[0] // s) * (image_size[1] // s) for s in (8, 16, 32))
    inputs = keras.Input((*image_size, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(anchors * (4 * REG_MAX + C))(x)
    outputs = keras.layers.Reshape((anchors, 4 * REG_MAX + C))(x)
    return keras.Model(inputs, outputs)


def _toy_dataset():
    images = tf.random.stateless_uniform([2, 32, 32, 3], seed=[0, 1])
    targets = {
        "boxes": tf.constant([[[2.0, 2.0, 20.0, 18.0], [0, 0, 0, 0]]] * 2),
        "classes": tf.constant([[2, -1]] * 2, tf.int32),
    }
    return tf.data.Dataset.from_tensor_slices((images, targets)).batch(2)


def test_fit_refuses_dict_targets_for_a_single_output_model():
    """Pins the Keras 3.15 behaviour behind ``pack_targets``."""
    keras.utils.set_random_seed(0)
    model = _toy_detector()
    model.compile(optimizer="adam", loss=YoloLoss(image_size=(32, 32), num_classes=C))
    with pytest.raises(ValueError, match="different structures"):
        model.fit(_toy_dataset(), epochs=1, verbose=0, shuffle=False)


@pytest.mark.slow
def test_fit_with_packed_targets_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = _toy_detector()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=YoloLoss(image_size=(32, 32), num_classes=C)
    )
    ds = _toy_dataset().map(lambda x, y: (x, pack_targets(y))).cache()
    before = model.evaluate(ds, verbose=0)
    history = model.fit(ds.repeat(10), epochs=1, verbose=0, shuffle=False)
    after = model.evaluate(ds, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert after < 0.9 * before


# ----------------------------------------------------------------------------- YOLOv1
S, NB, C1 = 7, 2, 20
IMG1 = (448, 448)


def _v1_targets():
    # GT 0: centre (96, 160) → cell row 2, col 1; GT 1: centre (320, 352) → row 5, col 5.
    boxes = tf.constant([[[64.0, 128.0, 128.0, 192.0], [256.0, 320.0, 384.0, 384.0], [0, 0, 0, 0]]])
    classes = tf.constant([[3, 7, -1]], tf.int32)
    return {"boxes": boxes, "classes": classes}


def _v1_perfect() -> np.ndarray:
    pred = np.zeros((1, S, S, NB * 5 + C1), np.float32)
    cell = 448 / S
    for (x1, y1, x2, y2), cls in (((64, 128, 128, 192), 3), ((256, 320, 384, 384), 7)):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        row, col = int(cy // cell), int(cx // cell)
        pred[0, row, col, :5] = [
            cx / cell - col,
            cy / cell - row,
            (x2 - x1) / 448,
            (y2 - y1) / 448,
            1,
        ]
        pred[0, row, col, 5:10] = [0.0, 0.0, 0.01, 0.01, 0.0]  # the other predictor: tiny, off
        pred[0, row, col, 10 + cls] = 1.0
    return pred


def test_yolov1_perfect_prediction_is_zero():
    loss = YoloV1Loss(IMG1, num_classes=C1)
    value = loss(_v1_targets(), tf.constant(_v1_perfect()))
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(pack_targets(_v1_targets()), tf.constant(_v1_perfect()))) < 1e-5


def test_yolov1_lambda_weights_in_hand_computed_cases():
    loss = YoloV1Loss(IMG1, num_classes=C1, confidence_target="one")
    # lambda_coord on x: shift the responsible x by 0.1 → 5 · 0.01.
    pred = _v1_perfect()
    pred[0, 2, 1, 0] += 0.1
    parts = loss.components(_v1_targets(), tf.constant(pred))
    assert float(parts["coord"][0]) == pytest.approx(5 * 0.01, abs=1e-5)
    assert float(parts["loss"][0]) == pytest.approx(5 * 0.01, abs=1e-5)
    # sqrt sizes: w = 0.25 against 64/448; 5 · (0.5 − sqrt(1/7))².
    pred = _v1_perfect()
    pred[0, 2, 1, 2] = 0.25
    parts = loss.components(_v1_targets(), tf.constant(pred))
    assert float(parts["size"][0]) == pytest.approx(5 * (0.5 - math.sqrt(1 / 7)) ** 2, abs=1e-5)
    # lambda_noobj: no objects, every confidence 0.3 → 0.5 · 49 · 2 · 0.09.
    pred = np.zeros((1, S, S, NB * 5 + C1), np.float32)
    pred[..., 4] = pred[..., 9] = 0.3
    empty = {"boxes": tf.zeros([1, 1, 4]), "classes": -tf.ones([1, 1], tf.int32)}
    assert float(loss(empty, tf.constant(pred))) == pytest.approx(0.5 * 49 * 2 * 0.09, rel=1e-5)
    # class probabilities: p = 0.5 for the right class → 0.25, not weighted.
    pred = _v1_perfect()
    pred[0, 2, 1, 10 + 3] = 0.5
    assert float(loss(_v1_targets(), tf.constant(pred))) == pytest.approx(0.25, abs=1e-5)


def test_yolov1_confidence_target_iou_and_gradients():
    loss = YoloV1Loss(IMG1, num_classes=C1)
    pred = tf.Variable(_v1_perfect() + 0.05)
    with tf.GradientTape() as tape:
        value = loss(_v1_targets(), pred)
    grad = tape.gradient(value, pred).numpy()
    assert np.isfinite(float(value)) and float(value) > 0.0
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0.0
    with pytest.raises(ValueError):
        loss(_v1_targets(), tf.zeros([1, S, S, 29]))


def test_yolov1_serialization_round_trip():
    loss = YoloV1Loss(IMG1, num_classes=C1, lambda_noobj=0.25)
    back = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(back, YoloV1Loss) and back.get_config() == loss.get_config()


def test_trim_padding_keeps_the_real_boxes_and_leaves_the_loss_unchanged():
    rng = np.random.default_rng(7)
    packed = np.zeros((2, 40, 5), np.float32)
    packed[..., 4] = -1
    for b, count in ((0, 3), (1, 9)):
        xy = rng.uniform(0, 30, (count, 2))
        wh = rng.uniform(8, 30, (count, 2))
        packed[b, :count, :4] = np.concatenate([xy, xy + wh], axis=1)
        packed[b, :count, 4] = rng.integers(0, C, count)
    packed[1, 4, 4] = -1  # a padding slot between real boxes is kept
    trimmed = trim_padding(tf.constant(packed))
    assert trimmed.shape == (2, 16, 5)  # 9 real slots, rounded up to 16
    np.testing.assert_array_equal(trimmed.numpy(), packed[:, :16])
    loss = _loss()
    raw = tf.random.stateless_normal([2, 84, 4 * REG_MAX + C], seed=[8, 9])
    full, cut = loss.components(tf.constant(packed), raw), loss.components(trimmed, raw)
    for key in full:
        assert float(cut[key]) == pytest.approx(float(full[key]), rel=1e-6), key
    assert trim_padding(tf.constant(packed[:, :5])).shape == (2, 5, 5)  # never above M
    empty = np.full((2, 40, 5), -1.0, np.float32)
    assert trim_padding(tf.constant(empty)).shape == (2, 8, 5)
