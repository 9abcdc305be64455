"""U-Net (Ronneberger, Fischer & Brox 2015) from scratch, and U-Net decoders on pretrained
encoders (the backbones' P2–P5 feature maps).

Every model takes uint8-range images (preprocessing inside) and returns per-pixel class
probabilities, float32: softmax (B, H, W, C) for ``num_classes >= 2``, sigmoid
(B, H, W, 1) for ``num_classes=1``. Decoder and head layers are named ``seg_*``.
"""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import PIXELS_TO_UNIT, image_input
from visionkit.models.errors import ModelError
from visionkit.models.layers import conv_bn_act
from visionkit.models.registry import register_model
from visionkit.models.segmentation.common import (
    check_divisible,
    probability_head,
    register_encoder_variants,
)

UNET_PAPER = (
    "Ronneberger, Fischer & Brox 2015, U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation (MICCAI)"
)


def _double_conv(x, filters: int, *, padding: str, batch_norm: bool, name: str):
    x = conv_bn_act(x, filters, 3, padding=padding, batch_norm=batch_norm, name=f"{name}_1")
    return conv_bn_act(x, filters, 3, padding=padding, batch_norm=batch_norm, name=f"{name}_2")


def unet_output_size(n: int, depth: int = 4) -> int:
    """Output side of the valid-padding U-Net for input side ``n`` (572 → 388).

    Raises ValueError when a max-pool would meet an odd size (the paper picks input
    tiles so that every 2×2 pooling sees an even size).
    """
    size = n
    for level in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            raise ValueError(
                f"valid U-Net: input {n} gives size {size} before pool {level + 1}; "
                f"use an input side of the form 16·k + 124 (k >= 4), e.g. 188, 252, 572"
            )
        size //= 2
    size -= 4  # bottleneck
    for _ in range(depth):
        size = size * 2 - 4
    if size <= 0:
        raise ValueError(f"valid U-Net: input {n} is too small (output {size})")
    return size


def build_unet(
    *,
    num_classes: int = 2,
    input_shape=(256, 256, 3),
    base_filters: int = 64,
    depth: int = 4,
    valid: bool = False,
    batch_norm: bool = False,
    dropout: float = 0.0,
    include_preprocessing: bool = True,
    name: str = "unet",
) -> keras.Model:
    """The original U-Net; see ``unet`` for the options."""
    h, w, _ = tuple(input_shape)
    if valid:
        if h is None or w is None:
            raise ModelError("the valid U-Net needs a static input size")
        unet_output_size(h, depth), unet_output_size(w, depth)  # raises on bad sizes
    else:
        check_divisible(input_shape, 2**depth, name)
    padding = "valid" if valid else "same"
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    skips = []
    for level in range(depth):
        filters = base_filters * 2**level
        x = _double_conv(
            x, filters, padding=padding, batch_norm=batch_norm, name=f"seg_down{level + 1}"
        )
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"seg_pool{level + 1}")(x)
    x = _double_conv(
        x, base_filters * 2**depth, padding=padding, batch_norm=batch_norm, name="seg_bottleneck"
    )
    if dropout:
        # "Drop-out layers at the end of the contracting path" (paper, §3).
        x = layers.Dropout(dropout, name="seg_dropout")(x)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(
            filters, 2, strides=2, kernel_initializer="he_normal", name=f"seg_upconv{level + 1}"
        )(x)
        skip = skips[level]
        if valid:
            dh = skip.shape[1] - x.shape[1]
            dw = skip.shape[2] - x.shape[2]
            skip = layers.Cropping2D(
                ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)), name=f"seg_crop{level + 1}"
            )(skip)
        x = layers.Concatenate(name=f"seg_concat{level + 1}")([skip, x])
        x = _double_conv(
            x, filters, padding=padding, batch_norm=batch_norm, name=f"seg_up{level + 1}"
        )
    outputs = probability_head(x, num_classes)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    task="segment",
    family="unet",
    paper=UNET_PAPER,
    input_shape=(256, 256, 3),
    num_classes=2,
    preprocessing=PIXELS_TO_UNIT,
    params=31_031_810,
    min_input_size=32,
)
def unet(*, num_classes: int = 2, input_shape=(256, 256, 3), **kwargs) -> keras.Model:
    """U-Net (Ronneberger et al. 2015): 4 down steps of two 3×3 conv + ReLU and 2×2 max-pool
    (64 → 512 channels), a 1024-channel bottleneck, 4 up steps of a 2×2 up-convolution
    (Conv2DTranspose, halving the channels), concatenation with the encoder's skip and two
    3×3 conv + ReLU, then a 1×1 convolution to the classes.

    Parameters: 31,031,810 at the defaults (3 input channels, 2 classes, no BatchNorm); the
    usually quoted 31,030,658 is the same network with a 1-channel input (1,152 fewer
    first-layer weights). BatchNorm adds 4 numbers per channel of each conv.
    Input: (256, 256, 3) uint8-range RGB, or (H, W, 1) grey (e.g. the ISBI membrane slices);
    x / 255 inside the model. With ``"same"`` padding H and W must be multiples of 16 and
    the output has the input size: (B, H, W, num_classes) softmax probabilities
    (``num_classes=1``: sigmoid, (B, H, W, 1)), float32.
    Options: ``valid=True`` is paper-faithful: unpadded convolutions, the skips centre-cropped,
    the output smaller than the input (572 → 388; ``unet_output_size(n)``; inputs of the
    form 16·k + 124); ``batch_norm=True`` (not in the paper); ``dropout=0.5`` (the paper's
    dropout at the end of the contracting path; default 0); ``base_filters`` (64) and
    ``depth`` (4) for smaller variants; ``include_preprocessing=False``.
    """
    return build_unet(num_classes=num_classes, input_shape=input_shape, **kwargs)


