"""Building blocks shared by the architectures: conv-BN-activation, inception modules,
residual blocks, local response normalisation, and the input preprocessing layer.

Blocks are plain functions that add named Keras layers to a functional graph, so
``layer_table`` sees every convolution (and its MACs) and ``.keras`` files need no custom
code except for the two small registered layers defined here.
"""

from __future__ import annotations

import keras
from keras import layers, ops

PACKAGE = "visionkit"


def preprocessing_layer(scale: float = 1.0 / 255.0, offset: float = 0.0, name: str = "preprocess"):
    """``x * scale + offset`` on raw pixel values, so models take uint8-range images."""
    return layers.Rescaling(scale, offset=offset, name=name)


def conv_bn_act(
    x,
    filters: int,
    kernel_size: int | tuple[int, int],
    *,
    strides: int = 1,
    padding: str = "same",
    activation: str | None = "relu",
    batch_norm: bool = True,
    name: str,
):
    """Conv2D → BatchNorm → activation; the convolution has no bias when BN follows it."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=not batch_norm,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def inception_naive(x, filters_1x1: int, filters_3x3: int, filters_5x5: int, *, name: str):
    """Naive inception module (Szegedy et al. 2015, Fig. 2a).

    Parallel 1×1, 3×3 and 5×5 convolutions (ReLU, 'same' padding) and a 3×3/1 max-pool
    over the same input, concatenated on channels: the output has
    ``filters_1x1 + filters_3x3 + filters_5x5 + C_in`` channels. On 28×28×256 with
    (128, 192, 96) this costs 854,196,224 MACs and gives 28×28×672 (seed check C20).
    """
    b1 = layers.Conv2D(filters_1x1, 1, padding="same", activation="relu", name=f"{name}_1x1")(x)
    b3 = layers.Conv2D(filters_3x3, 3, padding="same", activation="relu", name=f"{name}_3x3")(x)
    b5 = layers.Conv2D(filters_5x5, 5, padding="same", activation="relu", name=f"{name}_5x5")(x)
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    return layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])


def inception_bottleneck(
    x,
    filters_1x1: int,
    reduce_3x3: int,
    filters_3x3: int,
    reduce_5x5: int,
    filters_5x5: int,
    pool_proj: int,
    *,
    batch_norm: bool = False,
    name: str,
):
    """Inception module with 1×1 dimension reductions (Szegedy et al. 2015, Fig. 2b).

    Branches: 1×1; 1×1 reduce → 3×3; 1×1 reduce → 5×5; 3×3/1 max-pool → 1×1 projection;
    concatenated to ``filters_1x1 + filters_3x3 + filters_5x5 + pool_proj`` channels.
    On 28×28×256 with (128, 64, 192, 64, 96, 64) this costs 271,351,808 MACs and gives
    28×28×480 (seed check C21; the slide's "358M" total does not match its own terms).
    """

    def conv(t, filters, size, suffix):
        if batch_norm:
            return conv_bn_act(t, filters, size, name=f"{name}_{suffix}")
        return layers.Conv2D(
            filters, size, padding="same", activation="relu", name=f"{name}_{suffix}"
        )(t)

    b1 = conv(x, filters_1x1, 1, "1x1")
    b3 = conv(conv(x, reduce_3x3, 1, "3x3_reduce"), filters_3x3, 3, "3x3")
    b5 = conv(conv(x, reduce_5x5, 1, "5x5_reduce"), filters_5x5, 5, "5x5")
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv(bp, pool_proj, 1, "pool_proj")
    return layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])


def basic_block(
    x, filters: int, *, strides: int = 1, residual: bool = True, shortcut: str = "B", name: str
):
    """ResNet basic block (He et al. 2016): two 3×3 conv-BN, identity (or projection) add, ReLU.

    ``residual=False`` gives the "plain" block of the paper's degradation experiment.
    ``shortcut="B"`` projects with 1×1 conv-BN when the shape changes; ``"A"`` subsamples
    and zero-pads channels (the parameter-free option used for the CIFAR ResNets).
    """
    y = conv_bn_act(x, filters, 3, strides=strides, name=f"{name}_1")
    y = conv_bn_act(y, filters, 3, activation=None, name=f"{name}_2")
    if residual:
        y = layers.Add(name=f"{name}_add")([_shortcut(x, filters, strides, shortcut, name), y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(x, filters: int, *, strides: int = 1, residual: bool = True, name: str):
    """ResNet bottleneck block (He et al. 2016, Fig. 5): 1×1 reduce, 3×3, 1×1 expand ×4.

    The stride sits on the 3×3 convolution (the "v1.5" placement of torchvision and most
    reference implementations; parameter counts are the same as with the stride on the 1×1).
    """
    y = conv_bn_act(x, filters, 1, name=f"{name}_1")
    y = conv_bn_act(y, filters, 3, strides=strides, name=f"{name}_2")
    y = conv_bn_act(y, 4 * filters, 1, activation=None, name=f"{name}_3")
    if residual:
        y = layers.Add(name=f"{name}_add")([_shortcut(x, 4 * filters, strides, "B", name), y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _shortcut(x, filters: int, strides: int, kind: str, name: str):
    if strides == 1 and x.shape[-1] == filters:
        return x
    if kind == "A":
        return ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
    return conv_bn_act(x, filters, 1, strides=strides, activation=None, name=f"{name}_shortcut")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroPadShortcut(layers.Layer):
    """Parameter-free ResNet shortcut, option A (He et al. 2016, §4.2).

    Subsamples by ``strides`` and pads the new channels with zeros: (B, H, W, C) →
    (B, H/strides, W/strides, filters).
    """

    def __init__(self, filters: int, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, x):
        x = x[:, :: self.strides, :: self.strides, :]
        extra = self.filters - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        h = None if h is None else -(-h // self.strides)
        w = None if w is None else -(-w // self.strides)
        return (b, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNormalization(layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012, §3.3).

    b = a / (k + α · Σ a²)^β, the sum over ``depth`` (n) neighbouring channels, with the
    paper's k = 2, n = 5, α = 1e-4, β = 0.75. No trainable parameters.
    """

    def __init__(
        self, depth: int = 5, bias: float = 2.0, alpha: float = 1e-4, beta: float = 0.75, **kwargs
    ):
        super().__init__(**kwargs)
        self.depth, self.bias, self.alpha, self.beta = (
            int(depth),
            float(bias),
            float(alpha),
            float(beta),
        )

    def call(self, x):
        import tensorflow as tf

        # Sums over 2·radius + 1 channels and, like the paper, does not divide alpha by n.
        return tf.nn.local_response_normalization(
            x, depth_radius=self.depth // 2, bias=self.bias, alpha=self.alpha, beta=self.beta
        )

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }
