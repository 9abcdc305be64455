"""Running models over data: one loop for validation and prediction, and Grad-CAM.

``run_model`` calls the model under ``tf.function`` batch by batch over a ``tf.data``
pipeline with a progress bar, in constant memory (only each batch's outputs are kept).
Measured on EfficientNet-Lite0 (docs/benchmarks.md) the loop alone equals ``model.predict``
(Keras 3 already compiles ``predict``); with BatchNorm folded and each batch run as two
half batches side by side (``fold=True``, what val and predict use; long passes also
freeze the weights into the graph) it is about 2× ``model.predict``, JPEG decoding
included.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

EXPORTED_SUFFIXES = (".tflite", ".onnx")


def is_exported(path: str | Path) -> bool:
    """True for a SavedModel folder, a ``.tflite`` or an ``.onnx`` file."""
    path = Path(path)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        return True
    return path.is_dir() and (path / "saved_model.pb").exists()


def exported_run_config(path: str | Path) -> dict[str, Any]:
    """The config of the run an export came from (``RUN/export/FILE`` → ``RUN/config.yaml``),
    with ``class_names`` from the export's ``labels.txt`` when the run is not there."""
    import yaml

    path = Path(path)
    folder = path if path.is_dir() and (path / "labels.txt").exists() else path.parent
    config: dict[str, Any] = {}
    for candidate in (folder.parent / "config.yaml", folder / "config.yaml"):
        if candidate.exists():
            config = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
            break
    labels = folder / "labels.txt"
    if labels.exists():
        config["class_names"] = [line for line in labels.read_text().splitlines() if line]
    return config


