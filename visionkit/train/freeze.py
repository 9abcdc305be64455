"""Freezing and unfreezing for fine-tuning, by whole blocks, with BatchNorm kept frozen.

On Keras 3 calling a base with ``training=False`` does not stop ``fit()`` from updating
BatchNorm moving statistics once the base is unfrozen (keras-team/keras#20285); only
``layer.trainable = False`` on each BatchNormalization layer does. So ``unfreeze`` leaves
every BatchNormalization layer frozen unless ``train_bn=True``. A change of ``trainable``
takes effect after ``compile()``, which both functions redo when the model was compiled.

Blocks: the backbone's layers are grouped into blocks, in order from the stem to the top:
the registry's blocks (``visionkit.backbones.block_layers``) when ``backbone=`` names one,
otherwise the ``...block<N>`` / ``stage<N>_block<N>`` / ``conv<N>_block<N>`` name prefixes
Keras applications and the visionkit zoo use. ``unfreeze(model, blocks=2)`` unfreezes the
top two. Head layers (``classifier_*``, ``predictions``, ``aux_*``, the detectors'
``det_*`` neck and head, the segmenters' ``seg_*`` decoder) are never frozen by
``freeze_backbone``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Layers a task adds on top of a backbone: classifier, detection neck/head, segmentation decoder.
HEAD_PREFIXES = ("classifier_", "predictions", "aux_", "det_", "seg_")
_BLOCK_PATTERN = re.compile(r"^(.*?block_?\d+[a-z]?)(?:_|$)")


@dataclass(frozen=True)
class ParamCounts:
    """Trainable and non-trainable parameter counts of a model."""

    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        return (
            f"trainable params: {self.trainable:,} | non-trainable params: {self.non_trainable:,}"
        )


def param_counts(model) -> ParamCounts:
    """Count the model's trainable and non-trainable weights (BN statistics are non-trainable)."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return ParamCounts(trainable, frozen)


def is_head(layer) -> bool:
    """Head layers: the classifier/detector/segmenter layers added on top of a backbone."""
    return layer.name.startswith(HEAD_PREFIXES)


