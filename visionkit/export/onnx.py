"""ONNX export of the SavedModel's ``raw`` signature with tf2onnx (optional dependency).

The ONNX graph takes uint8 images (B, H, W, 3) at the model's input size, any batch, and
returns the raw model output (same names as the ``raw`` signature). Run it with
``onnxruntime`` (``visionkit.export.runtime.load_predictor``). The conversion runs
tf2onnx's command line in a child process: its in-process API cannot take the signatures
of a loaded Keras 3 SavedModel.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

OPSET = 17


def convert_onnx(saved_model: str | Path, path: str | Path, *, opset: int = OPSET) -> Path:
    """Convert ``saved_model``'s ``raw`` signature to ``path`` (an ``.onnx`` file)."""
    if importlib.util.find_spec("tf2onnx") is None:
        raise ImportError(
            "formats=onnx needs tf2onnx and onnxruntime: pip install tf2onnx onnxruntime"
        )
    command = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--saved-model",
        str(saved_model),
        "--signature_def",
        "raw",
        "--tag",
        "serve",
        "--opset",
        str(opset),
        "--output",
        str(path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not Path(path).exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"ONNX conversion of {saved_model} failed (tf2onnx):\n{tail}")
    return Path(path)
