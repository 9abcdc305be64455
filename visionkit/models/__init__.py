"""Model registry and architectures: ``list_models()``, ``create_model(name, ...)``."""

from visionkit.models.errors import ModelError, WeightsNotFoundError
from visionkit.models.registry import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "ModelError",
    "ModelInfo",
    "WeightsNotFoundError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
