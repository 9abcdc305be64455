"""Exports compute in float32: a model trained with mixed precision is rebuilt with float32
layers and the same weights (its float16 casts would otherwise become Flex ops in TFLite,
which the builtin runtime refuses; measured: ``FlexMul`` in a mixed_float16 ResNet-20)."""

from __future__ import annotations

from typing import Any


def is_float32(model) -> bool:
    """True when every layer computes and stores in float32."""
    for layer in _layers(model):
        policy = getattr(layer, "dtype_policy", None)
        if policy is not None and (
            policy.compute_dtype != "float32" or policy.variable_dtype != "float32"
        ):
            return False
    return True


def _layers(model):
    """Every layer of ``model``, nested models' layers included."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _layers(layer)


def _to_float32(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(
            node.get("config"), dict
        ):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {k: _to_float32(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_float32(v) for v in node]
    return node


def as_float32(model):
    """``model`` itself when it is float32 already, else a float32 copy with its weights."""
    if is_float32(model):
        return model
    import keras

    from visionkit.models.saving import register_custom_layers

    register_custom_layers()
    config = _to_float32(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config, safe_mode=True)
    copy.set_weights([w.astype("float32") for w in model.get_weights()])
    if not is_float32(copy):  # pragma: no cover - a policy form this does not know
        raise ValueError(f"could not rebuild {model.name} in float32 for export")
    return copy
