"""AlexNet (Krizhevsky, Sutskever & Hinton 2012), single tower."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, classifier, image_input, stage_output
from visionkit.models.layers import LocalResponseNormalization
from visionkit.models.registry import register_model


@register_model(
    task="classify",
    family="alexnet",
    paper="Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs",
    input_shape=(227, 227, 3),
    num_classes=1000,
    preprocessing=PIXELS_TO_UNIT,
    params=62_378_344,
    min_input_size=67,
)
def alexnet(
    *,
    num_classes: int = 1000,
    input_shape=(227, 227, 3),
    lrn: bool = False,
    dropout: float = 0.5,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """AlexNet, one tower: conv 96@11×11/4 → pool 3×3/2 → 256@5×5 → pool → 384, 384, 256
    @3×3 → pool → FC 4096, 4096 with dropout 0.5 → classes. ReLU throughout.

    At 227×227×3, conv1 gives 55×55×96 and pool1 27×27×96 (seed checks C28, C29), and the
    model has 62,378,344 parameters (the seeds' "62M"; the paper's two-GPU grouping gives
    60,965,224). ``lrn=True`` adds the paper's local response normalisation after conv1
    and conv2 (no parameters). Overlapping 3×3/2 pooling as in the paper.
    Input: (227, 227, 3) uint8-range RGB; x / 255 inside the model.
    """
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(x)
    if lrn:
        x = LocalResponseNormalization(name="norm1")(x)
    x = stage_output(layers.MaxPooling2D(3, strides=2, name="pool1")(x), 1)
    x = layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2")(x)
    if lrn:
        x = LocalResponseNormalization(name="norm2")(x)
    x = stage_output(layers.MaxPooling2D(3, strides=2, name="pool2")(x), 2)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = stage_output(layers.MaxPooling2D(3, strides=2, name="pool5")(x), 3)
    x = layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = layers.Dense(4096, activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"drop{i}")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="alexnet")
