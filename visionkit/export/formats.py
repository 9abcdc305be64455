"""The export formats, their file names and how ``formats=`` is parsed."""

from __future__ import annotations

from collections.abc import Iterable

# format name -> path inside RUN/export/
FORMATS: dict[str, str] = {
    "saved_model": "saved_model",
    "tflite_fp32": "model_fp32.tflite",
    "tflite_fp16": "model_fp16.tflite",
    "tflite_dynamic": "model_dynamic.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}

# TFLite format -> the converter's quantisation mode (see ``visionkit.export.tflite``)
TFLITE_MODES: dict[str, str] = {
    "tflite_fp32": "fp32",
    "tflite_fp16": "fp16",
    "tflite_dynamic": "dynamic",
    "tflite_int8": "int8",
}


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"saved_model,tflite_fp32"`` or a list → the format names, in order, without repeats.

    Raises ValueError naming every unknown format and listing the valid ones.
    """
    if isinstance(formats, str):
        items = [f.strip() for f in formats.split(",")]
    else:
        items = [str(f).strip() for f in formats]
    items = [f for f in items if f]
    if not items:
        raise ValueError(f"formats is empty; choose from {', '.join(FORMATS)}")
    unknown = [f for f in items if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown export format(s) {', '.join(repr(f) for f in unknown)}; "
            f"valid formats: {', '.join(FORMATS)}"
        )
    return list(dict.fromkeys(items))
