"""GoogLeNet / Inception v1 (Szegedy et al. 2015)."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, classifier, image_input, stage_output
from visionkit.models.layers import LocalResponseNormalization, conv_bn_act, inception_bottleneck
from visionkit.models.registry import register_model

# Table 1 of the paper: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _aux_head(x, num_classes: int, activation: str | None, name: str):
    """Auxiliary classifier of §5: 5×5/3 average pool, 1×1 conv 128, FC 1024, dropout 0.7."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return classifier(x, num_classes, activation, name=name)


@register_model(
    task="classify",
    family="googlenet",
    paper="Szegedy et al. 2015, Going Deeper with Convolutions (CVPR)",
    input_shape=(224, 224, 3),
    num_classes=1000,
    preprocessing=PIXELS_TO_UNIT,
    params=6_998_552,
    min_input_size=32,
)
def googlenet(
    *,
    num_classes: int = 1000,
    input_shape=(224, 224, 3),
    aux_heads: bool = False,
    batch_norm: bool = False,
    lrn: bool = True,
    dropout: float = 0.4,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """GoogLeNet (Inception v1), Table 1 of the paper, with its true 5×5 branches.

    Stem 7×7/2 conv 64 → 3×3/2 max-pool → LRN → 1×1 conv 64 → 3×3 conv 192 → LRN →
    3×3/2 max-pool; inception 3a, 3b, max-pool, 4a–4e, max-pool, 5a, 5b (the 1×1-bottleneck
    module of ``visionkit.models.layers.inception_bottleneck``); global average pooling,
    dropout 0.4 and the classifier. 22 layers with parameters.

    Parameters with 1000 classes: 6,998,552 (no auxiliary heads; the seeds quote "5
    million" and "4 million": 4M is the paper's estimate without the classifier, and most
    re-implementations land between 6.6M and 7M). ``aux_heads=True`` adds the two
    auxiliary classifiers on 4a and 4d (the model then has three outputs, for training);
    ``batch_norm=True`` puts BN after every convolution (and drops LRN), as later versions do.
    Input: (224, 224, 3) uint8-range RGB; x / 255 inside the model.
    """
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    use_lrn = lrn and not batch_norm

    def conv(t, filters, size, strides, name):
        if batch_norm:
            return conv_bn_act(t, filters, size, strides=strides, name=name)
        return layers.Conv2D(
            filters, size, strides=strides, padding="same", activation="relu", name=name
        )(t)

    x = stage_output(conv(x, 64, 7, 2, "conv1"), 1)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    if use_lrn:
        x = LocalResponseNormalization(name="norm1")(x)
    x = conv(x, 64, 1, 1, "conv2_reduce")
    x = conv(x, 192, 3, 1, "conv2")
    if use_lrn:
        x = LocalResponseNormalization(name="norm2")(x)
    x = stage_output(x, 2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux_outputs = []
    for key, filters in _MODULES.items():
        if key == "4a":
            x = stage_output(x, 3)
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
        if key == "5a":
            x = stage_output(x, 4)
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool4")(x)
        x = inception_bottleneck(x, *filters, batch_norm=batch_norm, name=f"inception_{key}")
        if aux_heads and key in ("4a", "4d"):
            aux_outputs.append(_aux_head(x, num_classes, classifier_activation, f"aux_{key}"))
    x = stage_output(x, 5)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="classifier_dropout")(x)
    outputs = classifier(x, num_classes, classifier_activation)
    if aux_outputs:
        return keras.Model(inputs, [outputs, *aux_outputs], name="googlenet")
    return keras.Model(inputs, outputs, name="googlenet")
