"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998)."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, classifier, image_input, stage_output
from visionkit.models.registry import register_model


@register_model(
    task="classify",
    family="lenet",
    paper="LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition",
    input_shape=(32, 32, 1),
    num_classes=10,
    preprocessing=PIXELS_TO_UNIT,
    params=61_706,
    min_input_size=32,
)
def lenet5(
    *,
    num_classes: int = 10,
    input_shape=(32, 32, 1),
    activation: str = "tanh",
    pooling: str = "avg",
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """LeNet-5: C1 6@5×5 → S2 2×2/2 → C3 16@5×5 → S4 2×2/2 → C5 120 → F6 84 → 10.

    Defaults follow the 1998 paper: tanh units and average-pooling subsampling (the
    paper's trainable subsampling coefficients and sparse C3 connectivity are simplified
    to plain average pooling and full connectivity, giving 61,706 parameters: the seeds'
    "61K"). ``activation="relu", pooling="max"`` gives the modern variant.
    Input: (32, 32, 1) uint8-range pixels (MNIST's 28×28 digits are resized to 32 by the
    pipeline at ``imgsz=32``); x / 255 inside.
    """
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    pool = layers.AveragePooling2D if pooling == "avg" else layers.MaxPooling2D
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    x = layers.Conv2D(6, 5, activation=activation, name="c1")(x)
    x = stage_output(pool(2, strides=2, name="s2")(x), 1)
    x = layers.Conv2D(16, 5, activation=activation, name="c3")(x)
    x = stage_output(pool(2, strides=2, name="s4")(x), 2)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation=activation, name="c5")(x)
    x = layers.Dense(84, activation=activation, name="f6")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="lenet5")
