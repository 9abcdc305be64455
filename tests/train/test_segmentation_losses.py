"""Segmentation losses: perfect predictions, the ignore index, class weights, focal = CE at
γ = 0, Lovász-softmax against its definition, sigmoid outputs, serialization, and the U-Net
weight map."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionkit.train.losses_segmentation import (
    CombinedLoss,
    DiceLoss,
    FocalLoss,
    LovaszSoftmaxLoss,
    SegmentationCrossEntropy,
    unet_weight_map,
)

C = 3


def _random(seed=0, shape=(2, 8, 8)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, size=shape).astype("int32")
    logits = rng.normal(size=(*shape, C))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return labels, probs.astype("float32")


def _onehot(labels, c=C):
    return np.eye(c, dtype="float32")[np.where(labels == 255, 0, labels)]


def _ce_reference(labels, probs, weights=None, ignore=255):
    valid = labels != ignore
    lab = np.where(valid, labels, 0)
    p = np.clip(np.take_along_axis(probs, lab[..., None], -1)[..., 0], 1e-7, 1 - 1e-7)
    w = np.ones(C) if weights is None else np.asarray(weights)
    return float((-np.log(p) * w[lab] * valid).sum() / valid.sum())


ALL = [SegmentationCrossEntropy, DiceLoss, FocalLoss, LovaszSoftmaxLoss]


@pytest.mark.parametrize("cls", ALL)
def test_perfect_predictions(cls):
    labels, _ = _random()
    value = float(cls()(labels, _onehot(labels)))
    assert value == pytest.approx(0.0, abs=2e-7)  # CE/focal: −log(1 − 1e-7) after clipping
    if cls is DiceLoss:
        assert value == 0.0


def test_cross_entropy_matches_numpy_and_keras():
    labels, probs = _random()
    ours = float(SegmentationCrossEntropy()(labels, probs))
    assert ours == pytest.approx(_ce_reference(labels, probs), rel=1e-5)
    keras_ce = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    assert ours == pytest.approx(float(keras_ce), rel=1e-5)
    # (B, H, W, 1) labels are the same thing
    assert float(SegmentationCrossEntropy()(labels[..., None], probs)) == pytest.approx(ours)


@pytest.mark.parametrize("cls", ALL)
def test_ignored_pixels_are_excluded_exactly(cls):
    labels, probs = _random(1)
    labels[0, :3] = 255
    other = probs.copy()
    other[0, :3] = _random(7)[1][0, :3]  # change predictions at ignored pixels only
    loss = cls()
    assert float(loss(labels, probs)) == float(loss(labels, other))
    # and it equals the loss on the valid pixels alone
    valid = labels != 255
    if cls is SegmentationCrossEntropy:
        assert float(loss(labels, probs)) == pytest.approx(_ce_reference(labels, probs), rel=1e-5)
        flat = loss(labels[valid][None, None], probs[valid][None, None])
        assert float(loss(labels, probs)) == pytest.approx(float(flat), rel=1e-6)


def test_all_ignored_gives_zero():
    labels, probs = _random()
    labels[:] = 255
    for cls in ALL:
        assert float(cls()(labels, probs)) == 0.0


def test_class_weights_scale_as_expected():
    labels, probs = _random(2)
    base = float(SegmentationCrossEntropy()(labels, probs))
    doubled = float(SegmentationCrossEntropy(class_weights=[2.0, 2.0, 2.0])(labels, probs))
    assert doubled == pytest.approx(2 * base, rel=1e-6)
    weights = [1.0, 3.0, 0.5]
    got = float(SegmentationCrossEntropy(class_weights=weights)(labels, probs))
    assert got == pytest.approx(_ce_reference(labels, probs, weights), rel=1e-5)
    only0 = float(SegmentationCrossEntropy(class_weights=[1.0, 0.0, 0.0])(labels, probs))
    ref = _ce_reference(labels, probs, [1.0, 0.0, 0.0])
    assert only0 == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match="3 classes"):
        SegmentationCrossEntropy(class_weights=[1.0, 2.0])(labels, probs)


def test_pixel_weight_maps_via_sample_weight():
    labels, probs = _random(3)
    ones = np.ones(labels.shape, "float32")
    loss = SegmentationCrossEntropy()
    assert float(loss(labels, probs, ones * 2)) == pytest.approx(
        2 * float(loss(labels, probs)), rel=1e-6
    )


def test_focal_reduces_to_cross_entropy_and_down_weights_easy_pixels():
    labels, probs = _random(4)
    ce = float(SegmentationCrossEntropy()(labels, probs))
    assert float(FocalLoss(gamma=0.0)(labels, probs)) == pytest.approx(ce, rel=1e-6)
    assert float(FocalLoss()(labels, probs)) < ce
    # reference: −(1 − p)^2 log p averaged
    p = np.take_along_axis(probs, labels[..., None], -1)[..., 0]
    ref = float(np.mean(-((1 - p) ** 2) * np.log(p)))
    assert float(FocalLoss()(labels, probs)) == pytest.approx(ref, rel=1e-5)
    alpha = [0.2, 0.3, 0.5]
    ref_a = float(np.mean(-np.asarray(alpha)[labels] * (1 - p) ** 2 * np.log(p)))
    assert float(FocalLoss(alpha=alpha)(labels, probs)) == pytest.approx(ref_a, rel=1e-5)
    with pytest.raises(ValueError, match="binary"):
        FocalLoss(alpha=0.25)(labels, probs)


def test_dice_matches_numpy_over_present_classes():
    labels, probs = _random(5)
    labels[labels == 2] = 0  # class 2 absent from the ground truth
    g = _onehot(labels)
    inter = (probs * g).sum((0, 1, 2))
    dice = 2 * inter / (probs.sum((0, 1, 2)) + g.sum((0, 1, 2)))
    assert float(DiceLoss()(labels, probs)) == pytest.approx(1 - dice[:2].mean(), rel=1e-5)
    sq = 2 * inter / ((probs**2).sum((0, 1, 2)) + g.sum((0, 1, 2)))
    assert float(DiceLoss(squared=True)(labels, probs)) == pytest.approx(
        1 - sq[:2].mean(), rel=1e-5
    )
    nobg = float(DiceLoss(include_background=False)(labels, probs))
    assert nobg == pytest.approx(1 - dice[1], rel=1e-5)


def test_sigmoid_outputs_are_two_classes():
    labels, probs = _random(6)
    labels = (labels > 0).astype("int32")
    p1 = probs[..., 1:2]
    two = np.concatenate([1 - p1, p1], -1)
    for cls in ALL:
        assert float(cls()(labels, p1)) == pytest.approx(float(cls()(labels, two)), rel=1e-6)
    assert float(FocalLoss(alpha=0.25)(labels, p1)) > 0


def test_float16_predictions_are_computed_in_float32():
    labels, probs = _random()
    value = SegmentationCrossEntropy()(labels, probs.astype("float16"))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert float(value) == pytest.approx(float(SegmentationCrossEntropy()(labels, probs)), rel=1e-3)


def _lovasz_reference(labels, probs):
    """The Lovász extension by its level-set definition (Lovász 1983; Berman et al. 2018,
    eq. 8): with the errors sorted e_(1) ≥ … ≥ e_(n) and e_(n+1) = 0,
    f(e) = Σ_k (e_(k) − e_(k+1)) · Δ(top k), Δ(S) = 1 − IoU_c when the pixels in S are
    wrong; the mean over the classes present. Ignored pixels are dropped."""
    valid = labels != 255
    lab, p = labels[valid], probs[valid].astype("float64")
    values = []
    for c in range(p.shape[-1]):
        gt = lab == c
        if not gt.any():
            continue
        e = np.abs(gt - p[:, c])
        order = np.argsort(-e, kind="stable")
        e_sorted = np.r_[e[order], 0.0]
        total = 0.0
        for k in range(1, len(e) + 1):
            wrong = np.zeros(len(e), bool)
            wrong[order[:k]] = True
            predicted = (gt & ~wrong) | (~gt & wrong)  # mistakes flip the prediction
            iou = (gt & predicted).sum() / (gt | predicted).sum()
            total += (e_sorted[k - 1] - e_sorted[k]) * (1.0 - iou)
        values.append(total)
    return float(np.mean(values))


def test_lovasz_matches_its_level_set_definition_and_one_minus_iou_when_hard():
    labels, probs = _random(9, shape=(2, 5, 6))
    labels[1, 0, :4] = 255
    labels[labels == 2] = 0  # class 2 absent: it does not count
    got = float(LovaszSoftmaxLoss()(labels, probs))
    assert got == pytest.approx(_lovasz_reference(labels, probs), rel=1e-5)
    # On hard 0/1 predictions the extension equals the set function: mean of 1 − IoU_c.
    hard = np.argmax(probs, -1)
    valid = labels != 255
    ious = [
        ((hard == c) & (labels == c) & valid).sum() / (((hard == c) | (labels == c)) & valid).sum()
        for c in (0, 1)
    ]
    expected = 1.0 - float(np.mean(ious))
    assert float(LovaszSoftmaxLoss()(labels, _onehot(hard))) == pytest.approx(expected, rel=1e-6)


def test_lovasz_gradient_lowers_the_loss_zero_weights_drop_pixels_and_it_serializes():
    import tensorflow as tf

    labels, probs = _random(10)
    logits = tf.Variable(np.log(probs))
    loss = LovaszSoftmaxLoss()
    with tf.GradientTape() as tape:
        before = loss(labels, tf.nn.softmax(logits))
    logits.assign_sub(0.5 * tape.gradient(before, logits))
    assert float(loss(labels, tf.nn.softmax(logits))) < float(before)
    weights = np.ones(labels.shape, "float32")
    weights[0] = 0.0
    masked = labels.copy()
    masked[0] = 255
    assert float(loss(labels, probs, weights)) == pytest.approx(float(loss(masked, probs)))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, LovaszSoftmaxLoss)
    assert float(restored(labels, probs)) == float(loss(labels, probs))


def test_combined_loss_and_serialization_round_trip():
    labels, probs = _random(8)
    labels[0, 0] = 255
    combo = CombinedLoss(
        [
            (SegmentationCrossEntropy(class_weights=[1.0, 2.0, 3.0]), 1.0),
            (DiceLoss(smooth=1.0), 0.5),
            (FocalLoss(gamma=1.5, alpha=[0.1, 0.2, 0.7]), 2.0),
        ]
    )
    expected = (
        float(SegmentationCrossEntropy(class_weights=[1.0, 2.0, 3.0])(labels, probs))
        + 0.5 * float(DiceLoss(smooth=1.0)(labels, probs))
        + 2.0 * float(FocalLoss(gamma=1.5, alpha=[0.1, 0.2, 0.7])(labels, probs))
    )
    assert float(combo(labels, probs)) == pytest.approx(expected, rel=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(combo))
    assert isinstance(restored, CombinedLoss)
    assert float(restored(labels, probs)) == pytest.approx(float(combo(labels, probs)), rel=1e-7)
    for loss in (
        SegmentationCrossEntropy([1, 2, 3], ignore_index=None),
        DiceLoss(squared=True),
        FocalLoss(alpha=0.3),
    ):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_compiled_model_with_combined_loss_saves_in_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Conv2D(C, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss=CombinedLoss([(SegmentationCrossEntropy(), 1.0), (DiceLoss(), 1.0)]))
    labels, _ = _random(shape=(2, 8, 8))
    model.fit(np.zeros((2, 8, 8, 1), "float32"), labels, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.loss, CombinedLoss)


def test_unet_weight_map():
    mask = np.zeros((40, 40), dtype="int32")
    mask[5:35, 5:18] = 1
    mask[5:35, 21:35] = 1  # two cells with a 3-pixel gap
    w = unet_weight_map(mask, class_balance=False)
    assert w.shape == mask.shape and w.dtype == np.float32
    assert np.all(w[mask == 1] == 1.0)
    gap = w[20, 19]  # d1 = d2 = 2 → 1 + 10·exp(−16/50)
    assert gap == pytest.approx(1 + 10 * np.exp(-(16) / 50), rel=1e-6)
    assert gap > w[20, 1] > 1.0  # far from the gap: smaller weight
    single = np.zeros((20, 20), int)
    single[5:10, 5:10] = 1
    assert np.all(unet_weight_map(single, class_balance=False) == 1.0)  # needs two cells
    balanced = unet_weight_map(single)
    assert balanced[0, 0] == pytest.approx(400 / (2 * 375)) and balanced[6, 6] == pytest.approx(
        400 / 50
    )


def _brute_force_border(mask, w0=10.0, sigma=5.0):
    """Eq. 2's border term from a full-image distance transform per object."""
    from scipy import ndimage

    objects, n = ndimage.label(mask > 0)
    d1 = np.full(mask.shape, np.inf)
    d2 = np.full(mask.shape, np.inf)
    for i in range(1, n + 1):
        d = ndimage.distance_transform_edt(objects != i)
        d2 = np.where(d < d1, d1, np.minimum(d2, d))
        d1 = np.minimum(d1, d)
    return 1.0 + np.where(mask > 0, 0.0, w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2)))


