"""DeepLabV3+ (Chen, Zhu, Papandreou, Schroff & Adam 2018) on the backbones' feature maps.

Encoder: a registered backbone. The encoder output is its stride-16 map P4 by default
(output stride 16, the paper's default for training and evaluation): the backbones are
plain Keras graphs whose last stage is strided, and re-building them with an atrous last
stage would change every backbone builder, so the P5 stage is not used (its layers are not
part of the model). ``encoder_level="P5"`` uses the stride-32 map instead, with the ASPP
rates halved (3/6/9) to keep the same field of view in pixels.

ASPP (Chen et al. 2017, DeepLabV3): a 1×1 conv, three 3×3 atrous convs at rates 6/12/18 and
image pooling (global average → 1×1 conv → broadcast back), each 256 channels with BN-ReLU,
concatenated and projected by 1×1 conv-BN-ReLU to 256 (dropout 0.1).
Decoder (DeepLabV3+, §3.1): the low-level P2 feature (stride 4) through 1×1 conv-BN-ReLU to
48 channels, concatenated with the ASPP output upsampled ×4 (bilinear), two 3×3
conv-BN-ReLU of 256, a 1×1 conv to the classes, bilinear ×4 to the input resolution, and
softmax (``num_classes=1``: sigmoid), float32. The paper uses depthwise-separable convs in
ASPP and decoder with its Xception encoder; these are regular convolutions, as in the
ResNet-101 variant of the paper and torchvision's implementation.
Decoder and head layers are named ``seg_*``.
"""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.errors import ModelError
from visionkit.models.layers import conv_bn_act
from visionkit.models.segmentation.common import (
    check_divisible,
    probability_head,
    register_encoder_variants,
)

DEEPLAB_PAPER = (
    "Chen, Zhu, Papandreou, Schroff & Adam 2018, Encoder-Decoder with Atrous Separable "
    "Convolution for Semantic Image Segmentation (ECCV), DeepLabV3+"
)


def aspp(x, *, rates=(6, 12, 18), filters: int = 256, dropout: float = 0.1, name: str = "seg_aspp"):
    """Atrous spatial pyramid pooling with image pooling (Chen et al. 2017, §3.3).

    (B, h, w, C) → (B, h, w, ``filters``). Needs a static h, w (image-pooling broadcast).
    """
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ModelError("ASPP needs a static feature-map size; give a static input_shape")
    branches = [conv_bn_act(x, filters, 1, name=f"{name}_1x1")]
    for rate in rates:
        branches.append(_atrous_conv_bn_relu(x, filters, rate, name=f"{name}_rate{rate}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn_act(pooled, filters, 1, name=f"{name}_pool_proj")
    pooled = layers.UpSampling2D((h, w), interpolation="nearest", name=f"{name}_pool_upsample")(
        pooled
    )
    branches.append(pooled)
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    x = conv_bn_act(x, filters, 1, name=f"{name}_proj")
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _atrous_conv_bn_relu(x, filters: int, rate: int, *, name: str):
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        dilation_rate=rate,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_deeplabv3plus(
    backbone: str,
    *,
    num_classes: int = 21,
    input_shape=(512, 512, 3),
    encoder_weights: str | None = None,
    encoder_level: str = "P4",
    aspp_rates: tuple[int, ...] | None = None,
    aspp_dropout: float = 0.1,
    name: str | None = None,
) -> keras.Model:
    """DeepLabV3+ over ``backbone`` (see the module docstring and ``deeplabv3plus_lite0``)."""
    from visionkit.backbones import create_backbone

    name = name or f"deeplabv3plus_{backbone}"
    if encoder_level not in ("P4", "P5"):
        raise ModelError(
            f"encoder_level must be 'P4' (stride 16) or 'P5' (32), got {encoder_level!r}"
        )
    stride = 16 if encoder_level == "P4" else 32
    shape = check_divisible(input_shape, 32 if encoder_level == "P5" else 16, name)
    if aspp_rates is None:
        aspp_rates = (6, 12, 18) if stride == 16 else (3, 6, 9)
    base = create_backbone(backbone, input_shape=shape, weights=encoder_weights)
    features = base.output
    if "P2" not in features:
        raise ModelError(f"{name}: backbone {backbone} has no stride-4 (P2) feature map")
    x = aspp(features[encoder_level], rates=tuple(aspp_rates), dropout=aspp_dropout)
    x = layers.UpSampling2D(stride // 4, interpolation="bilinear", name="seg_aspp_upsample")(x)
    low = conv_bn_act(features["P2"], 48, 1, name="seg_lowlevel")
    x = layers.Concatenate(name="seg_decoder_concat")([x, low])
    x = conv_bn_act(x, 256, 3, name="seg_decoder_1")
    x = conv_bn_act(x, 256, 3, name="seg_decoder_2")
    outputs = probability_head(x, num_classes, upsample=4)
    return keras.Model(base.input, outputs, name=name)


_DOC = """DeepLabV3+ (Chen et al. 2018) on a {title} encoder (``{backbone}``), output stride 16.

ASPP (1×1, 3×3 at rates 6/12/18, image pooling; 256 channels, 1×1 projection to 256) on the
stride-16 map P4; decoder with the low-level P2 feature (1×1 → 48, concat, two 3×3 conv
256), 1×1 conv to the classes, bilinear ×4 to the input size, softmax (``num_classes=1``:
sigmoid), float32: (B, H, W, num_classes).
Parameters: {params:,} at the defaults (21 classes as in PASCAL VOC, random initialisation;
only the backbone layers up to P4 are part of the model).
Input: (512, 512, 3) uint8-range RGB (H, W multiples of 16); {preprocessing}.
Options: ``encoder_weights`` (``None``, ``"imagenet"``{offline}, or a path: passed to
``create_backbone``), ``encoder_level="P5"`` (stride 32, rates 3/6/9), ``aspp_rates``,
``aspp_dropout`` (0.1).
"""


# name: (backbone, title, params at defaults, preprocessing, note on "imagenet")
_VARIANTS = {
    "deeplabv3plus_lite0": ("efficientnet_lite0", "EfficientNet-Lite0", 3_181_269, "(x - 127) / 128 inside the model", " works offline"),
    "deeplabv3plus_mobilenetv2": ("mobilenet_v2", "MobileNetV2", 6_531_093, "x / 127.5 - 1 inside the model", ""),
    "deeplabv3plus_resnet50": ("resnet50", "ResNet-50 (Keras applications)", 17_835_349, "RGB→BGR minus the ImageNet mean (caffe) inside the model", ""),
}  # fmt: skip

register_encoder_variants(
    _VARIANTS,
    build_deeplabv3plus,
    family="deeplabv3plus",
    paper=DEEPLAB_PAPER,
    doc=_DOC,
    input_shape=(512, 512, 3),
    num_classes=21,
    namespace=globals(),
)
