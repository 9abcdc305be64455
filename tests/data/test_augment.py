"""Property tests: boxes and masks move exactly with the pixels under every geometric op.

Solid rectangles of distinct colours are painted on a black image; box = rectangle, mask
= its class. After each op (several seeds) every pixel's nearest palette colour tells
where each rectangle went; its box must enclose those pixels tightly (±2 px for
interpolation), its mask must equal them up to a 1-px border, and a removed box must
belong to a rectangle mostly pushed out of frame.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from visionkit.data.augment import AugmentConfig
from visionkit.data.augment import geometric as geo
from visionkit.data.augment.colour import colour_jitter, rand_augment
from visionkit.data.augment.mix import mixup_cutmix, mixup_detection, sample_beta
from visionkit.data.augment.mosaic import mosaic

PALETTE = {
    1: (255, 0, 0),
    2: (0, 255, 0),
    3: (0, 0, 255),
    4: (255, 255, 0),
}
BACKGROUNDS = [(0, 0, 0), (114, 114, 114)]
SEEDS = [0, 1, 2, 3]


def paint(h: int, w: int, rects: dict[int, tuple[int, int, int, int]]) -> dict:
    """Black h×w image with rects {class: (x0, y0, x1, y1)} painted in PALETTE colours."""
    image = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), np.int32)
    boxes, classes = [], []
    for k, (x0, y0, x1, y1) in rects.items():
        image[y0:y1, x0:x1] = PALETTE[k]
        mask[y0:y1, x0:x1] = k
        boxes.append([x0, y0, x1, y1])
        classes.append(k)
    return {
        "image": tf.constant(image),
        "boxes": tf.constant(np.array(boxes, np.float32).reshape(-1, 4)),
        "classes": tf.constant(np.array(classes, np.int32)),
        "mask": tf.constant(mask),
    }


def nearest_colour(image: np.ndarray) -> np.ndarray:
    """Class id of each pixel's nearest palette colour (0 for the backgrounds)."""
    cols = [(0, c) for c in BACKGROUNDS] + list(PALETTE.items())
    d = np.stack([np.linalg.norm(image - np.array(c, np.float32), axis=-1) for _, c in cols])
    ids = np.array([k for k, _ in cols])
    return ids[np.argmin(d, axis=0)]


def dilate(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1)
    out = np.zeros_like(m)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= p[1 + dy : 1 + dy + m.shape[0], 1 + dx : 1 + dx + m.shape[1]]
    return out


def erode(m: np.ndarray) -> np.ndarray:
    return ~dilate(~m)


def check_follows(
    out: dict,
    original_area: dict[int, float],
    max_scale: float = 1.0,
    min_area_frac: float = 0.25,
    tol: float = 2.0,
    require_covered: bool = True,
) -> None:
    """Assert boxes and mask of ``out`` follow its painted pixels (see module docstring).

    ``require_covered=False`` allows painted pixels outside every box (remnants of boxes
    removed next to kept boxes of the same class, as in Mosaic with repeated colours).
    """
    image = out["image"].numpy()
    labels = nearest_colour(image)
    boxes = out["boxes"].numpy()
    classes = out["classes"].numpy()
    mask = out["mask"].numpy() if "mask" in out else None
    for k, area in original_area.items():
        painted = labels == k
        kept = np.flatnonzero(classes == k)
        if len(kept):
            ys, xs = np.nonzero(painted)
            assert len(ys), f"class {k}: box kept but no painted pixels"
            covered = np.zeros(len(ys), bool)
            for j in kept:
                x0, y0, x1, y1 = boxes[j]
                # pixel i spans [i, i + 1]; the box encloses the painted pixels ...
                inside = (
                    (xs >= x0 - tol)
                    & (xs + 1 <= x1 + tol)
                    & (ys >= y0 - tol)
                    & (ys + 1 <= y1 + tol)
                )
                assert inside.any(), f"class {k}: box {boxes[j]} has no painted pixels"
                covered |= inside
                # ... tightly
                bx, by = xs[inside], ys[inside]
                assert x0 >= bx.min() - tol and x1 <= bx.max() + 1 + tol, (
                    k,
                    boxes[j],
                    bx.min(),
                    bx.max(),
                )
                assert y0 >= by.min() - tol and y1 <= by.max() + 1 + tol, (
                    k,
                    boxes[j],
                    by.min(),
                    by.max(),
                )
            if require_covered:
                assert covered.all(), f"class {k}: painted pixels outside every box"
        else:
            limit = min_area_frac * area * max_scale**2 + 4 * math.sqrt(area) * max_scale + 4
            assert painted.sum() <= limit, f"class {k} removed but {painted.sum()} px visible"
        if mask is not None:
            m = mask == k
            diff = m ^ painted
            border = dilate(painted) & ~erode(painted)
            assert not (diff & ~border).any(), f"class {k}: mask differs beyond a 1-px border"


