"""BatchNormalization folded into convolutions: same outputs, fewer layers, original intact."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from batchnorm_statistics import random_statistics as _random_statistics

from visionkit.models import create_model
from visionkit.models.classifier import image_classifier
from visionkit.models.fold import fold_batchnorm, foldable_pairs


def _batchnorms(model: keras.Model) -> int:
    return sum(isinstance(x, keras.layers.BatchNormalization) for x in model._flatten_layers())


@pytest.mark.parametrize(
    ("build", "pairs"),
    [
        (
            lambda: image_classifier("efficientnet_lite0", num_classes=5, input_shape=(64, 64, 3)),
            49,
        ),
        (lambda: image_classifier("mobilenet_v2", num_classes=5, input_shape=(64, 64, 3)), 52),
        (lambda: create_model("resnet18", num_classes=5, input_shape=(64, 64, 3)), 20),
    ],
    ids=["efficientnet_lite0", "mobilenet_v2", "resnet18"],
)
def test_folded_model_gives_the_same_outputs(build, pairs):
    model = build()
    _random_statistics(model)
    before = [w.copy() for w in model.get_weights()]
    assert len(foldable_pairs(model)) == pairs
    folded = fold_batchnorm(model)
    assert _batchnorms(model) == pairs and _batchnorms(folded) == 0
    x = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3)).astype("float32")
    a = model(x, training=False).numpy()
    b = folded(x, training=False).numpy()
    np.testing.assert_allclose(b, a, atol=2e-6, rtol=1e-4)
    assert folded is not model
    for w0, w1 in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)  # the original is untouched


def test_only_batchnorm_reading_a_linear_conv_alone_folds():
    """A BN after an activated conv, or after a conv whose output is also read elsewhere,
    stays; a depthwise conv with a channel multiplier and a biased conv fold."""
    from keras import layers

    inputs = keras.Input((8, 8, 3))
    a = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(inputs)
    a = layers.BatchNormalization(name="bn_dw")(a)  # folds (6 channels)
    b = layers.Conv2D(4, 3, padding="same", use_bias=True, name="biased")(a)
    b = layers.BatchNormalization(name="bn_biased")(b)  # folds, bias kept
    c = layers.Conv2D(4, 1, activation="relu", name="activated")(b)
    c = layers.BatchNormalization(name="bn_activated")(c)  # stays: a ReLU sits between
    d = layers.Conv2D(4, 1, name="shared")(c)
    e = layers.BatchNormalization(name="bn_shared")(d)  # stays: d is also read below
    outputs = layers.Add()([d, e])
    model = keras.Model(inputs, outputs)
    _random_statistics(model, seed=2)
    assert {k: v.name for k, v in foldable_pairs(model).items()} == {
        "dw": "bn_dw",
        "biased": "bn_biased",
    }
    folded = fold_batchnorm(model)
    assert _batchnorms(folded) == 2
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), atol=1e-5, rtol=1e-5)


def test_nothing_to_fold_returns_the_model():
    model = create_model("lenet5", num_classes=10, input_shape=(32, 32, 1))
    assert fold_batchnorm(model) is model
