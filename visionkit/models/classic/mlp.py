"""The seeds' multilayer perceptron baseline (cs231n lecture): 3072-400-100-700-10."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, classifier, image_input
from visionkit.models.registry import register_model


@register_model(
    task="classify",
    family="mlp",
    paper="cs231n lecture 5 (the seeds' 4-layer MLP); Rumelhart, Hinton & Williams 1986",
    input_shape=(32, 32, 3),
    num_classes=10,
    preprocessing=PIXELS_TO_UNIT,
    params=1_347_010,
    min_input_size=1,
)
def mlp_cifar(
    *,
    num_classes: int = 10,
    input_shape=(32, 32, 3),
    hidden: tuple[int, ...] = (400, 100, 700),
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """Fully connected net on a flattened CIFAR-sized image: 3072-400-100-700-10, ReLU.

    Every pixel value is its own input ("each neuron looks at the full input volume"),
    which is why it needs 1,347,010 parameters for 32×32×3 → 10 classes (seed check C22).
    Input: (32, 32, 3) uint8-range pixels; preprocessing x / 255 inside the model.
    """
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="mlp_cifar")