def rect_areas(rects):
    return {k: float((x1 - x0) * (y1 - y0)) for k, (x0, y0, x1, y1) in rects.items()}


RECTS = {1: (4, 6, 24, 30), 2: (30, 10, 58, 22), 3: (40, 36, 62, 62)}
RECTS_48 = {1: (4, 6, 24, 30), 2: (30, 10, 58, 22), 3: (40, 30, 62, 46)}  # fit 48×64


def seed(i: int) -> tf.Tensor:
    return tf.constant([i, 42], tf.int64)


# ------------------------------------------------------------------- geometric ops


def test_flip_moves_boxes_and_masks():
    s = paint(64, 64, RECTS)
    out = geo.flip_left_right(s)
    check_follows(out, rect_areas(RECTS))
    np.testing.assert_array_equal(out["boxes"].numpy()[0], [40, 6, 60, 30])
    back = geo.flip_left_right(out)
    np.testing.assert_array_equal(back["image"].numpy(), s["image"].numpy())


@pytest.mark.parametrize("size", [(32, 48), (100, 90)])
def test_resize_follows(size):
    s = paint(64, 64, RECTS)
    out = geo.resize(s, size)
    assert out["image"].shape == (*size, 3) and out["mask"].shape == size
    check_follows(out, rect_areas(RECTS), max_scale=2)


def test_letterbox_geometry_exact():
    s = paint(100, 200, {1: (0, 0, 200, 100)})
    scale, nh, nw, top, left = geo.letterbox_params(100, 200, 64)
    assert abs(float(scale) - 0.32) < 1e-6
    assert (int(nh), int(nw), int(top), int(left)) == (32, 64, 16, 0)
    out = geo.letterbox(s, 64, pad_value=114.0)
    img = out["image"].numpy()
    np.testing.assert_allclose(img[:16], 114.0)
    np.testing.assert_allclose(img[48:], 114.0)
    np.testing.assert_allclose(img[17:47], np.broadcast_to([255, 0, 0], (30, 64, 3)), atol=1e-3)
    np.testing.assert_allclose(out["boxes"].numpy(), [[0, 16, 64, 48]], atol=1e-4)
    m = out["mask"].numpy()
    assert (m[:16] == geo.IGNORE).all() and (m[48:] == geo.IGNORE).all() and (m[16:48] == 1).all()


def test_letterbox_follows():
    rects = {1: (10, 5, 60, 40), 2: (100, 50, 190, 95)}
    out = geo.letterbox(paint(100, 200, rects), 64)
    check_follows(out, rect_areas(rects), max_scale=0.32)


@pytest.mark.parametrize("i", SEEDS)
def test_random_crop_follows_and_removes(i):
    s = paint(64, 64, RECTS)
    out = geo.random_crop(s, seed(i), prob=1.0, area_range=(0.2, 0.6), ratio_range=(0.5, 2.0))
    check_follows(out, rect_areas(RECTS), max_scale=1.0)
    # exact rule for a pure crop: kept iff ≥ 25 % of the area and sides ≥ 2 px remain
    counts = {k: int((out["mask"].numpy() == k).sum()) for k in RECTS}
    kept = set(out["classes"].numpy().tolist())
    for k, area in rect_areas(RECTS).items():
        ys, xs = np.nonzero(out["mask"].numpy() == k)
        long_enough = len(ys) and np.ptp(xs) + 1 >= 2 and np.ptp(ys) + 1 >= 2
        assert (k in kept) == bool(counts[k] >= 0.25 * area and long_enough), (k, counts[k], area)


