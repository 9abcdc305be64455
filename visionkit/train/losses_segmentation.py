"""Segmentation losses: cross-entropy with class weights and an ignore index, soft Dice
(Milletari et al. 2016), focal (Lin et al. 2017), Lovász-softmax (Berman et al. 2018) and
a weighted sum of losses; plus the U-Net border weight map (Ronneberger et al. 2015, eq. 2).

Conventions shared by every loss here:

- ``y_true``: integer class ids, (B, H, W) or (B, H, W, 1) (any numeric dtype; rounded).
  Pixels equal to ``ignore_index`` (default 255) contribute nothing and are left out of
  every mean; ``ignore_index=None`` disables it. Other ids must lie in [0, C).
- ``y_pred``: probabilities, (B, H, W, C) softmax, or (B, H, W, 1) sigmoid foreground
  probability (treated as the two classes [1 − p, p]). They are clipped to
  [ε, 1 − ε] (ε = 1e-7) before logarithms.
- Everything is computed in float32, whatever the model's policy; the result is a scalar.
- ``sample_weight`` (optional) is a per-pixel weight map (B, H, W) or (B, H, W, 1), e.g.
  ``unet_weight_map``, or a per-image weight (B,). It multiplies each pixel's term; the
  mean still divides by the number of non-ignored pixels (Keras' ``sum_over_batch_size``
  convention, so a weight of 2 everywhere doubles the loss).

All classes are registered Keras serializables (package ``visionkit``) with ``get_config``,
so compiled models save and load with ``safe_mode=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

PACKAGE = "visionkit"
EPSILON = 1e-7


def _labels_and_probs(y_true, y_pred, ignore_index: int | None):
    """(labels (B,H,W) int32 with ignored pixels set to 0, valid (B,H,W) float32,
    probs (B,H,W,C) float32)."""
    probs = ops.cast(y_pred, "float32")
    if probs.shape[-1] == 1:
        probs = ops.concatenate([1.0 - probs, probs], axis=-1)
    labels = ops.cast(ops.round(ops.cast(y_true, "float32")), "int32")
    if len(labels.shape) == len(probs.shape):
        labels = ops.squeeze(labels, axis=-1)
    if ignore_index is None:
        valid = ops.ones_like(labels, dtype="float32")
    else:
        ignored = ops.equal(labels, ignore_index)
        valid = ops.cast(ops.logical_not(ignored), "float32")
        labels = ops.where(ignored, ops.zeros_like(labels), labels)
    return labels, valid, probs


def _pixel_weights(sample_weight, valid):
    """The per-pixel weight map (B, H, W): valid × sample_weight broadcast."""
    if sample_weight is None:
        return valid
    w = ops.cast(sample_weight, "float32")
    if len(w.shape) == 4:
        w = ops.squeeze(w, axis=-1)
    while len(w.shape) < len(valid.shape):
        w = ops.expand_dims(w, -1)
    return valid * w


def _safe_mean(total, count):
    return ops.where(count > 0, total / ops.maximum(count, 1.0), ops.zeros_like(total))


class _SegmentationLoss(keras.losses.Loss):
    """Base: overrides ``__call__`` so the mean runs over non-ignored pixels only."""

    def __init__(self, ignore_index: int | None = 255, name: str | None = None, **kwargs):
        kwargs.pop("reduction", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, reduction="sum_over_batch_size", dtype="float32", **kwargs)
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            return self.compute(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        return self.compute(y_true, y_pred, None)

    def compute(self, y_true, y_pred, sample_weight=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "ignore_index": self.ignore_index}


def _class_weight_vector(class_weights, num_classes: int):
    if class_weights is None:
        return None
    w = np.asarray(class_weights, dtype="float32")
    if w.shape != (num_classes,):
        raise ValueError(
            f"class_weights has {w.size} entries but the output has {num_classes} classes"
        )
    return ops.convert_to_tensor(w)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SegmentationCrossEntropy(_SegmentationLoss):
    """Pixel-wise categorical cross-entropy −w_y · log p_y, mean over non-ignored pixels.

    Args:
        class_weights: optional per-class weights w_c (length C; for a sigmoid output,
            length 2: background, foreground). The mean divides by the number of valid
            pixels, not by the sum of weights.
        ignore_index: label id that contributes nothing (default 255; None: none).
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = 255,
        name: str = "segmentation_cross_entropy",
        **kwargs,
    ):
        super().__init__(ignore_index=ignore_index, name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, valid, probs = _labels_and_probs(y_true, y_pred, self.ignore_index)
        num_classes = probs.shape[-1]
        onehot = ops.one_hot(labels, num_classes, dtype="float32")
        p_true = ops.sum(onehot * ops.clip(probs, EPSILON, 1.0 - EPSILON), axis=-1)
        pixel = -ops.log(p_true)
        weights = _pixel_weights(sample_weight, valid)
        cw = _class_weight_vector(self.class_weights, num_classes)
        if cw is not None:
            weights = weights * ops.take(cw, labels)
        return _safe_mean(ops.sum(pixel * weights), ops.sum(valid))

    def get_config(self) -> dict:
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FocalLoss(_SegmentationLoss):
    """Focal loss (Lin, Goyal, Girshick, He & Dollár 2017): −α_y (1 − p_y)^γ log p_y per
    pixel, mean over non-ignored pixels. γ = 0 and no α gives the cross-entropy.

    Args:
        gamma: focusing parameter γ (paper: 2).
        alpha: None; a float α (binary outputs only: α for the foreground class 1 and
            1 − α for class 0, as in the paper's α-balanced form, which uses α = 0.25);
            or a sequence of C per-class weights.
        ignore_index: as in ``SegmentationCrossEntropy``.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        ignore_index: int | None = 255,
        name: str = "focal_loss",
        **kwargs,
    ):
        super().__init__(ignore_index=ignore_index, name=name, **kwargs)
        self.gamma = float(gamma)
        if alpha is None or isinstance(alpha, (int, float)):
            self.alpha = None if alpha is None else float(alpha)
        else:
            self.alpha = [float(a) for a in alpha]

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, valid, probs = _labels_and_probs(y_true, y_pred, self.ignore_index)
        num_classes = probs.shape[-1]
        onehot = ops.one_hot(labels, num_classes, dtype="float32")
        p_true = ops.sum(onehot * ops.clip(probs, EPSILON, 1.0 - EPSILON), axis=-1)
        pixel = -ops.power(1.0 - p_true, self.gamma) * ops.log(p_true)
        weights = _pixel_weights(sample_weight, valid)
        if self.alpha is not None:
            if isinstance(self.alpha, float):
                if num_classes != 2:
                    raise ValueError(
                        f"a scalar alpha is for binary outputs; give {num_classes} per-class alphas"
                    )
                alphas = [1.0 - self.alpha, self.alpha]
            else:
                alphas = self.alpha
            weights = weights * ops.take(_class_weight_vector(alphas, num_classes), labels)
        return _safe_mean(ops.sum(pixel * weights), ops.sum(valid))

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiceLoss(_SegmentationLoss):
    """Soft Dice loss (Milletari, Navab & Ahmadi 2016, V-Net), 1 − mean Dice.

    Per class c over the whole batch's non-ignored pixels (weighted by ``sample_weight``):
    D_c = (2 Σ p_c g_c + s) / (Σ p_c + Σ g_c + s), or with ``squared=True`` the paper's
    form with Σ p_c² + Σ g_c² in the denominator. The mean runs over the classes present
    in the batch's ground truth (absent classes are skipped; predictions on them still cost
    through the other classes' Dice). ``include_background=False`` skips class 0.
    Perfect predictions give exactly 0; a batch with no valid pixel gives 0.
    """

    def __init__(
        self,
        smooth: float = 0.0,
        squared: bool = False,
        include_background: bool = True,
        ignore_index: int | None = 255,
        name: str = "dice_loss",
        **kwargs,
    ):
        super().__init__(ignore_index=ignore_index, name=name, **kwargs)
        self.smooth = float(smooth)
        self.squared = bool(squared)
        self.include_background = bool(include_background)

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, valid, probs = _labels_and_probs(y_true, y_pred, self.ignore_index)
        num_classes = probs.shape[-1]
        onehot = ops.one_hot(labels, num_classes, dtype="float32")
        w = ops.expand_dims(_pixel_weights(sample_weight, valid), -1)
        axes = tuple(range(len(probs.shape) - 1))
        intersection = ops.sum(w * probs * onehot, axis=axes)
        p = probs * probs if self.squared else probs
        denom = ops.sum(w * p, axis=axes) + ops.sum(w * onehot, axis=axes)
        dice = (2.0 * intersection + self.smooth) / ops.maximum(denom + self.smooth, EPSILON)
        present = ops.cast(ops.sum(valid[..., None] * onehot, axis=axes) > 0, "float32")
        if not self.include_background:
            present = present * ops.convert_to_tensor(
                np.r_[0.0, np.ones(num_classes - 1)].astype("float32")
            )
        count = ops.sum(present)
        return _safe_mean(ops.sum(present * (1.0 - dice)), count)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "smooth": self.smooth,
            "squared": self.squared,
            "include_background": self.include_background,
        }


def _lovasz_gradient(gt_sorted):
    """The Lovász extension's gradient of the Jaccard loss at a sorted 0/1 vector (N,):
    g_i = J(i) − J(i − 1) with J(i) = 1 − |intersection| / |union| of the first i errors
    (Berman et al. 2018, Alg. 1)."""
    total = ops.sum(gt_sorted)
    intersection = total - ops.cumsum(gt_sorted)
    union = total + ops.cumsum(1.0 - gt_sorted)
    jaccard = 1.0 - intersection / ops.maximum(union, 1.0)
    return ops.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]])


@keras.saving.register_keras_serializable(package=PACKAGE)
class LovaszSoftmaxLoss(_SegmentationLoss):
    """Lovász-softmax loss (Berman, Rannen Triki & Blaschko 2018, "The Lovász-Softmax
    loss: a tractable surrogate for the optimization of the intersection-over-union measure
    in neural networks"): for each class c, the pixel errors e_i = |[y_i = c] − p_c(i)| are
    sorted in decreasing order and dotted with the gradient of the Lovász extension of the
    Jaccard loss 1 − IoU_c; the result is the mean over the classes present in the batch's
    ground truth (the paper's ``classes="present"``). It is the convex surrogate whose value
    equals 1 − IoU_c on hard 0/1 predictions, so it optimises IoU directly; the paper
    fine-tunes with it after cross-entropy, or adds it to cross-entropy.

    The IoU is taken over all pixels of the batch, as mIoU over a dataset is (the paper's
    ``per_image=False``). Ignored pixels (``ignore_index``) and pixels whose
    ``sample_weight`` is 0 are left out; other weights only mark pixels in or out (the
    Jaccard index has no per-pixel weights). Cost: one sort of the batch's B·H·W errors
    per class.
    """

    def __init__(self, ignore_index: int | None = 255, name: str = "lovasz_softmax_loss", **kwargs):
        super().__init__(ignore_index=ignore_index, name=name, **kwargs)

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, valid, probs = _labels_and_probs(y_true, y_pred, self.ignore_index)
        num_classes = probs.shape[-1]
        valid = ops.cast(_pixel_weights(sample_weight, valid) > 0, "float32")
        onehot = ops.one_hot(labels, num_classes, dtype="float32") * valid[..., None]
        # Ignored pixels get error 0 and ground truth 0: they sort last and change neither
        # the value nor the gradient of the pixels before them.
        errors = ops.abs(onehot - probs) * valid[..., None]
        errors = ops.reshape(errors, (-1, num_classes))
        onehot = ops.reshape(onehot, (-1, num_classes))
        total, count = 0.0, 0.0
        for c in range(num_classes):
            order = ops.argsort(-errors[:, c])
            gt_sorted = ops.take(onehot[:, c], order)
            gradient = ops.stop_gradient(_lovasz_gradient(gt_sorted))
            present = ops.cast(ops.sum(onehot[:, c]) > 0, "float32")
            total = total + present * ops.sum(ops.take(errors[:, c], order) * gradient)
            count = count + present
        return _safe_mean(total, count)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CombinedLoss(keras.losses.Loss):
    """Weighted sum Σ wᵢ · lossᵢ, e.g. ``CombinedLoss([(SegmentationCrossEntropy(), 1.0),
    (DiceLoss(), 1.0)])``. Each loss gets the same ``sample_weight``."""

    def __init__(self, losses, name: str = "combined_loss", **kwargs):
        kwargs.pop("reduction", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, reduction="sum_over_batch_size", dtype="float32", **kwargs)
        pairs = []
        for item in losses:
            loss, weight = item
            if isinstance(loss, dict):
                loss = keras.saving.deserialize_keras_object(loss)
            elif isinstance(loss, str):
                loss = keras.losses.get(loss)
            pairs.append((loss, float(weight)))
        if not pairs:
            raise ValueError("CombinedLoss needs at least one (loss, weight) pair")
        self.terms = pairs

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            total = 0.0
            for loss, weight in self.terms:
                total = total + weight * ops.cast(loss(y_true, y_pred, sample_weight), "float32")
            return total

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "losses": [
                [keras.saving.serialize_keras_object(loss), weight] for loss, weight in self.terms
            ],
        }


def unet_weight_map(
    mask: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: bool = True,
    foreground: int | None = None,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """The U-Net pixel weight map (Ronneberger et al. 2015, eq. 2), NumPy/SciPy:

    w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))

    with d1, d2 the distances to the border of the nearest and second-nearest object
    (connected component of the foreground), added on background pixels only, so the thin
    gaps between touching cells weigh most. w_c balances class frequencies
    (w_c = N / (K · N_c) over the K classes present; all ones with ``class_balance=False``).

    Each object's distance transform runs on its bounding box grown by the reach of the
    border term (where w0·exp(−d²/2σ²) falls below 1e-6), so a 512² ISBI mask with a few
    hundred cells takes tens of milliseconds; beyond that reach the term is taken as 0.

    Args:
        mask: (H, W) integer labels; the foreground is ``mask > 0`` (or ``== foreground``).
        w0, sigma: the paper's 10 and 5 pixels.
        ignore_index: pixels with this label are neither foreground nor counted in w_c
            (the losses ignore them anyway).

    Returns:
        (H, W) float32 weights, for ``sample_weight`` of the losses here.
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    valid = np.ones(mask.shape, bool) if ignore_index is None else mask != ignore_index
    weights = np.ones(mask.shape, dtype=np.float64)
    if class_balance:
        values, counts = np.unique(mask[valid], return_counts=True)
        for value, count in zip(values, counts, strict=True):
            weights[mask == value] = valid.sum() / (len(values) * count)
    fg = (mask == foreground if foreground is not None else mask > 0) & valid
    objects, n = ndimage.label(fg)
    if n >= 2 and w0 > 0:
        reach = int(np.ceil(sigma * np.sqrt(2.0 * np.log(max(w0 * 1e6, 1.0))))) + 1
        height, width = mask.shape
        d1 = np.full(mask.shape, np.inf)
        d2 = np.full(mask.shape, np.inf)
        for i, (rows, cols) in enumerate(ndimage.find_objects(objects), start=1):
            window = (
                slice(max(rows.start - reach, 0), min(rows.stop + reach, height)),
                slice(max(cols.start - reach, 0), min(cols.stop + reach, width)),
            )
            d = ndimage.distance_transform_edt(objects[window] != i)
            near, second = d1[window], d2[window]  # views: updated in place
            second[...] = np.where(d < near, near, np.minimum(second, d))
            near[...] = np.minimum(near, d)
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
        weights = weights + np.where(fg | ~valid, 0.0, border)
    return weights.astype(np.float32)


def border_weight_maps(masks: np.ndarray, *, w0: float, sigma: float = 5.0) -> np.ndarray:
    """``unet_weight_map`` of each mask of a batch (B, H, W[, 1]) → (B, H, W) float32,
    without class balancing (class weights are the ``class_weights`` key's job)."""
    masks = np.asarray(masks)
    if masks.ndim == 4:
        masks = masks[..., 0]
    return np.stack([unet_weight_map(m, w0=w0, sigma=sigma, class_balance=False) for m in masks])


LOSS_TERMS = ("ce", "dice", "focal", "lovasz")


def segmentation_loss(config: dict, num_classes: int) -> keras.losses.Loss:
    """The training loss of a segmentation run from ``config["loss"]``: terms ``ce``,
    ``dice``, ``focal`` and ``lovasz`` joined by ``+``, each with an optional weight
    (``ce+0.5*dice``); ``auto`` is ``ce+dice``. ``config["class_weights"]`` (one per class)
    weighs the cross-entropy and focal terms. Every term ignores label 255."""
    from visionkit.config import ConfigError

    spec = str(config.get("loss") or "auto").replace(" ", "")
    spec = "ce+dice" if spec == "auto" else spec
    class_weights = config.get("class_weights")
    if class_weights is not None and len(class_weights) != num_classes:
        raise ConfigError(
            f"class_weights has {len(class_weights)} entries but the data has {num_classes} classes"
        )
    terms = []
    for part in spec.split("+"):
        weight, _, name = part.rpartition("*")
        if name not in LOSS_TERMS:
            raise ConfigError(
                f"loss={config.get('loss')}: unknown term {name!r}; use {', '.join(LOSS_TERMS)} "
                "joined by + with optional weights, e.g. ce+0.5*dice"
            )
        try:
            factor = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"loss={config.get('loss')}: {weight!r} is not a number") from None
        if name == "ce":
            term = SegmentationCrossEntropy(class_weights=class_weights)
        elif name == "focal":
            term = FocalLoss(alpha=class_weights)
        elif name == "lovasz":
            term = LovaszSoftmaxLoss()
        else:
            term = DiceLoss()
        terms.append((term, factor))
    return terms[0][0] if len(terms) == 1 and terms[0][1] == 1.0 else CombinedLoss(terms)
