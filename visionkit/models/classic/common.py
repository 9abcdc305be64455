"""Pieces every classic model shares: the input with its preprocessing, and the classifier."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.layers import preprocessing_layer

PIXELS_TO_UNIT = "x / 255 (uint8 pixels to [0, 1]), inside the model"


def image_input(input_shape, *, include_preprocessing: bool = True):
    """The model input and, by default, the layer that maps uint8-range pixels to [0, 1]."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = preprocessing_layer()(inputs) if include_preprocessing else inputs
    return inputs, x


def classifier(x, num_classes: int, activation: str | None, name: str = "predictions"):
    """Dense output layer: ``activation="softmax"`` gives probabilities, ``None`` logits.

    Always float32, so probabilities and the loss stay exact under mixed precision.
    """
    return layers.Dense(num_classes, activation=activation, dtype="float32", name=name)(x)


def gap_classifier(x, num_classes: int, activation: str | None, dropout: float = 0.0):
    """Global average pooling (Lin et al. 2013), optional dropout, then the Dense classifier."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="classifier_dropout")(x)
    return classifier(x, num_classes, activation)


def stage_output(x, index: int):
    """Mark the end of stage ``index`` with an identity layer named ``stage{index}_out``.

    Backbones find feature maps by these names; the stride is read from the shapes.
    """
    return layers.Identity(name=f"stage{index}_out")(x)