class ExportedModel:
    """An exported model (SavedModel, TFLite, ONNX) through the few attributes the val and
    predict commands use: ``input_shape`` (None, H, W, 3), ``output_shape`` (None when the
    file ends in detection post-processing: ``postprocessed``), and calls on uint8-range
    float images at the input size returning NumPy (``visionkit.export.load_predictor``)."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        from visionkit.export.runtime import load_predictor

        self.path = Path(path)
        self.name = self.path.name
        self.predictor = load_predictor(path, num_threads=num_threads)
        height, width = self.predictor.input_size
        self.input_shape = (None, height, width, 3)
        probe = self.predictor(np.zeros((1, height, width, 3), np.uint8))
        self.postprocessed = isinstance(probe, dict)
        self.output_shape = None if self.postprocessed else (None, *np.asarray(probe).shape[1:])

    def __call__(self, images, training: bool = False):
        return self.predictor(np.asarray(images))


def compiled_forward(
    model, *, fold: bool = False, freeze: bool = False, halves: bool | None = None
):
    """``model(x, training=False)`` for one image tensor, compiled once per image size for
    any batch size (``PerImageSize``; an ``ExportedModel`` is returned as it is).

    ``fold=True`` runs an inference-only copy (it does not follow later weight updates)
    with BatchNormalization folded into the convolutions (``visionkit.models.fold``): the
    same outputs to float rounding, about 1.7× the rate of the model as trained on these
    CPUs. ``freeze=True`` also freezes the weights into the graph as constants
    (``FrozenForward``; models of one image input): 3–6 % more on EfficientNet-Lite0,
    1–5 % on MobileNetV2, for a one-off ~1 s (Lite0) to ~4 s (ResNet-50) per input
    size, so ``run_model`` freezes only long passes (docs/benchmarks.md, Throughput).
    ``halves`` (default: ``fold``) runs each batch as two half batches side by side
    (``in_halves``): the same outputs, 2–14 % faster for mobile backbones on 2 cores.
    Inputs other than one tensor of rank ≥ 1 run a plain ``tf.function`` (``fallback``).
    """
    import tensorflow as tf

    if isinstance(model, ExportedModel):
        return model
    if fold:
        from visionkit.models.fold import fold_batchnorm

        model = fold_batchnorm(model)
    halves = fold if halves is None else halves

    def call(images):
        return model(images, training=False)

    # one trace for both halves (a slice has no static batch size): tracing the model
    # twice into the graph would add ~0.2 s (Lite0) to every input size
    traced_once = tf.function(call) if halves else call

    def whole_or_halves(images):
        if halves and not tf.nest.is_nested(images):
            return in_halves(traced_once, images)
        return call(images)

    # past PerImageSize's few input sizes: one function that relaxes its input shape
    relaxed = tf.function(whole_or_halves, reduce_retracing=True)
    # after inlining, the optimiser may hold a frozen graph's constants once per half
    cap = FREEZE_MAX_BYTES // 2 if halves else FREEZE_MAX_BYTES
    if freeze and _weight_bytes(model) <= cap:
        return FrozenForward(tf.function(call), fallback=relaxed, halves=halves)
    whole = traced_once if halves else None
    return PerImageSize(tf.function(whole_or_halves), fallback=relaxed, whole=whole)


def in_halves(call, images):
    """``call(images)`` computed as ``call`` on the first and on the second half of the
    batch, concatenated; for use inside a ``tf.function``.

    The two calls are independent ops of one graph, which TensorFlow's executor runs side
    by side: on 2 cores that fills the gaps each op leaves between its parallel chunks and
    overlaps memory-bound layers with compute-bound ones. Measured (docs/benchmarks.md,
    Throughput; ``bench/forward_halves.py``): EfficientNet-Lite0 at batch 32 1.06–1.14×,
    MobileNetV2 1.02–1.08×, YOLO and U-Net-Lite0 detectors and segmenters 1.02–1.07×,
    ResNet-50, the classic U-Net and DeepLabV3+ 1.00×; the outputs were bit-identical.
    ``call`` must map each image independently (inference) and return batch-major outputs
    (a tensor or a nest). A batch of one goes to both halves (the second result is
    dropped), so no half is ever empty (oneDNN's depthwise convolution fails on an empty
    batch) and no branch is needed.
    """
    import tensorflow as tf

    size = tf.shape(images)[0]
    upper = (size + 1) // 2
    start = tf.minimum(upper, size - 1)  # = upper, except for a batch of one
    first, second = call(images[:upper]), call(images[start:])
    return tf.nest.map_structure(lambda a, b: tf.concat([a, b[upper - start :]], 0), first, second)


FREEZE_MAX_BYTES = 1 << 30  # a frozen graph is one protocol buffer, which caps at 2 GiB
# freezing costs ~1 s once for Lite0 and saves ~9 ms a batch of 32: it pays after ~110
# batches, so passes of at least this many batches freeze (more than half the gain kept)
FREEZE_MIN_BATCHES = 200


def _weight_bytes(model) -> int:
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)


class PerImageSize:
    """A ``tf.function`` of one image tensor called through one graph per (dtype, H, W, C)
    of its input, each traced for any batch size.

    Why: ``reduce_retracing`` traces the first batch at its exact size and traces again
    for the smaller last batch of a pass (about 0.4 s for EfficientNet-Lite0, more for
    larger models, in every val and predict command). Here the first call already traces
    for (None, H, W, C). After ``max_graphs`` input signatures, further ones run
    ``fallback`` (a ``reduce_retracing`` function) instead, as do inputs that are not one
    tensor of known rank ≥ 1. Calls inside a ``tf.function`` trace work too (the graph is
    built eagerly, under ``tf.init_scope``). Building is locked: threads share the graphs.
    ``whole`` (optional) computes the same on the whole batch: batches known to hold one
    image run it, where ``in_halves`` would compute the image twice.
    """

    def __init__(self, function, fallback=None, max_graphs: int = 4, whole=None):
        self.function = function
        self.fallback = fallback or function
        self.max_graphs = max_graphs
        self.whole = whole
        self._graphs: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def __call__(self, images):
        import tensorflow as tf

        if tf.nest.is_nested(images):
            return self.fallback(images)
        images = tf.convert_to_tensor(images)
        if images.shape.rank in (None, 0):
            return self.fallback(images)
        key = (images.dtype, tuple(images.shape[1:]))
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None and len(self._graphs) < self.max_graphs:
                spec = tf.TensorSpec([None, *images.shape[1:]], images.dtype)
                with tf.init_scope():
                    entry = self._graphs[key] = self._build(spec)
        if entry is None:
            return self.fallback(images)
        graph, single, structure = entry
        if single is not None and images.shape[0] == 1:
            graph = single
        outputs = graph(images)
        return outputs if structure is None else tf.nest.pack_sequence_as(structure, outputs)

    def _build(self, spec) -> tuple:
        """(a callable for inputs of ``spec``, one for a batch of one or None, the
        structure to repack their flat outputs into, or None when they return them
        structured)."""
        graph = self.function.get_concrete_function(spec)
        # the halves' own trace of the model, for (None, H, W, C): found, not retraced
        single = self.whole.get_concrete_function(spec) if self.whole is not None else None
        return graph, single, None


class FrozenForward(PerImageSize):
    """A ``PerImageSize`` whose graphs have the variables they read turned into graph
    constants.

    Why: TensorFlow's oneDNN convolutions reorder a variable filter into their blocked
    layout at every call (about 4 % of an EfficientNet-Lite0 step at batch 32); a constant
    filter is reordered once and cached. Outputs keep the function's structure (a tensor,
    tuple or dict) and equal its outputs to float rounding. Each frozen graph holds a copy
    of the weights, hence the cap on input signatures (``max_graphs``; past it the
    unfrozen ``fallback`` runs). ``halves=True`` calls each frozen graph on the two halves
    of a batch side by side (``in_halves``).

    One caveat: the graph optimiser drops an all-zero constant bias and, with it, the
    fusion of bias and activation into the convolution, so an untrained model (every
    folded bias zero) runs slower frozen; trained models are not affected.
    """

    def __init__(self, function, fallback=None, max_graphs: int = 4, halves: bool = False):
        super().__init__(function, fallback, max_graphs)
        self.halves = halves

    def _build(self, spec) -> tuple:
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        concrete = self.function.get_concrete_function(spec)
        frozen = convert_variables_to_constants_v2(concrete)
        if not self.halves:
            return frozen, None, concrete.structured_outputs
        # one frozen graph called on each half (the optimiser's inlining may copy its
        # constants: compiled_forward halves the size cap for this), and alone on one image
        halved = tf.function(lambda x: in_halves(frozen, x), input_signature=[spec])
        return halved.get_concrete_function(), frozen, concrete.structured_outputs


TTA_SYMMETRIES = ("hflip", "vflip", "transpose")


def flip_averaged(forward, symmetries: tuple[str, ...] = TTA_SYMMETRIES):
    """Test-time augmentation for dense outputs: ``forward`` maps (B, H, W, 3) images to
    (B, H, W, C) probabilities; the result averages its outputs over the image as given
    and every combination of the named ``symmetries`` (``hflip`` left-right, ``vflip``
    up-down, ``transpose`` rows and columns swapped, square inputs only), each undone
    before averaging. All three: the 8 symmetries of the square (the 4 flips on oblong
    inputs), 8× (4×) the forward passes; ``("hflip",)``: 2×. The class probabilities stay
    normalised. Average only over symmetries that both the model and the labels respect:
    on the membrane benchmark ``hflip`` gains and ``vflip`` loses, even for a model trained
    upside down too, because the labels sit 0.6 px above the membranes they trace, so an
    up-down flip moves the answer 1.2 px off them (docs/benchmarks.md).
    """
    import tensorflow as tf

    unknown = sorted(set(symmetries) - set(TTA_SYMMETRIES))
    if unknown:
        raise ValueError(f"unknown symmetries {unknown}: use {', '.join(TTA_SYMMETRIES)}")

    def choices(name: str) -> tuple[bool, ...]:
        return (False, True) if name in symmetries else (False,)

    def flip(x, lr: bool, ud: bool):  # each flip is its own inverse; the two commute
        x = tf.reverse(x, axis=[2]) if lr else x
        return tf.reverse(x, axis=[1]) if ud else x

    def transpose(x, tr: bool):
        return tf.transpose(x, (0, 2, 1, 3)) if tr else x

    def undone(images, tr: bool, lr: bool, ud: bool):
        """The output for the transformed image, mapped back to the image's frame."""
        output = forward(flip(transpose(images, tr), lr, ud))
        return transpose(flip(tf.cast(output, tf.float32), lr, ud), tr)

    def averaged(images):
        images = tf.convert_to_tensor(images)
        square = images.shape[1] is not None and images.shape[1] == images.shape[2]
        outputs = [
            undone(images, tr, lr, ud)
            for tr in (choices("transpose") if square else (False,))
            for lr in choices("hflip")
            for ud in choices("vflip")
        ]
        return tf.add_n(outputs) / float(len(outputs))

    return averaged


