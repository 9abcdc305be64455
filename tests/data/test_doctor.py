"""The dataset doctor: clean datasets pass, every planted fault is found with its file."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from visionkit.data.doctor import (
    FAULT_KINDS,
    NOTE_KINDS,
    DatasetFaultError,
    check_dataset,
    exit_code,
    first_fatal_fault,
    format_report,
)
from visionkit.data.errors import DataError
from visionkit.data.types import Dataset, Example, Fault

W, H = 64, 48
JSON_KEYS = {"images", "classes", "boxes", "faults", "image_sizes", "usable_images"}


def pattern(seed: int, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(
        rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)
    )


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def write(path: Path, img: Image.Image | bytes | str, **kw) -> str:
    if isinstance(img, bytes):
        path.write_bytes(img)
    elif isinstance(img, str):
        path.write_text(img)
    else:
        img.save(path, **kw)
    return str(path)


def det(path: str, boxes=((8, 8, 40, 40),), classes=None) -> Example:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.zeros(len(boxes), np.int32) if classes is None else np.asarray(classes, np.int32)
    return Example(image_path=path, boxes=boxes, box_classes=classes, origin="labels.csv")


def pairs(report) -> set[tuple[str, str]]:
    return {(Path(f.file).name, f.kind) for f in report.faults}


def check(ds: Dataset, **kw):
    return check_dataset(ds, progress=False, **kw)


# --- detection ------------------------------------------------------------------------------


@pytest.fixture
def clean_detect(tmp_path) -> Dataset:
    examples = []
    for i in range(4):
        path = write(tmp_path / f"img{i}.png", Image.fromarray(pattern(i)))
        examples.append(det(path, boxes=[(2, 3, 30, 40), (10, 10, 60, 45)], classes=[0, 1]))
    return Dataset("detect", ["cat", "dog"], examples, root=str(tmp_path))


def test_clean_detection_dataset(clean_detect, capsys):
    report = check_dataset(clean_detect, progress=True)
    assert report.faults == []
    assert exit_code(report) == 0 and report.exit_code == 0
    assert report.images == 4 and report.boxes == 8
    assert report.classes == {"cat": 4, "dog": 4}
    assert report.usable == [0, 1, 2, 3]
    assert report.image_sizes == {
        "width": {"min": W, "median": W, "max": W},
        "height": {"min": H, "median": H, "max": H},
    }
    out = report.to_json()
    assert set(out) == JSON_KEYS and out["faults"] == [] and out["usable_images"] == 4
    json.dumps(out)
    assert "Exit code 0" in format_report(report)
    assert first_fatal_fault(clean_detect) is None


@pytest.fixture
def broken_detect(tmp_path) -> tuple[Dataset, set[tuple[str, str]], set[str]]:
    """A detection dataset with one planted fault of every image and box kind.

    Returns the dataset, the expected (file name, kind) pairs and the usable file names.
    """
    d = tmp_path / "bad"
    d.mkdir()
    ok = write(d / "ok.png", Image.fromarray(pattern(0)))
    jpeg = d / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(
        jpeg, quality=90
    )
    cut = write(d / "cut.jpg", jpeg.read_bytes()[:4000])
    # Stored 48 wide × 64 high with EXIF orientation 6: decodes to 64×48, where the box fits.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = write(
        d / "rotated.png", Image.fromarray(np.rot90(pattern(2), 1).copy()), exif=exif.tobytes()
    )
    rgba = np.concatenate([pattern(5), np.full((H, W, 1), 200, np.uint8)], -1)
    rgb16 = np.random.default_rng(6).integers(0, 65536, (H, W, 3)).astype(">u2").reshape(H, -1)
    examples = [
        det(ok),
        det(str(d / "missing.png")),
        det(write(d / "empty.jpg", b"")),
        det(write(d / "text.jpg", "not an image\n")),
        det(cut),
        det(write(d / "corrupt.png", png_bytes(8, 8, 8, 2, b"garbage, not zlib" * 4))),
        det(write(d / "bomb.png", png_bytes(20000, 20000, 8, 2, zlib.compress(b"\0" * 64)))),
        det(rotated, boxes=[(30, 5, 62, 45)]),  # x2 = 62 > 48, the stored width
        det(write(d / "grey.png", Image.fromarray(pattern(3)[..., 0], "L"))),
        det(write(d / "cmyk.jpg", Image.fromarray(pattern(4)).convert("CMYK"))),
        det(
            write(
                d / "rgb16.png",
                png_bytes(W, H, 16, 2, zlib.compress(b"".join(b"\0" + r.tobytes() for r in rgb16))),
            )
        ),
        det(write(d / "rgba.png", Image.fromarray(rgba, "RGBA"))),
        det(write(d / "pal.png", Image.fromarray(pattern(7)).convert("P"))),
        # One box 6 px outside, one within the 1-px tolerance.
        det(
            write(d / "outside.png", Image.fromarray(pattern(8))),
            boxes=[(10, 10, 70, 40), (0, 0, 64.9, 48.5)],
        ),
        det(write(d / "badbox.png", Image.fromarray(pattern(9))), boxes=[(20, 20, 10, 30)]),
        det(write(d / "unknown.png", Image.fromarray(pattern(10))), classes=[7]),
        det(write(d / "nobox.png", Image.fromarray(pattern(11))), boxes=np.zeros((0, 4))),
        det(write(d / "dup.png", Path(ok).read_bytes())),
    ]
    parse_fault = Fault("labels.csv", "bad_row", "xmin is not a number", where="line 7")
    ds = Dataset("detect", ["cat", "dog"], examples, root=str(d), faults=[parse_fault])
    expected = {
        ("labels.csv", "bad_row"),
        ("missing.png", "missing_file"),
        ("empty.jpg", "empty_file"),
        ("text.jpg", "not_an_image"),
        ("cut.jpg", "truncated"),
        ("corrupt.png", "unreadable"),
        ("bomb.png", "too_large"),
        ("rotated.png", "exif_rotated"),
        ("grey.png", "grayscale"),
        ("cmyk.jpg", "cmyk"),
        ("rgb16.png", "sixteen_bit"),
        ("rgba.png", "alpha"),
        ("pal.png", "palette"),
        ("outside.png", "box_outside_image"),
        ("badbox.png", "bad_box"),
        ("unknown.png", "unknown_class"),
        ("nobox.png", "no_annotation"),
        ("dup.png", "duplicate"),
    }
    usable = {
        "ok.png",
        "rotated.png",
        "grey.png",
        "cmyk.jpg",
        "rgb16.png",
        "rgba.png",
        "pal.png",
        "nobox.png",
        "dup.png",
    }
    return ds, expected, usable


def test_broken_detection_every_fault_found(broken_detect):
    ds, expected, usable = broken_detect
    report = check(ds)
    assert pairs(report) == expected
    assert len(report.faults) == len(expected)  # each exactly once
    assert {Path(ds.examples[i].image_path).name for i in report.usable} == usable
    assert {Path(e.image_path).name for e in report.usable_dataset().examples} == usable
    fatal_files = {Path(f.file).name for f in report.faults if f.fatal}
    assert fatal_files.isdisjoint(usable)
    for f in report.faults:
        if f.kind in FAULT_KINDS:
            assert f.fatal == FAULT_KINDS[f.kind][0], f
    outside = next(f for f in report.faults if f.kind == "box_outside_image")
    assert outside.where == "labels.csv, box 0"
    assert report.boxes == 18 and report.images == 18  # 16 × 1 + 2 (outside.png) + 0 (nobox.png)
    assert exit_code(report) == 1


def test_broken_detection_json_and_text(broken_detect):
    ds, expected, _ = broken_detect
    report = check(ds)
    out = report.to_json()
    assert set(out) == JSON_KEYS
    json.dumps(out)
    for entry in out["faults"]:
        assert (
            {"file", "kind", "detail"} <= set(entry) <= {"file", "kind", "detail", "where", "fatal"}
        )
    notes = [e for e in out["faults"] if e["kind"] in NOTE_KINDS]
    assert notes and all(e["fatal"] is False for e in notes)
    text = format_report(report)
    for _, kind in expected:
        assert kind in text
    assert "what to do" in text and "Exit code 1" in text


def test_strict_stops_at_first_fatal_fault(broken_detect):
    ds, _, _ = broken_detect
    with pytest.raises(DatasetFaultError) as err:
        check(ds, strict=True)
    assert err.value.fault.kind == "bad_row"  # the source's own faults come first
    assert isinstance(err.value, DataError) and isinstance(err.value, ValueError)
    ds.faults = []
    fault = first_fatal_fault(ds)
    assert (Path(fault.file).name, fault.kind) == ("missing.png", "missing_file")
    assert "missing.png" in str(DatasetFaultError(fault))


def test_notes_alone_exit_zero_but_no_annotation_exits_one(broken_detect):
    ds, _, _ = broken_detect
    names = {Path(e.image_path).name: e for e in ds.examples}
    only_notes = Dataset(
        "detect",
        ds.class_names,
        [names[n] for n in ("ok.png", "grey.png", "rotated.png", "dup.png")],
    )
    report = check(only_notes)
    assert pairs(report) == {
        ("grey.png", "grayscale"),
        ("rotated.png", "exif_rotated"),
        ("dup.png", "duplicate"),
    }
    assert exit_code(report) == 0
    assert "Exit code 0: clean (notes only)" in format_report(report)
    with_background = Dataset("detect", ds.class_names, [names["ok.png"], names["nobox.png"]])
    assert exit_code(check(with_background)) == 1


def test_unusable_input_exits_two(broken_detect):
    ds, _, _ = broken_detect
    assert exit_code(check(Dataset("detect", ["cat"], []))) == 2
    broken = [
        e for e in ds.examples if Path(e.image_path).name in ("missing.png", "empty.jpg", "cut.jpg")
    ]
    report = check(Dataset("detect", ["cat", "dog"], broken))
    assert report.usable == [] and exit_code(report) == 2


def test_same_file_listed_twice(clean_detect):
    first = clean_detect.examples[0]
    again = det(first.image_path)
    report = check(Dataset("detect", ["cat", "dog"], [first, again]))
    assert [(f.kind, f.fatal) for f in report.faults] == [("duplicate", False)]
    assert report.usable == [0, 1]


def test_duplicates_can_be_skipped(broken_detect):
    ds, _, _ = broken_detect
    assert "duplicate" not in {f.kind for f in check(ds, hash_duplicates=False).faults}


# --- classification ----------------------------------------------------------------------


def test_classification_clean_and_broken(tmp_path):
    paths = [
        write(tmp_path / f"c{i}.jpg", Image.fromarray(pattern(20 + i)), quality=90)
        for i in range(4)
    ]
    clean = Dataset(
        "classify", ["a", "b"], [Example(image_path=p, label=i % 2) for i, p in enumerate(paths)]
    )
    report = check(clean)
    assert report.faults == [] and exit_code(report) == 0
    assert report.classes == {"a": 2, "b": 2} and report.boxes is None and report.images == 4

    arr = pattern(30)[..., 0]  # in-memory grayscale H×W: a valid image array
    broken = Dataset(
        "classify",
        ["a", "b"],
        [
            Example(image_path=paths[0], label=0),
            Example(image_path=paths[1], label=None),
            Example(image_path=paths[2], label=2),
            Example(image=arr, label=1, origin="mem:0"),
            Example(image=arr.copy(), label=1, origin="mem:1"),
            Example(image=np.zeros(5, np.uint8), label=0, origin="mem:2"),
        ],
    )
    report = check(broken)
    assert pairs(report) == {
        ("c1.jpg", "no_label"),
        ("c2.jpg", "unknown_class"),
        ("mem:1", "duplicate"),
        ("mem:2", "bad_array"),
    }
    assert report.usable == [0, 3, 4]
    assert report.classes == {"a": 2, "b": 2}  # bad_array's label still counted; unknown not
    assert exit_code(report) == 1


# --- segmentation ------------------------------------------------------------------------


@pytest.fixture
def seg_files(tmp_path):
    d = tmp_path / "seg"
    d.mkdir()

    def img(name: str, seed: int) -> str:
        return write(d / name, Image.fromarray(pattern(seed)))

    def mask(name: str, arr: np.ndarray, mode: str = "L") -> str:
        return write(d / name, Image.fromarray(arr.astype(np.uint8), mode))

    ids = (np.arange(H * W).reshape(H, W) % 3).astype(np.uint8)
    return d, img, mask, ids


def test_segmentation_faults(seg_files):
    d, img, mask, ids = seg_files
    with_void = ids.copy()
    with_void[:4] = 255
    with_nine = ids.copy()
    with_nine[0, :5] = 9
    examples = [
        Example(image_path=img("ok.png", 1), mask_path=mask("ok_m.png", ids)),
        Example(image_path=img("void.png", 2), mask_path=mask("void_m.png", with_void)),
        Example(image_path=img("small.png", 3), mask_path=mask("small_m.png", ids[:40, :50])),
        Example(image_path=img("nine.png", 4), mask_path=mask("nine_m.png", with_nine)),
        Example(
            image_path=img("rgbmask.png", 5),
            mask_path=mask("rgb_m.png", np.stack([ids] * 3, -1), "RGB"),
        ),
        Example(image_path=img("nomask.png", 6)),
        Example(image_path=img("lost.png", 7), mask_path=str(d / "lost_m.png")),
        Example(image=pattern(8), mask=ids, origin="mem:0"),
    ]
    ds = Dataset("segment", ["bg", "a", "b"], examples)
    report = check(ds, ignore_value=255)
    assert pairs(report) == {
        ("small_m.png", "mask_size_mismatch"),
        ("nine_m.png", "mask_value_out_of_range"),
        ("rgb_m.png", "bad_mask"),
        ("nomask.png", "no_mask"),
        ("lost_m.png", "missing_file"),
    }
    assert report.usable == [0, 1, 7]
    # Valid pixels of every mask that could be read: ok, void (minus ignored), nine (minus 5), mem.
    assert sum(report.classes.values()) == 4 * H * W - 4 * W - 5
    assert exit_code(report) == 1
    # Without an ignore value, 255 is out of range too.
    strict_values = check(Dataset("segment", ["bg", "a", "b"], examples[:2]))
    assert pairs(strict_values) == {("void_m.png", "mask_value_out_of_range")}


def test_segmentation_mask_value_map(seg_files):
    _, img, mask, ids = seg_files
    binary = np.where(ids > 0, 255, 0)
    ds = Dataset(
        "segment",
        ["background", "foreground"],
        [Example(image_path=img("m.png", 1), mask_path=mask("m_m.png", binary))],
        mask_value_map={0: 0, 255: 1},
    )
    report = check(ds)
    assert report.faults == [] and exit_code(report) == 0
    assert report.classes == {
        "background": int((ids == 0).sum()),
        "foreground": int((ids > 0).sum()),
    }


# --- real data ---------------------------------------------------------------------------


@pytest.mark.shared
def test_raccoon_is_clean(shared):
    root = shared("data", "raccoon")
    table = pd.read_csv(root / "raccoon_labels.csv")
    names = sorted(table["class"].unique())
    examples = [
        Example(
            image_path=str(root / "images" / name),
            boxes=rows[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float32),
            box_classes=rows["class"].map(names.index).to_numpy(np.int32),
            origin="raccoon_labels.csv",
        )
        for name, rows in table.groupby("filename", sort=True)
    ]
    report = check(Dataset("detect", names, examples, root=str(root)))
    assert report.images == 200 and report.boxes == 217
    assert report.classes == {"raccoon": 217}
    assert len(report.usable) == 200
    # Only notes: 3 grayscale JPEGs and 4 byte-identical pairs.
    assert {f.kind for f in report.faults} == {"grayscale", "duplicate"}
    assert exit_code(report) == 0
