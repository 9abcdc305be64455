"""Geometric augmentation of one example, written in TensorFlow ops.

Every op takes and returns a *sample*: a dict with

* ``"image"``: float32 (H, W, 3), values in [0, 255];
* ``"boxes"`` (optional): float32 (N, 4) ``xyxy`` in pixel-edge coordinates of the image
  (a box covering the whole image is ``[0, 0, W, H]``), with ``"classes"`` int32 (N,);
* ``"mask"`` (optional): int32 (H, W) class ids, :data:`IGNORE` (255) where unlabelled.

Image, boxes and mask move together, so boxes and masks follow the pixels exactly: the
image is resampled bilinearly, the mask with nearest neighbour, and boxes are mapped by
the same affine map. Boxes pushed (partly) out of frame are clipped; a box is removed
when less than ``min_area_frac`` of its area stays inside or a side is shorter than
``min_side`` pixels (classes are removed with it). Inputs are never mutated.

Random ops take ``seed``: an int32/int64 tensor of shape (2,) for TF's stateless random
ops, so equal seeds give equal results.
"""

from __future__ import annotations

import math

import tensorflow as tf

IGNORE = 255  # mask value for "no label": padding and rotation fill
Sample = dict  # {"image": ..., "boxes": ..., "classes": ..., "mask": ...}


