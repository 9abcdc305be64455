"""SavedModel export: the serving signatures of ``visionkit.export.signatures`` around a
Keras model.

The module saved is a plain ``tf.Module`` that tracks the model's TensorFlow variables
(``keras.Variable.value``) and holds one ``tf.function`` per signature. This saves every
weight once: ``keras.export.ExportArchive`` (and ``model.export``) tracked them twice in
Keras 3.15, giving SavedModels 2.6× the size of the weights. Keras 3 variables are not
TensorFlow trackables themselves: a module holding the Keras model alone saved no
weights at all (and TFLite then kept ``READ_VARIABLE`` ops with nothing to read).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from visionkit.export.signatures import model_size, raw_fn, serving_fn, serving_spec

SERVING = "serving_default"
RAW = "raw"


def save_functions(model, path: str | Path, functions: dict[str, tuple[Callable, Any]]) -> Path:
    """Save ``{signature name: (fn, input TensorSpec)}`` over ``model``'s weights to ``path``."""
    import tensorflow as tf

    module = tf.Module()
    module.model_variables = [getattr(v, "value", v) for v in model.variables]
    signatures = {}
    for name, (fn, spec) in functions.items():
        function = tf.function(fn, input_signature=[spec], autograph=False)
        setattr(module, f"fn_{name}", function)
        signatures[name] = function
    tf.saved_model.save(module, str(path), signatures=signatures)
    return Path(path)


def write_saved_model(model, task: str, path: str | Path, config: dict[str, Any]) -> Path:
    """Write the SavedModel folder ``path`` with two signatures:

    * ``serving_default``: uint8 images (B, h, w, 3), any batch and image size → the
      task's named outputs (``signatures.serving_fn``; detection letterboxes inside);
    * ``raw``: uint8 images (B, H, W, 3) at the model's input size → the raw model output,
      named ``probabilities`` (classify, segment) or ``raw`` (detect head).
    """
    size = model_size(model)
    return save_functions(
        model,
        path,
        {
            SERVING: (serving_fn(model, task, config), serving_spec()),
            RAW: (raw_fn(model, task), serving_spec(size)),
        },
    )


def write_static_saved_model(fn, model, path: str | Path, *, batch: int = 1) -> Path:
    """A SavedModel whose only signature, ``serving_default``, is ``fn`` on uint8
    (batch, H, W, 3) images at the model's size: the source of a TFLite conversion
    (TFLite needs static shapes; ``from_saved_model`` keeps the signature's names and the
    ``experimental_implements`` functions that become TFLite custom ops)."""
    return save_functions(model, path, {SERVING: (fn, serving_spec(model_size(model), batch))})