def run_model(
    model,
    dataset,
    *,
    progress: bool = True,
    desc: str = "predict",
    forward=None,
    fold: bool = False,
) -> Iterator[tuple[Any, tuple]]:
    """Yield ``(outputs, rest)`` per batch: the model's outputs as NumPy (nested like the
    model's outputs) and the batch's other elements (labels, paths...) as NumPy.

    ``forward`` defaults to ``compiled_forward(model, fold=fold)``, with the weights also
    frozen when ``fold`` is set and the dataset has ``FREEZE_MIN_BATCHES`` batches or more."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    cardinality = int(dataset.cardinality())
    total = cardinality if cardinality >= 0 else None
    if forward is None:
        freeze = fold and cardinality >= FREEZE_MIN_BATCHES
        forward = compiled_forward(model, fold=fold, freeze=freeze)
    for batch in tqdm(
        dataset, total=total, desc=desc, unit="batch", disable=not progress, leave=False
    ):
        images, *rest = batch if isinstance(batch, tuple) else (batch,)
        outputs = forward(images)
        yield (
            tf.nest.map_structure(_numpy, outputs),
            tuple(tf.nest.map_structure(_numpy, r) for r in rest),
        )


def _numpy(value) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def last_conv_layer(model) -> str:
    """Name of the last layer with a 4-D (B, H, W, C) output: where Grad-CAM looks."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if (
            shape is not None
            and len(shape) == 4
            and type(layer).__name__ not in ("InputLayer", "Rescaling")
        ):
            return layer.name
    raise ValueError(f"{model.name} has no 4-D feature map for Grad-CAM")


def grad_cam(
    model, images: np.ndarray, class_index: np.ndarray | None = None, layer: str | None = None
) -> np.ndarray:
    """Grad-CAM heatmaps (Selvaraju et al. 2017), (N, H, W) in [0, 1] at the input size.

    The feature map of ``layer`` (default: the last 4-D layer) is weighted by the spatial
    mean of the gradient of the class's pre-softmax score (a softmax output saturates and
    would flatten the map), summed over channels and passed through ReLU. ``class_index``
    defaults to each image's top class.
    """
    import keras
    import tensorflow as tf

    layer_name = layer or last_conv_layer(model)
    head = (
        model.get_layer("predictions")
        if "predictions" in {lay.name for lay in model.layers}
        else None
    )
    probe = keras.Model(
        model.inputs,
        [model.get_layer(layer_name).output, head.input if head is not None else model.output],
    )
    x = tf.convert_to_tensor(images, dtype=tf.float32)
    with tf.GradientTape() as tape:
        features, before_head = probe(x, training=False)
        tape.watch(features)
        if isinstance(head, keras.layers.Dense):
            scores = tf.matmul(tf.cast(before_head, head.kernel.dtype), head.kernel) + head.bias
        else:  # an Activation head (NiN) takes the scores themselves; otherwise the output
            scores = before_head
        if class_index is None:
            class_index = tf.argmax(scores, axis=-1)
        score = tf.gather(scores, tf.cast(class_index, tf.int32), axis=1, batch_dims=1)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, weights.dtype), axis=-1))
    cam = cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + 1e-8)
    cam = tf.image.resize(cam[..., None], tf.shape(x)[1:3], method="bilinear")[..., 0]
    return cam.numpy()
