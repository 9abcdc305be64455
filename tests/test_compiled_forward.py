"""The forward pass of val and predict (``visionkit.predict.compiled_forward``): with
``fold=True`` BatchNorm is folded, with ``freeze=True`` the weights are frozen into the
graph as constants (``run_model`` freezes long passes only), and by default each batch
runs as two half batches side by side (``in_halves``); the outputs keep their structure
and equal the trained model's to float rounding."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from batchnorm_statistics import random_statistics

from visionkit import predict
from visionkit.models import create_model
from visionkit.models.classifier import image_classifier
from visionkit.predict import FrozenForward, PerImageSize, compiled_forward, in_halves


def _assert_close(got, expected) -> None:
    """Equal to float rounding, relative to the output's scale: folding changes the order
    of the sums, and raw detector outputs reach tens where probabilities stay below 1.
    Seen between runs: up to 1.2e-5 on the segmenter's probabilities, 4.3e-5 on the
    detector's outputs of 18; an unfolded BatchNorm with these statistics moves outputs by
    tenths."""
    got, expected = np.asarray(got), np.asarray(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()))


def _images(batch: int, size: int) -> np.ndarray:
    return np.random.default_rng(batch).integers(0, 256, (batch, size, size, 3)).astype("float32")


def _lite0(size: int) -> keras.Model:
    return image_classifier("efficientnet_lite0", num_classes=3, input_shape=(size, size, 3))


@pytest.mark.parametrize(
    ("build", "size"),
    [
        (_lite0, 64),
        (lambda s: create_model("yolo_n", num_classes=3, input_shape=(s, s, 3)), 64),
        (lambda s: create_model("unet_lite0", num_classes=3, input_shape=(s, s, 3)), 64),
    ],
    ids=["classifier", "detector", "segmenter"],
)
def test_folded_and_frozen_forward_equals_the_model(build, size):
    model = random_statistics(build(size))
    forward = compiled_forward(model, fold=True, freeze=True)
    assert isinstance(forward, FrozenForward)
    for batch in (3, 2):  # another batch size reuses the frozen graph
        x = _images(batch, size)
        expected = model(x, training=False)
        got = forward(tf.constant(x))
        assert tf.nest.map_structure(lambda t: t.shape, got) == tf.nest.map_structure(
            lambda t: t.shape, expected
        )
        for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(expected), strict=True):
            _assert_close(a, b)
    assert len(forward._graphs) == 1


def test_frozen_graph_holds_no_variables():
    """The point of freezing: the convolutions read constant filters, not variables."""
    model = _lite0(32)
    forward = compiled_forward(model, fold=True, freeze=True, halves=False)
    forward(tf.constant(_images(1, 32)))
    ((frozen, _, _),) = forward._graphs.values()
    ops = {op.type for op in frozen.graph.get_operations()}
    assert "Conv2D" in ops or "DepthwiseConv2dNative" in ops
    assert not ops & {"ReadVariableOp", "VarHandleOp"}
    assert not frozen.variables
    halved = compiled_forward(model, fold=True, freeze=True)  # calls a frozen graph twice
    halved(tf.constant(_images(2, 32)))
    ((frozen, _, _),) = halved._graphs.values()
    assert not frozen.variables and not frozen.captured_inputs


def _fully_convolutional() -> keras.Model:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    return random_statistics(keras.Model(inputs, keras.layers.ReLU()(x)))


def test_frozen_forward_follows_the_input_signature():
    """One frozen graph per (dtype, H, W, C): a fully convolutional model at two sizes."""
    model = _fully_convolutional()
    forward = compiled_forward(model, fold=True, freeze=True)
    for size in (8, 12, 8):
        x = _images(2, size)
        _assert_close(forward(x), model(x, training=False))
    assert sorted(key[1] for key in forward._graphs) == [(8, 8, 3), (12, 12, 3)]
    # each graph is frozen for its own size, not a relaxed (None, None, None, 3) trace
    shapes = sorted(frozen.inputs[0].shape.as_list() for frozen, _, _ in forward._graphs.values())
    assert shapes == [[None, 8, 8, 3], [None, 12, 12, 3]]


def test_input_signatures_past_the_limit_run_unfrozen():
    forward = compiled_forward(_fully_convolutional(), fold=True, freeze=True)
    forward.max_graphs = 2
    for size in (8, 12, 16):
        x = _images(1, size)
        _assert_close(forward(x), forward.fallback(x))
    assert sorted(key[1][0] for key in forward._graphs) == [8, 12]


def test_uint8_and_float_images_get_their_own_frozen_graphs():
    model = _fully_convolutional()
    forward = compiled_forward(model, fold=True, freeze=True)
    x = _images(2, 8)
    for images in (x.astype("uint8"), x):
        _assert_close(forward(images), model(x, training=False))
    assert sorted(key[0].name for key in forward._graphs) == ["float32", "uint8"]


def test_dict_outputs_keep_their_structure_also_inside_a_tf_function():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    model = random_statistics(keras.Model(inputs, {"map": x, "pooled": pooled}))
    forward = compiled_forward(model, fold=True, freeze=True)
    images = _images(2, 8)
    expected = model(images, training=False)
    got = forward(images)
    assert isinstance(forward, FrozenForward) and set(got) == {"map", "pooled"}
    for key in got:
        _assert_close(got[key], expected[key])
    traced = tf.function(lambda t: forward(t)["pooled"])(tf.constant(images))
    _assert_close(traced, expected["pooled"])


def test_models_over_the_freezing_cap_keep_their_variables(monkeypatch):
    monkeypatch.setattr(predict, "FREEZE_MAX_BYTES", 0)
    model = _lite0(32)
    forward = compiled_forward(model, fold=True, freeze=True)
    assert not isinstance(forward, FrozenForward)
    x = _images(2, 32)
    _assert_close(forward(x), model(x, training=False))


def test_unfolded_forward_follows_later_weight_updates():
    """Without ``fold`` the forward reads the model's variables (the training metrics
    pass the training model this way)."""
    model = _lite0(32)
    forward = compiled_forward(model)
    x = _images(1, 32)
    before = forward(x).numpy()
    kernel = model.layers[-1].kernel
    kernel.assign(kernel * 0 + 0.5)
    after = forward(x).numpy()
    assert not np.allclose(before, after)
    _assert_close(after, model(x, training=False))


@pytest.mark.parametrize(
    ("fold", "batches", "cardinality_known", "frozen"),
    [
        (True, 3, True, True),
        (True, 2, True, False),
        (True, 3, False, False),
        (False, 3, True, False),
    ],
    ids=["long-pass", "short-pass", "unknown-length", "not-folded"],
)
def test_run_model_freezes_only_long_folded_passes(
    monkeypatch, fold, batches, cardinality_known, frozen
):
    """Freezing costs about a second once, so only passes of ``FREEZE_MIN_BATCHES``
    batches or more (3 here) freeze; a pass of unknown length does not."""
    monkeypatch.setattr(predict, "FREEZE_MIN_BATCHES", 3)
    model = _fully_convolutional()
    data = tf.data.Dataset.from_tensor_slices(_images(batches, 8)).batch(1)
    if not cardinality_known:
        data = data.filter(lambda x: True)
    seen = []
    real = predict.compiled_forward

    def spy(model, **kwargs):
        seen.append(kwargs)
        return real(model, **kwargs)

    monkeypatch.setattr(predict, "compiled_forward", spy)
    outputs = [out for out, _ in predict.run_model(model, data, progress=False, fold=fold)]
    assert seen == [{"fold": fold, "freeze": frozen}]
    _assert_close(np.concatenate(outputs), model(_images(batches, 8), training=False))


def test_in_halves_calls_each_half_and_concatenates_the_structure():
    """Called eagerly here, so that the calls' batch sizes can be recorded."""
    sizes = []

    def call(images):
        sizes.append(images.shape[0])  # None when traced
        return {"sum": tf.reduce_sum(images, axis=[1, 2, 3]), "first": images[:, 0, 0, :]}

    images = tf.constant(_images(5, 4))
    got = in_halves(call, images)
    assert sizes == [3, 2]
    expected = call(images)
    for key in ("sum", "first"):
        np.testing.assert_array_equal(got[key], expected[key])
    for batch, halves in ((4, [2, 2]), (2, [1, 1]), (1, [1, 1])):  # never an empty half
        sizes.clear()
        got = in_halves(call, images[:batch])
        assert sizes == halves
        np.testing.assert_array_equal(got["sum"], expected["sum"][:batch])
    traced = tf.function(lambda t: in_halves(call, t)["sum"])
    for batch in (1, 4, 5):
        np.testing.assert_array_equal(traced(images[:batch]), expected["sum"][:batch])


