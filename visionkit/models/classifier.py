"""Image classifier on any registered backbone: backbone → P5 → global average pooling →
dropout → Dense (float32, so it stays exact under mixed precision).

The backbone's preprocessing is inside the model, so it takes uint8-range RGB images. The
head layers are named ``head_*`` and ``predictions``, which is how
``visionkit.train.freeze`` tells the head from the backbone.
"""

from __future__ import annotations

import keras
from keras import layers


def image_classifier(
    backbone: str,
    *,
    num_classes: int,
    input_shape=(224, 224, 3),
    weights: str | None = None,
    dropout: float = 0.2,
    classifier_activation: str | None = "softmax",
    head_weights: bool = True,
) -> keras.Model:
    """Build ``backbone`` (see ``visionkit.backbones.list_backbones()``) with a new head.

    ``weights`` applies to the backbone (``None``, ``"imagenet"`` or a path). With
    ``num_classes=1000, weights="imagenet"`` and ``head_weights=True``, backbones that
    ship their ImageNet classifier (EfficientNet-Lite0) get it too.
    """
    from visionkit.backbones import create_backbone

    base = create_backbone(backbone, input_shape=tuple(input_shape), weights=weights)
    x = layers.GlobalAveragePooling2D(name="head_pool")(base.output["P5"])
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(base.input, outputs, name=f"{backbone}_classifier")
