"""A width/depth-scaled CSP backbone in the YOLOv8 style, written from scratch.

Shape of the network (Wang et al. 2020, *CSPNet: A New Backbone that can Enhance Learning
Capability of CNN*, CVPRW; arranged as in Jocher et al., Ultralytics YOLOv8, 2023 — only
the layout is followed, the code is our own):

- stem: conv 3×3/2 (stride 2);
- four stages, each a conv 3×3/2 followed by one C2f block (stride 4, 8, 16, 32);
- SPPF (three chained 5×5 max-pools, concatenated) after the last stage.

Every "conv" is Conv2D (no bias) → BatchNorm → SiLU. Base widths 64-128-256-512-1024 and
C2f depths 3-6-6-3 are multiplied by the scale's width and depth factors (widths rounded up
to a multiple of 8 after capping at ``max_channels``). Scales: ``n`` (depth 0.33, width
0.25) and ``s`` (depth 0.33, width 0.50), both capped at 1024 channels.

Input: (H, W, 3) uint8-range RGB with H, W divisible by 32; ``x / 255`` inside the model.
Outputs: ``{"P3", "P4", "P5"}`` at strides 8, 16, 32 (n: 64, 128, 256 channels).
"""

from __future__ import annotations

import math

import keras
from keras import layers

from visionkit.models.classic.common import image_input
from visionkit.models.layers import conv_bn_act

# scale: (depth multiple, width multiple, max channels)
SCALES: dict[str, tuple[float, float, int]] = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
}
BASE_WIDTHS = (64, 128, 256, 512, 1024)  # stem, stage 1..4
BASE_DEPTHS = (3, 6, 6, 3)  # C2f bottlenecks in stages 1..4


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded up to a multiple of ``divisor``."""
    return int(math.ceil(value / divisor) * divisor)


def scale_width(channels: int, width: float, max_channels: int = 1024) -> int:
    """Base channel count → scaled channel count (capped, then a multiple of 8)."""
    return make_divisible(min(channels, max_channels) * width, 8)


def scale_depth(repeats: int, depth: float) -> int:
    """Base repeat count → scaled count (at least 1)."""
    return max(round(repeats * depth), 1) if repeats > 1 else repeats


def conv(x, filters: int, kernel_size: int = 1, strides: int = 1, *, name: str):
    """Conv2D (no bias) → BatchNorm → SiLU, 'same' padding."""
    return conv_bn_act(x, filters, kernel_size, strides=strides, activation="silu", name=name)


def bottleneck(x, filters: int, *, shortcut: bool = True, name: str):
    """Two 3×3 convs, with a residual add when ``shortcut`` and the widths match."""
    y = conv(x, filters, 3, name=f"{name}_cv1")
    y = conv(y, filters, 3, name=f"{name}_cv2")
    if shortcut and x.shape[-1] == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def c2f(x, filters: int, repeats: int, *, shortcut: bool = True, name: str):
    """C2f block: 1×1 conv to 2·c split in two halves (c = filters / 2), ``repeats``
    bottlenecks chained on the second half, every intermediate map concatenated, 1×1 conv.

    The split is written as two 1×1 conv-BN-SiLU branches of c channels each, which is the
    same function and the same parameter count as one 2c conv followed by a channel split,
    and keeps the graph free of custom layers.
    """
    hidden = filters // 2
    a = conv(x, hidden, 1, name=f"{name}_cv1a")
    b = conv(x, hidden, 1, name=f"{name}_cv1b")
    parts = [a, b]
    for i in range(repeats):
        b = bottleneck(b, hidden, shortcut=shortcut, name=f"{name}_m{i}")
        parts.append(b)
    y = layers.Concatenate(name=f"{name}_concat")(parts)
    return conv(y, filters, 1, name=f"{name}_cv2")


def sppf(x, filters: int, pool_size: int = 5, *, name: str):
    """Spatial pyramid pooling, fast: 1×1 conv to C_in/2, three chained k×k/1 max-pools,
    concat of the four maps, 1×1 conv (equivalent to parallel 5, 9, 13 pools of SPP)."""
    y = conv(x, x.shape[-1] // 2, 1, name=f"{name}_cv1")
    maps = [y]
    for i in range(3):
        y = layers.MaxPooling2D(pool_size, strides=1, padding="same", name=f"{name}_pool{i}")(y)
        maps.append(y)
    y = layers.Concatenate(name=f"{name}_concat")(maps)
    return conv(y, filters, 1, name=f"{name}_cv2")


def csp_features(
    x, *, depth: float, width: float, max_channels: int = 1024, name: str = "csp"
) -> dict:
    """Add the CSP backbone to a functional graph on preprocessed input ``x`` ([0, 1]).

    Returns ``{"P3", "P4", "P5"}`` feature tensors (strides 8, 16, 32).
    """
    widths = [scale_width(c, width, max_channels) for c in BASE_WIDTHS]
    x = conv(x, widths[0], 3, 2, name=f"{name}_stem")
    outputs = {}
    for stage, (repeats, filters) in enumerate(zip(BASE_DEPTHS, widths[1:], strict=True), 1):
        x = conv(x, filters, 3, 2, name=f"{name}_stage{stage}_down")
        x = c2f(x, filters, scale_depth(repeats, depth), name=f"{name}_stage{stage}_c2f")
        if stage == 4:
            x = sppf(x, filters, name=f"{name}_sppf")
        if stage >= 2:
            outputs[f"P{stage + 1}"] = layers.Identity(name=f"{name}_P{stage + 1}")(x)
    return outputs


def csp_backbone(
    scale: str = "n",
    *,
    input_shape: tuple[int, int, int] = (640, 640, 3),
    depth: float | None = None,
    width: float | None = None,
) -> keras.Model:
    """The CSP backbone of scale ``"n"`` or ``"s"`` as a model with dict outputs.

    Input: (H, W, 3) uint8-range RGB, ``x / 255`` inside. Outputs ``{"P3", "P4", "P5"}``.
    ``depth``/``width`` override the scale's multiples.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown CSP scale {scale!r}; choose one of {sorted(SCALES)}")
    d, w, max_channels = SCALES[scale]
    inputs, x = image_input(input_shape)
    outputs = csp_features(
        x,
        depth=d if depth is None else depth,
        width=w if width is None else width,
        max_channels=max_channels,
        name="csp",
    )
    return keras.Model(inputs, outputs, name=f"csp_{scale}")
