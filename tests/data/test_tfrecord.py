"""TFRecord export and the tfrecord source: per task, what is written comes back identical
(labels, boxes, masks, pixels, and the pipeline's batches); splits, format detection,
damaged or missing shards named in the error; the CLI; and a training run on TFRecords."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionkit.cli import main
from visionkit.data.errors import DataError
from visionkit.data.images import example_image, example_mask, read_image, read_mask
from visionkit.data.loader import detect_format, load_dataset, load_splits
from visionkit.data.pipeline import build_pipeline
from visionkit.data.prepare import checked
from visionkit.data.tfrecord import export_datasets, export_tfrecord, read_manifest
from visionkit.data.types import Dataset, Example

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from test_detect_run import _voc
from test_segment_run import _masks


def _classify_folder(root: Path) -> Path:
    """Two splits of two classes, with every kind of file the exporter treats apart: JPEG
    and PNG kept as they are; palette, EXIF-rotated, 16-bit and BMP re-encoded."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for k, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20 + i, 28, 3), dtype=np.uint8)
                pixels[..., k] = 250
                kind = (i + k) % 5
                if kind == 0:
                    Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
                elif kind == 1:
                    Image.fromarray(pixels).save(folder / f"{i}.png")
                elif kind == 2:
                    Image.fromarray(pixels).convert("P").save(folder / f"{i}.png")
                elif kind == 3:
                    exif = Image.Exif()
                    exif[0x0112] = 6  # rotated 90° clockwise
                    Image.fromarray(pixels).save(folder / f"{i}.jpg", exif=exif.tobytes())
                else:
                    Image.fromarray(pixels).save(folder / f"{i}.bmp")
    return root


def _batches(dataset: Dataset, needs_pil=(), imgsz: int = 32) -> list:
    pipeline = build_pipeline(
        dataset, imgsz=imgsz, batch=4, training=False, augment=False, needs_pil=needs_pil
    )
    return [
        (x.numpy(), {k: v.numpy() for k, v in y.items()} if isinstance(y, dict) else y.numpy())
        for x, y in pipeline
    ]


def _assert_same_batches(original: list, exported: list) -> None:
    assert len(original) == len(exported)
    for (xa, ya), (xb, yb) in zip(original, exported, strict=True):
        np.testing.assert_array_equal(xb, xa)
        if isinstance(ya, dict):
            for key in ya:
                np.testing.assert_array_equal(yb[key], ya[key])
        else:
            np.testing.assert_array_equal(yb, ya)


def test_classification_round_trip_keeps_labels_pixels_and_splits(tmp_path):
    data = _classify_folder(tmp_path / "data")
    manifest = export_tfrecord(str(data), tmp_path / "records", shards=2, progress=False)
    assert manifest["task"] == "classify" and manifest["class_names"] == ["cat", "dog"]
    assert {k: v["examples"] for k, v in manifest["splits"].items()} == {"train": 8, "val": 4}
    assert [len(v["files"]) for v in manifest["splits"].values()] == [2, 2]
    assert sorted(p.name for p in (tmp_path / "records").iterdir())[:2] == [
        "manifest.json",
        "train-00000-of-00002.tfrecord",
    ]
    for split in ("train", "val"):
        original = load_dataset(data, split=split)
        exported = load_dataset(tmp_path / "records", split=split)
        assert exported.format == "tfrecord" and exported.split == split
        assert [e.label for e in exported.examples] == [e.label for e in original.examples]
        for a, b in zip(original.examples, exported.examples, strict=True):
            np.testing.assert_array_equal(example_image(b), read_image(a.image_path))
        pil = checked(original, strict=False, progress=False)[2]
        assert pil  # the palette and EXIF-rotated files need PIL in the original...
        _, record_faults, record_pil, skipped = checked(exported, strict=False, progress=False)
        assert not record_pil and skipped == 0  # ...their records decode in TensorFlow
        assert not [f for f in record_faults if f.fatal]
        _assert_same_batches(_batches(original, pil), _batches(exported))
    splits = load_splits(tmp_path / "records", task="classify")
    assert (len(splits["train"]), len(splits["val"])) == (8, 4)


def test_detection_round_trip_keeps_boxes_and_classes(tmp_path):
    data = _voc(tmp_path / "voc", count=7)
    export_tfrecord(str(data), tmp_path / "records", format="voc", shards=3, progress=False)
    original = load_dataset(data, "voc")
    exported = load_dataset(tmp_path / "records", "tfrecord", task="detect")
    assert exported.class_names == original.class_names and len(exported) == 7
    for a, b in zip(original.examples, exported.examples, strict=True):
        np.testing.assert_array_equal(b.boxes, a.boxes.astype(np.float32))
        np.testing.assert_array_equal(b.box_classes, a.box_classes)
        np.testing.assert_array_equal(example_image(b), read_image(a.image_path))
    _assert_same_batches(_batches(original, imgsz=64), _batches(exported, imgsz=64))


