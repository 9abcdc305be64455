"""One predictor for every exported form: ``.keras``, SavedModel folder, ``.tflite``, ``.onnx``.

``load_predictor(path)(images)`` takes RGB images (B, H, W, 3) at the model's input size,
uint8 or float pixels in [0, 255] (floats are rounded to uint8 for exports, which take
uint8), and returns the raw model output as float32 NumPy: class probabilities (B, C),
segmentation probabilities (B, H, W, C) or the raw detection head (B, A, 4·reg_max + C).
Models with several outputs (a TFLite file with detection post-processing) return a dict.

TFLite files run on ``ai_edge_litert.interpreter.Interpreter`` at batch 1: a batch is run
image by image. Quantised inputs and outputs (int8/uint8 with a scale) are quantised and
dequantised here, so files converted elsewhere with int8 I/O work too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def _as_uint8(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _check_images(images: np.ndarray, size: tuple[int, int], where: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or tuple(images.shape[1:3]) != tuple(size):
        raise ValueError(
            f"{where}: expected RGB images (B, {size[0]}, {size[1]}, 3) at the model's input size, "
            f"got {images.shape}; resize them first (preprocessing.json says how)"
        )
    return images


class Predictor:
    """Callable ``predictor(images) -> np.ndarray`` (see the module docstring).

    Attributes: ``path``, ``kind`` ("keras", "saved_model", "tflite" or "onnx"),
    ``input_size`` (H, W).
    """

    kind: str = ""

    def __init__(self, path: Path, input_size: tuple[int, int]):
        self.path = Path(path)
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def __call__(self, images: np.ndarray) -> Any:
        images = _check_images(images, self.input_size, str(self.path))
        return self._run(images)

    def _run(self, images: np.ndarray) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, input_size={self.input_size})"


class KerasPredictor(Predictor):
    """A Keras model (or ``.keras`` file) under ``tf.function``; float32 input, grey
    conversion for one-channel models."""

    kind = "keras"

    def __init__(self, model, path: Path | str = "<keras model>"):
        from visionkit.export.signatures import model_size
        from visionkit.predict import compiled_forward

        super().__init__(Path(path), model_size(model))
        self.model = model
        self._forward = compiled_forward(model)
        self._grey = model.input_shape[-1] == 1

    def _run(self, images: np.ndarray) -> Any:
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(images, np.float32))
        if self._grey:
            x = tf.image.rgb_to_grayscale(x)
        return _to_numpy(self._forward(x))


class SavedModelPredictor(Predictor):
    """The ``raw`` signature of an exported SavedModel (uint8 input, any batch)."""

    kind = "saved_model"

    def __init__(self, path: Path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(str(path))
        if "raw" not in self.loaded.signatures:
            raise ValueError(
                f"{path}: this SavedModel has no 'raw' signature (signatures: "
                f"{sorted(self.loaded.signatures)}); load one written by visionkit export"
            )
        self._fn = self.loaded.signatures["raw"]
        spec = self._fn.structured_input_signature[1]["images"]
        super().__init__(path, tuple(spec.shape[1:3]))

    def _run(self, images: np.ndarray) -> Any:
        import tensorflow as tf

        return _to_numpy(self._fn(images=tf.constant(_as_uint8(images))))


class TFLitePredictor(Predictor):
    """A ``.tflite`` file on the LiteRT interpreter, one image per invoke."""

    kind = "tflite"

    def __init__(self, path: Path, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.num_threads = num_threads or os.cpu_count() or 1
        self.interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads)
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one image input, found {len(inputs)}")
        self._input = inputs[0]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 4 or shape[0] != 1:
            raise ValueError(f"{path}: expected a (1, H, W, C) input, found {shape}")
        self._outputs = self.interpreter.get_output_details()
        self._names = _output_names(self.interpreter, self._outputs)
        self._channels = shape[3]
        super().__init__(path, shape[1:3])

    def _run(self, images: np.ndarray) -> Any:
        results: list[list[np.ndarray]] = [[] for _ in self._outputs]
        for image in images:
            self.interpreter.set_tensor(self._input["index"], self._prepare(image[None]))
            self.interpreter.invoke()
            for k, detail in enumerate(self._outputs):
                results[k].append(_dequantize(self.interpreter.get_tensor(detail["index"]), detail))
        stacked = [np.concatenate(r) for r in results]
        if len(stacked) == 1:
            return stacked[0]
        return dict(zip(self._names, stacked, strict=True))

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if self._channels == 1 and image.shape[-1] == 3:  # a grey model exported elsewhere
            image = np.asarray(image, np.float32) @ np.array([0.2989, 0.587, 0.114], np.float32)
            image = image[..., None]
        scale, zero = self._input["quantization"]
        if dtype == np.float32:
            return np.asarray(image, np.float32)
        if scale and dtype in (np.int8, np.uint8, np.int16):  # quantised input
            info = np.iinfo(dtype)
            q = np.rint(np.asarray(image, np.float32) / scale + zero)
            return np.clip(q, info.min, info.max).astype(dtype)
        if dtype == np.uint8:
            return _as_uint8(image)
        return np.asarray(image).astype(dtype)


class OnnxPredictor(Predictor):
    """An ``.onnx`` file exported by visionkit (uint8 input, any batch) on onnxruntime."""

    kind = "onnx"

    def __init__(self, path: Path, num_threads: int | None = None):
        import onnxruntime as ort

        self.num_threads = num_threads or os.cpu_count() or 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        self._input = inputs[0].name
        self._uint8 = "uint8" in inputs[0].type
        super().__init__(path, tuple(int(d) for d in inputs[0].shape[1:3]))

    def _run(self, images: np.ndarray) -> Any:
        x = _as_uint8(images) if self._uint8 else np.asarray(images, np.float32)
        outputs = self.session.run(None, {self._input: x})
        names = [o.name for o in self.session.get_outputs()]
        if len(outputs) == 1:
            return np.asarray(outputs[0], np.float32)
        return dict(zip(names, outputs, strict=True))


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if scale and value.dtype in (np.int8, np.uint8, np.int16):
        return (value.astype(np.float32) - zero) * scale
    return value.astype(np.float32) if value.dtype == np.float64 else value


def _output_names(interpreter, outputs: list[dict]) -> list[str]:
    """Signature names of the outputs (``probabilities``...), else the tensor names."""
    by_index = {}
    for signature in interpreter._get_full_signature_list().values():
        by_index.update({index: name for name, index in signature["outputs"].items()})
    return [by_index.get(d["index"], d["name"]) for d in outputs]


def _to_numpy(outputs: Any) -> Any:
    if isinstance(outputs, dict):
        values = {k: np.asarray(v) for k, v in outputs.items()}
        return next(iter(values.values())) if len(values) == 1 else values
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(v) for v in outputs]
    return np.asarray(outputs)


def load_predictor(path: str | os.PathLike, *, num_threads: int | None = None) -> Predictor:
    """A :class:`Predictor` for a ``.keras`` file, a run folder (its ``model.keras``), a
    SavedModel folder (with visionkit's ``raw`` signature), a ``.tflite`` or an ``.onnx``
    file. ``num_threads`` sets the TFLite/ONNX runtime threads (default: all cores)."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return SavedModelPredictor(path)
        if (path / "model.keras").exists():
            path = path / "model.keras"
        else:
            raise FileNotFoundError(
                f"{path}: neither a SavedModel folder (saved_model.pb) nor a run folder (model.keras)"
            )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        from visionkit.models.saving import load_model

        return KerasPredictor(load_model(path, compile=False), path)
    if suffix == ".tflite":
        return TFLitePredictor(path, num_threads=num_threads)
    if suffix == ".onnx":
        return OnnxPredictor(path, num_threads=num_threads)
    raise ValueError(
        f"{path}: unknown model file; expected .keras, .tflite, .onnx or a SavedModel folder"
    )
