"""Mixing augmentations, in TF ops with stateless seeds.

* Classification, on a batch: :func:`mixup_cutmix` — MixUp (Zhang et al., "mixup: Beyond
  empirical risk minimization", 2018) and CutMix (Yun et al., "CutMix: Regularization
  strategy to train strong classifiers with localizable features", 2019). Images float32
  (B, H, W, 3), labels one-hot float32 (B, C); each sample is mixed with the batch in
  reverse order, with its own λ ~ Beta(α, α); CutMix's λ is corrected to the pasted area.
  (Keras' ``MixUp`` layer fails inside ``tf.data.map`` on Keras 3.15, and ``CutMix``
  does not take boxes, hence these.)
* Detection, on two examples: :func:`mixup_detection` — blend two images, keep the boxes
  of both (as in YOLOv5/YOLOv8, r ~ Beta(32, 32)).
"""

from __future__ import annotations

import tensorflow as tf

from visionkit.data.augment.geometric import Sample, split_seed


def sample_beta(seed: tf.Tensor, alpha: float, shape=()) -> tf.Tensor:
    """Beta(α, α) samples as X / (X + Y) with X, Y ~ Gamma(α) drawn statelessly."""
    s1, s2 = split_seed(seed, 2)
    x = tf.random.stateless_gamma(shape, s1, alpha=alpha)
    y = tf.random.stateless_gamma(shape, s2, alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def mixup_cutmix(
    images: tf.Tensor,
    labels: tf.Tensor,
    seed: tf.Tensor,
    mixup_prob: float = 0.0,
    mixup_alpha: float = 0.2,
    cutmix_prob: float = 0.0,
    cutmix_alpha: float = 1.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mix each sample i of a batch with sample B−1−i.

    Per sample: CutMix with probability ``cutmix_prob``, else MixUp with probability
    ``mixup_prob``, else unchanged. Returns (images, labels, lam) where ``lam`` (B,) is the
    weight of the sample's own label (1 where unchanged). For CutMix a box of area
    ≈ (1 − λ)·H·W is pasted from the partner (clipped at the border) and λ is set to
    1 − pasted area / (H·W), so labels match the pixels exactly.
    """
    s_choice, s_mix, s_cut, s_cy, s_cx = split_seed(seed, 5)
    b = tf.shape(images)[0]
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    partner_images = images[::-1]
    partner_labels = labels[::-1]
    u = tf.random.stateless_uniform([b], s_choice)
    do_cut = u < cutmix_prob
    do_mix = (~do_cut) & (u < cutmix_prob + mixup_prob)

    lam_mix = sample_beta(s_mix, mixup_alpha, [b]) if mixup_prob > 0 else tf.ones([b])
    lam_cut = sample_beta(s_cut, cutmix_alpha, [b]) if cutmix_prob > 0 else tf.ones([b])
    cut_h = tf.round(hf * tf.sqrt(1.0 - lam_cut))
    cut_w = tf.round(wf * tf.sqrt(1.0 - lam_cut))
    cy = tf.floor(tf.random.stateless_uniform([b], s_cy) * hf)
    cx = tf.floor(tf.random.stateless_uniform([b], s_cx) * wf)
    y0 = tf.clip_by_value(cy - tf.floor(cut_h / 2), 0, hf)
    y1 = tf.clip_by_value(cy - tf.floor(cut_h / 2) + cut_h, 0, hf)
    x0 = tf.clip_by_value(cx - tf.floor(cut_w / 2), 0, wf)
    x1 = tf.clip_by_value(cx - tf.floor(cut_w / 2) + cut_w, 0, wf)
    ys = tf.range(hf)[None, :, None]
    xs = tf.range(wf)[None, None, :]
    inside = (
        (ys >= y0[:, None, None])
        & (ys < y1[:, None, None])
        & (xs >= x0[:, None, None])
        & (xs < x1[:, None, None])
        & do_cut[:, None, None]
    )
    lam_cut_exact = 1.0 - (y1 - y0) * (x1 - x0) / (hf * wf)

    lam = tf.where(do_cut, lam_cut_exact, tf.where(do_mix, lam_mix, 1.0))
    blend = tf.where(do_mix, lam_mix, 1.0)[:, None, None, None]
    mixed = blend * images + (1.0 - blend) * partner_images
    mixed = tf.where(inside[..., None], partner_images, mixed)
    new_labels = lam[:, None] * labels + (1.0 - lam[:, None]) * partner_labels
    return mixed, new_labels, lam


def mixup_detection(a: Sample, b: Sample, seed: tf.Tensor, alpha: float = 32.0) -> Sample:
    """Blend two same-size detection examples, r·a + (1 − r)·b with r ~ Beta(α, α); the
    result keeps the boxes and classes of both."""
    r = sample_beta(seed, alpha)
    out = dict(a)
    out["image"] = r * a["image"] + (1.0 - r) * b["image"]
    out["boxes"] = tf.concat([a["boxes"], b["boxes"]], axis=0)
    out["classes"] = tf.concat([a["classes"], b["classes"]], axis=0)
    return out
