"""The CIFAR-10 ResNets and plain nets of He et al. 2016, §4.2 (the degradation experiment)."""

from __future__ import annotations

import keras

from visionkit.models.classic.common import (
    PIXELS_TO_UNIT,
    gap_classifier,
    image_input,
    stage_output,
)
from visionkit.models.layers import basic_block, conv_bn_act
from visionkit.models.registry import register_model

_PAPER = "He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition, §4.2 (CIFAR-10)"


def build_cifar_resnet(
    name: str,
    depth: int,
    *,
    residual: bool = True,
    num_classes: int = 10,
    input_shape=(32, 32, 3),
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> keras.Model:
    """6n+2 layers: 3×3 conv 16, then three stages of n basic blocks at 16, 32 and 64
    channels (feature maps 32, 16, 8), global average pooling and a 10-way FC layer.
    Shortcuts are identities, and option A (subsample + zero-pad channels, no parameters)
    where the shape changes. ``residual=False`` removes the shortcuts (plain nets).
    """
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    n = (depth - 2) // 6
    inputs, x = image_input(input_shape, include_preprocessing=include_preprocessing)
    x = conv_bn_act(x, 16, 3, name="stem")
    for stage, width in enumerate((16, 32, 64), start=1):
        for i in range(1, n + 1):
            strides = 2 if (i == 1 and stage > 1) else 1
            x = basic_block(
                x,
                width,
                strides=strides,
                residual=residual,
                shortcut="A",
                name=f"stage{stage}_block{i}",
            )
        x = stage_output(x, stage)
    outputs = gap_classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def _register(name: str, depth: int, residual: bool, params: int, trainable: int):
    def builder(*, num_classes: int = 10, input_shape=(32, 32, 3), **kwargs) -> keras.Model:
        return build_cifar_resnet(
            name,
            depth,
            residual=residual,
            num_classes=num_classes,
            input_shape=input_shape,
            **kwargs,
        )

    kind = "ResNet" if residual else "plain net (no shortcuts)"
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"CIFAR-10 {kind}, {depth} layers (n = {(depth - 2) // 6}); {trainable:,} trainable "
        f"parameters ({params:,} with BatchNorm statistics).\n\n"
        f"{build_cifar_resnet.__doc__}\n"
        "Input: (32, 32, 3) uint8-range RGB; x / 255 inside the model.\n"
    )
    return register_model(
        task="classify",
        family="cifar_resnet",
        paper=_PAPER,
        input_shape=(32, 32, 3),
        num_classes=10,
        preprocessing=PIXELS_TO_UNIT,
        params=params,
        min_input_size=8,
    )(builder)


resnet20 = _register("resnet20", 20, True, 271_098, 269_722)
resnet32 = _register("resnet32", 32, True, 466_426, 464_154)
resnet44 = _register("resnet44", 44, True, 661_754, 658_586)
resnet56 = _register("resnet56", 56, True, 857_082, 853_018)
resnet110 = _register("resnet110", 110, True, 1_736_058, 1_727_962)
plain20 = _register("plain20", 20, False, 271_098, 269_722)
plain56 = _register("plain56", 56, False, 857_082, 853_018)