@pytest.mark.parametrize("i", SEEDS)
def test_random_scale_place_follows(i):
    s = paint(48, 64, RECTS_48)
    out = geo.random_scale_place(s, 64, seed(i), scale_range=(0.5, 1.8))
    assert out["image"].shape == (64, 64, 3)
    check_follows(out, rect_areas(RECTS_48), max_scale=1.8)


@pytest.mark.parametrize("i", SEEDS[:2])
def test_random_scale_place_no_aspect_follows(i):
    s = paint(48, 64, RECTS_48)
    out = geo.random_scale_place(
        s, 64, seed(i), scale_range=(0.8, 1.4), keep_aspect=False, pad_value=0.0
    )
    check_follows(out, rect_areas(RECTS_48), max_scale=1.4 * 64 / 48)


@pytest.mark.parametrize("degrees", [90.0, -35.0, 12.0, 180.0])
def test_rotate_follows(degrees):
    s = paint(64, 64, {1: (8, 20, 30, 44), 2: (34, 6, 58, 20)})
    out = geo.rotate(s, tf.constant(degrees * math.pi / 180), pad_value=0.0)
    check_follows(out, rect_areas({1: (8, 20, 30, 44), 2: (34, 6, 58, 20)}), max_scale=1.0)
    m = out["mask"].numpy()
    if degrees not in (90.0, 180.0):
        assert (m == geo.IGNORE).any(), "rotation fill must be the ignore value"


def test_rotate_90_exact():
    s = paint(64, 64, {1: (8, 20, 30, 44)})
    out = geo.rotate(s, tf.constant(math.pi / 2))
    np.testing.assert_allclose(out["boxes"].numpy(), [[20, 8, 44, 30]], atol=1e-3)


@pytest.mark.parametrize("i", SEEDS[:2])
def test_random_rotate_follows(i):
    s = paint(64, 64, RECTS)
    out = geo.random_rotate(s, seed(i), max_degrees=40, prob=1.0)
    check_follows(out, rect_areas(RECTS), max_scale=1.0)


@pytest.mark.parametrize("i", SEEDS[:2])
def test_elastic_mask_follows_pixels(i):
    """The mask moves with the pixels (up to a 1-px border) and nothing becomes unlabelled."""
    s = paint(64, 64, RECTS)
    s.pop("boxes"), s.pop("classes")
    out = geo.random_elastic(s, seed(i), prob=1.0, sigma=4.0, grid=3)
    labels, mask = nearest_colour(out["image"].numpy()), out["mask"].numpy()
    assert not (mask == geo.IGNORE).any()
    assert (mask != s["mask"].numpy()).any(), "a deformation of sigma 4 px must move pixels"
    for k in RECTS:
        painted = labels == k
        border = dilate(painted) & ~erode(painted)
        assert not (((mask == k) ^ painted) & ~border).any(), f"class {k}"


def test_elastic_zero_field_is_identity_and_seeded():
    s = paint(32, 48, {1: (4, 6, 24, 30)})
    s.pop("boxes"), s.pop("classes")
    still = geo.elastic_deform(s, seed(0), sigma=1e-6)
    np.testing.assert_allclose(still["image"].numpy(), s["image"].numpy(), atol=1e-3)
    np.testing.assert_array_equal(still["mask"].numpy(), s["mask"].numpy())
    a = geo.elastic_deform(s, seed(1), sigma=5.0)["image"].numpy()
    b = geo.elastic_deform(s, seed(1), sigma=5.0)["image"].numpy()
    c = geo.elastic_deform(s, seed(2), sigma=5.0)["image"].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1.0
    with pytest.raises(ValueError, match="boxes"):
        geo.elastic_deform(paint(32, 32, {1: (4, 4, 20, 20)}), seed(0))


