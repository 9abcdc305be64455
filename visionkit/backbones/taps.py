"""Feature taps: which layer of a convolutional model gives the feature map of each pyramid level.

A pyramid level ``P<k>`` is a feature map at stride ``2**k`` from the input: ``P2`` (stride
4), ``P3`` (8), ``P4`` (16), ``P5`` (32). :func:`layer_strides` reads the stride of every
layer of a Keras functional model from the graph: a layer's stride is the largest stride
of the layers that feed it, times its own ``strides`` (convolutions and pooling), or, for
layers without a ``strides`` setting that still change the spatial size (nested models,
resizing), the nearest power of two of the size ratio. Reading strides from the layers
rather than from the output size keeps 'valid'-padding families (InceptionV3, Xception)
exact: their 35×35 map at 299×299 input is stride 8 even though 299 / 35 = 8.5.

:func:`find_taps` picks, per level, the last layer at that stride before the next
downsampling, preferring named block outputs (``*_out``), then block merges (Add,
Concatenate), then activations; the model's own output is the tap of its deepest level.
Backbones pin their taps by name where this rule is ambiguous (``feature_layers``), and
the tests check every pinned tap against :func:`layer_strides`.
"""

from __future__ import annotations

import math
import re
from typing import Any

LEVELS: dict[str, int] = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}

_MERGES = ("Add", "Concatenate")
_NO_RESIZE = ("ZeroPadding2D", "Cropping2D")
_ACTIVATIONS = ("Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax")
_OUT_NAME = re.compile(r"(^|_)out($|_)|stage\d+_out$")


def level_name(stride: int) -> str:
    """``"P3"`` for stride 8: the pyramid level of a power-of-two stride."""
    return f"P{round(math.log2(stride))}"


def _spatial(shape: Any) -> tuple[int | None, int | None] | None:
    """(H, W) of a channels-last 4-D shape, or None for other ranks."""
    if shape is None or len(shape) != 4:
        return None
    return shape[1], shape[2]


def _output_shape(layer) -> Any:
    """Shape of the single output of ``layer``, or None (several outputs, not built)."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    return getattr(output, "shape", None)


def _producers(layer) -> list[Any]:
    """The layers whose outputs feed ``layer`` (its first call)."""
    from keras import tree

    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes:
        return []
    tensors = tree.flatten(nodes[0].input_tensors)
    return [t._keras_history.operation for t in tensors if hasattr(t, "_keras_history")]


def _own_stride(layer, in_hw, out_hw) -> float:
    """The factor by which ``layer`` divides the spatial size of its input."""
    strides = getattr(layer, "strides", None)
    if strides is not None and not isinstance(strides, str):
        first = strides[0] if isinstance(strides, (tuple, list)) else strides
        return float(first)
    if type(layer).__name__ in _NO_RESIZE:
        return 1.0
    size = getattr(layer, "size", None)
    if type(layer).__name__ == "UpSampling2D" and size is not None:
        first = size[0] if isinstance(size, (tuple, list)) else size
        return 1.0 / float(first)
    if in_hw is None or out_hw is None or not in_hw[0] or not out_hw[0]:
        return 1.0
    ratio = in_hw[0] / out_hw[0]
    return float(2 ** round(math.log2(ratio))) if ratio > 0 else 1.0


def layer_strides(model) -> dict[str, int]:
    """Stride (relative to the model input) of every layer with a 4-D output, in layer order.

    Works on any Keras functional model with channels-last image input; layers with other
    outputs (flatten, dense, global pooling) are left out.
    """
    strides: dict[str, float] = {}
    for layer in _operations(model):
        out_hw = _spatial(_output_shape(layer))
        if out_hw is None or type(layer).__name__.startswith("Global"):
            continue
        all_producers = _producers(layer)
        producers = [p for p in all_producers if p.name in strides]
        if not producers:
            if not all_producers:  # the input
                strides[layer.name] = 1.0
            continue  # fed only by vectors (squeeze-excitation branches): not a feature map
        # A merge with a broadcast branch (x * se) takes the stride of its largest map.
        feeder = max(producers, key=lambda p: (_spatial(_output_shape(p)) or (0,))[0] or 0)
        in_hw = _spatial(_output_shape(feeder))
        strides[layer.name] = strides[feeder.name] * _own_stride(layer, in_hw, out_hw)
    return {name: round(s) for name, s in strides.items() if s >= 1}


def _rank(layer, is_output: bool) -> int:
    """Preference of a layer as a tap: lower is better."""
    if is_output:
        return 0
    kind = type(layer).__name__
    if _OUT_NAME.search(layer.name):
        return 1
    if kind in _MERGES:
        return 2
    if kind in _ACTIVATIONS:
        return 3
    return 4


def find_taps(model, levels: tuple[str, ...] = tuple(LEVELS)) -> dict[str, str]:
    """Layer name of the feature map at each pyramid level the model reaches.

    For each level: among the layers at that stride, the model's output if it is there,
    else the last named block output (``*_out``), else the last merge (Add/Concatenate),
    else the last activation, else the last layer at that stride. Levels the model does
    not reach are left out.
    """
    strides = layer_strides(model)
    outputs = {t._keras_history.operation.name for t in _flat_outputs(model)}
    best: dict[str, tuple[int, int, str]] = {}
    for index, layer in enumerate(_operations(model)):
        stride = strides.get(layer.name)
        if stride is None or stride < 2:
            continue
        level = level_name(stride)
        if level not in levels or 2 ** int(level[1:]) != stride:
            continue
        key = (_rank(layer, layer.name in outputs), -index, layer.name)
        if level not in best or key < best[level]:
            best[level] = key
    return {level: best[level][2] for level in levels if level in best}


def _operations(model) -> list[Any]:
    """Layers and plain ops (``x + y`` in ConvNeXt) of a functional model, in graph order."""
    return list(getattr(model, "operations", None) or model.layers)


def _flat_outputs(model) -> list[Any]:
    from keras import tree

    return tree.flatten(model.outputs)


def check_taps(model, taps: dict[str, str]) -> None:
    """Raise ValueError unless every ``taps[level]`` layer exists at that level's stride."""
    strides = layer_strides(model)
    for level, layer_name in taps.items():
        if layer_name not in strides:
            raise ValueError(f"tap {level}: {model.name} has no 4-D layer named {layer_name!r}")
        if strides[layer_name] != LEVELS[level]:
            raise ValueError(
                f"tap {level}: layer {layer_name!r} of {model.name} is at stride "
                f"{strides[layer_name]}, not {LEVELS[level]}"
            )


def feature_layers(name: str) -> dict[str, str | None]:
    """The pinned tap layer of each level of the registered backbone ``name``.

    ``None`` for a level means "found by :func:`find_taps` when the model is built" (used
    where the layer names are not stable, e.g. InceptionV3's auto-named stem layers).
    """
    from visionkit.backbones.registry import backbone_info

    return dict(backbone_info(name).taps)