@pytest.mark.parametrize("freeze", [False, True], ids=["variables", "frozen"])
def test_halves_give_the_whole_batch_outputs(freeze):
    model = random_statistics(_lite0(32))
    halves = compiled_forward(model, fold=True, freeze=freeze)
    whole = compiled_forward(model, fold=True, freeze=freeze, halves=False)
    for batch in (1, 2, 5):
        x = tf.constant(_images(batch, 32))
        _assert_close(halves(x), whole(x))
        _assert_close(halves(x), model(x, training=False))


def test_folded_forwards_run_in_halves_by_default(monkeypatch):
    calls = []
    real = predict.in_halves

    def spy(call, images):
        calls.append(images.shape[0])
        return real(call, images)

    monkeypatch.setattr(predict, "in_halves", spy)
    model = _fully_convolutional()
    x = _images(4, 8)
    compiled_forward(model)(x)
    compiled_forward(model, fold=True, halves=False)(x)
    assert calls == []
    compiled_forward(model, fold=True)(x)
    compiled_forward(model, fold=True, freeze=True)(x)
    assert len(calls) == 2


def test_one_trace_per_image_size_serves_every_batch_size():
    """A pass's smaller last batch must not trace the model again (``reduce_retracing``
    would: ~0.4 s for Lite0 in every command)."""
    traces = []

    def double(images):
        traces.append(tuple(images.shape))
        return images * 2

    forward = PerImageSize(tf.function(double), max_graphs=2)
    for batch in (4, 3, 1, 4):
        x = _images(batch, 8)
        np.testing.assert_array_equal(forward(x), x * 2)
    assert traces == [(None, 8, 8, 3)]
    forward(_images(2, 6))
    assert traces == [(None, 8, 8, 3), (None, 6, 6, 3)]
    forward(_images(2, 5))  # past max_graphs: the fallback (here the function itself)
    assert len(forward._graphs) == 2 and traces[-1] == (2, 5, 5, 3)


