"""Export trained models to SavedModel, TFLite (fp32, fp16, dynamic-range, int8) and ONNX,
check them against the Keras model, and run any of them with one predictor.

``export_run(RUN, ["saved_model", "tflite_fp32"])`` writes ``RUN/export/`` (atomically):
the formats, ``labels.txt``, ``preprocessing.json`` and ``report.json``.
``load_predictor(PATH)(images)`` runs a ``.keras`` file, SavedModel folder, ``.tflite`` or
``.onnx`` file on uint8 RGB images at the model's input size and returns the raw outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visionkit.export.formats import FORMATS, parse_formats

if TYPE_CHECKING:  # heavy imports (TensorFlow) only when used
    from visionkit.export.exporter import export_run
    from visionkit.export.runtime import Predictor, load_predictor
    from visionkit.export.tflite import UnsupportedOpsError

__all__ = [
    "FORMATS",
    "Predictor",
    "UnsupportedOpsError",
    "export_run",
    "load_predictor",
    "parse_formats",
]

_LAZY = {
    "export_run": "visionkit.export.exporter",
    "Predictor": "visionkit.export.runtime",
    "load_predictor": "visionkit.export.runtime",
    "UnsupportedOpsError": "visionkit.export.tflite",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'visionkit.export' has no attribute {name!r}")
