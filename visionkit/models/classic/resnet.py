"""ResNet-18/34/50/101/152 and the plain-18/34 baselines (He, Zhang, Ren & Sun 2016)."""

from __future__ import annotations

import keras
from keras import layers

from visionkit.models.classic.common import (
    PIXELS_TO_UNIT,
    gap_classifier,
    image_input,
    stage_output,
)
from visionkit.models.layers import basic_block, bottleneck_block, conv_bn_act
from visionkit.models.registry import register_model

_PAPER = "He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR)"
_WIDTHS = (64, 128, 256, 512)


def build_resnet(
    name: str,
    blocks: tuple[int, int, int, int],
    *,
    bottleneck: bool,
    residual: bool = True,
    num_classes: int = 1000,
    input_shape=(224, 224, 3),
    include_top: bool = True,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """ImageNet ResNet v1: 7×7/2 conv-BN-ReLU stem, 3×3/2 max-pool, four stages of
    basic (two 3×3) or bottleneck (1×1, 3×3, 1×1) blocks at 64-128-256-512 base widths,
    the first block of stages 2–4 downsampling by 2 with a 1×1 projection shortcut
    (option B), global average pooling and one FC layer. Convolutions have no bias;
    BatchNorm follows every convolution. Stage outputs ``stage1_out`` … ``stage4_out``
    sit at strides 4, 8, 16 and 32 (P2–P5).
    """
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    x = conv_bn_act(x, 64, 7, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    block = bottleneck_block if bottleneck else basic_block
    for stage, (count, width) in enumerate(zip(blocks, _WIDTHS, strict=True), start=1):
        for i in range(1, count + 1):
            strides = 2 if (i == 1 and stage > 1) else 1
            x = block(x, width, strides=strides, residual=residual, name=f"stage{stage}_block{i}")
        x = stage_output(x, stage)
    if not include_top:
        return keras.Model(inputs, x, name=name)
    outputs = gap_classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


_DOC = """{title} (He et al. 2016{extra}): stage blocks {blocks}, {kind} blocks.

{counts}
Input: (224, 224, 3) uint8-range RGB; x / 255 inside the model (BatchNorm does the rest).
Options: ``include_top=False`` (features only), ``classifier_activation=None`` (logits).
"""


def _register(
    name: str,
    blocks,
    *,
    bottleneck: bool,
    residual: bool,
    title: str,
    params: int,
    trainable: int,
    extra: str = "",
):
    def builder(*, num_classes: int = 1000, input_shape=(224, 224, 3), **kwargs) -> keras.Model:
        return build_resnet(
            name,
            blocks,
            bottleneck=bottleneck,
            residual=residual,
            num_classes=num_classes,
            input_shape=input_shape,
            **kwargs,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = _DOC.format(
        title=title,
        extra=extra,
        blocks="-".join(map(str, blocks)),
        kind="bottleneck (1×1, 3×3, 1×1; stride on the 3×3)" if bottleneck else "basic (two 3×3)",
        counts=f"Trainable parameters {trainable:,}; {params:,} with BatchNorm moving statistics.",
    )
    return register_model(
        task="classify",
        family="resnet",
        paper=_PAPER,
        input_shape=(224, 224, 3),
        num_classes=1000,
        preprocessing=PIXELS_TO_UNIT,
        params=params,
        min_input_size=32,
    )(builder)


# name: (blocks per stage, bottleneck, residual, title, all params, trainable params, note)
_VARIANTS = {
    "resnet18": ((2, 2, 2, 2), False, True, "ResNet-18", 11_699_112, 11_689_512, ""),
    "resnet34": ((3, 4, 6, 3), False, True, "ResNet-34", 21_814_696, 21_797_672, ""),
    "resnet50": ((3, 4, 6, 3), True, True, "ResNet-50", 25_610_152, 25_557_032, ""),
    "resnet101": ((3, 4, 23, 3), True, True, "ResNet-101", 44_654_504, 44_549_160, ""),
    "resnet152": ((3, 8, 36, 3), True, True, "ResNet-152", 60_344_232, 60_192_808, ""),
    "plain18": ((2, 2, 2, 2), False, False, "Plain-18", 11_523_496, 11_515_688, ", the no-shortcut baseline of Fig. 4"),
    "plain34": ((3, 4, 6, 3), False, False, "Plain-34", 21_639_080, 21_623_848, ", the no-shortcut baseline of Fig. 4"),
}  # fmt: skip

for _name, (
    _blocks,
    _bottleneck,
    _residual,
    _title,
    _params,
    _trainable,
    _note,
) in _VARIANTS.items():
    globals()[_name] = _register(
        _name,
        _blocks,
        bottleneck=_bottleneck,
        residual=_residual,
        title=_title,
        params=_params,
        trainable=_trainable,
        extra=_note,
    )
