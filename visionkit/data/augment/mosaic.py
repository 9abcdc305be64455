"""Mosaic augmentation for detection (Bochkovskiy et al., "YOLOv4: Optimal speed and
accuracy of object detection", 2020), in TF ops.

Four examples are resized so their long side is ``size`` and put around a random centre
(x_c, y_c) ∈ [0.5·size, 1.5·size]² of a 2·size × 2·size canvas (top-left, top-right,
bottom-left, bottom-right), grey elsewhere. A square region of side size / z,
z ~ U(scale_range), around the centre is then cut out and resized to size × size. Boxes
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
    """Combine four samples into one size×size sample (see the module docstring)."""
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    s_cx, s_cy, s_zoom, s_jx, s_jy = split_seed(seed, 5)
    canvas = 2 * size
    xc = tf.cast(tf.round(uniform(s_cx, 0.5 * size, 1.5 * size)), tf.int32)
    yc = tf.cast(tf.round(uniform(s_cy, 0.5 * size, 1.5 * size)), tf.int32)
    has_mask = "mask" in samples[0]
    placed = []
    for k, s in enumerate(samples):
        h, w = image_hw(s["image"])
        scale = size / tf.cast(tf.maximum(h, w), tf.float32)
        nh = tf.maximum(tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32), 1)
        nw = tf.maximum(tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32), 1)
        r = resize(s, (nh, nw))
        r["valid"] = tf.ones([nh, nw, 1], tf.float32)
        oy = yc - nh if k in (0, 1) else yc
        ox = xc - nw if k in (0, 2) else xc
        p = place(r, (canvas, canvas), oy, ox, 0.0, min_area_frac, min_side)
        p["valid"] = place({"image": r["valid"]}, (canvas, canvas), oy, ox, 0.0)["image"]
        placed.append(p)
    valid = tf.add_n([p["valid"] for p in placed])
    image = tf.add_n([p["image"] for p in placed]) + pad_value * (1.0 - valid)
    out: Sample = {
        "image": image,
        "boxes": tf.concat([p["boxes"] for p in placed], 0),
        "classes": tf.concat([p["classes"] for p in placed], 0),
    }
    if has_mask:
        m = tf.add_n([tf.where(p["valid"][..., 0] > 0, p["mask"], 0) for p in placed])
        out["mask"] = tf.where(valid[..., 0] > 0, m, 255)
    side = tf.cast(tf.round(size / uniform(s_zoom, scale_range[0], scale_range[1])), tf.int32)
    side = tf.clip_by_value(side, 1, canvas)
    jx = tf.cast(tf.round(uniform(s_jx, -0.25, 0.25) * tf.cast(side, tf.float32)), tf.int32)
    jy = tf.cast(tf.round(uniform(s_jy, -0.25, 0.25) * tf.cast(side, tf.float32)), tf.int32)
    x0 = tf.clip_by_value(xc - side // 2 + jx, 0, canvas - side)
    y0 = tf.clip_by_value(yc - side // 2 + jy, 0, canvas - side)
    cropped = place(out, (side, side), -y0, -x0, pad_value, min_area_frac, min_side)
    return resize(cropped, (size, size))
