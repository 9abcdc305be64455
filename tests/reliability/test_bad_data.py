"""Bad data inside real training runs, at the level of ``visionkit TASK train``: corrupted
files are skipped and listed, the rest trains and is measured, ``strict=true`` stops at
the first; decompression bombs never reach the decoder; awkward but valid formats (16-bit,
palette, CMYK, EXIF-rotated) are read as the pixels they show."""

from __future__ import annotations

import csv
import json
import re
import textwrap
import zlib
from pathlib import Path

import numpy as np
from faultkit import (
    CLASSES,
    SIZE,
    TALLY,
    encoded,
    layout_pixels,
    plant_corrupt_files,
    plant_handled_files,
    png16,
    png_bytes,
    run_cli,
    run_python,
    summary_counts,
    train_args,
    with_exif_orientation,
    write_layout_folder,
)
from PIL import Image

from visionkit.data.doctor import FAULT_KINDS
from visionkit.data.images import FILE_FAULT_KINDS


def _faults(run: Path) -> list[dict[str, str]]:
    with open(run / "data_faults.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_five_percent_corrupt_files_are_skipped_listed_and_the_rest_trains(tmp_path, capsys):
    """200 files, 10 of them (5 %) broken in 10 ways covering every file-level fault kind of
    the doctor (empty, not an image, truncated JPEG and PNG, corrupt data, bit rot, a
    20000×20000 decompression bomb, a dangling symlink) and the two the folder source
    refuses (a non-image file, a symlink out of the tree), plus 8 awkward valid files
    (16-bit, palette, CMYK, EXIF, RGBA, L): the run completes, data_faults.csv lists
    exactly the 10 broken files with their kind, the 8 awkward ones are trained on, every
    one of the 190 good files is used, and the metrics are computed on the usable
    validation images."""
    rng = np.random.default_rng(7)
    data = write_layout_folder(tmp_path / "data", per_class=61, seed=1)
    (data / "flat" / "060.png").unlink()  # 182 clean files
    handled = plant_handled_files(data / "top", "top", rng)
    corrupt = plant_corrupt_files(data / "left", tmp_path / "outside", rng)
    files = [p for p in data.rglob("*") if p.is_file() or p.is_symlink()]
    assert (len(files), len(corrupt), len(handled)) == (200, 10, 8)

    result = run_cli(
        capsys, "classify", "train", *train_args(data, tmp_path / "runs", "scale", epochs=1)
    )
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "scale"
    rows = _faults(run)
    fatal = {Path(r["file"]).name: r for r in rows if r["fatal"] == "True"}
    assert set(fatal) == {p.path.name for p in corrupt}
    for planted in corrupt:
        row = fatal[planted.path.name]
        assert row["kind"] in planted.kinds, row
        assert row["detail"], row
    assert set(FILE_FAULT_KINDS) <= {row["kind"] for row in fatal.values()}
    assert "decompression-bomb" in fatal["bomb.png"]["detail"]

    notes: dict[str, set[str]] = {}
    for r in rows:
        if r["fatal"] == "False":
            notes.setdefault(Path(r["file"]).name, set()).add(r["kind"])
    for planted in handled:
        assert notes.get(planted.path.name) == set(planted.kinds), planted

    counts = summary_counts(result.out)
    doctor_kinds = {k for k, (is_fatal, _) in FAULT_KINDS.items() if is_fatal}
    assert all(p.kinds & doctor_kinds for p in corrupt if p.example)
    examples_skipped = sum(1 for p in corrupt if p.example)
    assert counts["skipped"] == examples_skipped == 8  # the other 2 never became examples
    assert counts["train"] + counts["val"] == 190  # no good file lost
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_examples"] == counts["val"]
    assert set(metrics["per_class"]) == set(CLASSES)
    assert (run / "model.keras").exists()
    TALLY.add(
        "bad data",
        faults=len(corrupt),
        kinds={row["kind"] for row in fatal.values()},
        runs=1,
        survived=1,
        good_files=190,
        good_files_lost=190 - counts["train"] - counts["val"],
    )


def test_strict_stops_at_the_first_faulty_file_and_names_it(tmp_path, capsys):
    """``strict=true``: exit 1 before any training, the message names the faulty file and
    its kind and says how to go on; no run folder is left behind."""
    rng = np.random.default_rng(3)
    data = write_layout_folder(tmp_path / "data", per_class=10)
    (data / "top" / "zero.png").write_bytes(b"")
    good = encoded(layout_pixels("top", rng, 64), "JPEG", quality=90)
    (data / "left" / "cut.jpg").write_bytes(good[: len(good) // 2])
    args = train_args(data, tmp_path / "runs", "strict", strict="true")
    result = run_cli(capsys, "classify", "train", *args)
    assert result.code == 1
    message = result.err
    named = re.search(r"(zero\.png: empty_file|cut\.jpg: truncated)", message)
    assert named, message
    assert "strict mode stops at the first fatal fault" in message
    assert "Traceback" not in message
    assert not (tmp_path / "runs" / "strict").exists()
    assert "stage train" not in result.out  # stopped before training
    TALLY.add("bad data", faults=2, kinds={"empty_file", "truncated"}, runs=1, stopped=1)


BOMB_CHILD = textwrap.dedent(
    """
    import re, sys
    from visionkit.cli import main
    code = main(["data", "check", sys.argv[1], "progress=false", "--json"])
    # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's over exec)
    status = open("/proc/self/status").read()
    print("PEAK_MB", int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
    sys.exit(code)
    """
)


def test_a_20000_pixel_square_png_is_refused_without_exhausting_memory(tmp_path):
    """A 300-byte PNG whose header claims 20000×20000 (1.2 GB of RGB pixels) is refused by
    ``visionkit data check`` as too_large; the checking process never grows past 400 MB
    (decoding it would need 1.2 GB)."""
    data = write_layout_folder(tmp_path / "data", per_class=3, classes=("flat", "top"))
    bomb = data / "flat" / "bomb.png"
    bomb.write_bytes(png_bytes(20000, 20000, 8, 2, zlib.compress(b"\0" * 240004)))
    assert bomb.stat().st_size < 2000
    proc = run_python(BOMB_CHILD, str(data), timeout=60)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout[: proc.stdout.rindex("PEAK_MB")])
    faults = [(Path(f["file"]).name, f["kind"]) for f in report["faults"]]
    assert faults == [("bomb.png", "too_large")]
    assert report["usable_images"] == 6
    peak_mb = float(proc.stdout.rsplit("PEAK_MB", 1)[1])
    assert peak_mb < 400, f"data check peaked at {peak_mb:.0f} MB"
    TALLY.add("bad data", faults=1, kinds={"too_large"}, bomb_check_peak_mb=round(peak_mb))


def test_awkward_formats_predict_exactly_like_their_plain_twins(trained_run, tmp_path, capsys):
    """``visionkit classify predict`` on 16-bit grey and RGB PNGs, palette PNGs (with and
    without transparency) and a CMYK JPEG gives the very probabilities of the plain 8-bit
    RGB PNG of the same pixels; an EXIF-rotated JPEG showing ``top`` is read upright (its
    stored pixels, un-rotated, show ``left``); a bomb and a truncated file get error rows
    and the other images are still classified."""
    rng = np.random.default_rng(11)
    src = tmp_path / "photos"
    src.mkdir()
    pixels = layout_pixels("top", rng)
    twins: dict[str, np.ndarray] = {}

    grey = pixels[..., 0]
    (src / "grey16.png").write_bytes(png16(grey.astype(np.uint16) * 256 + 0x5A, 0))
    twins["grey16.png"] = np.repeat(grey[..., None], 3, -1)
    (src / "rgb16.png").write_bytes(png16(pixels.astype(np.uint16) * 256 + 0xA5, 2))
    twins["rgb16.png"] = pixels
    palette = Image.fromarray(pixels).convert("P")
    palette.save(src / "palette.png")
    twins["palette.png"] = np.asarray(palette.convert("RGB"))
    palette.save(src / "palette_t.png", transparency=0)
    twins["palette_t.png"] = np.asarray(palette.convert("RGB"))
    Image.fromarray(pixels).convert("CMYK").save(src / "cmyk.jpg", quality=95)
    with Image.open(src / "cmyk.jpg") as cmyk:
        assert cmyk.mode == "CMYK"
        twins["cmyk.jpg"] = np.asarray(cmyk.convert("RGB"))
    data, stored = with_exif_orientation(pixels, 6)
    (src / "exif6.jpg").write_bytes(data)
    Image.fromarray(stored).save(src / "stored.png")  # what a reader ignoring EXIF sees
    from PIL import ImageOps

    with Image.open(src / "exif6.jpg") as rotated:
        twins["exif6.jpg"] = np.asarray(ImageOps.exif_transpose(rotated).convert("RGB"))
    for name, twin in twins.items():
        Image.fromarray(twin).save(src / f"twin_{Path(name).stem}.png")
    (src / "bomb.png").write_bytes(png_bytes(20000, 20000, 8, 2, zlib.compress(b"\0" * 64)))
    whole = (src / "cmyk.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(whole[: len(whole) // 2])

    out = tmp_path / "pred"
    args = [f"model={trained_run}", f"source={src}", f"out={out}", "name=p", "topk=3"]
    result = run_cli(capsys, "classify", "predict", *args, "verbose=0")
    assert result.code == 0, result.err
    with open(out / "p" / "predictions.csv", newline="") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}

    def probs(name: str) -> np.ndarray:
        row = rows[name]
        assert row["error"] == "", row
        by_class = {row[f"class{k}"]: float(row[f"prob{k}"]) for k in (1, 2, 3)}
        return np.array([by_class[c] for c in CLASSES])

    for name in twins:
        np.testing.assert_allclose(
            probs(name), probs(f"twin_{Path(name).stem}.png"), atol=1e-5, err_msg=name
        )
    assert rows["exif6.jpg"]["class1"] == "top"
    assert rows["stored.png"]["class1"] == "left"
    assert rows["bomb.png"]["error"].startswith("too_large")
    assert rows["cut.jpg"]["error"].startswith("truncated")
    assert sum(1 for r in rows.values() if not r["error"]) == len(rows) - 2
    TALLY.add(
        "bad data",
        faults=2,
        kinds={"too_large", "truncated"},
        awkward_formats_predicted=len(twins),
    )


def _masks_dataset(root: Path, count: int = 40) -> dict[str, set[str]]:
    """``root/images`` + ``root/masks`` (0/1 class ids, ``classes.txt``), with planted
    faults: name → the kinds accepted for it (the doctor's or the masks source's)."""
    rng = np.random.default_rng(5)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\nsquare\n")
    for i in range(count):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        y, x = rng.integers(0, SIZE // 2, 2)
        mask[y : y + SIZE // 2, x : x + SIZE // 2] = 1
        image = np.where(mask > 0, 200, 50).astype(np.uint8) + rng.integers(0, 30, mask.shape)
        Image.fromarray(np.stack([image.astype(np.uint8)] * 3, -1)).save(
            root / "images" / f"{i:02d}.png"
        )
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    planted: dict[str, set[str]] = {}
    stray = np.asarray(Image.open(root / "masks" / "00.png")).copy()
    stray[0, :4] = 7  # not a class id
    Image.fromarray(stray).save(root / "masks" / "00.png")
    planted["masks/00.png"] = {"mask_value_out_of_range"}
    colour = np.asarray(Image.open(root / "masks" / "01.png"))
    Image.fromarray(np.stack([colour] * 3, -1)).save(root / "masks" / "01.png")
    planted["masks/01.png"] = {"bad_mask", "mask_not_single_channel"}
    Image.fromarray(np.zeros((SIZE // 2, SIZE), np.uint8)).save(root / "masks" / "02.png")
    planted["masks/02.png"] = {"mask_size_mismatch", "size_mismatch"}
    (root / "masks" / "03.png").unlink()
    planted["images/03.png"] = {"no_mask", "missing_mask"}
    whole = (root / "masks" / "04.png").read_bytes()
    (root / "masks" / "04.png").write_bytes(whole[: len(whole) // 2])
    planted["masks/04.png"] = {"truncated"}
    whole = (root / "images" / "05.png").read_bytes()
    (root / "images" / "05.png").write_bytes(whole[: len(whole) // 2])
    planted["images/05.png"] = {"truncated"}
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(root / "masks" / "orphan.png")
    planted["masks/orphan.png"] = {"missing_image"}
    return planted


def test_segmentation_run_skips_every_mask_fault_and_trains_on_the_rest(tmp_path, capsys):
    """A 40-pair mask dataset with a stray class value, a colour mask, a mask of the wrong
    size, an image without mask, a truncated mask, a truncated image and a mask without
    image: ``visionkit segment train`` completes, lists each, and trains and validates on
    the 34 intact pairs."""
    data = tmp_path / "cells"
    planted = _masks_dataset(data)
    options = {"model": "unet", "model_options": "{base_filters: 8}", "epochs": 1, "batch": 8}
    args = train_args(data, tmp_path / "runs", "seg", **options)
    result = run_cli(capsys, "segment", "train", *args)
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "seg"
    found = {
        str(Path(r["file"]).relative_to(data)): r["kind"]
        for r in _faults(run)
        if r["fatal"] == "True"
    }
    assert set(found) == set(planted), found
    for name, kind in found.items():
        assert kind in planted[name], (name, kind)
    counts = summary_counts(result.out)
    assert counts["train"] + counts["val"] == 40 - 6  # 6 broken pairs; the orphan is no pair
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_examples"] == counts["val"]
    TALLY.add(
        "bad data",
        faults=len(planted),
        kinds=set(found.values()),
        runs=1,
        survived=1,
        good_files=34,
        good_files_lost=34 - counts["train"] - counts["val"],
    )


def test_a_truncated_mask_without_classes_txt_is_a_listed_fault_not_a_crash(tmp_path, capsys):
    """Binary 0/255 masks (no classes.txt: the classes are found by scanning the masks)
    with one truncated mask: ``visionkit data check`` exits 1 and lists it as truncated,
    as it does when classes.txt is there."""
    data = tmp_path / "cells"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:16] = 255
    for i in range(6):
        Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(data / "images" / f"{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"{i}.png")
    whole = (data / "masks" / "0.png").read_bytes()
    (data / "masks" / "0.png").write_bytes(whole[: len(whole) // 2])
    result = run_cli(capsys, "data", "check", str(data), "--json")
    assert result.code == 1, result.err
    kinds = {(Path(f["file"]).name, f["kind"]) for f in json.loads(result.out)["faults"]}
    assert ("0.png", "truncated") in kinds


VOC = (
    "<annotation><filename>{name}</filename><size><width>64</width><height>64</height>"
    "<depth>3</depth></size>{objects}</annotation>"
)
OBJECT = (
    "<object><name>{cls}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
    "<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
)


def test_detection_annotation_faults_are_all_reported_and_strict_stops(tmp_path, capsys):
    """A VOC set with a degenerate box, a box outside its image, a non-numeric box, an
    unparseable XML file, an image that is missing, one that is truncated and one without
    boxes: ``visionkit data check --json`` reports each with its file (the box-less image
    as a non-fatal note), and ``strict=true`` stops at the first fatal one."""
    root = tmp_path / "voc"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(2)
    for i in range(12):
        Image.fromarray(rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)).save(
            root / "images" / f"{i}.jpg"
        )
        box = OBJECT.format(cls="square", x0=5, y0=5, x1=30, y1=30)
        extra = {
            0: OBJECT.format(cls="square", x0=30, y0=30, x1=10, y1=50),
            1: OBJECT.format(cls="square", x0=30, y0=30, x1=200, y1=50),
            2: "<object><name>square</name><bndbox><xmin>a</xmin></bndbox></object>",
        }.get(i, "")
        objects = "" if i == 3 else box + extra
        (root / "annotations" / f"{i}.xml").write_text(VOC.format(name=f"{i}.jpg", objects=objects))
    (root / "annotations" / "broken.xml").write_text("<annotation><filename>")
    (root / "annotations" / "gone.xml").write_text(VOC.format(name="gone.jpg", objects=box))
    whole = (root / "images" / "5.jpg").read_bytes()
    (root / "images" / "5.jpg").write_bytes(whole[: len(whole) // 2])

    result = run_cli(capsys, "data", "check", str(root), "format=voc", "--json")
    assert result.code == 1, result.err
    report = json.loads(result.out)
    found = {(Path(f["file"]).name, f["kind"], f["fatal"]) for f in report["faults"]}
    assert found == {
        ("0.xml", "degenerate_box", True),
        ("1.xml", "box_outside_image", True),
        ("2.xml", "bad_bndbox", True),
        ("3.jpg", "no_annotation", False),
        ("broken.xml", "unparseable_xml", True),
        ("gone.xml", "missing_image", True),
        ("5.jpg", "truncated", True),
    }
    assert report["usable_images"] == 11  # all but the truncated image; 3.jpg is background
    strict = run_cli(capsys, "data", "check", str(root), "format=voc", "strict=true")
    assert strict.code == 1
    assert re.search(r"(broken|gone|0|1|2)\.xml", strict.err), strict.err
    TALLY.add("bad data", faults=len(found), kinds={kind for _, kind, _ in found})