@pytest.mark.parametrize("i", SEEDS)
def test_random_resized_crop_shapes(i):
    s = paint(48, 80, RECTS_48)
    out = geo.random_resized_crop(s, 32, seed(i))
    assert out["image"].shape == (32, 32, 3) and out["image"].dtype == tf.float32
    assert out["mask"].shape == (32, 32)
    h, w = 48, 80
    y0, x0, ch, cw = (int(v) for v in geo.sample_crop(h, w, seed(i)))
    assert 0 <= y0 <= h - ch and 0 <= x0 <= w - cw and ch > 0 and cw > 0
    area = ch * cw / (h * w)
    assert 0.07 <= area <= 1.0


@pytest.mark.parametrize("i", SEEDS)
def test_mosaic_follows(i):
    rects = [{1: (4, 4, 40, 30)}, {2: (10, 20, 60, 52)}, {3: (0, 0, 30, 20)}, {4: (20, 10, 50, 40)}]
    samples = [paint(48 + 8 * k, 64, r) for k, r in enumerate(rects)]
    out = mosaic(samples, 64, seed(i), scale_range=(0.5, 1.5))
    assert out["image"].shape == (64, 64, 3)
    areas = {k: v for r in rects for k, v in rect_areas(r).items()}
    # each image is scaled by 64 / long side (= 1) into the canvas, then zoomed ≤ 1.5
    check_follows(out, areas, max_scale=1.5)


def test_place_and_filter_small():
    s = paint(32, 32, {1: (0, 0, 10, 10), 2: (20, 20, 32, 32)})
    out = geo.place(s, (32, 32), 0, -9)  # shift left by 9: rect 1 keeps 1 px width
    assert out["classes"].numpy().tolist() == [2]
    check_follows(out, rect_areas({1: (0, 0, 10, 10), 2: (20, 20, 32, 32)}))


# -------------------------------------------------------------------- determinism


def test_ops_deterministic_under_seed():
    s = paint(64, 64, RECTS)

    def run(i):
        a = geo.random_scale_place(s, 64, seed(i))
        a = geo.random_rotate(a, seed(i), 30, prob=1.0)
        a["image"] = colour_jitter(a["image"], seed(i), 0.3, 0.3, 0.3, 0.05)
        a["image"] = rand_augment(a["image"], seed(i), 2, 9)
        return a

    a, b, c = run(5), run(5), run(6)
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    assert not np.array_equal(a["image"].numpy(), c["image"].numpy())


def test_colour_ops_keep_range_and_shape():
    img = tf.random.stateless_uniform((16, 16, 3), seed(0), 0, 255)
    for i in SEEDS:
        out = rand_augment(img, seed(i), 3, 9)
        assert out.shape == img.shape
        assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255
        out = colour_jitter(img, seed(i), 0.4, 0.4, 0.4, 0.1)
        assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255.001


# --------------------------------------------------------------------------- mixing


def test_beta_sampling_mean():
    x = sample_beta(seed(0), 0.5, [4000]).numpy()
    assert x.min() >= 0 and x.max() <= 1 and abs(x.mean() - 0.5) < 0.03