def _is_batch_norm(layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def _body_layers(model) -> list:
    import keras

    return [
        layer
        for layer in model.layers
        if not is_head(layer) and not isinstance(layer, keras.layers.InputLayer)
    ]


def block_of(layer_name: str) -> str | None:
    """The block a layer belongs to by its name (``conv5_block3_1_conv`` → ``conv5_block3``)."""
    match = _BLOCK_PATTERN.match(layer_name)
    return match.group(1) if match else None


def model_blocks(model, backbone: str | None = None) -> list[tuple[str, list]]:
    """Group the non-head layers into ordered ``(block, layers)`` pairs.

    With ``backbone`` the registry's block list decides; otherwise layer names do: layers
    before the first named block (the stem) join the first block, and layers between
    blocks (a transition pooling, a stage output) join the block before them.
    """
    body = _body_layers(model)
    if backbone is not None:
        from visionkit.backbones import block_layers

        by_name = {layer.name: layer for layer in body}
        groups = [
            (block, [by_name[n] for n in names if n in by_name])
            for block, names in block_layers(model, backbone).items()
        ]
        return [(block, layers) for block, layers in groups if layers]
    groups: list[tuple[str, list]] = []
    stem: list = []
    for layer in body:
        name = block_of(layer.name)
        if name is None:
            (groups[-1][1] if groups else stem).append(layer)
        elif groups and groups[-1][0] == name:
            groups[-1][1].append(layer)
        else:
            groups.append((name, [layer]))
    if not groups:
        return [("body", stem)] if stem else []
    groups[0] = (groups[0][0], stem + groups[0][1])
    return groups


def _recompile(model, optimizer=None) -> None:
    if optimizer is None and getattr(model, "optimizer", None) is None:
        return
    import keras

    config = model.get_compile_config() if getattr(model, "compiled", False) else {}
    if optimizer is None:
        optimizer = keras.optimizers.deserialize(config["optimizer"])
    kwargs = {
        k: config.get(k)
        for k in ("loss", "loss_weights", "metrics", "weighted_metrics")
        if config.get(k) is not None
    }
    if hasattr(model, "_compile_loss") and getattr(model, "loss", None) is not None:
        kwargs["loss"] = model.loss
    model.compile(optimizer=optimizer, **kwargs)


def freeze_backbone(
    model, *, optimizer=None, recompile: bool = True, verbose: bool = True
) -> ParamCounts:
    """Freeze everything but the head; recompile (with ``optimizer`` if given; skip with
    ``recompile=False`` when the caller compiles next); print the counts."""
    for layer in model.layers:
        layer.trainable = is_head(layer)
    if recompile:
        _recompile(model, optimizer)
    counts = param_counts(model)
    if verbose:
        print(f"froze the backbone of {model.name}: {counts}")
    return counts


def unfreeze(
    model,
    *,
    blocks: int | None = None,
    from_layer: str | None = None,
    fraction: float | None = None,
    backbone: str | None = None,
    train_bn: bool = False,
    optimizer=None,
    recompile: bool = True,
    verbose: bool = True,
) -> ParamCounts:
    """Unfreeze the top of the backbone by whole blocks; BatchNorm stays frozen by default.

    Exactly one of ``blocks`` (the top N blocks; ``-1`` or a number ≥ the block count for
    all), ``from_layer`` (the block holding that layer and every block above it) or
    ``fraction`` (the top ⌈F · blocks⌉ blocks) says how much. ``backbone`` names the
    registered backbone whose blocks to use (default: blocks by layer names).
    Layers below the cut are frozen, the head stays trainable. Recompiles the model
    (keeping its loss and metrics; a fresh ``optimizer`` when given, e.g. a lower rate).
    """
    chosen = [v is not None for v in (blocks, from_layer, fraction)]
    if sum(chosen) != 1:
        raise ValueError("pass exactly one of blocks=, from_layer= or fraction=")
    groups = model_blocks(model, backbone)
    if not groups:
        raise ValueError(f"{model.name} has no backbone layers to unfreeze")
    if blocks is not None:
        count = len(groups) if blocks < 0 else min(int(blocks), len(groups))
        start = len(groups) - count
    elif fraction is not None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        start = len(groups) - math.ceil(fraction * len(groups))
    else:
        names = [[layer.name for layer in group] for _, group in groups]
        hits = [i for i, group in enumerate(names) if from_layer in group]
        if not hits:
            raise ValueError(
                f"no layer named {from_layer!r} in the backbone of {model.name}; "
                f"blocks are: {', '.join(name for name, _ in groups)}"
            )
        start = hits[0]
    for i, (_, group) in enumerate(groups):
        for layer in group:
            layer.trainable = i >= start and (train_bn or not _is_batch_norm(layer))
    for layer in model.layers:
        if is_head(layer):
            layer.trainable = True
    if recompile:
        _recompile(model, optimizer)
    counts = param_counts(model)
    if verbose:
        opened = [name for name, _ in groups[start:]]
        shown = ", ".join(opened[:3]) + (f" … ({len(opened)} blocks)" if len(opened) > 3 else "")
        bn = "trainable" if train_bn else "frozen"
        print(f"unfroze {shown or 'no blocks'} of {model.name} (BatchNorm {bn}): {counts}")
    return counts


def apply_stage(model, trainable: str, config) -> None:
    """Set what trains in a recipe stage: ``"all"``, ``"head"``, ``"top:N"`` (the top N
    backbone blocks and the head) or ``"from:N"`` (all but the first N blocks).

    ``config`` gives ``backbone`` (whose registered blocks to use), ``pretrained`` and
    ``train_bn``: BatchNorm statistics of pretrained blocks stay frozen unless
    ``train_bn``; a model trained from scratch must learn them. Does not recompile: the
    trainer compiles each stage with its own optimizer.
    """
    import keras

    kind, _, arg = trainable.partition(":")
    backbone = config.get("backbone")
    train_bn = bool(config.get("train_bn")) or not config.get("pretrained")
    if kind == "all":
        for layer in model.layers:
            layer.trainable = train_bn or not isinstance(layer, keras.layers.BatchNormalization)
    elif kind == "head":
        freeze_backbone(model, recompile=False)
    elif kind == "top":
        unfreeze(model, blocks=int(arg), backbone=backbone, train_bn=train_bn, recompile=False)
    elif kind == "from":
        total = len(model_blocks(model, backbone))
        unfreeze(
            model,
            blocks=max(0, total - int(arg)),
            backbone=backbone,
            train_bn=train_bn,
            recompile=False,
        )
    else:
        raise ValueError(f"unknown stage trainability {trainable!r}")
