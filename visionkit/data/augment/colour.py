"""Photometric augmentation of one float32 (H, W, 3) image in [0, 255], in TF ops.

Nothing here moves pixels except the geometric branch of :func:`rand_augment`, which is
meant for classification only (it does not move boxes or masks). All randomness is
stateless: ``seed`` is an int tensor of shape (2,).
"""

from __future__ import annotations

import math

import tensorflow as tf

from visionkit.data.augment.geometric import affine_transform, split_seed, uniform

_GREY = tf.constant([0.299, 0.587, 0.114], tf.float32)


def grey(image: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma, shape (H, W, 1)."""
    return tf.reduce_sum(image * _GREY, axis=-1, keepdims=True)


def adjust_brightness(image: tf.Tensor, factor) -> tf.Tensor:
    """Multiply by ``factor`` (1 = unchanged)."""
    return tf.clip_by_value(image * factor, 0.0, 255.0)


def adjust_contrast(image: tf.Tensor, factor) -> tf.Tensor:
    """Blend with the mean grey level: ``mean + factor·(image − mean)``."""
    mean = tf.reduce_mean(grey(image))
    return tf.clip_by_value(mean + factor * (image - mean), 0.0, 255.0)


def adjust_saturation(image: tf.Tensor, factor) -> tf.Tensor:
    """Blend with the grey image: ``grey + factor·(image − grey)``."""
    g = grey(image)
    return tf.clip_by_value(g + factor * (image - g), 0.0, 255.0)


def adjust_hue(image: tf.Tensor, delta) -> tf.Tensor:
    """Rotate hue by ``delta`` (fraction of the colour wheel, −0.5..0.5)."""
    return tf.image.adjust_hue(image / 255.0, delta) * 255.0


def colour_matrix(brightness, contrast, saturation, hue, mean_grey) -> tuple[tf.Tensor, tf.Tensor]:
    """The 3×3 matrix M and offset t with ``x' = x @ M + t`` that applies brightness,
    contrast (about ``mean_grey`` of the input), saturation factors and a hue rotation of
    ``hue`` turns (rotation of the chroma plane in YIQ space, a linear stand-in for an HSV
    hue shift), in that order."""
    eye = tf.eye(3)
    w = _GREY[:, None]  # (3, 1): x @ w = grey
    ones = tf.ones((1, 3))
    m = brightness * eye
    t = tf.zeros((1, 3))
    # contrast: mean + c (x − mean), mean of the brightness-scaled image
    mean = brightness * mean_grey
    m = contrast * m
    t = contrast * t + (1.0 - contrast) * mean * ones
    # saturation: g + s (x − g), g = x @ w broadcast to 3 channels
    sat = saturation * eye + (1.0 - saturation) * (w @ ones)
    m, t = m @ sat, t @ sat
    # hue: rotate I/Q by 2π·hue
    to_yiq = tf.constant(
        [[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]], tf.float32
    )
    theta = 2.0 * math.pi * hue
    c, s = tf.cos(theta), tf.sin(theta)
    rot = tf.stack([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    hue_m = to_yiq @ rot @ tf.linalg.inv(to_yiq)
    return m @ hue_m, t @ hue_m


def colour_jitter(
    image: tf.Tensor,
    seed: tf.Tensor,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    hue: float = 0.0,
    prob: float = 1.0,
) -> tf.Tensor:
    """torchvision-style ColorJitter: factors ~ U(1 − m, 1 + m) for brightness, contrast
    and saturation and a hue rotation ~ U(−hue, hue) turns, applied in that order with
    probability ``prob``, composed into one 3×3 colour matrix (one pass over the pixels,
    clipped once at the end rather than after each step)."""
    if prob <= 0 or not (brightness or contrast or saturation or hue):
        return image
    s_apply, s_b, s_c, s_s, s_h = split_seed(seed, 5)

    def _jitter():
        b = uniform(s_b, 1 - brightness, 1 + brightness) if brightness else 1.0
        c = uniform(s_c, 1 - contrast, 1 + contrast) if contrast else 1.0
        sat = uniform(s_s, 1 - saturation, 1 + saturation) if saturation else 1.0
        h = uniform(s_h, -hue, hue) if hue else 0.0
        mean_grey = tf.reduce_sum(tf.reduce_mean(image, axis=[0, 1]) * _GREY)
        m, t = colour_matrix(b, c, sat, h, mean_grey)
        shape = tf.shape(image)
        flat = tf.reshape(image, [-1, 3]) @ m + t
        return tf.reshape(tf.clip_by_value(flat, 0.0, 255.0), shape)

    if prob >= 1:
        return _jitter()
    return tf.cond(uniform(s_apply) < prob, _jitter, lambda: image)


# ----------------------------------------------------------------- RandAugment


def _autocontrast(x, _m):
    lo = tf.reduce_min(x, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(x, axis=[0, 1], keepdims=True)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1e-3), 1.0)
    return tf.where(hi > lo, (x - lo) * scale, x)


def _solarize(x, m):
    threshold = 256.0 - 256.0 * m
    return tf.where(x >= threshold, 255.0 - x, x)


def _posterize(x, m):
    bits = 8 - tf.cast(tf.round(4.0 * m), tf.int32)
    shift = tf.cast(8 - bits, tf.uint8)
    xi = tf.cast(tf.clip_by_value(x, 0, 255), tf.uint8)
    return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(xi, shift), shift), tf.float32)


def _sharpness(x, factor):
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    k = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(x[None], k, [1, 1, 1, 1], "SAME")[0]
    return tf.clip_by_value(blurred + factor * (x - blurred), 0.0, 255.0)


def _geometric(x, a0, a1, a2, b0, b1, b2):
    return affine_transform(x, tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0]), 128.0)


def rand_augment(
    image: tf.Tensor, seed: tf.Tensor, num_ops: int = 2, magnitude: float = 9.0
) -> tf.Tensor:
    """RandAugment (Cubuk et al., "RandAugment: Practical automated data augmentation with a
    reduced search space", 2020): apply ``num_ops`` ops drawn uniformly from 13 (identity,
    autocontrast, rotate, solarize, colour, posterize, contrast, brightness, sharpness,
    shear x/y, translate x/y) at ``magnitude`` M on the paper's 0–10 scale (M=9 ≈ rotate
    27°, shear 0.27, translate 40 %), each with a random sign. Geometric ops fill with grey
    128. Equalize is left out (no cheap TF op). Classification only.
    """
    m = magnitude / 10.0
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    x = image
    for s in split_seed(seed, num_ops):
        s_op, s_sign = split_seed(s, 2)
        op = tf.random.stateless_uniform([], s_op, 0, 13, dtype=tf.int32)
        sign = tf.where(uniform(s_sign) < 0.5, -1.0, 1.0)
        factor = 1.0 + sign * 0.9 * m
        ang = sign * 30.0 * m * math.pi / 180.0
        c, sn = tf.cos(ang), tf.sin(ang)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        shear = sign * 0.3 * m
        tx, ty = sign * 0.45 * m * w, sign * 0.45 * m * h
        branches = [
            lambda x=x: x,
            lambda x=x: _autocontrast(x, m),
            lambda x=x, c=c, sn=sn, cx=cx, cy=cy: _geometric(
                x, c, sn, cx - c * cx - sn * cy, -sn, c, cy + sn * cx - c * cy
            ),
            lambda x=x: _solarize(x, m),
            lambda x=x, f=factor: adjust_saturation(x, f),
            lambda x=x: _posterize(x, m),
            lambda x=x, f=factor: adjust_contrast(x, f),
            lambda x=x, f=factor: adjust_brightness(x, f),
            lambda x=x, f=factor: _sharpness(x, f),
            lambda x=x, sh=shear: _geometric(x, 1.0, sh, 0.0, 0.0, 1.0, 0.0),
            lambda x=x, sh=shear: _geometric(x, 1.0, 0.0, 0.0, sh, 1.0, 0.0),
            lambda x=x, t=tx: _geometric(x, 1.0, 0.0, t, 0.0, 1.0, 0.0),
            lambda x=x, t=ty: _geometric(x, 1.0, 0.0, 0.0, 0.0, 1.0, t),
        ]
        x = tf.switch_case(op, branches)
        x = tf.ensure_shape(x, image.shape)
    return x
