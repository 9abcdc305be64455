"""Inference-time graph folding: BatchNormalization merged into the convolution before it.

At inference a BatchNormalization layer is an affine map per channel,
``y = γ · (x − μ) / √(σ² + ε) + β``; after a convolution it folds into the convolution's
kernel and bias (Jacob et al. 2018, *Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference*, §3.2; what TFLite's converter does):

    s = γ / √(σ² + ε),   W' = W · s (per output channel),   b' = (b − μ) · s + β.

The folded model computes the same function (float rounding aside: ≤ 1e-5 relative) with
one op instead of three per pair, and lets TensorFlow fuse convolution, bias and
activation into one kernel. Used by ``predict`` and ``val``; training never sees it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

_CONVS = (layers.Conv2D, layers.DepthwiseConv2D)


class FoldedBatchNorm(layers.Layer):
    """Stands where a folded BatchNormalization was: passes its input through (it takes
    the ``training`` and ``mask`` arguments the graph replays for the old layer)."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _consumers(model: keras.Model) -> dict[int, int]:
    """How many layer calls read each layer's output (by ``id`` of the producing layer)."""
    counts: dict[int, int] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                producer = tensor._keras_history[0]
                counts[id(producer)] = counts.get(id(producer), 0) + 1
    return counts


def foldable_pairs(model: keras.Model) -> dict[str, layers.Layer]:
    """``{conv layer name: BatchNormalization layer}`` for every BN that reads only the
    output of a Conv2D / DepthwiseConv2D (linear, called once, read by that BN alone),
    searched in nested functional models too."""
    pairs: dict[str, layers.Layer] = {}

    def walk(m: keras.Model) -> None:
        consumers = _consumers(m)
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
                continue
            if not isinstance(layer, layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
                continue
            if layer.axis not in (-1, 3):
                continue
            (source,) = layer._inbound_nodes[0].input_tensors
            conv = source._keras_history[0]
            if (
                isinstance(conv, _CONVS)
                and len(conv._inbound_nodes) == 1
                and conv.get_config().get("activation") in ("linear", None)
                and consumers.get(id(conv), 0) == 1
            ):
                pairs[conv.name] = layer

    walk(model)
    return pairs


def _folded_weights(conv: layers.Layer, bn: layers.Layer) -> tuple[np.ndarray, np.ndarray]:
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    channels = bn.moving_mean.shape[-1]
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    scale = gamma / np.sqrt(var + bn.epsilon)
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else np.zeros(channels)
    if isinstance(conv, layers.DepthwiseConv2D):  # (kh, kw, in, multiplier), out = in·mult
        kh, kw, cin, mult = kernel.shape
        kernel = (kernel.reshape(kh, kw, cin * mult) * scale).reshape(kh, kw, cin, mult)
    else:  # (kh, kw, in / groups, out)
        kernel = kernel * scale
    return kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of ``model`` for inference with every foldable BatchNormalization merged into
    its convolution (see the module docstring); layers without a pair are shared, not
    copied. Returns ``model`` itself when nothing folds (or for non-functional models)."""
    if not isinstance(model, keras.Model) or not hasattr(model, "_inbound_nodes"):
        return model
    try:
        pairs = foldable_pairs(model)
    except (AttributeError, ValueError, TypeError):  # subclassed models have no graph
        return model
    if not pairs:
        return model
    folded_bns = {id(bn) for bn in pairs.values()}
    new_convs: dict[str, layers.Layer] = {}

    def clone(layer: layers.Layer) -> layers.Layer:
        if layer.name in pairs and isinstance(layer, _CONVS):
            config = {**layer.get_config(), "use_bias": True, "bias_initializer": "zeros"}
            config.pop("bias_regularizer", None)
            new = layer.__class__.from_config(config)
            new_convs[layer.name] = new
            return new
        if id(layer) in folded_bns:
            return FoldedBatchNorm(name=layer.name, dtype=layer.dtype_policy)
        return layer

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    originals = {}

    def collect(m: keras.Model) -> None:
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                collect(layer)
            elif layer.name in pairs and isinstance(layer, _CONVS):
                originals[layer.name] = layer

    collect(model)
    for name, new in new_convs.items():
        kernel, bias = _folded_weights(originals[name], pairs[name])
        new.kernel.assign(kernel)
        new.bias.assign(bias)
    return copy
