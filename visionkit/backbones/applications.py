"""Backbones from ``keras.applications``, with their ImageNet preprocessing as layers inside.

Each backbone takes uint8-range RGB (0..255) and turns it into what its ImageNet weights
expect with plain Keras layers (never a Lambda, which Keras safe mode refuses):

- ``caffe`` (ResNet50/101/152, VGG16/19): RGB → BGR (:class:`ReverseChannels`), then
  subtract the BGR ImageNet mean [103.939, 116.779, 123.68]; no scaling.
- ``tf`` (MobileNetV2, ResNet-V2, InceptionV3, Xception): x / 127.5 − 1, to [−1, 1].
- ``torch`` (DenseNet): x / 255, then (x − [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
  as one per-channel Rescaling.
- built in by Keras, not added again: MobileNetV3 (``include_preprocessing=True``:
  x / 127.5 − 1), EfficientNet B0–B7 (x / 255 then ImageNet mean/std; with
  ``weights=None`` the mean/std are set here, Keras leaves them at 0/1), EfficientNetV2
  B0–B3 (x / 255 then ImageNet mean/std) and S/M/L (x / 128 − 1), ConvNeXt (ImageNet
  mean/std on 0..255).

Taps: pinned per family below (tests check each against ``taps.layer_strides``); ``None``
where Keras auto-names the layer (InceptionV3's stem, MobileNetV3's and ConvNeXt's last
layer), found by ``taps.find_taps`` at build time. ConvNeXt's stage outputs are unnamed
residual sums, tapped as the input of the next downsampling layer.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import keras

from visionkit.backbones.registry import register_backbone

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

PREPROCESSING = {
    "caffe": "RGB→BGR, minus the ImageNet BGR mean [103.939, 116.779, 123.68] (caffe), inside",
    "tf": "x / 127.5 − 1 (to [−1, 1]), inside the model",
    "torch": "x / 255, minus ImageNet mean [0.485, 0.456, 0.406], over std [0.229, 0.224, 0.225]",
    "tf128": "x / 128 − 1 (Keras' built-in EfficientNetV2 S/M/L preprocessing)",
}


@keras.saving.register_keras_serializable(package="visionkit")
class ReverseChannels(keras.layers.Layer):
    """Reverse the channel order (RGB ↔ BGR) of a channels-last image; no weights.

    Registered with Keras as ``visionkit>ReverseChannels``: import this module (or call
    ``visionkit.backbones.register_keras_layers()``) before loading a ``.keras`` file.
    """

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


def preprocessing_layers(mode: str) -> list[Any]:
    """The Keras layers mapping uint8-range RGB to what a ``mode`` network expects."""
    layers = keras.layers
    if mode == "tf":
        return [layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")]
    if mode == "caffe":
        return [
            ReverseChannels(name="rgb_to_bgr"),
            layers.Rescaling(1.0, offset=[-m for m in _CAFFE_MEAN_BGR], name="preprocess"),
        ]
    if mode == "torch":
        scale = [1.0 / (255.0 * s) for s in _IMAGENET_STD]
        offset = [-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True)]
        return [layers.Rescaling(scale, offset=offset, name="preprocess")]
    if mode in ("", "builtin"):
        return []
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def _set_efficientnet_normalization(model) -> None:
    """Give EfficientNet's Normalization layer the ImageNet statistics (std² as variance).

    Keras fills them only from the ImageNet weights file (where the variance slot holds
    the std and an extra Rescaling divides once more); without those weights the layer
    would stay at mean 0, variance 1. Also applied after loading weights from a path, so
    files saved from either build give the same arithmetic: (x / 255 − mean) / std.
    """
    for layer in model.layers:
        if type(layer).__name__ == "Normalization" and hasattr(layer, "adapt_mean"):
            layer.adapt_mean.assign(list(_IMAGENET_MEAN))
            layer.adapt_variance.assign([s * s for s in _IMAGENET_STD])
            layer.finalize_state()
            return


def _keras_builder(app: str, preprocess: str, *, fix_normalization: bool = False, **options):
    """A builder calling ``keras.applications.<app>`` on our preprocessed input tensor."""

    def build(*, input_shape, weights: str | None):
        from visionkit.backbones.weights import imagenet_download_guard

        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = inputs
        for layer in preprocessing_layers(preprocess):
            x = layer(x)
        guard = imagenet_download_guard() if weights == "imagenet" else contextlib.nullcontext()
        with guard:
            base = getattr(keras.applications, app)(
                include_top=False,
                weights=weights,
                input_tensor=x,
                input_shape=tuple(input_shape),
                **options,
            )
        if fix_normalization and weights is None:
            _set_efficientnet_normalization(base)
        return base

    build.__name__ = build.__qualname__ = f"build_{app}"
    return build


def _register(
    name: str,
    app: str,
    *,
    family: str,
    paper: str,
    size: int,
    preprocess: str,
    taps: dict[str, str | None],
    blocks: tuple[str, ...],
    builtin: str | None = None,
    block_boundary: str = "start",
    min_input_size: int = 32,
    fix_normalization: bool = False,
    notes: str = "",
    **options: Any,
) -> None:
    """Register one keras.applications variant. ``builtin`` names Keras' own preprocessing."""
    mode = builtin or preprocess
    register_backbone(
        name,
        _keras_builder(app, preprocess, fix_normalization=fix_normalization, **options),
        family=family,
        paper=paper,
        input_size=(size, size, 3),
        preprocessing=PREPROCESSING[mode] + ("" if builtin is None else " (Keras built-in)"),
        preprocess_mode=mode,
        has_imagenet=True,
        taps=taps,
        blocks=blocks,
        block_boundary=block_boundary,
        min_input_size=min_input_size,
        source=f"keras.applications.{app}",
        notes=notes,
        after_load=_set_efficientnet_normalization if fix_normalization else None,
    )


def _letters(count: int) -> list[str]:
    return [chr(ord("a") + i) for i in range(count)]


# --- MobileNet -------------------------------------------------------------------------

_register(
    "mobilenet_v2",
    "MobileNetV2",
    family="mobilenet_v2",
    paper="Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR)",
    size=224,
    preprocess="tf",
    # The expansion activations that open the first block of the next stride (the taps of
    # the TF segmentation and detection examples): wider than the block outputs.
    taps={
        "P2": "block_3_expand_relu",
        "P3": "block_6_expand_relu",
        "P4": "block_13_expand_relu",
        "P5": "out_relu",
    },
    blocks=("Conv1", "expanded_conv", *(f"block_{i}" for i in range(1, 17)), "Conv_1"),
    notes="ImageNet weights exist for input sizes 96, 128, 160, 192, 224 (others use 224's).",
)

for _variant, _blocks, _p2, _p3, _p4 in (
    ("small", 11, "expanded_conv_project_bn", "expanded_conv_2_add", "expanded_conv_7_add"),
    ("large", 15, "expanded_conv_2_add", "expanded_conv_5_add", "expanded_conv_11_add"),
):
    _register(
        f"mobilenet_v3_{_variant}",
        f"MobileNetV3{_variant.capitalize()}",
        family="mobilenet_v3",
        paper="Howard et al. 2019, Searching for MobileNetV3 (ICCV)",
        size=224,
        preprocess="builtin",
        builtin="tf",
        taps={"P2": _p2, "P3": _p3, "P4": _p4, "P5": None},
        blocks=(
            "conv",
            "expanded_conv",
            *(f"expanded_conv_{i}" for i in range(1, _blocks)),
            "conv_1",
        ),
        include_preprocessing=True,
    )

# --- EfficientNet B0–B7 -----------------------------------------------------------------

_EFFICIENTNET = {  # variant: (depth coefficient, default input size)
    "b0": (1.0, 224),
    "b1": (1.1, 240),
    "b2": (1.2, 260),
    "b3": (1.4, 300),
    "b4": (1.8, 380),
    "b5": (2.2, 456),
    "b6": (2.6, 528),
    "b7": (3.1, 600),
}
_EFFICIENTNET_REPEATS = (1, 2, 2, 3, 3, 4, 1)


def _stage_blocks(repeats: tuple[int, ...], depth: float) -> list[list[str]]:
    """Block names per stage, as Keras' EfficientNet builders name them (``block2b``)."""
    return [
        [f"block{stage}{letter}" for letter in _letters(math.ceil(depth * r))]
        for stage, r in enumerate(repeats, start=1)
    ]


