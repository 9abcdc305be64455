"""Mosaic augmentation for detection (Bochkovskiy et al., "YOLOv4: Optimal speed and
accuracy of object detection", 2020), in TF ops.

Four examples are resized so their long side is ``size`` and put around a random centre
(x_c, y_c) ∈ [0.5·size, 1.5·size]² of a 2·size × 2·size canvas (top-left, top-right,
bottom-left, bottom-right), grey elsewhere. A square region of side size / z,
z ~ U(scale_range), around the centre (jittered by ±¼ side) is then cut out and resized
to size × size. Boxes
move with their image, are clipped and dropped when mostly lost (see
``geometric.clip_boxes``). Samples are dicts as in :mod:`visionkit.data.augment.geometric`
(masks are carried too, filled with the ignore value).
"""

from __future__ import annotations

import tensorflow as tf

from visionkit.data.augment.geometric import (
    Sample,
    image_hw,
    place,
    resize,
    split_seed,
    uniform,
)


def mosaic(
    samples: list[Sample],
    size: int,
    seed: tf.Tensor,
    scale_range: tuple[float, float] = (0.5, 1.5),
    pad_value: float = 114.0,
    min_area_frac: float = 0.25,
    min_side: float = 2.0,
) -> Sample:
    """Combine four samples into one size×size sample (see the module docstring).

    The 2·size canvas is never built: the crop and final resize are composed with each
    image's placement, so every image is resized once, straight to its final scale, into
    its quadrant of the output (same result, a fraction of the pixel work).
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    s_cx, s_cy, s_zoom, s_jx, s_jy = split_seed(seed, 5)
    canvas = 2 * size
    xc = uniform(s_cx, 0.5 * size, 1.5 * size)
    yc = uniform(s_cy, 0.5 * size, 1.5 * size)
    side = tf.clip_by_value(size / uniform(s_zoom, scale_range[0], scale_range[1]), 1.0, canvas)
    x0 = tf.clip_by_value(xc - side / 2 + uniform(s_jx, -0.25, 0.25) * side, 0.0, canvas - side)
    y0 = tf.clip_by_value(yc - side / 2 + uniform(s_jy, -0.25, 0.25) * side, 0.0, canvas - side)
    f = size / side  # canvas → output scale
    # the mosaic centre in output pixels: the four images meet there, each filling (part
    # of) its quadrant of the output, so the output is the four quadrants concatenated
    cy = tf.clip_by_value(tf.cast(tf.round((yc - y0) * f), tf.int32), 0, size)
    cx = tf.clip_by_value(tf.cast(tf.round((xc - x0) * f), tf.int32), 0, size)
    quads = []
    for k, s in enumerate(samples):
        h, w = image_hw(s["image"])
        scale = size / tf.cast(tf.maximum(h, w), tf.float32) * f
        nh = tf.maximum(tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32), 1)
        nw = tf.maximum(tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32), 1)
        top, left = k in (0, 1), k in (0, 2)
        qh = cy if top else size - cy
        qw = cx if left else size - cx
        oy = cy - nh if top else 0
        ox = cx - nw if left else 0
        q = place(resize(s, (nh, nw)), (qh, qw), oy, ox, pad_value, min_area_frac, min_side)
        shift = tf.cast(tf.stack([0 if left else cx, 0 if top else cy] * 2), tf.float32)
        q["boxes"] = q["boxes"] + shift
        quads.append(q)

    def tile(key: str) -> tf.Tensor:
        upper = tf.concat([quads[0][key], quads[1][key]], axis=1)
        lower = tf.concat([quads[2][key], quads[3][key]], axis=1)
        return tf.concat([upper, lower], axis=0)

    out: Sample = {
        "image": tile("image"),
        "boxes": tf.concat([q["boxes"] for q in quads], 0),
        "classes": tf.concat([q["classes"] for q in quads], 0),
    }
    if "mask" in samples[0]:
        out["mask"] = tile("mask")
    return out
