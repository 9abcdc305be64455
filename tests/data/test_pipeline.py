"""tf.data pipelines: element formats per task, determinism, decoding paths, controls."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_augment import PALETTE, check_follows

from visionkit.data.images import read_image
from visionkit.data.pipeline import PipelineControls, build_pipeline, mask_lookup_table
from visionkit.data.types import Dataset, Example

S = 32


def painted_examples(n: int = 6) -> list[Example]:
    """Black images of varying size, each with one or two painted rectangles."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        h, w = 40 + 4 * (i % 3), 48
        img = np.zeros((h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.int32)
        boxes, classes = [], []
        for k in (1 + i % 4, 1 + (i + 1) % 4)[: 1 + i % 2]:
            x0, y0 = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
            x1, y1 = x0 + 14, y0 + 14
            if any(c == k for c in classes):
                continue
            img[y0:y1, x0:x1] = PALETTE[k]
            mask[y0:y1, x0:x1] = k
            boxes.append([x0, y0, x1, y1])
            classes.append(k)
        out.append(
            Example(
                image=img,
                label=i % 3,
                boxes=np.array(boxes, np.float32),
                box_classes=np.array(classes, np.int32),
                mask=mask,
            )
        )
    return out


def dataset(task: str, n: int = 6) -> Dataset:
    names = ["bg", "red", "green", "blue", "yellow"] if task != "classify" else ["a", "b", "c"]
    return Dataset(task, names, painted_examples(n))


def batches(ds) -> list:
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def test_classify_batches_format():
    ds = build_pipeline(
        dataset("classify"),
        imgsz=S,
        batch=4,
        training=True,
        seed=0,
        augment={"mixup_prob": 0.5, "cutmix_prob": 0.5, "randaugment_ops": 2},
    )
    out = batches(ds)
    assert len(out) == 2 and ds.cardinality() == 2
    x, y = out[0]
    assert x.shape == (4, S, S, 3) and x.dtype == np.float32 and y.shape == (4, 3)
    assert y.dtype == np.float32 and x.min() >= 0 and x.max() <= 255
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
    ev = batches(build_pipeline(dataset("classify"), imgsz=(S, 24), batch=4, training=False))
    assert ev[0][0].shape == (4, S, 24, 3)
    np.testing.assert_array_equal(ev[0][1], np.eye(3)[[0, 1, 2, 0]])


def test_detect_batches_format_and_boxes_follow():
    ds = build_pipeline(
        dataset("detect"),
        imgsz=S,
        batch=3,
        training=True,
        seed=1,
        max_boxes=7,
        augment={"colour_prob": 0.0, "mixup_prob": 0.0},
    )
    for x, y in batches(ds):
        assert x.shape == (3, S, S, 3) and x.dtype == np.float32
        assert y["boxes"].shape == (3, 7, 4) and y["boxes"].dtype == np.float32
        assert y["classes"].shape == (3, 7) and y["classes"].dtype == np.int32
        for img, boxes, classes in zip(x, y["boxes"], y["classes"], strict=False):
            n = int((classes >= 0).sum())
            assert (classes[n:] == -1).all() and (boxes[n:] == 0).all()
            assert (boxes[:n] >= 0).all() and (boxes[:n] <= S).all()
            # mosaic draws partners at random; check the kept boxes enclose their pixels
            out = {
                "image": tf.constant(img),
                "boxes": tf.constant(boxes[:n]),
                "classes": tf.constant(classes[:n]),
            }
            check_follows(out, {int(k): 0.0 for k in classes[:n]}, require_covered=False)


def test_detect_eval_letterbox_and_mixup():
    ex = painted_examples(2)
    ds = build_pipeline(Dataset("detect", ["a"] * 5, ex), imgsz=S, batch=2, training=False)
    x, y = batches(ds)[0]
    # 48 wide × 40 high → scale 32/48, 27 rows (round 26.67), padded 2 top, 3 bottom;
    # boxes scale by the exact resize factors (32/48, 27/40) so they follow the pixels
    assert (x[0, :2] == 114).all() and (x[0, -3:] == 114).all()
    expect = ex[0].boxes[0] * [S / 48, 27 / 40, S / 48, 27 / 40] + [0, 2, 0, 2]
    np.testing.assert_allclose(y["boxes"][0, 0], expect, atol=1e-4)
    mix = build_pipeline(
        dataset("detect"),
        imgsz=S,
        batch=6,
        training=True,
        seed=0,
        augment={"mosaic_prob": 0.0, "mixup_prob": 1.0},
    )
    _, y = batches(mix)[0]
    original = sum(len(e.boxes) for e in painted_examples())
    assert (y["classes"] >= 0).sum() > original  # MixUp concatenates the partner's boxes


def test_segment_mask_map_and_ignore_fill():
    exs = painted_examples(4)
    for e in exs:
        e.mask = np.where(e.mask > 0, 255, 0).astype(np.int32)
    ds = build_pipeline(
        Dataset("segment", ["bg", "fg"], exs),
        imgsz=S,
        batch=2,
        training=True,
        seed=0,
        mask_value_map={255: 1},
        augment={"rotate_prob": 1.0, "rotate_degrees": 30},
    )
    out = batches(ds)
    x, m = out[0]
    assert x.shape == (2, S, S, 3) and m.shape == (2, S, S) and m.dtype == np.int32
    values = set(np.unique(np.concatenate([b[1].ravel() for b in out])).tolist())
    assert values <= {0, 1, 255} and 1 in values and 255 in values
    table = mask_lookup_table({255: 1, 300: 2})
    assert table[255] == 1 and table[300] == 2 and table[7] == 7


def test_determinism_epochs_and_controls():
    def make(seed):
        return build_pipeline(
            dataset("detect"),
            imgsz=S,
            batch=3,
            training=True,
            seed=seed,
            augment={"mixup_prob": 0.5},
        )

    a, b = make(3), make(3)
    a0, b0 = batches(a), batches(b)
    for p, q in zip(a0, b0, strict=False):
        tf.nest.map_structure(np.testing.assert_array_equal, p, q)
    a1 = batches(a)  # second iteration = next epoch: different augmentation
    assert not np.array_equal(a0[0][0], a1[0][0])
    a.controls.set_epoch(0)  # resume: epoch 0 again
    tf.nest.map_structure(np.testing.assert_array_equal, batches(a)[0], a0[0])
    c0 = batches(make(4))
    assert not np.array_equal(a0[0][0], c0[0][0])
    # switching Mosaic off at run time: one source image per output, so ≤ 2 boxes each
    a.controls.set_mosaic_prob(0.0)
    a.controls.set_mixup_prob(0.0)
    for _, y in batches(a):
        assert ((y["classes"] >= 0).sum(1) <= 2).all()


def write_files(tmp_path, n=3):
    paths = []
    for i, e in enumerate(painted_examples(n)):
        p = tmp_path / f"{i}.png"
        Image.fromarray(e.image).save(p)
        paths.append(str(p))
    # a palette image that TF and PIL would both read; routed through PIL via needs_pil
    Image.fromarray(painted_examples(1)[0].image).convert("P").save(tmp_path / "p.png")
    paths.append(str(tmp_path / "p.png"))
    return paths


@pytest.mark.parametrize("cache", [False, True])
def test_file_decoding_needs_pil_and_cache(tmp_path, cache):
    paths = write_files(tmp_path)
    exs = [Example(image_path=p, label=i % 2) for i, p in enumerate(paths)]
    ds = build_pipeline(
        Dataset("classify", ["a", "b"], exs),
        imgsz=S,
        batch=4,
        training=False,
        needs_pil={paths[-1]},
        cache=cache,
    )
    x, _ = batches(ds)[0]
    for i, p in enumerate(paths):
        expect = tf.image.resize(tf.constant(read_image(p), tf.float32), (S, S)).numpy()
        np.testing.assert_allclose(x[i], expect, atol=1e-3)


def test_controls_standalone():
    c = PipelineControls(mosaic_prob=1.0)
    assert int(c._next_epoch()) == 0 and int(c._next_epoch()) == 1
    c.set_epoch(7)
    assert int(c._next_epoch()) == 7


def test_keras_fit_advances_epochs():
    import keras

    ds = build_pipeline(dataset("classify"), imgsz=16, batch=3, training=True, seed=0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(ds, epochs=3, verbose=0, shuffle=False)
    assert int(ds.controls.epoch.numpy()) == 3


def test_segment_rot90_turns_image_and_mask_together():
    from visionkit.data.augment import AugmentConfig

    def run(prob: float):
        cfg = AugmentConfig.off().replace(rot90_prob=prob)
        pipeline = build_pipeline(
            dataset("segment"), imgsz=S, batch=6, training=True, seed=3, augment=cfg
        )
        return batches(pipeline)[0]

    (still_x, still_m), (turned_x, turned_m) = run(0.0), run(1.0)
    for i in range(len(still_x)):
        ks = [k for k in (1, 2, 3) if np.array_equal(turned_x[i], np.rot90(still_x[i], k))]
        assert len(ks) == 1, f"example {i} is not a quarter turn of its unturned self"
        np.testing.assert_array_equal(turned_m[i], np.rot90(still_m[i], ks[0]))


def test_rot90_needs_a_square_size():
    with pytest.raises(ValueError, match=r"rot90_prob=0\.5 .* needs a square imgsz"):
        build_pipeline(
            dataset("classify"), imgsz=(S, 24), batch=2, training=True, augment={"rot90_prob": 0.5}
        )


def noise_examples() -> list[Example]:
    """Random uint8 images, shrunk, enlarged and oblong, with one box and a mask each."""
    rng = np.random.default_rng(3)
    out = []
    for i, (h, w) in enumerate([(37, 53), (64, 48), (20, 30)]):
        out.append(
            Example(
                image=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                label=i,
                boxes=np.array([[2.0, 3.0, 15.0, 17.0]], np.float32),
                box_classes=np.array([1], np.int32),
                mask=rng.integers(0, 3, (h, w)).astype(np.int32),
            )
        )
    return out


@pytest.mark.parametrize(
    "task, letterbox",
    [("classify", False), ("detect", True), ("detect", False), ("segment", False)],
)
def test_evaluation_pixels_equal_those_of_casting_before_resizing(task, letterbox):
    from visionkit.data.augment import geometric as geo

    examples = noise_examples()
    size = (S, S) if letterbox else (S, 24)
    ds = build_pipeline(
        Dataset(task, ["a", "b", "c"], examples),
        imgsz=size,
        batch=3,
        training=False,
        letterbox=letterbox,
    )
    (images, _), *_ = batches(ds)
    for image, ex in zip(images, examples, strict=True):
        sample = {"image": tf.cast(ex.image, tf.float32)}
        if letterbox:  # resized keeping the aspect, then padded
            sample.update(boxes=tf.constant(ex.boxes), classes=tf.constant(ex.box_classes))
            expect = geo.letterbox(sample, S)["image"]
        else:
            expect = tf.image.resize(sample["image"], size)
        np.testing.assert_array_equal(image, expect.numpy())


def test_pipelines_run_without_tf_data_autotuning():
    ds = build_pipeline(dataset("classify"), imgsz=S, batch=4, training=True)
    assert ds.options().autotune.enabled is False
    assert ds.options().autotune.initial_parallelism == (os.cpu_count() or 1)
    assert ds.map(lambda x, y: x).options().autotune.enabled is False  # carried downstream
    assert len(batches(ds)) == 2