def _stage_end(stages: list[list[str]], stage: int) -> str:
    """The output layer of a stage: its last block's residual sum (every tapped stage has ≥2)."""
    return f"{stages[stage - 1][-1]}_add"


for _variant, (_depth, _size) in _EFFICIENTNET.items():
    _stages = _stage_blocks(_EFFICIENTNET_REPEATS, _depth)
    _register(
        f"efficientnet_{_variant}",
        f"EfficientNet{_variant.upper()}",
        family="efficientnet",
        paper="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for CNNs (ICML)",
        size=_size,
        preprocess="builtin",
        builtin="torch",
        taps={
            "P2": _stage_end(_stages, 2),
            "P3": _stage_end(_stages, 3),
            "P4": _stage_end(_stages, 5),
            "P5": "top_activation",
        },
        blocks=("stem", *(b for stage in _stages for b in stage), "top"),
        fix_normalization=True,
    )

# --- EfficientNetV2 ----------------------------------------------------------------------

_EFFICIENTNET_V2 = {  # variant: (stage repeats, depth coefficient, input size, preprocessing)
    "b0": ((1, 2, 2, 3, 5, 8), 1.0, 224, "torch"),
    "b1": ((1, 2, 2, 3, 5, 8), 1.1, 240, "torch"),
    "b2": ((1, 2, 2, 3, 5, 8), 1.2, 260, "torch"),
    "b3": ((1, 2, 2, 3, 5, 8), 1.4, 300, "torch"),
    "s": ((2, 4, 4, 6, 9, 15), 1.0, 384, "tf128"),
    "m": ((3, 5, 5, 7, 14, 18, 5), 1.0, 480, "tf128"),
    "l": ((4, 7, 7, 10, 19, 25, 7), 1.0, 480, "tf128"),
}

for _variant, (_repeats, _depth, _size, _mode) in _EFFICIENTNET_V2.items():
    _stages = _stage_blocks(_repeats, _depth)
    _register(
        f"efficientnet_v2_{_variant}",
        f"EfficientNetV2{_variant.upper()}",
        family="efficientnet_v2",
        paper="Tan & Le 2021, EfficientNetV2: Smaller Models and Faster Training (ICML)",
        size=_size,
        preprocess="builtin",
        builtin=_mode,
        taps={
            "P2": _stage_end(_stages, 2),
            "P3": _stage_end(_stages, 3),
            "P4": _stage_end(_stages, 5),
            "P5": "top_activation",
        },
        blocks=("stem", *(b for stage in _stages for b in stage), "top"),
        include_preprocessing=True,
    )

# --- ResNet v1 and v2 --------------------------------------------------------------------

_RESNET = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _resnet_blocks(counts: tuple[int, ...]) -> list[str]:
    return [f"conv{s}_block{b}" for s, n in enumerate(counts, start=2) for b in range(1, n + 1)]


for _depth, _counts in _RESNET.items():
    _register(
        f"resnet{_depth}",
        f"ResNet{_depth}",
        family="resnet",
        paper="He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR)",
        size=224,
        preprocess="caffe",
        taps={
            "P2": f"conv2_block{_counts[0]}_out",
            "P3": f"conv3_block{_counts[1]}_out",
            "P4": f"conv4_block{_counts[2]}_out",
            "P5": f"conv5_block{_counts[3]}_out",
        },
        blocks=("conv1", *_resnet_blocks(_counts)),
    )
    # ResNet-V2 downsamples in the last block of stages 2-4, so the stride-4/8/16 maps are
    # the pre-activations (BN-ReLU of the previous block's sum) of those last blocks.
    _register(
        f"resnet{_depth}_v2",
        f"ResNet{_depth}V2",
        family="resnet_v2",
        paper="He, Zhang, Ren & Sun 2016, Identity Mappings in Deep Residual Networks (ECCV)",
        size=224,
        preprocess="tf",
        taps={
            "P2": f"conv2_block{_counts[0]}_preact_relu",
            "P3": f"conv3_block{_counts[1]}_preact_relu",
            "P4": f"conv4_block{_counts[2]}_preact_relu",
            "P5": "post_relu",
        },
        blocks=("conv1", *_resnet_blocks(_counts), "post"),
    )

# --- VGG -----------------------------------------------------------------------------------