@pytest.mark.parametrize("seed", [0, 1])
def test_unet_weight_map_windows_match_the_full_distance_transforms(seed):
    """Many cells of random sizes: the per-object windows give the full computation."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((120, 150), "int32")
    for _ in range(25):
        y, x = rng.integers(0, 110), rng.integers(0, 140)
        h, w = rng.integers(3, 25, 2)
        mask[y : y + h, x : x + w] = 1
    mask[rng.random(mask.shape) < 0.02] = 0  # ragged edges
    fast = unet_weight_map(mask, class_balance=False)
    np.testing.assert_allclose(fast, _brute_force_border(mask), atol=1e-5)
    assert fast.max() > 5.0  # there are narrow gaps


def test_unet_weight_map_leaves_ignored_pixels_out():
    mask = np.zeros((30, 30), "int32")
    mask[5:25, 5:13] = 1
    mask[5:25, 16:25] = 1
    mask[:, 28:] = 255  # rotation fill
    w = unet_weight_map(mask, class_balance=False)
    assert np.all(w[:, 28:] == 1.0)  # 255 is neither an object nor a border pixel
    np.testing.assert_allclose(w[:, :28], _brute_force_border(mask[:, :28])[:, :28], atol=1e-5)
    balanced = unet_weight_map(mask, w0=0.0)
    valid = mask != 255
    assert balanced[0, 0] == pytest.approx(valid.sum() / (2 * (mask[valid] == 0).sum()))


def test_border_weight_maps_reach_the_loss_through_fit():
    """Keras hands the third element of a batch to the loss as ``sample_weight``: the loss
    ``evaluate`` reports equals the weighted loss computed by hand."""
    from visionkit.train.losses_segmentation import border_weight_maps

    rng = np.random.default_rng(0)
    masks = np.zeros((2, 16, 16), "int32")
    masks[:, 2:14, 2:7] = 1
    masks[:, 2:14, 9:14] = 1
    weights = border_weight_maps(masks[..., None], w0=10.0)
    assert weights.shape == (2, 16, 16) and weights.max() > 5
    images = rng.random((2, 16, 16, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Conv2D(2, 3, padding="same", activation="softmax")]
    )
    loss = CombinedLoss([(SegmentationCrossEntropy(), 1.0), (DiceLoss(), 1.0)])
    model.compile("sgd", loss=loss)
    reported = model.evaluate(images, masks, sample_weight=weights, batch_size=2, verbose=0)
    by_hand = float(loss(masks, model(images), weights))
    unweighted = float(loss(masks, model(images)))
    assert reported == pytest.approx(by_hand, rel=1e-5)
    assert abs(by_hand - unweighted) > 1e-3


# -- the loss a run trains with (config keys loss and class_weights) ---------------------------
def test_segmentation_loss_from_config_matches_the_terms():
    from visionkit.config import ConfigError
    from visionkit.train.losses_segmentation import (
        CombinedLoss,
        DiceLoss,
        FocalLoss,
        LovaszSoftmaxLoss,
        SegmentationCrossEntropy,
        segmentation_loss,
    )

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, (2, 8, 8))
    logits = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ce = float(SegmentationCrossEntropy()(y_true, y_pred))
    dice = float(DiceLoss()(y_true, y_pred))
    auto = segmentation_loss({"loss": "auto"}, 3)
    assert isinstance(auto, CombinedLoss)
    np.testing.assert_allclose(float(auto(y_true, y_pred)), ce + dice, rtol=1e-5)
    weighted = segmentation_loss({"loss": "ce + 0.5*dice"}, 3)
    np.testing.assert_allclose(float(weighted(y_true, y_pred)), ce + 0.5 * dice, rtol=1e-5)
    only_ce = segmentation_loss({"loss": "ce", "class_weights": [1.0, 2.0, 3.0]}, 3)
    expected = SegmentationCrossEntropy(class_weights=[1.0, 2.0, 3.0])(y_true, y_pred)
    np.testing.assert_allclose(float(only_ce(y_true, y_pred)), float(expected), rtol=1e-6)
    focal = segmentation_loss({"loss": "focal"}, 3)
    np.testing.assert_allclose(
        float(focal(y_true, y_pred)), float(FocalLoss()(y_true, y_pred)), rtol=1e-6
    )
    lovasz = float(LovaszSoftmaxLoss()(y_true, y_pred))
    with_lovasz = segmentation_loss({"loss": "ce+2*lovasz"}, 3)
    np.testing.assert_allclose(float(with_lovasz(y_true, y_pred)), ce + 2 * lovasz, rtol=1e-5)
    with pytest.raises(ConfigError, match="unknown term 'cee'"):
        segmentation_loss({"loss": "cee+dice"}, 3)
    with pytest.raises(ConfigError, match="not a number"):
        segmentation_loss({"loss": "x*dice"}, 3)
    with pytest.raises(ConfigError, match="2 entries but the data has 3 classes"):
        segmentation_loss({"loss": "ce", "class_weights": [1.0, 2.0]}, 3)
