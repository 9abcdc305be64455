"""Network in Network (Lin, Chen & Yan 2014)."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, image_input, stage_output
from visionkit.models.registry import register_model


def nin_block(x, filters: int, kernel_size: int, strides: int, *, name: str):
    """An "mlpconv" layer: a k×k convolution followed by two 1×1 convolutions, all ReLU.

    The 1×1 convolutions are a small fully connected network applied at every pixel with
    weights tied across positions.
    """
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        activation="relu",
        name=f"{name}_conv",
    )(x)
    x = layers.Conv2D(filters, 1, activation="relu", name=f"{name}_mlp1")(x)
    return layers.Conv2D(filters, 1, activation="relu", name=f"{name}_mlp2")(x)


@register_model(
    task="classify",
    family="nin",
    paper="Lin, Chen & Yan 2014, Network In Network (ICLR)",
    input_shape=(32, 32, 3),
    num_classes=10,
    preprocessing=PIXELS_TO_UNIT,
    params=2_015_398,
    min_input_size=16,
)
def nin(
    *,
    num_classes: int = 10,
    input_shape=(32, 32, 3),
    widths: tuple[int, int, int] = (96, 256, 384),
    first_stride: int = 1,
    dropout: float = 0.5,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """Network in Network as the lecture describes it (seed [004]).

    Three NiN blocks with 11×11, 5×5 and 3×3 convolutions ({96, 256, 384} channels), each
    followed by two 1×1 convolutions and a 3×3/2 max-pool; then dropout and a last NiN
    block with as many channels as classes, global average pooling and softmax: no fully
    connected layer at all. CIFAR-10 sized by default (32×32 input, stride-1 first
    convolution, 'same' padding); ``first_stride=4, input_shape=(224, 224, 3)`` gives the
    ImageNet layout. 2,015,398 parameters at the defaults.
    Input: uint8-range RGB; x / 255 inside the model.
    """
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    for i, (width, size) in enumerate(zip(widths, (11, 5, 3), strict=True), start=1):
        x = nin_block(x, width, size, first_stride if i == 1 else 1, name=f"nin{i}")
        x = stage_output(layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x), i)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = nin_block(x, num_classes, 3, 1, name="nin4")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if classifier_activation is not None:
        x = layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, x, name="nin")