def test_compiled_forwards_trace_once_per_image_size():
    model = _fully_convolutional()
    for kwargs in ({}, {"fold": True}, {"fold": True, "halves": False}):
        forward = compiled_forward(model, **kwargs)
        assert isinstance(forward, PerImageSize)
        for batch in (4, 3, 1):
            _assert_close(forward(_images(batch, 8)), model(_images(batch, 8), training=False))
        assert len(forward._graphs) == 1
        assert forward.function.experimental_get_tracing_count() == 1
        assert forward.fallback.experimental_get_tracing_count() == 0


@pytest.mark.filterwarnings("ignore:The structure of `inputs`")  # Keras, of the list input
@pytest.mark.parametrize("fold", [False, True], ids=["variables", "folded"])
def test_forward_inside_a_traced_function_of_any_image_size(fold):
    """Flip averaging and sliding windows call the forward inside their own
    ``tf.function``, where height and width may be unknown."""
    model = _fully_convolutional()
    forward = compiled_forward(model, fold=fold)
    outer = tf.function(
        lambda t: forward(t) * 1.0, input_signature=[tf.TensorSpec([None, None, None, 3])]
    )
    for size in (8, 6):
        x = _images(3, size)
        _assert_close(outer(tf.constant(x)), model(x, training=False))
    x = _images(2, 8)
    _assert_close(forward([x]), model(x, training=False))  # not one tensor: the fallback


def test_a_batch_of_one_runs_whole_not_twice():
    """Halves would compute a lone image twice (1.7× the time of a U-Net at 512)."""
    forward = PerImageSize(tf.function(lambda x: x * 2), whole=tf.function(lambda x: x * 3))
    x = _images(2, 4)
    np.testing.assert_array_equal(forward(x), x * 2)
    np.testing.assert_array_equal(forward(x[:1]), x[:1] * 3)
    model = _fully_convolutional()
    for kwargs in ({"fold": True}, {"fold": True, "freeze": True}):
        forward = compiled_forward(model, **kwargs)
        forward(_images(3, 8))
        ((halves, single, _),) = forward._graphs.values()
        assert single is not None and single is not halves
        _assert_close(forward(_images(1, 8)), model(_images(1, 8), training=False))
