"""The backbone registry: feature extractors that return a dict of pyramid-level feature maps.

Every backbone takes uint8-range RGB (0..255) and carries its preprocessing inside the
model, so callers never normalise images themselves. ``create_backbone(name, ...)``
builds the registered network, cuts it at its taps and returns a ``keras.Model`` whose
outputs are ``{"P2": ..., "P3": ..., "P4": ..., "P5": ...}`` (strides 4, 8, 16, 32; P2
only where the network has a stride-4 map).

Registering a backbone (what ``applications.py``, ``classic.py`` and
``efficientnet_lite.py`` do; one call per variant)::

    from visionkit.backbones.registry import register_backbone

    def build_lite0(*, input_shape, weights):   # weights is None or "imagenet"
        ...                                     # -> keras.Model taking uint8-range RGB
        return model

    register_backbone(
        "efficientnet_lite0", build_lite0,
        family="efficientnet_lite",
        paper="Tan & Le 2019, EfficientNet (Lite variants: TF model garden 2020)",
        input_size=(224, 224, 3),
        preprocessing="(x - 127) / 128, inside the model",
        preprocess_mode="lite",              # free text key for the preprocessing tests
        has_imagenet=True,
        taps={"P2": "block2b_add", "P3": ..., "P4": ..., "P5": ...},
        blocks=("stem", "block1a", ..., "top"),
    )

``register_backbone`` also works as a decorator when ``builder`` is left out. The
builder receives ``weights="imagenet"`` only when ``has_imagenet`` is true; weights from a
path are loaded by ``create_backbone`` after the taps are cut. Tap values: a layer name
(its output), ``"layer:input"`` (the tensor that feeds that layer, for maps that come out
of an unnamed op such as ConvNeXt's residual sums), or ``None`` (found by
``visionkit.backbones.taps.find_taps`` when built; for auto-named layers).

``after_load(model)``, optional, runs after weights from a path are copied in (EfficientNet
uses it to keep its fixed ImageNet normalisation statistics).

``blocks`` lists block name prefixes from input to output, used to freeze or unfreeze the
top N blocks: with ``block_boundary="start"`` a layer belongs to the block whose name is
the longest prefix of its own (``name == p`` or ``name.startswith(p + "_")``); layers that
match no block belong to the block of the layer before them (or the first block). With
``block_boundary="end"`` each name is the exact name of the layer that closes a block
(InceptionV3's ``mixed0`` … ``mixed10``, whose other layers are auto-named).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from visionkit.config import did_you_mean
from visionkit.models.errors import ModelError

LEVELS = ("P2", "P3", "P4", "P5")


@dataclass(frozen=True)
class BackboneInfo:
    """What the registry knows about one backbone."""

    name: str
    builder: Callable[..., Any]
    family: str
    paper: str
    input_size: tuple[int, int, int]
    preprocessing: str
    has_imagenet: bool
    taps: Mapping[str, str | None]
    blocks: tuple[str, ...]
    block_boundary: str = "start"
    preprocess_mode: str = ""
    min_input_size: int = 32
    source: str = ""
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    after_load: Callable[[Any], None] | None = None

    @property
    def levels(self) -> tuple[str, ...]:
        """The pyramid levels this backbone returns, finest first."""
        return tuple(level for level in LEVELS if level in self.taps)


_REGISTRY: dict[str, BackboneInfo] = {}


def register_backbone(
    name: str,
    builder: Callable[..., Any] | None = None,
    *,
    family: str,
    preprocessing: str,
    paper: str,
    input_size: tuple[int, int, int],
    has_imagenet: bool,
    taps: Mapping[str, str | None],
    blocks: tuple[str, ...] = (),
    block_boundary: str = "start",
    preprocess_mode: str = "",
    min_input_size: int = 32,
    source: str = "",
    notes: str = "",
    tags: tuple[str, ...] = (),
    after_load: Callable[[Any], None] | None = None,
):
    """Register ``builder`` as backbone ``name`` (or decorate a builder when it is omitted)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        unknown = set(taps) - set(LEVELS)
        if unknown or not taps:
            raise ValueError(f"backbone {name!r}: taps must be keyed by {LEVELS}, got {list(taps)}")
        if block_boundary not in ("start", "end"):
            raise ValueError(f"block_boundary must be 'start' or 'end', got {block_boundary!r}")
        _REGISTRY[name] = BackboneInfo(
            name=name,
            builder=fn,
            family=family,
            paper=paper,
            input_size=tuple(input_size),
            preprocessing=preprocessing,
            has_imagenet=bool(has_imagenet),
            taps={level: taps[level] for level in LEVELS if level in taps},
            blocks=tuple(blocks),
            block_boundary=block_boundary,
            preprocess_mode=preprocess_mode,
            min_input_size=int(min_input_size),
            source=source,
            notes=notes,
            tags=tuple(tags),
            after_load=after_load,
        )
        return fn

    return add if builder is None else add(builder)