def test_segmentation_round_trip_keeps_masks_and_their_value_map(tmp_path):
    data = _masks(tmp_path / "cells", count=5)
    export_tfrecord(str(data), tmp_path / "records", task="segment", progress=False)
    original = load_dataset(data, task="segment")
    exported = load_dataset(tmp_path / "records")
    assert exported.task == "segment" and exported.class_names == original.class_names
    assert exported.mask_value_map == original.mask_value_map == {0: 0, 255: 1}
    for a, b in zip(original.examples, exported.examples, strict=True):
        np.testing.assert_array_equal(example_mask(b), read_mask(a.mask_path))  # 0/255 kept
        np.testing.assert_array_equal(example_image(b), read_image(a.image_path))
    original_batches, exported_batches = _batches(original), _batches(exported)
    assert set(np.unique(exported_batches[0][1])) == {0, 1}  # mapped in the pipeline
    _assert_same_batches(original_batches, exported_batches)


def test_in_memory_images_of_mixed_sizes_are_stored_as_png(tmp_path):
    rng = np.random.default_rng(3)
    examples = [
        Example(image=rng.integers(0, 256, (8 + i, 12, 3), dtype=np.uint8), label=i % 2)
        for i in range(5)
    ]
    export_datasets(
        {"train": Dataset("classify", ["a", "b"], examples)}, tmp_path / "r", progress=False
    )
    exported = load_dataset(tmp_path / "r")
    for a, b in zip(examples, exported.examples, strict=True):
        np.testing.assert_array_equal(example_image(b), a.image)
        assert b.label == a.label


def test_the_format_is_detected_from_the_folder_a_shard_or_the_manifest(tmp_path):
    data = _voc(tmp_path / "voc", count=3)
    export_tfrecord(str(data), tmp_path / "records", format="voc", progress=False)
    records = tmp_path / "records"
    assert detect_format(records) == "tfrecord"
    assert detect_format(records / "all-00000-of-00001.tfrecord") == "tfrecord"
    assert detect_format(records / "manifest.json") == "tfrecord"
    assert len(load_dataset(records / "all-00000-of-00001.tfrecord")) == 3


def test_damaged_missing_or_foreign_files_are_named(tmp_path):
    data = _voc(tmp_path / "voc", count=6)
    out = tmp_path / "records"
    export_tfrecord(str(data), out, format="voc", shards=2, progress=False)
    shard = out / "all-00001-of-00002.tfrecord"
    whole = shard.read_bytes()

    shard.write_bytes(whole[:-10])  # cut short
    with pytest.raises(DataError, match=r"all-00001-of-00002\.tfrecord: .*truncated"):
        load_dataset(out)
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0xFF  # a changed byte inside an image: the CRC catches it
    shard.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=r"all-00001-of-00002\.tfrecord: damaged TFRecord"):
        load_dataset(out)
    shard.unlink()
    with pytest.raises(DataError, match=r"all-00001-of-00002\.tfrecord: shard listed in"):
        load_dataset(out)
    with pytest.raises(DataError, match="holds detect data"):
        load_dataset(out, task="classify")

    (out / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"without manifest\.json"):
        load_dataset(out)
    (out / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="not a visionkit-tfrecord manifest"):
        read_manifest(out)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to replace it"):
        export_tfrecord(str(data), mine, format="voc", progress=False)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_cli_exports_and_explains(tmp_path, capsys):
    data = _classify_folder(tmp_path / "data")
    out = tmp_path / "records"
    code = main(["data", "export-tfrecord", str(data), f"out={out}", "shards=2", "progress=false"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "train: 8 examples in 2 shards" in printed and "visionkit classify train" in printed
    assert main(["data", "export-tfrecord", str(data)]) == 2
    assert "needs out=DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "export-tfrecord", "--help"])
    assert "shards=N" in capsys.readouterr().out


@pytest.mark.slow
def test_training_reads_tfrecords(tmp_path):
    import keras

    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    data = _classify_folder(tmp_path / "data")
    export_tfrecord(str(data), tmp_path / "records", shards=2, progress=False)
    config = resolve(
        {
            "data": str(tmp_path / "records"),
            "model": "lenet5",
            "weights": None,
            "imgsz": 32,
            "batch": 4,
            "epochs": 2,
            "cache": False,  # every epoch reads the records again
            "out": str(tmp_path / "runs"),
            "verbose": 0,
            "patience": 0,
        }
    )
    try:
        result = train(get_task("classify"), config)
    finally:
        keras.backend.clear_session()
    assert result.metrics["num_examples"] == 4  # the export's own val split
    assert result.config["class_names"] == ["cat", "dog"]
    assert (result.run.dir / "model.keras").exists()
    assert (result.run.dir / "worst.png").exists() or result.metrics["accuracy"] == 1.0
