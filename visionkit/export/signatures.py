"""The functions an export serves, per task, as TensorFlow graphs over uint8 images.

Every exported graph takes RGB pixels as ``uint8`` and does the rest inside: the cast to
float32 in [0, 255] (the models carry their own normalisation), the conversion to grey for
one-channel models (LeNet-5), and for ``serving_default`` the resize to the model's input.

* ``serving_fn`` (the SavedModel's ``serving_default``): uint8 (B, h, w, 3), any batch and,
  for classification and segmentation, any image size (bilinear resize to the model's
  input, as the evaluation pipeline does; skipped when the size already matches).
  classify → ``probabilities`` (B, C) float32, ``class_ids`` (B,) int32;
  segment → ``probabilities`` (B, h, w, C) and ``masks`` (B, h, w) int32 at the input
  image's resolution (probabilities resized back bilinearly, then argmax, or p > 0.5 for a
  one-channel sigmoid model); detect → see ``visionkit.export.detection``.
* ``raw_fn`` (the SavedModel's ``raw`` signature and the TFLite graph): uint8 (B, H, W, 3)
  at the model's input size → ``{RAW_OUTPUT[task]: the model's own output}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

# Name of the raw model output in the ``raw`` signature and in the TFLite files.
RAW_OUTPUT = {"classify": "probabilities", "segment": "probabilities", "detect": "raw"}
INPUT_NAME = "images"


def model_size(model) -> tuple[int, int]:
    """(H, W) of the model's input; a clear error for models without a fixed size."""
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        raise ValueError(
            f"{model.name} has no fixed input size {model.input_shape}; export needs one "
            "(TFLite requires static shapes): rebuild it with input_shape=(H, W, C)"
        )
    return int(height), int(width)


def to_model_input(images: tf.Tensor, model, *, resize: bool = True) -> tf.Tensor:
    """uint8 (B, h, w, 3) → float32 (B, H, W, C) pixels in [0, 255] for ``model``.

    Bilinear resize (no antialiasing, like ``tf.image.resize`` in the pipeline) when the
    size differs and ``resize``; grey conversion when the model takes one channel.
    """
    size = model_size(model)
    x = tf.cast(images, tf.float32)
    if resize:
        same = tf.reduce_all(tf.equal(tf.shape(x)[1:3], tf.constant(size, tf.int32)))
        x = tf.cond(same, lambda: x, lambda: tf.image.resize(x, size, method="bilinear"))
        x = tf.ensure_shape(x, [None, size[0], size[1], 3])
    if model.input_shape[-1] == 1:
        x = tf.image.rgb_to_grayscale(x)
    return x


def raw_fn(model, task: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """uint8 (B, H, W, 3) at the model's size → ``{RAW_OUTPUT[task]: model output}``."""
    name = RAW_OUTPUT[task]

    def raw(images):
        x = to_model_input(images, model, resize=False)
        return {name: tf.cast(model(x, training=False), tf.float32)}

    return raw


def classify_serving(model) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """uint8 (B, h, w, 3) → probabilities (B, C), class_ids (B,) int32."""

    def serve(images):
        probs = tf.cast(model(to_model_input(images, model), training=False), tf.float32)
        return {
            "probabilities": probs,
            "class_ids": tf.argmax(probs, axis=-1, output_type=tf.int32),
        }

    return serve


def segment_serving(model) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """uint8 (B, h, w, 3) → probabilities (B, h, w, C), masks (B, h, w) int32."""
    size = model_size(model)

    def serve(images):
        probs = tf.cast(model(to_model_input(images, model), training=False), tf.float32)
        in_size = tf.shape(images)[1:3]
        same = tf.reduce_all(tf.equal(in_size, tf.constant(size, tf.int32)))
        probs = tf.cond(
            same, lambda: probs, lambda: tf.image.resize(probs, in_size, method="bilinear")
        )
        if model.output_shape[-1] == 1:
            masks = tf.cast(probs[..., 0] > 0.5, tf.int32)
        else:
            masks = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {"probabilities": probs, "masks": masks}

    return serve


def serving_fn(model, task: str, config: dict[str, Any]) -> Callable:
    """The ``serving_default`` function of ``task`` (see the module docstring)."""
    if task == "classify":
        return classify_serving(model)
    if task == "segment":
        return segment_serving(model)
    if task == "detect":
        from visionkit.export.detection import detect_serving

        return detect_serving(model, config)
    raise ValueError(f"unknown task {task!r}: classify, detect or segment")


def serving_spec(fixed_size: tuple[int, int] | None = None, batch: int | None = None):
    """The uint8 image TensorSpec: any size, or ``fixed_size`` with ``batch`` (None = any)."""
    height, width = fixed_size if fixed_size else (None, None)
    return tf.TensorSpec([batch, height, width, 3], tf.uint8, name=INPUT_NAME)
