"""What a deployment needs beside the model: ``labels.txt`` and ``preprocessing.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionkit.io import write_json, write_text

OUTPUTS = {
    "classify": {
        "saved_model": {
            "probabilities": "float32 (B, C): softmax class probabilities, columns in labels.txt order",
            "class_ids": "int32 (B,): argmax of probabilities (a line of labels.txt, from 0)",
        },
        "raw": {"probabilities": "float32 (B, C): softmax class probabilities"},
    },
    "segment": {
        "saved_model": {
            "probabilities": "float32 (B, h, w, C): per-pixel class probabilities at the input "
            "image's resolution (bilinear from the model's output)",
            "masks": "int32 (B, h, w): per-pixel class id (argmax; p > 0.5 for one channel)",
        },
        "raw": {
            "probabilities": "float32 (B, H, W, C): per-pixel probabilities at the model's "
            "input size (C = 1: sigmoid foreground probability)"
        },
    },
    "detect": {
        "saved_model": {
            "boxes": "float32 (B, N, 4): x1, y1, x2, y2 in pixels of the input image "
            "(letterbox undone)",
            "scores": "float32 (B, N): detection confidence, descending",
            "classes": "int32 (B, N): class id (a line of labels.txt, from 0)",
            "num_detections": "int32 (B,): valid rows of boxes/scores/classes",
        },
        "raw": {
            "raw": "float32 (B, A, 4*reg_max + C): the head before decoding (DFL box "
            "logits, class logits), anchors P3, P4, P5 row-major"
        },
        "tflite_nms": {
            "boxes": "float32 (1, N, 4): ymin, xmin, ymax, xmax normalised to [0, 1] of the "
            "letterboxed input (TFLite_Detection_PostProcess convention)",
            "classes": "float32 (1, N): class id (a line of labels.txt, from 0)",
            "scores": "float32 (1, N): detection confidence, descending",
            "num_detections": "float32 (1,): valid rows",
        },
    },
}


def write_labels(path: str | Path, class_names: list[str]) -> Path:
    """One class name per line, in the model's output order."""
    write_text(path, "".join(f"{name}\n" for name in class_names))
    return Path(path)


def preprocessing(
    task: str,
    size: tuple[int, int],
    model_channels: int,
    *,
    detection_nms: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """The ``preprocessing.json`` dict: input, resize method, pad value, outputs' meaning."""
    height, width = size
    letterbox = task == "detect"
    info: dict[str, Any] = {
        "task": task,
        "input": {
            "dtype": "uint8",
            "color": "RGB",
            "layout": "NHWC",
            "range": [0, 255],
            "size": [height, width],
            "channels": 3,
            "normalization": "none outside the model: feed raw pixels, the model normalises "
            "them itself" + ("; it converts RGB to grey inside" if model_channels == 1 else ""),
        },
        "resize": {
            "method": "letterbox" if letterbox else "resize",
            "interpolation": "bilinear",
            "antialias": False,
            "keep_aspect_ratio": letterbox,
            "pad_value": 114 if letterbox else None,
            "note": (
                "scale the long side to the input size, centre, pad with pad_value "
                "(extra pixel bottom/right); the SavedModel does this itself"
                if letterbox
                else "stretch to the input size (the SavedModel does this itself for any size)"
            ),
        },
        "saved_model": {
            "serving_default": {
                "input": "images: uint8 (B, h, w, 3), any batch size and image size",
                "outputs": OUTPUTS[task]["saved_model"],
            },
            "raw": {
                "input": f"images: uint8 (B, {height}, {width}, 3) at the model's input size",
                "outputs": OUTPUTS[task]["raw"],
            },
        },
        "tflite": {
            "input": f"images: uint8 (1, {height}, {width}, 3), preprocessed as above",
            "outputs": OUTPUTS[task]["tflite_nms" if task == "detect" and detection_nms else "raw"],
            "int8": "int8 weights and activations; uint8 input and float32 outputs "
            "(quantised and dequantised inside the model)",
        },
        "onnx": {
            "input": f"images: uint8 (B, {height}, {width}, 3)",
            "outputs": OUTPUTS[task]["raw"],
        },
    }
    info.update(extra)
    return info


def write_preprocessing(path: str | Path, info: dict[str, Any]) -> Path:
    write_json(path, info)
    return Path(path)
