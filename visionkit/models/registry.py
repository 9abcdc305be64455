"""The model registry: each architecture variant is a small registered builder function.

Follows timm's registry: ``@register_model(...)`` records a builder with its defaults
(task, input shape, number of classes, preprocessing, paper); ``create_model(name, ...)``
fills in what the caller leaves out, builds the Keras model and optionally loads weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from visionkit.config import did_you_mean
from visionkit.models.errors import ModelError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one architecture variant."""

    name: str
    builder: Callable[..., Any]
    task: str
    family: str
    paper: str
    input_shape: tuple[int, int, int]
    num_classes: int
    preprocessing: str
    params: int
    min_input_size: int = 32
    backbone: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        doc = (self.builder.__doc__ or "").strip().splitlines()
        return doc[0] if doc else self.name


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    task: str,
    family: str,
    paper: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    preprocessing: str,
    params: int,
    min_input_size: int = 32,
    backbone: str | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers ``fn`` under its function name with its defaults.

    ``params`` is the parameter count at the defaults (all weights, BatchNorm moving
    statistics included); a test builds every model and checks it. ``backbone`` names the
    registered backbone a model is built on (None when it has its own), which decides its
    ImageNet weights and its fine-tuning blocks.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(
            name=name,
            builder=fn,
            task=task,
            family=family,
            paper=paper,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            preprocessing=preprocessing,
            params=int(params),
            min_input_size=min_input_size,
            backbone=backbone,
            tags=tuple(tags),
        )
        return fn

    return decorate


# Modules whose @register_model builders make up the zoo.
_ARCHITECTURES = (
    "visionkit.models.classic",
    "visionkit.models.yolo",
    "visionkit.models.yolov1",
    "visionkit.models.segmentation",
)


def _ensure_registered() -> None:
    # Importing the architecture modules runs their @register_model decorators.
    from visionkit.backend import require_tensorflow_backend

    require_tensorflow_backend()
    import importlib

    for module in _ARCHITECTURES:
        importlib.import_module(module)


def list_models(task: str | None = None) -> list[str]:
    """Sorted names of every registered model, optionally only those of one task."""
    _ensure_registered()
    return sorted(n for n, info in _REGISTRY.items() if task is None or info.task == task)


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; unknown names raise ModelError with the closest ones."""
    _ensure_registered()
    if name not in _REGISTRY:
        raise ModelError(
            f"unknown model {name!r}.{did_you_mean(name, _REGISTRY)} "
            "`visionkit models` lists every registered name."
        )
    return _REGISTRY[name]


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    weights: str | None = None,
    **kwargs: Any,
):
    """Build the registered model ``name`` as a ``keras.Model``.

    Args:
        name: a name from ``list_models()``.
        num_classes: output classes; defaults to the model's own (1000 for ImageNet nets).
        input_shape: (H, W, C); defaults to the model's own input size.
        weights: ``None`` (random initialisation) or a path to a ``.weights.h5`` file or a
            ``.keras`` model of the same architecture whose weights are copied in.
        **kwargs: architecture options of that builder (see its docstring).
    """
    info = model_info(name)
    shape = tuple(input_shape) if input_shape is not None else info.input_shape
    if len(shape) != 3:
        raise ModelError(f"input_shape must be (height, width, channels), got {shape!r}")
    sides = [d for d in shape[:2] if d is not None]
    smallest = min(sides) if sides else None
    if smallest is not None and (smallest <= 0 or smallest < info.min_input_size):
        raise ModelError(
            f"{name} needs inputs of at least {info.min_input_size}×{info.min_input_size} "
            f"(its pooling stages would shrink {shape[0]}×{shape[1]} to nothing); "
            f"use imgsz>={info.min_input_size}"
        )
    classes = info.num_classes if num_classes is None else int(num_classes)
    model = info.builder(num_classes=classes, input_shape=shape, **kwargs)
    if weights is not None:
        load_weights_into(model, weights)
    return model


def load_weights_into(model, weights: str) -> None:
    """Copy weights from a ``.weights.h5`` file or a ``.keras`` model into ``model``."""
    if weights == "imagenet":
        raise ModelError(
            f"{model.name} is a from-scratch teaching model with no published ImageNet weights "
            "in visionkit; use weights=None, a path to your own weights, or a pretrained "
            "backbone (`visionkit models` lists them)."
        )
    from visionkit.models.saving import load_weights_from_path

    load_weights_from_path(model, weights)