for _depth, _last in ((16, 3), (19, 4)):
    _register(
        f"vgg{_depth}",
        f"VGG{_depth}",
        family="vgg",
        paper="Simonyan & Zisserman 2015, Very Deep Convolutional Networks (ICLR)",
        size=224,
        preprocess="caffe",
        taps={
            "P2": f"block3_conv{_last}",
            "P3": f"block4_conv{_last}",
            "P4": f"block5_conv{_last}",
            "P5": "block5_pool",
        },
        blocks=tuple(f"block{i}" for i in range(1, 6)),
    )

# --- InceptionV3, Xception -----------------------------------------------------------------

_register(
    "inception_v3",
    "InceptionV3",
    family="inception_v3",
    paper="Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision (CVPR)",
    size=299,
    preprocess="tf",
    taps={"P2": None, "P3": "mixed2", "P4": "mixed7", "P5": "mixed10"},
    blocks=tuple(f"mixed{i}" for i in range(11)),
    block_boundary="end",
    min_input_size=75,
    notes=(
        "'valid' convolutions: maps are smaller than input/stride (299 → 71, 35, 17, 8 for "
        "P2–P5; 75 → 16, 7, 3, 1). Minimum input 75×75."
    ),
)

_register(
    "xception",
    "Xception",
    family="xception",
    paper="Chollet 2017, Xception: Deep Learning with Depthwise Separable Convolutions (CVPR)",
    size=299,
    preprocess="tf",
    # The ReLU that opens the next block is the activated output of the previous one.
    taps={
        "P2": "block3_sepconv1_act",
        "P3": "block4_sepconv1_act",
        "P4": "block13_sepconv1_act",
        "P5": "block14_sepconv2_act",
    },
    blocks=tuple(f"block{i}" for i in range(1, 15)),
    min_input_size=71,
    notes="'valid' stem convolutions: 299 → 74, 37, 19, 10 for P2–P5. Minimum input 71×71.",
)

# --- DenseNet --------------------------------------------------------------------------------

_DENSENET = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}

for _depth, _counts in _DENSENET.items():
    _blocks: list[str] = ["conv1"]
    for _stage, _n in enumerate(_counts, start=2):
        _blocks += [f"conv{_stage}_block{b}" for b in range(1, _n + 1)]
        if _stage < 5:
            _blocks.append(f"pool{_stage}")
    _register(
        f"densenet{_depth}",
        f"DenseNet{_depth}",
        family="densenet",
        paper="Huang, Liu, van der Maaten & Weinberger 2017, Densely Connected CNNs (CVPR)",
        size=224,
        preprocess="torch",
        taps={"P2": "pool2_relu", "P3": "pool3_relu", "P4": "pool4_relu", "P5": "relu"},
        blocks=(*_blocks, "bn"),
    )

# --- ConvNeXt -------------------------------------------------------------------------------

_CONVNEXT = {
    "tiny": (3, 3, 9, 3),
    "small": (3, 3, 27, 3),
    "base": (3, 3, 27, 3),
    "large": (3, 3, 27, 3),
    "xlarge": (3, 3, 27, 3),
}

for _variant, _depths in _CONVNEXT.items():
    _prefix = f"convnext_{_variant}"
    _blocks = [f"{_prefix}_stem"]
    for _stage, _n in enumerate(_depths):
        if _stage:
            _blocks.append(f"{_prefix}_downsampling_block_{_stage - 1}")
        _blocks += [f"{_prefix}_stage_{_stage}_block_{b}" for b in range(_n)]
    _register(
        f"convnext_{_variant}",
        f"ConvNeXt{_variant.capitalize() if _variant != 'xlarge' else 'XLarge'}",
        family="convnext",
        paper="Liu et al. 2022, A ConvNet for the 2020s (CVPR)",
        size=224,
        preprocess="builtin",
        builtin="torch",
        taps={
            "P2": f"{_prefix}_downsampling_block_0:input",
            "P3": f"{_prefix}_downsampling_block_1:input",
            "P4": f"{_prefix}_downsampling_block_2:input",
            "P5": None,
        },
        blocks=tuple(_blocks),
        include_preprocessing=True,
        notes="4×4/4 patchify stem, so P2 exists; stage outputs are residual sums.",
    )