# ----------------------------------------------------------------------------------------
# U-Net decoder on a pretrained encoder
# ----------------------------------------------------------------------------------------

ENCODER_UNET_PAPER = (
    UNET_PAPER + "; decoder on a pretrained encoder as in Iglovikov & Shvets 2018, TernausNet"
)
DECODER_FILTERS = (256, 128, 64, 32, 16)


def _decoder_block(x, skip, filters: int, *, name: str):
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_upsample")(x)
    if skip is not None:
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = conv_bn_act(x, filters, 3, name=f"{name}_1")
    return conv_bn_act(x, filters, 3, name=f"{name}_2")


def build_encoder_unet(
    backbone: str,
    *,
    num_classes: int = 2,
    input_shape=(256, 256, 3),
    encoder_weights: str | None = None,
    decoder_filters: tuple[int, ...] = DECODER_FILTERS,
    image_skips: bool = False,
    name: str | None = None,
) -> keras.Model:
    """U-Net decoder over ``backbone``'s P5 with skips P4, P3, P2 (see ``unet_lite0``);
    ``image_skips=True`` adds skips at strides 2 and 1 computed from the image itself."""
    from visionkit.backbones import create_backbone

    name = name or f"unet_{backbone}"
    shape = check_divisible(input_shape, 32, name)
    if len(decoder_filters) != 5:
        raise ModelError(
            f"decoder_filters needs 5 widths (strides 16, 8, 4, 2, 1), got {decoder_filters}"
        )
    base = create_backbone(backbone, input_shape=shape, weights=encoder_weights)
    features = base.output
    if "P2" not in features:
        raise ModelError(f"{name}: backbone {backbone} has no stride-4 (P2) feature map")
    skips = [features["P4"], features["P3"], features["P2"], None, None]
    if image_skips:  # full-resolution detail the stride-4 P2 cannot carry (thin structures)
        pixels = layers.Rescaling(1.0 / 255, name="seg_image_pixels")(base.input)
        full = conv_bn_act(pixels, decoder_filters[4], 3, name="seg_image_skip1_1")
        full = conv_bn_act(full, decoder_filters[4], 3, name="seg_image_skip1_2")
        half = layers.MaxPooling2D(2, name="seg_image_skip2_pool")(full)
        skips[3] = conv_bn_act(half, decoder_filters[3], 3, name="seg_image_skip2")
        skips[4] = full
    x = features["P5"]
    for i, (skip, filters) in enumerate(zip(skips, decoder_filters, strict=True), start=1):
        x = _decoder_block(x, skip, filters, name=f"seg_decoder{i}")
    outputs = probability_head(x, num_classes)
    return keras.Model(base.input, outputs, name=name)


_ENCODER_DOC = """U-Net decoder on a pretrained {title} encoder ({paper_short}).

Encoder: backbone ``{backbone}`` (``visionkit.backbones``), feature maps P2–P5 (strides
4–32). Decoder: five blocks of ×2 bilinear upsampling, concatenation with the skip (P4, P3,
P2 for the first three; the stride-2 and stride-1 blocks have none, since the backbones
expose no P1, unless ``image_skips=True``: then two 3×3 conv-BN-ReLU on the image at full
resolution (16 wide) feed the stride-1 block and, max-pooled and one more conv (32 wide),
the stride-2 block, as the original U-Net's first level does; +19,120 parameters), and two
3×3 conv-BN-ReLU, at widths 256-128-64-32-16; then a 1×1 conv to
the classes, softmax (``num_classes=1``: sigmoid), float32, at the input resolution.
Parameters: {params:,} at the defaults (2 classes, random initialisation).
Input: (256, 256, 3) uint8-range RGB (H, W multiples of 32); {preprocessing}.
Options: ``encoder_weights`` (``None``, ``"imagenet"``{offline}, or a path: passed to
``create_backbone``), ``decoder_filters``, ``image_skips``.
"""


# name: (backbone, title, params at defaults, preprocessing, note on "imagenet")
_ENCODER_UNETS = {
    "unet_lite0": ("efficientnet_lite0", "EfficientNet-Lite0", 7_861_442, "(x - 127) / 128 inside the model", " works offline"),
    "unet_lite1": ("efficientnet_lite1", "EfficientNet-Lite1", 8_637_762, "(x - 127) / 128 inside the model", " works offline"),
    "unet_lite2": ("efficientnet_lite2", "EfficientNet-Lite2", 9_345_234, "(x - 127) / 128 inside the model", " works offline"),
    "unet_resnet34": ("resnet34", "ResNet-34", 24_436_834, "x / 255 inside the model", ""),
    "unet_mobilenetv2": ("mobilenet_v2", "MobileNetV2", 8_019_682, "x / 127.5 - 1 inside the model", ""),
}  # fmt: skip

register_encoder_variants(
    _ENCODER_UNETS,
    build_encoder_unet,
    family="unet",
    paper=ENCODER_UNET_PAPER,
    doc=_ENCODER_DOC.replace("{paper_short}", "Ronneberger et al. 2015"),
    input_shape=(256, 256, 3),
    num_classes=2,
    namespace=globals(),
)