def test_cutmix_weight_matches_pasted_area():
    b, h, w = 6, 20, 24
    images = tf.concat([tf.zeros((b // 2, h, w, 3)), tf.fill((b // 2, h, w, 3), 255.0)], 0)
    labels = tf.one_hot([0, 1, 2, 3, 4, 5], 6)
    for i in SEEDS:
        mixed, mixed_labels, lam = mixup_cutmix(images, labels, seed(i), cutmix_prob=1.0)
        np.testing.assert_allclose(tf.reduce_sum(mixed_labels, 1).numpy(), 1.0, atol=1e-6)
        own = images.numpy()[:, :, :, 0]
        kept = (mixed.numpy()[:, :, :, 0] == own).mean(axis=(1, 2))
        np.testing.assert_allclose(kept, lam.numpy(), atol=1e-6)
        np.testing.assert_allclose(
            mixed_labels.numpy()[np.arange(b), np.arange(b)], lam.numpy(), atol=1e-6
        )


def test_mixup_labels_and_pixels():
    images = tf.concat([tf.zeros((2, 8, 8, 3)), tf.fill((2, 8, 8, 3), 100.0)], 0)
    labels = tf.one_hot([0, 1, 2, 3], 4)
    mixed, mixed_labels, lam = mixup_cutmix(
        images, labels, seed(1), mixup_prob=1.0, mixup_alpha=0.4
    )
    np.testing.assert_allclose(tf.reduce_sum(mixed_labels, 1).numpy(), 1.0, atol=1e-6)
    expected = (
        lam.numpy()[:, None, None, None] * images
        + (1 - lam.numpy()[:, None, None, None]) * images[::-1]
    )
    np.testing.assert_allclose(mixed.numpy(), expected.numpy(), atol=1e-4)
    assert not np.allclose(lam.numpy(), 1.0)


def test_mixup_detection_concatenates_boxes():
    a = paint(32, 32, {1: (0, 0, 10, 10)})
    b = paint(32, 32, {2: (5, 5, 20, 20), 3: (20, 20, 30, 30)})
    out = mixup_detection(a, b, seed(0))
    assert out["boxes"].shape == (3, 4) and out["classes"].numpy().tolist() == [1, 2, 3]


# --------------------------------------------------------------------------- config


def test_config_defaults_and_unknown_keys():
    assert AugmentConfig.for_task("detect").mosaic_prob == 1.0
    assert AugmentConfig.for_task("classify").crop_area == (0.08, 1.0)
    assert AugmentConfig.for_task("segment").rotate_prob > 0
    cfg = AugmentConfig.from_dict({"mixup_prob": 0.2, "scale": [0.8, 1.2]}, "detect")
    assert cfg.mixup_prob == 0.2 and cfg.scale == (0.8, 1.2)
    with pytest.raises(ValueError, match="did you mean 'mosaic_prob'"):
        AugmentConfig.from_dict({"mosiac_prob": 0.5}, "detect")


def test_colour_matrix_identity_and_grey_preserved():
    from visionkit.data.augment.colour import colour_matrix

    m, t = colour_matrix(1.0, 1.0, 1.0, 0.0, tf.constant(80.0))
    np.testing.assert_allclose(m.numpy(), np.eye(3), atol=1e-5)
    np.testing.assert_allclose(t.numpy(), 0.0, atol=1e-4)
    # saturation 0 gives grey; a hue rotation leaves grey pixels grey
    m, t = colour_matrix(1.0, 1.0, 0.0, 0.1, tf.constant(80.0))
    px = tf.constant([[200.0, 30.0, 60.0]]) @ m + t
    assert np.ptp(px.numpy()) < 1e-3


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate90_is_lossless_and_boxes_follow(k):
    s = paint(48, 64, RECTS_48)
    out = geo.rotate90(s, k)
    expected = np.rot90(s["image"].numpy(), k)
    np.testing.assert_array_equal(out["image"].numpy(), expected)
    np.testing.assert_array_equal(out["mask"].numpy(), np.rot90(s["mask"].numpy(), k))
    check_follows(out, rect_areas(RECTS_48), max_scale=1.0)
    back = geo.rotate90(out, 4 - k)
    for key in ("image", "mask", "boxes"):
        np.testing.assert_array_equal(back[key].numpy(), s[key].numpy())


def test_rotate90_box_exact():
    # counter-clockwise in a 64-wide image: (x, y) -> (y, 64 - x)
    out = geo.rotate90(paint(64, 64, {1: (8, 20, 30, 44)}), 1)
    np.testing.assert_array_equal(out["boxes"].numpy(), [[20, 34, 44, 56]])


def test_random_rot90_turns_by_each_quarter_and_prob_zero_keeps():
    s = paint(64, 64, RECTS)
    turns = set()
    for i in range(12):
        out = geo.random_rot90(s, seed(i), prob=1.0)["image"].numpy()
        k = [q for q in (1, 2, 3) if np.array_equal(out, np.rot90(s["image"].numpy(), q))]
        assert len(k) == 1, "prob=1 must turn by exactly one of 90°, 180°, 270°"
        turns.add(k[0])
    assert turns == {1, 2, 3}
    kept = geo.random_rot90(s, seed(0), prob=0.0)
    np.testing.assert_array_equal(kept["image"].numpy(), s["image"].numpy())