def split_seed(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    """``num`` independent stateless seeds (shape (2,)) derived from ``seed``."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num)
    return [seeds[i] for i in range(num)]


def uniform(seed: tf.Tensor, lo: float | tf.Tensor = 0.0, hi: float | tf.Tensor = 1.0):
    """A float32 scalar drawn uniformly from [lo, hi)."""
    return tf.random.stateless_uniform([], seed, minval=lo, maxval=hi, dtype=tf.float32)


def image_hw(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Height and width of an (H, W, C) image as int32 scalars."""
    shape = tf.shape(image)
    return shape[0], shape[1]


def _with(sample: Sample, **updates) -> Sample:
    out = dict(sample)
    out.update(updates)
    return out


def keep_boxes(sample: Sample, keep: tf.Tensor) -> Sample:
    """Drop the boxes (and their classes) where ``keep`` is False."""
    return _with(
        sample,
        boxes=tf.boolean_mask(sample["boxes"], keep),
        classes=tf.boolean_mask(sample["classes"], keep),
    )


def clip_boxes(
    sample: Sample,
    boxes: tf.Tensor,
    area_before: tf.Tensor,
    min_area_frac: float = 0.25,
    min_side: float = 2.0,
) -> Sample:
    """Set transformed ``boxes`` clipped to the image of ``sample``; remove lost boxes.

    ``area_before`` is each box's area after the transform but before clipping; a box is
    kept when its clipped area is at least ``min_area_frac`` of it and both sides are at
    least ``min_side`` pixels.
    """
    h, w = image_hw(sample["image"])
    hi = tf.cast(tf.stack([w, h, w, h]), tf.float32)
    clipped = tf.clip_by_value(boxes, 0.0, hi)
    bw = clipped[:, 2] - clipped[:, 0]
    bh = clipped[:, 3] - clipped[:, 1]
    keep = (bw * bh >= min_area_frac * area_before - 1e-3) & (bw >= min_side) & (bh >= min_side)
    return keep_boxes(_with(sample, boxes=clipped), keep)


def box_area(boxes: tf.Tensor) -> tf.Tensor:
    """Areas of (N, 4) xyxy boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def filter_small(sample: Sample, min_side: float = 2.0) -> Sample:
    """Remove boxes with a side shorter than ``min_side`` pixels."""
    if "boxes" not in sample:
        return sample
    b = sample["boxes"]
    keep = ((b[:, 2] - b[:, 0]) >= min_side) & ((b[:, 3] - b[:, 1]) >= min_side)
    return keep_boxes(sample, keep)


# --------------------------------------------------------------------- flip


def flip_left_right(sample: Sample) -> Sample:
    """Mirror the example horizontally: x ↦ W − x for boxes, columns reversed."""
    out = _with(sample, image=tf.reverse(sample["image"], axis=[1]))
    if "mask" in sample:
        out["mask"] = tf.reverse(sample["mask"], axis=[1])
    if "boxes" in sample:
        w = tf.cast(tf.shape(sample["image"])[1], tf.float32)
        b = sample["boxes"]
        out["boxes"] = tf.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
    return out


def random_flip(sample: Sample, seed: tf.Tensor, prob: float = 0.5) -> Sample:
    """Horizontal flip with probability ``prob``."""
    if prob <= 0:
        return sample
    return tf.cond(uniform(seed) < prob, lambda: flip_left_right(sample), lambda: dict(sample))


def rotate90(sample: Sample, k: int) -> Sample:
    """Rotate by k × 90° counter-clockwise (``tf.image.rot90``): lossless, no resampling.
    A pixel at (x, y) of a W-wide image moves to (y, W − x) per quarter turn; height and
    width swap for odd k."""
    out = dict(sample)
    for _ in range(k % 4):
        w = tf.cast(tf.shape(out["image"])[1], tf.float32)
        turned = _with(out, image=tf.image.rot90(out["image"]))
        if "mask" in out:
            turned["mask"] = tf.image.rot90(out["mask"][..., None])[..., 0]
        if "boxes" in out:
            b = out["boxes"]
            turned["boxes"] = tf.stack([b[:, 1], w - b[:, 2], b[:, 3], w - b[:, 0]], axis=1)
        out = turned
    return out


def random_rot90(sample: Sample, seed: tf.Tensor, prob: float = 0.0) -> Sample:
    """With probability ``prob`` rotate by 90°, 180° or 270° (equally likely). With the
    horizontal flip this reaches all 8 symmetries of the square; for square images."""
    if prob <= 0:
        return sample
    s_apply, s_k = split_seed(seed, 2)

    def turned() -> Sample:
        k = tf.random.stateless_uniform([], s_k, 1, 4, dtype=tf.int32)
        return tf.switch_case(k - 1, [lambda q=q: rotate90(sample, q) for q in (1, 2, 3)])

    return tf.cond(uniform(s_apply) < prob, turned, lambda: dict(sample))


# ------------------------------------------------------------ resize / place


def resize(sample: Sample, size: tuple) -> Sample:
    """Resize to ``size`` = (height, width): bilinear image, nearest mask, scaled boxes."""
    h, w = image_hw(sample["image"])
    out_h, out_w = size
    out = _with(sample, image=tf.image.resize(sample["image"], tf.stack([out_h, out_w])))
    if "mask" in sample:
        m = tf.image.resize(sample["mask"][..., None], tf.stack([out_h, out_w]), method="nearest")
        out["mask"] = m[..., 0]
    if "boxes" in sample:
        sx = tf.cast(out_w, tf.float32) / tf.cast(w, tf.float32)
        sy = tf.cast(out_h, tf.float32) / tf.cast(h, tf.float32)
        out["boxes"] = sample["boxes"] * tf.stack([sx, sy, sx, sy])
    return out


def _place_array(x: tf.Tensor, oy, ox, out_h, out_w, fill) -> tf.Tensor:
    """Put ``x`` (H, W, ...) with its top-left corner at (oy, ox) of an out_h×out_w canvas."""
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    y0 = tf.clip_by_value(-oy, 0, h)
    x0 = tf.clip_by_value(-ox, 0, w)
    y1 = tf.maximum(tf.minimum(h, out_h - oy), y0)
    x1 = tf.maximum(tf.minimum(w, out_w - ox), x0)
    part = x[y0:y1, x0:x1]
    top = tf.clip_by_value(oy, 0, out_h)
    left = tf.clip_by_value(ox, 0, out_w)
    bottom = out_h - top - (y1 - y0)
    right = out_w - left - (x1 - x0)
    pads = [[top, bottom], [left, right]] + [[0, 0]] * (len(x.shape) - 2)
    return tf.pad(part, pads, constant_values=tf.cast(fill, x.dtype))


def place(
    sample: Sample,
    size: tuple,
    offset_y,
    offset_x,
    pad_value: float = 114.0,
    min_area_frac: float = 0.25,
    min_side: float = 2.0,
) -> Sample:
    """Put the example at (offset_y, offset_x) of a canvas of ``size`` (height, width).

    Offsets may be negative (crops) or larger than the image (pads); the image is padded
    with ``pad_value``, the mask with :data:`IGNORE`; boxes are shifted, clipped and
    filtered (see :func:`clip_boxes`). A crop of region (y0, x0, h, w) is
    ``place(sample, (h, w), -y0, -x0)``.
    """
    out_h, out_w = (tf.cast(v, tf.int32) for v in size)
    oy, ox = tf.cast(offset_y, tf.int32), tf.cast(offset_x, tf.int32)
    out = _with(sample, image=_place_array(sample["image"], oy, ox, out_h, out_w, pad_value))
    if "mask" in sample:
        out["mask"] = _place_array(sample["mask"], oy, ox, out_h, out_w, IGNORE)
    if "boxes" in sample:
        shift = tf.cast(tf.stack([ox, oy, ox, oy]), tf.float32)
        boxes = sample["boxes"] + shift
        out = clip_boxes(out, boxes, box_area(boxes), min_area_frac, min_side)
    return out


def crop(sample: Sample, y0, x0, h, w, **kw) -> Sample:
    """Crop the region with top-left (y0, x0) and size h×w (boxes clipped and filtered)."""
    return place(sample, (h, w), -tf.cast(y0, tf.int32), -tf.cast(x0, tf.int32), **kw)


def letterbox_params(
    h, w, size: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Letterbox geometry for an h×w image into size×size: scale, new h, new w, pad top, pad left.

    ``scale = min(size / h, size / w)``; the resized image (``round(h·scale)`` ×
    ``round(w·scale)``) is centred, padding split as evenly as possible (extra pixel at
    the bottom/right). Boxes are scaled by the exact per-axis factors new_w / w and
    new_h / h (``scale`` up to rounding); map a box back with ``(box − pad) / factor``.
    """
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    scale = tf.minimum(size / hf, size / wf)
    new_h = tf.cast(tf.round(hf * scale), tf.int32)
    new_w = tf.cast(tf.round(wf * scale), tf.int32)
    return scale, new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def letterbox(sample: Sample, size: int, pad_value: float = 114.0) -> Sample:
    """Resize keeping the aspect ratio so the long side is ``size``, then pad to a square.

    Example: a 200×100 (W×H) image into 64 → scale 0.32, resized 64×32, 16 px padding top
    and bottom.
    """
    h, w = image_hw(sample["image"])
    _, new_h, new_w, top, left = letterbox_params(h, w, size)
    out = resize(sample, (new_h, new_w))
    return place(out, (size, size), top, left, pad_value, min_area_frac=0.0, min_side=0.0)


def random_scale_place(
    sample: Sample,
    size: int,
    seed: tf.Tensor,
    scale_range: tuple[float, float] = (0.5, 1.5),
    keep_aspect: bool = True,
    pad_value: float = 114.0,
    min_area_frac: float = 0.25,
    min_side: float = 2.0,
) -> Sample:
    """Scale jitter then letterbox: resize by (letterbox scale × U(scale_range)), then put
    the result at a random position of a size×size canvas (cropping when it is larger).

    With ``keep_aspect=False`` the base resize is to size×size (aspect not kept), as for
    segmentation without letterbox.
    """
    s_scale, s_y, s_x = split_seed(seed, 3)
    h, w = image_hw(sample["image"])
    jitter = uniform(s_scale, scale_range[0], scale_range[1])
    if keep_aspect:
        base = tf.minimum(size / tf.cast(h, tf.float32), size / tf.cast(w, tf.float32))
        sy = sx = base * jitter
    else:
        sy = size / tf.cast(h, tf.float32) * jitter
        sx = size / tf.cast(w, tf.float32) * jitter
    new_h = tf.maximum(tf.cast(tf.round(tf.cast(h, tf.float32) * sy), tf.int32), 1)
    new_w = tf.maximum(tf.cast(tf.round(tf.cast(w, tf.float32) * sx), tf.int32), 1)
    out = resize(sample, (new_h, new_w))
    oy = _random_offset(s_y, size - new_h)
    ox = _random_offset(s_x, size - new_w)
    return place(out, (size, size), oy, ox, pad_value, min_area_frac, min_side)


def _random_offset(seed: tf.Tensor, room: tf.Tensor) -> tf.Tensor:
    """An integer uniform in [0, room] (room ≥ 0) or [room, 0] (room < 0)."""
    u = uniform(seed)
    lo = tf.minimum(room, 0)
    span = tf.abs(room) + 1
    return lo + tf.minimum(tf.cast(tf.floor(u * tf.cast(span, tf.float32)), tf.int32), span - 1)


# ------------------------------------------------------------------- crops


def sample_crop(
    h,
    w,
    seed: tf.Tensor,
    area_range: tuple[float, float] = (0.08, 1.0),
    ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Sample a crop (y0, x0, ch, cw) as in Inception / torchvision RandomResizedCrop.

    Area fraction ~ U(area_range), log aspect (w/h) ~ U(log ratio_range); the first of
    ``attempts`` draws that fits is used, else a centre crop with the aspect clamped to
    ``ratio_range`` (Szegedy et al., "Going deeper with convolutions", 2015).
    """
    s_area, s_ratio, s_y, s_x = split_seed(seed, 4)
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    area = hf * wf * tf.random.stateless_uniform([attempts], s_area, area_range[0], area_range[1])
    log_r = tf.random.stateless_uniform(
        [attempts], s_ratio, math.log(ratio_range[0]), math.log(ratio_range[1])
    )
    ratio = tf.exp(log_r)
    cw = tf.cast(tf.round(tf.sqrt(area * ratio)), tf.int32)
    ch = tf.cast(tf.round(tf.sqrt(area / ratio)), tf.int32)
    ok = (cw > 0) & (ch > 0) & (cw <= w) & (ch <= h)
    first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
    in_ratio = wf / hf
    fb_w = tf.where(
        in_ratio < ratio_range[0],
        wf,
        tf.where(in_ratio > ratio_range[1], hf * ratio_range[1], wf),
    )
    fb_h = tf.where(
        in_ratio < ratio_range[0],
        wf / ratio_range[0],
        tf.where(in_ratio > ratio_range[1], hf, hf),
    )
    fb_w = tf.clip_by_value(tf.cast(tf.round(fb_w), tf.int32), 1, w)
    fb_h = tf.clip_by_value(tf.cast(tf.round(fb_h), tf.int32), 1, h)
    any_ok = tf.reduce_any(ok)
    cw = tf.where(any_ok, cw[first], fb_w)
    ch = tf.where(any_ok, ch[first], fb_h)
    y0 = tf.where(any_ok, _random_offset(s_y, h - ch), (h - ch) // 2)
    x0 = tf.where(any_ok, _random_offset(s_x, w - cw), (w - cw) // 2)
    return y0, x0, ch, cw


def random_resized_crop(
    sample: Sample,
    size: int | tuple,
    seed: tf.Tensor,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Sample:
    """RandomResizedCrop (Szegedy et al. 2015): crop area ∈ ``scale``, aspect ∈ ``ratio``,
    then resize to ``size``. Used for classification; boxes/masks follow if present."""
    h, w = image_hw(sample["image"])
    y0, x0, ch, cw = sample_crop(h, w, seed, scale, ratio)
    out = crop(sample, y0, x0, ch, cw)
    size = (size, size) if isinstance(size, int) else size
    return resize(out, size)


def random_crop(
    sample: Sample,
    seed: tf.Tensor,
    prob: float = 1.0,
    area_range: tuple[float, float] = (0.3, 1.0),
    ratio_range: tuple[float, float] = (0.5, 2.0),
    min_area_frac: float = 0.25,
    min_side: float = 2.0,
) -> Sample:
    """With probability ``prob`` crop a random region (size varies; letterbox it after).

    Boxes are clipped to the crop; boxes keeping less than ``min_area_frac`` of their area
    or with a side under ``min_side`` px are removed.
    """
    if prob <= 0:
        return sample
    s_apply, s_crop = split_seed(seed, 2)

    def _crop():
        h, w = image_hw(sample["image"])
        y0, x0, ch, cw = sample_crop(h, w, s_crop, area_range, ratio_range)
        return crop(sample, y0, x0, ch, cw, min_area_frac=min_area_frac, min_side=min_side)

    if prob >= 1:
        return _crop()
    return tf.cond(uniform(s_apply) < prob, _crop, lambda: dict(sample))


# ----------------------------------------------------------------- rotation


def affine_transform(
    x: tf.Tensor, transform: tf.Tensor, fill: float, interpolation: str = "BILINEAR"
) -> tf.Tensor:
    """Resample an (H, W, C) float image with TF's 8-number projective ``transform``
    (output index coords → input index coords), constant ``fill`` outside."""
    h, w = image_hw(x)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None],
        transforms=tf.reshape(tf.cast(transform, tf.float32), [1, 8]),
        output_shape=tf.stack([h, w]),
        fill_value=tf.cast(fill, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )
    return out[0]


def rotate(sample: Sample, angle: tf.Tensor, pad_value: float = 0.0, **clip_kw) -> Sample:
    """Rotate by ``angle`` radians about the image centre (same output size).

    Image bilinear with ``pad_value`` fill, mask nearest with :data:`IGNORE` fill; a box
    becomes the axis-aligned box enclosing its rotated corners, then is clipped.
    """
    h, w = image_hw(sample["image"])
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    c, s = tf.cos(angle), tf.sin(angle)
    # forward (edge coords, centre (w/2, h/2)): p' = R (p − c) + c, R = [[c, −s], [s, c]];
    # TF wants the inverse in pixel-index coords, centre ((w−1)/2, (h−1)/2).
    cx, cy = (wf - 1) / 2, (hf - 1) / 2
    t = tf.stack([c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy, 0.0, 0.0])
    out = _with(sample, image=affine_transform(sample["image"], t, pad_value))
    if "mask" in sample:
        m = tf.cast(sample["mask"][..., None], tf.float32)
        out["mask"] = tf.cast(affine_transform(m, t, IGNORE, "NEAREST")[..., 0], tf.int32)
    if "boxes" in sample:
        b = sample["boxes"]
        xs = tf.stack([b[:, 0], b[:, 2], b[:, 0], b[:, 2]], axis=1) - wf / 2
        ys = tf.stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3]], axis=1) - hf / 2
        rx = c * xs - s * ys + wf / 2
        ry = s * xs + c * ys + hf / 2
        boxes = tf.stack(
            [
                tf.reduce_min(rx, 1),
                tf.reduce_min(ry, 1),
                tf.reduce_max(rx, 1),
                tf.reduce_max(ry, 1),
            ],
            axis=1,
        )
        out = clip_boxes(out, boxes, box_area(boxes), **clip_kw)
    return out


def random_rotate(
    sample: Sample,
    seed: tf.Tensor,
    max_degrees: float = 15.0,
    prob: float = 0.5,
    pad_value: float = 0.0,
) -> Sample:
    """With probability ``prob`` rotate by an angle ~ U(−max_degrees, max_degrees)."""
    if prob <= 0 or max_degrees <= 0:
        return sample
    s_apply, s_angle = split_seed(seed, 2)
    angle = uniform(s_angle, -max_degrees, max_degrees) * (math.pi / 180.0)
    return tf.cond(
        uniform(s_apply) < prob,
        lambda: rotate(sample, angle, pad_value),
        lambda: dict(sample),
    )


def _bilinear_gather(image: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor) -> tf.Tensor:
    """Sample an (H, W, C) image at float pixel-index coords (H, W), edges replicated."""
    h, w = image_hw(image)
    ys = tf.clip_by_value(ys, 0.0, tf.cast(h - 1, tf.float32))
    xs = tf.clip_by_value(xs, 0.0, tf.cast(w - 1, tf.float32))
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
    y0i, x0i = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1i, x1i = tf.minimum(y0i + 1, h - 1), tf.minimum(x0i + 1, w - 1)

    def at(yi, xi):
        return tf.gather_nd(image, tf.stack([yi, xi], axis=-1))

    top = at(y0i, x0i) * (1 - wx) + at(y0i, x1i) * wx
    bottom = at(y1i, x0i) * (1 - wx) + at(y1i, x1i) * wx
    return top * (1 - wy) + bottom * wy


def elastic_deform(sample: Sample, seed: tf.Tensor, sigma: float = 10.0, grid: int = 3) -> Sample:
    """Elastic deformation of the U-Net paper (Ronneberger et al. 2015, sec. 3.1): random
    displacement vectors on a coarse ``grid`` × ``grid`` lattice, drawn from a Gaussian
    with ``sigma`` pixels of standard deviation, interpolated bicubically to every pixel.

    The image is resampled bilinearly, the mask with nearest neighbour (edges replicated,
    so nothing becomes unlabelled). Boxes are not supported: the deformation bends them.
    """
    if "boxes" in sample:
        raise ValueError("elastic deformation bends boxes; use it for segmentation only")
    h, w = image_hw(sample["image"])
    coarse = tf.random.stateless_normal([1, grid, grid, 2], seed, stddev=sigma)
    field = tf.image.resize(coarse, tf.stack([h, w]), method="bicubic")[0]
    yy, xx = tf.meshgrid(
        tf.range(tf.cast(h, tf.float32)), tf.range(tf.cast(w, tf.float32)), indexing="ij"
    )
    ys, xs = yy + field[..., 0], xx + field[..., 1]
    out = _with(sample, image=_bilinear_gather(sample["image"], ys, xs))
    if "mask" in sample:
        yi = tf.cast(tf.clip_by_value(tf.round(ys), 0.0, tf.cast(h - 1, tf.float32)), tf.int32)
        xi = tf.cast(tf.clip_by_value(tf.round(xs), 0.0, tf.cast(w - 1, tf.float32)), tf.int32)
        out["mask"] = tf.gather_nd(sample["mask"], tf.stack([yi, xi], axis=-1))
    return out


def random_elastic(
    sample: Sample, seed: tf.Tensor, prob: float, sigma: float = 10.0, grid: int = 3
) -> Sample:
    """With probability ``prob`` apply :func:`elastic_deform`."""
    if prob <= 0 or sigma <= 0:
        return sample
    s_apply, s_field = split_seed(seed, 2)
    return tf.cond(
        uniform(s_apply) < prob,
        lambda: elastic_deform(sample, s_field, sigma, grid),
        lambda: dict(sample),
    )
