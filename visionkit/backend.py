"""The one backend visionkit runs on: TensorFlow (SavedModel/TFLite export needs it)."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require_tensorflow_backend() -> None:
    """Fail fast, with what to do, when Keras runs on another backend."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        import keras

        backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"visionkit needs the TensorFlow backend of Keras, but KERAS_BACKEND={backend!r}. "
            "Run with KERAS_BACKEND=tensorflow (JAX and PyTorch cannot export SavedModel/TFLite)."
        )


def import_tensorflow_quietly():
    """Import TensorFlow with its native start-up lines (oneDNN, CUDA probing) kept off stderr.

    Those lines are written by C++ code before logging is configured, so environment
    variables cannot hide them. Python errors raised by the import still show, because
    stderr is restored before they propagate. ``VISIONKIT_VERBOSE_TF=1`` keeps everything.
    """
    import sys

    quiet_tensorflow()
    if "tensorflow" in sys.modules or os.environ.get("VISIONKIT_VERBOSE_TF"):
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
