"""Segmentation models: every registered one builds, has the documented parameter count,
gives float32 per-pixel probabilities at the input size (also under mixed precision),
round-trips through .keras in safe mode, and learns on a tiny batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import visionkit.models.segmentation  # noqa: F401  (registers the segmentation models)
from visionkit.models import ModelError, create_model, list_models, model_info
from visionkit.models.saving import load_model
from visionkit.models.segmentation import unet_output_size
from visionkit.train.losses_segmentation import CombinedLoss, DiceLoss, SegmentationCrossEntropy

SEGMENT_MODELS = [
    "deeplabv3plus_lite0",
    "deeplabv3plus_mobilenetv2",
    "deeplabv3plus_resnet50",
    "unet",
    "unet_lite0",
    "unet_lite1",
    "unet_lite2",
    "unet_mobilenetv2",
    "unet_resnet34",
]
SMALL = (64, 64, 3)


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


def _images(n=2, shape=SMALL, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype("float32")


def test_registered_segmentation_models():
    assert list_models("segment") == SEGMENT_MODELS
    for name in SEGMENT_MODELS:
        info = model_info(name)
        assert info.task == "segment" and info.paper and "Input:" in info.builder.__doc__


@pytest.mark.parametrize("name", SEGMENT_MODELS)
def test_parameter_count_at_defaults(name):
    # Each builds in about a second at its default size, so this is the real default count.
    model = create_model(name)
    info = model_info(name)
    assert model.count_params() == info.params
    assert model.output_shape == (None, *info.input_shape[:2], info.num_classes)


def test_image_skips_add_the_full_resolution_levels():
    """``image_skips``: 3×3 convs 3→16→16 and 16→32 with BatchNorm (432 + 2,304 + 4,608
    weights, 64 + 64 + 128 BN), and the stride-2 and stride-1 decoder blocks' first convs
    read 32 and 16 more channels (9·32·32 + 9·16·16): 19,120 parameters, trained with the
    decoder while the encoder is frozen."""
    from visionkit.train.freeze import freeze_backbone

    plain = create_model("unet_lite0", input_shape=(64, 64, 3))
    skipped = create_model("unet_lite0", input_shape=(64, 64, 3), image_skips=True)
    assert skipped.count_params() - plain.count_params() == 19_120
    assert skipped.output_shape == plain.output_shape
    freeze_backbone(skipped)
    assert all(
        layer.trainable for layer in skipped.layers if layer.name.startswith("seg_image_skip")
    )


def test_unet_counts_match_the_usual_figure():
    # 31,030,658: the 64-base same-padding U-Net, 1 input channel, 2 classes, no BatchNorm.
    assert create_model("unet", input_shape=(256, 256, 1)).count_params() == 31_030_658
    assert model_info("unet").params - 31_030_658 == 1_152  # 2 more input channels × 9 × 64


@pytest.mark.parametrize("name", SEGMENT_MODELS)
@pytest.mark.parametrize("num_classes", [2, 3])
def test_output_shape_and_probabilities(name, num_classes):
    model = create_model(name, num_classes=num_classes, input_shape=SMALL)
    out = model.predict(_images(), verbose=0)
    assert out.shape == (2, 64, 64, num_classes) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    head = [layer.name for layer in model.layers if layer.name.startswith("seg_")]
    assert "seg_probs" in head and "seg_logits" in head


@pytest.mark.parametrize("name", SEGMENT_MODELS)
def test_float32_output_under_mixed_precision(name):
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = create_model(name, num_classes=3, input_shape=SMALL)
        assert model.output.dtype == "float32"
        out = model(_images(1), training=False)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert np.all(np.isfinite(np.asarray(out)))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", SEGMENT_MODELS)
def test_keras_round_trip_safe_mode(name, tmp_path):
    model = create_model(name, num_classes=3, input_shape=SMALL)
    x = _images(1)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = load_model(path, compile=False)  # safe_mode=True
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_sigmoid_binary_output():
    model = create_model("unet", num_classes=1, input_shape=(32, 32, 1), base_filters=4)
    out = model.predict(_images(2, (32, 32, 1)), verbose=0)
    assert out.shape == (2, 32, 32, 1)
    assert model.get_layer("seg_probs").activation.__name__ == "sigmoid"
    assert np.all((out > 0) & (out < 1))


def test_valid_unet_is_paper_faithful():
    assert unet_output_size(572) == 388
    model = create_model("unet", input_shape=(572, 572, 1), valid=True)
    assert model.output_shape == (None, 388, 388, 2)
    assert model.count_params() == 31_030_658  # valid padding has the same weights
    small = create_model("unet", input_shape=(188, 188, 1), valid=True, base_filters=4)
    out = small.predict(_images(1, (188, 188, 1)), verbose=0)
    assert out.shape == (1, unet_output_size(188), unet_output_size(188), 2) == (1, 4, 4, 2)
    with pytest.raises(ValueError, match="16·k \\+ 124"):
        unet_output_size(190)


def test_unet_options_and_errors():
    bn = create_model("unet", input_shape=(64, 64, 3), batch_norm=True, dropout=0.5, base_filters=8)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in bn.layers)
    assert bn.get_layer("seg_dropout").rate == 0.5
    with pytest.raises(ModelError, match="divisible by 16"):
        create_model("unet", input_shape=(72, 72, 3))
    with pytest.raises(ModelError, match="divisible by 32"):
        create_model("unet_lite0", input_shape=(48, 48, 3))


def test_deeplab_encoder_levels():
    model = create_model("deeplabv3plus_lite0", num_classes=2, input_shape=SMALL)
    assert model.get_layer("seg_aspp_rate18_conv").dilation_rate == (18, 18)
    assert model.get_layer("seg_aspp_proj_conv").filters == 256
    assert model.get_layer("seg_lowlevel_conv").filters == 48
    p5 = create_model("deeplabv3plus_lite0", num_classes=2, input_shape=SMALL, encoder_level="P5")
    assert p5.get_layer("seg_aspp_rate9_conv").dilation_rate == (9, 9)
    assert p5.output_shape == (None, 64, 64, 2)


def test_pretrained_lite0_encoder_weights_offline():
    try:
        model = create_model("unet_lite0", input_shape=SMALL, encoder_weights="imagenet")
    except Exception as err:  # the lite0 weights ship with the package; anything else is a bug
        pytest.fail(f"unet_lite0 with encoder_weights='imagenet' failed offline: {err}")
    assert model.output_shape == (None, 64, 64, 2)


def _blobs(n=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype="int32")
    for i in range(n):
        r, c = rng.integers(4, size - 12, size=2)
        masks[i, r : r + 10, c : c + 10] = 1
    images = np.where(masks[..., None] == 1, 200.0, 40.0) + rng.normal(0, 5, (n, size, size, 1))
    masks[:, 0, :] = 255  # an ignored row
    return images.astype("float32"), masks


@pytest.mark.parametrize(
    ("name", "kwargs", "channels"),
    [("unet", {"base_filters": 8, "batch_norm": True}, 1), ("unet_lite0", {}, 3)],
)
def test_a_few_steps_lower_the_combined_loss(name, kwargs, channels):
    keras.utils.set_random_seed(0)
    images, masks = _blobs()
    images = np.repeat(images, channels, axis=-1)
    model = create_model(name, num_classes=2, input_shape=(32, 32, channels), **kwargs)
    loss = CombinedLoss([(SegmentationCrossEntropy(), 1.0), (DiceLoss(), 1.0)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    model.optimizer.build(model.trainable_variables)  # one trace of the step, not two
    # training=True: batch statistics, since 8 steps barely move BatchNorm's moving averages.
    before = float(loss(masks, model(images, training=True)))
    model.fit(images, masks, batch_size=4, epochs=8, verbose=0)
    after = float(loss(masks, model(images, training=True)))
    assert np.isfinite(after) and after < before
