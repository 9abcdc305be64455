"""VGG-11/13/16/19 (Simonyan & Zisserman 2015), configurations A, B, D and E."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, classifier, image_input, stage_output
from visionkit.models.registry import register_model

# Convolutions per stage; channels double per stage from 64 up to 512.
_CONFIGS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
_WIDTHS = (64, 128, 256, 512, 512)
_PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks (ICLR)"


def _vgg(
    name: str,
    *,
    num_classes: int,
    input_shape,
    include_top: bool = True,
    dropout: float = 0.5,
    batch_norm: bool = False,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    for stage, (convs, width) in enumerate(zip(_CONFIGS[name], _WIDTHS, strict=True), start=1):
        for i in range(1, convs + 1):
            conv_name = f"block{stage}_conv{i}"
            x = layers.Conv2D(
                width,
                3,
                padding="same",
                use_bias=not batch_norm,
                activation=None if batch_norm else "relu",
                name=conv_name,
            )(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{conv_name}_bn")(x)
                x = layers.Activation("relu", name=f"{conv_name}_relu")(x)
        x = stage_output(layers.MaxPooling2D(2, strides=2, name=f"block{stage}_pool")(x), stage)
    if not include_top:
        return keras.Model(inputs, x, name=name)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(4096, activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


_DOC = """{title}: only 3×3 convolutions (stride 1, pad 1) in five stages of {convs}
convolutions with 64, 128, 256, 512, 512 channels, each stage closed by a 2×2/2 max-pool,
then FC 4096, 4096 (ReLU, dropout 0.5) and the classifier.

Parameters at 224×224×3 with 1000 classes: {params}. ``include_top=False`` keeps the
convolutional part only; ``batch_norm=True`` gives the BN variant (convolutions without bias).
Input: (224, 224, 3) uint8-range RGB; x / 255 inside the model.
"""


def _register(name: str, title: str, params: int, note: str = ""):
    def builder(*, num_classes: int = 1000, input_shape=(224, 224, 3), **kwargs) -> keras.Model:
        return _vgg(name, num_classes=num_classes, input_shape=input_shape, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = _DOC.format(
        title=title, convs="-".join(map(str, _CONFIGS[name])), params=f"{params:,}{note}"
    )
    return register_model(
        task="classify",
        family="vgg",
        paper=_PAPER,
        input_shape=(224, 224, 3),
        num_classes=1000,
        preprocessing=PIXELS_TO_UNIT,
        params=params,
        min_input_size=32,
    )(builder)


vgg11 = _register("vgg11", "VGG-11 (configuration A)", 132_863_336)
vgg13 = _register("vgg13", "VGG-13 (configuration B)", 133_047_848)
vgg16 = _register(
    "vgg16",
    "VGG-16 (configuration D)",
    138_357_544,
    " (138,344,128 weights + 13,416 biases; 14,714,688 without the classifier)",
)
vgg19 = _register("vgg19", "VGG-19 (configuration E)", 143_667_240)