def _ensure_registered() -> None:
    # Importing the family modules runs their register_backbone calls.
    from visionkit.backend import require_tensorflow_backend

    require_tensorflow_backend()
    from visionkit.backbones import applications, classic  # noqa: F401

    try:  # registers itself on import; optional while it is being written
        from visionkit.backbones import efficientnet_lite  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != "visionkit.backbones.efficientnet_lite":
            raise


def list_backbones(family: str | None = None) -> list[str]:
    """Sorted names of every registered backbone, optionally only those of one family."""
    _ensure_registered()
    return sorted(n for n, info in _REGISTRY.items() if family is None or info.family == family)


def backbone_info(name: str) -> BackboneInfo:
    """The registry entry of ``name``; unknown names raise ModelError with the closest ones."""
    _ensure_registered()
    if name not in _REGISTRY:
        raise ModelError(
            f"unknown backbone {name!r}.{did_you_mean(name, _REGISTRY)} "
            "`visionkit models` lists every registered name."
        )
    return _REGISTRY[name]


def _check_shape(info: BackboneInfo, input_shape: Any) -> tuple[int, int, int]:
    shape = tuple(input_shape) if input_shape is not None else info.input_size
    if len(shape) != 3 or shape[2] != 3:
        raise ModelError(
            f"backbone {info.name} takes RGB images: input_shape must be (height, width, 3), "
            f"got {shape!r}"
        )
    sides = [d for d in shape[:2] if d is not None]
    if sides and min(sides) < info.min_input_size:
        raise ModelError(
            f"{info.name} needs inputs of at least {info.min_input_size}×{info.min_input_size} "
            f"(got {shape[0]}×{shape[1]}); use imgsz>={info.min_input_size}"
        )
    return shape


def tap_tensor(model, spec: str):
    """The tensor a tap spec names: ``"layer"`` (its output) or ``"layer:input"``."""
    layer_name, _, port = spec.partition(":")
    for op in getattr(model, "operations", model.layers):
        if op.name == layer_name:
            return op.input if port == "input" else op.output
    raise ModelError(f"{model.name} has no layer named {layer_name!r} (tap {spec!r})")


def create_backbone(
    name: str,
    *,
    input_shape: tuple[int | None, int | None, int] | None = None,
    weights: str | None = None,
    trainable: bool = True,
):
    """Build backbone ``name`` as a ``keras.Model`` with a dict of feature-map outputs.

    Args:
        name: a name from ``list_backbones()``.
        input_shape: (H, W, 3); defaults to the backbone's own input size. Inputs are
            uint8-range RGB (0..255, float or int dtype); preprocessing is inside.
        weights: ``None`` (random initialisation), ``"imagenet"`` (published weights,
            from the Keras cache; offline and not cached raises WeightsNotFoundError
            naming the file to place), or a path to a ``.weights.h5`` file or ``.keras``
            model of this backbone.
        trainable: sets ``model.trainable``.

    Returns:
        ``keras.Model`` with outputs ``{"P3": ..., "P4": ..., "P5": ...}`` (and ``"P2"``
        where the backbone has a stride-4 map), named ``name``.
    """
    import keras

    from visionkit.backbones.taps import find_taps
    from visionkit.backbones.weights import load_weights_from_path

    info = backbone_info(name)
    shape = _check_shape(info, input_shape)
    if weights == "imagenet" and not info.has_imagenet:
        raise ModelError(
            f"backbone {name} has no published ImageNet weights in visionkit (family "
            f"{info.family}); use weights=None, a path to your own weights, or one of the "
            "keras.applications backbones (`visionkit models` lists them)."
        )
    full = info.builder(input_shape=shape, weights="imagenet" if weights == "imagenet" else None)
    auto = find_taps(full) if any(spec is None for spec in info.taps.values()) else {}
    outputs = {}
    for level, spec in info.taps.items():
        if spec is None:
            if level not in auto:
                raise ModelError(f"{name}: no {level} feature map found at input {shape}")
            spec = auto[level]
        outputs[level] = tap_tensor(full, spec)
    inputs = full.inputs[0] if len(full.inputs) == 1 else full.inputs
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None and weights != "imagenet":
        load_weights_from_path(model, weights)
        if info.after_load is not None:
            info.after_load(model)
    model.trainable = trainable
    return model


def block_layers(model, name: str | None = None) -> dict[str, list[str]]:
    """The layers of each block of a backbone model, blocks ordered from input to output.

    ``name`` defaults to ``model.name`` (``create_backbone`` names models after the
    backbone). Use the last N entries to unfreeze the top N blocks.
    """
    info = backbone_info(name or model.name)
    blocks: dict[str, list[str]] = {block: [] for block in info.blocks}
    if not info.blocks:
        return blocks
    order = {block: i for i, block in enumerate(info.blocks)}
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if info.block_boundary == "end":
        current = 0
        for layer in layers:
            blocks[info.blocks[min(current, len(info.blocks) - 1)]].append(layer.name)
            if layer.name in order:
                current = max(current, order[layer.name] + 1)
        return blocks
    current = 0
    for layer in layers:
        matches = [b for b in info.blocks if layer.name == b or layer.name.startswith(b + "_")]
        if matches:
            current = max(current, order[max(matches, key=len)])
        blocks[info.blocks[current]].append(layer.name)
    return blocks
