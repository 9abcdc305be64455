"""TFLite conversion (fp32, fp16, dynamic-range, full int8) and the builtin-ops check.

The converter reads a SavedModel with one static signature (uint8 (1, H, W, 3) images: see
``saved_model.write_static_saved_model``), so every file takes uint8 RGB pixels at the
model's input size and returns float32 outputs:

* ``fp32``: float weights and activations;
* ``fp16``: float16 weights (dequantised to float32 at load), float32 activations;
* ``dynamic``: int8 weights, float activations (int8 kernels where the runtime has them);
* ``int8``: int8 weights and activations, calibrated on a representative dataset; the
  uint8 input is cast and quantised inside, outputs are dequantised to float32. Ops under
  the name scopes given as ``float_scopes`` stay float32 (selective quantisation through
  ``tf.lite.experimental.QuantizationDebugger``): detection keeps its box decoding float,
  where int8 steps of a pixel or more cost mAP (raccoon: mAP@0.5 drop 0.045 fully int8,
  0.004 with the decoding float, at the same speed).

Ops: conversion allows TensorFlow (Flex) ops only so that :func:`check_builtin_ops` can name
every one of them; the export then fails, as the TFLite runtime without the Flex delegate
refuses them (DESIGN.md: a dynamic input shape silently produced ``FlexConv2D``). The one
custom op accepted is ``TFLite_Detection_PostProcess``, which the runtime ships.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

MODES = ("fp32", "fp16", "dynamic", "int8")
ALLOWED_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})


class UnsupportedOpsError(RuntimeError):
    """A converted model needs ops the builtin TFLite runtime does not have."""


def convert_saved_model(
    saved_model: str | Path,
    mode: str = "fp32",
    *,
    representative: Callable[[], Iterable[dict[str, np.ndarray]]] | None = None,
    allow_custom_ops: bool = False,
    float_scopes: Iterable[str] = (),
) -> bytes:
    """Convert the ``serving_default`` signature of ``saved_model`` to a TFLite flatbuffer.

    ``representative`` (required for ``int8``) yields ``{input_name: array}`` examples,
    each of the signature's shape and dtype (uint8 (1, H, W, 3) here); ~100 real training
    images are enough. ``allow_custom_ops`` lets the converter emit custom ops (detection
    post-processing). ``float_scopes``: with ``int8``, the ops whose names lie under these
    ``tf.name_scope`` names stay float32. The result is not yet checked: call
    :func:`check_builtin_ops`.
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}: one of {', '.join(MODES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=["serving_default"]
    )
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset (calibration images)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    converter.allow_custom_ops = allow_custom_ops
    scopes = tuple(float_scopes)
    if mode == "int8" and scopes:
        converter.target_spec.supported_ops = [
            builtins,
            tf.lite.OpsSet.TFLITE_BUILTINS,  # the float ops left out of quantisation
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
        return _int8_keeping_float(converter, saved_model, scopes, representative)
    converter.target_spec.supported_ops = [builtins, tf.lite.OpsSet.SELECT_TF_OPS]
    with warnings.catch_warnings():
        # the calibrator runs tf.lite.Interpreter, which warns that it is deprecated
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return bytes(converter.convert())


def _int8_keeping_float(converter, saved_model, scopes: tuple[str, ...], representative) -> bytes:
    """Full-integer conversion with every tensor named under ``scopes`` left float32."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    float_model = convert_saved_model(
        saved_model, "fp32", allow_custom_ops=converter.allow_custom_ops
    )
    names = [t["name"] for t in Interpreter(model_content=float_model).get_tensor_details()]
    keep = [n for n in names if any(f"{scope}/" in n for scope in scopes)]
    if not keep:
        raise ValueError(f"no tensor of {saved_model} lies under the name scopes {scopes}")

    def dataset():
        for example in representative():
            yield list(example.values())

    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=keep, fully_quantize=True
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset, debug_options=options
        )
        return bytes(debugger.get_nondebug_quantized_model())


def tflite_ops(content: bytes) -> list[str]:
    """Sorted names of the operators a TFLite flatbuffer uses (builtin names such as
    ``CONV_2D``; custom ops by their custom code, e.g. ``FlexConv2D``)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(content, 0)
    used: set[int] = set()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        used.update(graph.Operators(i).OpcodeIndex() for i in range(graph.OperatorsLength()))
    ops = set()
    for index in used:
        code = model.OperatorCodes(index)
        # the deprecated int8 field holds codes < 127; the int32 field the rest
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.add((code.CustomCode() or b"?").decode())
        else:
            ops.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(ops)


def unsupported_ops(
    ops: Iterable[str], allowed_custom: Iterable[str] = ALLOWED_CUSTOM_OPS
) -> list[str]:
    """The ops of ``ops`` a builtin-only runtime lacks: ``Flex*`` and custom ops other than
    ``allowed_custom`` (builtin op names are upper case)."""
    allowed = set(allowed_custom)
    return sorted(
        op for op in ops if op not in allowed and (op.startswith("Flex") or not op.isupper())
    )


def check_builtin_ops(
    content: bytes, where: str, allowed_custom: Iterable[str] = ALLOWED_CUSTOM_OPS
) -> list[str]:
    """The ops of ``content``; UnsupportedOpsError naming every Flex/custom op otherwise."""
    ops = tflite_ops(content)
    bad = unsupported_ops(ops, allowed_custom)
    if bad:
        raise UnsupportedOpsError(
            f"{where}: the converted model needs ops the TFLite runtime does not have: "
            f"{', '.join(bad)}. Flex ops come from TensorFlow ops without a TFLite kernel "
            "(or from dynamic shapes); export a model whose layers convert to builtin ops, "
            "or leave this format out of formats=."
        )
    return ops
