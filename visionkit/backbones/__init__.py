"""Pretrained and from-scratch backbones returning a dict of pyramid-level feature maps.

``list_backbones()`` → sorted names; ``create_backbone(name, *, input_shape, weights,
trainable)`` → ``keras.Model`` taking uint8-range RGB (preprocessing inside) with outputs
``{"P2"?, "P3", "P4", "P5"}`` at strides 4, 8, 16, 32. ``backbone_info(name)`` gives the
paper, default input size, preprocessing, ImageNet availability, tap layers and block
names; ``block_layers(model)`` groups a backbone's layers by block for (un)freezing.

Importing this package is light: Keras and TensorFlow load on the first call.
"""

from __future__ import annotations

from visionkit.backbones.registry import (
    BackboneInfo,
    backbone_info,
    block_layers,
    create_backbone,
    list_backbones,
    register_backbone,
)
from visionkit.backbones.taps import feature_layers, find_taps, layer_strides
from visionkit.backbones.weights import WeightsNotFoundError


def register_keras_layers() -> None:
    """Register the custom Keras layers backbones use (before ``keras.saving.load_model``)."""
    from visionkit.backbones import applications  # noqa: F401


__all__ = [
    "BackboneInfo",
    "WeightsNotFoundError",
    "backbone_info",
    "block_layers",
    "create_backbone",
    "feature_layers",
    "find_taps",
    "layer_strides",
    "list_backbones",
    "register_backbone",
    "register_keras_layers",
]
