"""Image classifier on any registered backbone: backbone → P5 → global average pooling →
dropout → Dense (float32, so it stays exact under mixed precision).

The backbone's preprocessing is inside the model, so it takes uint8-range RGB images. The
head layers are named ``classifier_*`` and ``predictions``, which is how
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
) -> keras.Model:
    """Build ``backbone`` (see ``visionkit.backbones.list_backbones()``) with a new head.

    ``weights`` applies to the backbone (``None``, ``"imagenet"`` or a path); the head
    always starts from random initialisation.
    """
    from visionkit.backbones import create_backbone

    base = create_backbone(backbone, input_shape=tuple(input_shape), weights=weights)
    x = layers.GlobalAveragePooling2D(name="classifier_pool")(base.output["P5"])
    if dropout:
        x = layers.Dropout(dropout, name="classifier_dropout")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(base.input, outputs, name=f"{backbone}_classifier")
