"""Loading ``.keras`` files safely: Keras safe mode (no Lambda layers, no arbitrary code),
with visionkit's own registered layers made known first."""

from __future__ import annotations

import os


def register_custom_layers() -> None:
    """Import the modules whose ``@register_keras_serializable`` layers models may use."""
    import visionkit.models.layers
    import visionkit.train.schedules  # noqa: F401  (WarmupCosine in compiled models)
    from visionkit.backbones import register_keras_layers

    register_keras_layers()


def load_model(path: str | os.PathLike, *, compile: bool = True):
    """``keras.saving.load_model(path, safe_mode=True)`` with visionkit's layers registered.

    Files with Lambda layers or classes Keras does not know are refused; the error says so.
    """
    import keras

    register_custom_layers()
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ValueError as err:
        if "safe_mode" in str(err) or "Lambda" in str(err):
            raise ValueError(
                f"refused to load {path}: it contains a Lambda layer or code that safe mode does "
                "not run. If you wrote and trust this file, load it yourself with "
                "keras.saving.load_model(path, safe_mode=False)."
            ) from err
        raise
    except TypeError as err:
        if "Could not locate" in str(err) or "could not be deserialized" in str(err):
            import re

            named = re.search(r"Could not locate (?:class|function) '([^']+)'", str(err))
            what = f"class {named.group(1)!r}" if named else "a class"
            raise ValueError(
                f"refused to load {path}: it names {what} that neither Keras nor visionkit "
                "registers. If you trust the file, import the module that defines it and "
                "load it with keras.saving.load_model."
            ) from err
        raise


def load_weights_from_path(model, path: str | os.PathLike) -> None:
    """Copy weights from a ``.weights.h5`` file or a ``.keras`` model into ``model``.

    Raises WeightsNotFoundError when the file is missing, ModelError when its weights do
    not fit (another architecture, number of classes or input channels).
    """
    from visionkit.models.errors import ModelError, WeightsNotFoundError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsNotFoundError(
            f"weights file not found: {path}; pass an existing .weights.h5 or .keras file, "
            "weights='imagenet' (where the model has ImageNet weights) or weights=None"
        )
    if path.endswith(".keras"):
        source = load_model(path, compile=False)
        src, dst = source.get_weights(), model.get_weights()
        if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst, strict=False)):
            raise ModelError(
                f"weights in {path} do not fit {model.name}: the architectures differ "
                f"({len(src)} weight arrays there, {len(dst)} here; check num_classes and input_shape)"
            )
        model.set_weights(src)
        return
    if not path.endswith(".h5"):
        raise ModelError(f"weights must be a .weights.h5 or .keras file, got {path}")
    try:
        model.load_weights(path)
    except (ValueError, KeyError) as err:
        raise ModelError(f"weights in {path} do not fit {model.name}: {err}") from err
