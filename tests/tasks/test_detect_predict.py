"""`visionkit detect predict`: boxes back in original-image pixels (the exact inverse of the
letterbox), CSV/JSON/annotated images, unreadable files, conf filtering, YOLOv1 and the CLI.

The detectors are untrained (seeded) tiny models at 64 px: their boxes are arbitrary but
deterministic, which is all the bookkeeping checks here need."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visionkit.cfg import resolve
from visionkit.cli import main
from visionkit.data.augment import geometric as geo
from visionkit.data.types import Dataset, Example
from visionkit.draw import class_colour, draw_boxes
from visionkit.io import write_yaml
from visionkit.models import create_model
from visionkit.models.yolo.boxes_frame import letterbox_boxes, letterbox_frame, unletterbox_boxes
from visionkit.tasks.detect import DetectTask
from visionkit.tasks.detect_predict import DRAW_LIMIT

SIZE = 64
CLASSES = ["cat", "dog"]
# (relative path, width, height): portrait, landscape, square, odd sizes, a colliding stem
IMAGES = [
    ("portrait.jpg", 50, 90),
    ("landscape.png", 120, 40),
    ("square.jpg", 64, 64),
    ("sub/odd.png", 37, 101),
    ("sub/portrait.png", 31, 47),
]


# -- the letterbox and its inverse ---------------------------------------------------------
@pytest.mark.parametrize(
    "height,width", [(90, 50), (40, 120), (77, 77), (101, 37), (3, 200), (47, 31)]
)
def test_unletterbox_inverts_the_pipeline_letterbox(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    x1 = rng.uniform(0, width * 0.6, 6)
    y1 = rng.uniform(0, height * 0.6, 6)
    boxes = np.stack(
        [x1, y1, x1 + rng.uniform(1, width * 0.4, 6), y1 + rng.uniform(1, height * 0.4, 6)], 1
    )
    boxes = np.vstack([boxes, [0, 0, width, height]])  # the whole image
    sample = {
        "image": tf.fill([height, width, 3], 200.0),
        "boxes": tf.constant(boxes, tf.float32),
        "classes": tf.zeros([len(boxes)], tf.int32),
    }
    out = geo.letterbox(sample, SIZE, 114.0)
    assert out["boxes"].shape[0] == len(boxes)  # letterbox keeps every box
    forward = out["boxes"].numpy()
    np.testing.assert_allclose(letterbox_boxes(boxes, (height, width), SIZE), forward, atol=1e-4)
    np.testing.assert_allclose(unletterbox_boxes(forward, (height, width), SIZE), boxes, atol=1e-4)
    # the image itself sits where the frame says: content inside, grey 114 padding outside
    frame = letterbox_frame((height, width), SIZE)
    content = np.zeros((SIZE, SIZE), bool)
    content[frame.top : frame.top + frame.new_height, frame.left : frame.left + frame.new_width] = (
        True
    )
    image = out["image"].numpy()[..., 0]
    np.testing.assert_allclose(image[content], 200.0, atol=1e-3)
    np.testing.assert_array_equal(image[~content], 114.0)


def test_letterbox_frame_matches_the_tensorflow_geometry():
    sizes = [(h, w) for h in (1, 2, 3, 5, 31, 47, 64, 77, 99, 101, 480) for w in (3, 37, 64, 200)]
    for size in (32, 64, 640):
        for h, w in sizes:
            _, new_h, new_w, top, left = geo.letterbox_params(h, w, size)
            expected = tuple(int(v) for v in (new_h, new_w, top, left))
            if min(expected[:2]) < 1:
                with pytest.raises(ValueError, match="too elongated"):
                    letterbox_frame((h, w), size)
                continue
            frame = letterbox_frame((h, w), size)
            assert (frame.new_height, frame.new_width, frame.top, frame.left) == expected, (h, w)


def test_unletterbox_clips_to_the_image():
    # 100 wide × 50 tall into 64: resized 64×32 at top 16; a box reaching into the padding
    boxes = np.array([[-5.0, 8.0, 70.0, 60.0], [10.0, 20.0, 30.0, 40.0]])
    back = unletterbox_boxes(boxes, (50, 100), 64)
    np.testing.assert_allclose(back[0], [0.0, 0.0, 100.0, 50.0])
    np.testing.assert_allclose(back[1], [10 / 0.64, 4 / 0.64, 30 / 0.64, 24 / 0.64])
    unclipped = unletterbox_boxes(boxes, (50, 100), 64, clip=False)
    assert unclipped[0, 0] < 0 and unclipped[0, 3] > 50


# -- drawing -------------------------------------------------------------------------------
def test_draw_boxes_changes_the_box_edges_only():
    image = np.full((120, 160, 3), 60, np.uint8)
    before = image.copy()
    drawn = draw_boxes(image, [[40, 50, 120, 110]], [1], [0.87], CLASSES)
    np.testing.assert_array_equal(image, before)  # the input is not modified
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    colour = np.array(class_colour(1))
    # the rectangle's edges (pixel-edge box [40, 120) × [50, 110)), below the label
    for y in (70, 90, 105):
        np.testing.assert_array_equal(drawn[y, 40], colour)
        np.testing.assert_array_equal(drawn[y, 119], colour)
    np.testing.assert_array_equal(drawn[109, 60:100], np.broadcast_to(colour, (40, 3)))
    # the label sits above the box from its left edge: left of it, below it, inside it untouched
    changed = np.any(drawn != before, axis=-1)
    assert changed[:50, 40:120].any()  # the label
    assert not changed[:, :40].any()
    assert not changed[110:].any()
    assert not changed[55:105, 45:115].any()
    assert not changed[50:, 120:].any()


def test_draw_boxes_keeps_labels_inside_tiny_images_and_colours_classes():
    grey = np.full((24, 24), 30, np.uint8)
    drawn = draw_boxes(grey, [[0, 0, 24, 24], [2, 2, 10, 10]], [0, 1], [0.5, 0.9], CLASSES)
    assert drawn.shape == (24, 24, 3)
    assert class_colour(0) != class_colour(1)
    empty = draw_boxes(grey, np.zeros((0, 4)), [], [], CLASSES)
    np.testing.assert_array_equal(empty, np.repeat(grey[..., None], 3, -1))


# -- predict -------------------------------------------------------------------------------
def _images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, width, height in IMAGES:
        pixels = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        pixels[height // 4 : height // 2, width // 4 : width // 2] = (230, 200, 40)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name)
    (root / "broken.jpg").write_bytes(b"this is not a jpeg \x00\x01\x02" * 20)
    whole = (root / "square.jpg").read_bytes()
    (root / "sub" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder (model.keras + config.yaml) of an untrained, seeded yolo_n at 64 px."""
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("run")
    model = create_model("yolo_n", num_classes=len(CLASSES), input_shape=(SIZE, SIZE, 3))
    model.save(folder / "model.keras")
    write_yaml(folder / "config.yaml", {"model": "yolo_n", "imgsz": SIZE, "class_names": CLASSES})
    keras.backend.clear_session()
    return folder


def _predict(model: Path, source: Path, out: Path, name: str, **keys) -> Path:
    config = resolve(
        {
            "task": "detect",
            "mode": "predict",
            "model": str(model),
            "source": str(source),
            "out": str(out),
            "name": name,
            "verbose": 0,
            "batch": 4,
            **keys,
        }
    )
    return DetectTask().predict_command(config)


@pytest.fixture(scope="module")
def low(run_dir, source, tmp_path_factory) -> Path:
    """Predictions at conf=0.001 (an untrained model scores about 0.01)."""
    return _predict(run_dir, source, tmp_path_factory.mktemp("out"), "low", conf=0.001, max_det=12)


def _read(out: Path) -> tuple[list[dict], list[dict]]:
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((out / "predictions.json").read_text())


def _readable(source: Path) -> list[str]:
    return sorted(str(source / name) for name, _, _ in IMAGES)


def _expected(model_path: Path, paths: list[str], **keys) -> list[np.ndarray]:
    """Per image: DetectTask.detections on the letterboxed pipeline, mapped back by hand."""
    task = DetectTask()
    model, class_names, _ = task.load_trained(str(model_path))
    names = class_names or ["0", "1"]
    dataset = Dataset("detect", names, [Example(image_path=p) for p in paths])
    config = {"batch": 4, "num_classes": len(names), "iou": 0.7, "max_det": 12, **keys}
    pipeline = task.eval_pipeline(model, dataset, config)
    _, found = task.detections(
        model, pipeline, config, progress=False, score_threshold=config["conf"]
    )
    rows = []
    for path, f in zip(paths, found, strict=True):
        with Image.open(path) as image:
            width, height = image.size
        boxes = unletterbox_boxes(f["boxes"], (height, width), SIZE)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        rows.append(np.column_stack([boxes[keep], f["scores"][keep], f["classes"][keep]]))
    keras.backend.clear_session()
    return rows


def _as_array(entry: dict) -> np.ndarray:
    found = entry["detections"]
    return np.array([[*d["box"], d["score"], d["class_id"]] for d in found], np.float64).reshape(
        -1, 6
    )


def test_predict_writes_agreeing_csv_and_json_for_every_image(low, source):
    rows, entries = _read(low)
    every = sorted(
        [*_readable(source), str(source / "broken.jpg"), str(source / "sub/truncated.jpg")]
    )
    assert [e["path"] for e in entries] == every
    assert list(dict.fromkeys(r["path"] for r in rows)) == every  # file order, each once
    assert list(rows[0]) == ["path", "class", "class_id", "score", "x1", "y1", "x2", "y2", "error"]
    sizes = {str(source / n): (w, h) for n, w, h in IMAGES}
    total = 0
    for entry in entries:
        mine = [r for r in rows if r["path"] == entry["path"]]
        if entry["path"] in sizes:
            assert entry["error"] is None
            assert (entry["width"], entry["height"]) == sizes[entry["path"]]
        found = entry["detections"]
        total += len(found)
        if entry["error"]:  # checked by the next test
            assert len(mine) == 1 and not found
            continue
        if not found:
            assert len(mine) == 1 and all(mine[0][k] == "" for k in rows[0] if k != "path")
            continue
        assert len(mine) == len(found) <= 12
        for row, d in zip(mine, found, strict=True):
            assert row["class"] == d["class"] == CLASSES[d["class_id"]]
            assert int(row["class_id"]) == d["class_id"] and row["error"] == ""
            assert float(row["score"]) == pytest.approx(d["score"], abs=1e-6)
            assert [float(row[k]) for k in ("x1", "y1", "x2", "y2")] == d["box"]
            x1, y1, x2, y2 = d["box"]
            width, height = entry["width"], entry["height"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        scores = [d["score"] for d in found]
        assert scores == sorted(scores, reverse=True) and min(scores) >= 0.001
    assert total > 0  # the untrained model does find boxes at conf=0.001


def test_unreadable_files_get_an_error_row_and_do_not_stop_the_run(low, source):
    rows, entries = _read(low)
    errors = {e["path"]: e["error"] for e in entries if e["error"]}
    assert set(errors) == {str(source / "broken.jpg"), str(source / "sub/truncated.jpg")}
    assert errors[str(source / "broken.jpg")].startswith("not_an_image")
    assert errors[str(source / "sub/truncated.jpg")].startswith("truncated")
    for path, error in errors.items():
        (row,) = [r for r in rows if r["path"] == path]
        assert row["error"] == error and row["class"] == row["x1"] == ""
        (entry,) = [e for e in entries if e["path"] == path]
        assert entry["detections"] == []


def test_predicted_boxes_are_the_val_detections_mapped_back(low, run_dir, source):
    _, entries = _read(low)
    by_path = {e["path"]: e for e in entries}
    paths = _readable(source)
    expected = _expected(run_dir, paths, conf=0.001)
    for path, want in zip(paths, expected, strict=True):
        got = _as_array(by_path[path])
        assert got.shape == want.shape, path
        np.testing.assert_allclose(got[:, :4], want[:, :4], atol=1e-3)
        np.testing.assert_allclose(got[:, 4], want[:, 4], atol=1e-6)
        np.testing.assert_array_equal(got[:, 5], want[:, 5])


def test_annotated_images_are_written_with_unique_names(low, source):
    names = sorted(p.name for p in (low / "images").iterdir())
    assert names == ["landscape.jpg", "odd.jpg", "portrait.jpg", "portrait_2.jpg", "square.jpg"]
    for name, width, height in IMAGES:
        stem = "portrait_2" if name == "sub/portrait.png" else Path(name).stem
        with Image.open(low / "images" / f"{stem}.jpg") as image:
            assert image.size == (width, height)  # drawn on the original image
    assert DRAW_LIMIT >= 100


def test_conf_filters_the_scores(low, run_dir, source, tmp_path):
    _, entries = _read(low)
    scores = sorted({d["score"] for e in entries for d in e["detections"]})
    assert len(scores) >= 4
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    high = _predict(run_dir, source, tmp_path, "high", conf=threshold, max_det=12)
    _, filtered = _read(high)
    for a, b in zip(entries, filtered, strict=True):
        kept = [d for d in a["detections"] if d["score"] >= threshold]
        assert b["detections"] == kept
    assert (
        0 < sum(len(e["detections"]) for e in filtered) < sum(len(e["detections"]) for e in entries)
    )


def test_yolov1_models_predict_too(tmp_path, source):
    keras.utils.set_random_seed(1)
    model = create_model(
        "yolov1",
        num_classes=2,
        input_shape=(SIZE, SIZE, 3),
        backbone="mobilenet_v3_small",
        grid=2,
        head_filters=8,
        fc_units=8,
    )
    assert len(model.output_shape) == 4
    path = tmp_path / "v1" / "detector.keras"  # a bare .keras file: names from its output
    path.parent.mkdir()
    model.save(path)
    keras.backend.clear_session()
    out = _predict(path, source / "sub", tmp_path, "v1", conf=0.0)
    _, entries = _read(out)
    assert [e["path"] for e in entries] == sorted(str(p) for p in (source / "sub").iterdir())
    paths = [e["path"] for e in entries if not e["error"]]
    expected = _expected(path, paths, conf=0.0)
    for path_, want in zip(paths, expected, strict=True):
        (entry,) = [e for e in entries if e["path"] == path_]
        got = _as_array(entry)
        assert got.shape == want.shape
        np.testing.assert_allclose(got[:, :4], want[:, :4], atol=1e-3)
        assert all(d["class"] in ("0", "1") for d in entry["detections"])
    assert (out / "images" / "odd.jpg").exists()


def test_the_cli_runs_detect_predict(run_dir, source, tmp_path, capsys):
    args = [
        "detect",
        "predict",
        f"model={run_dir}",
        f"source={source / 'landscape.png'}",
        f"out={tmp_path}",
        "name=cli",
        "conf=0.001",
        "verbose=0",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 images" in out and "0 unreadable" in out and "1 annotated images" in out
    _, entries = _read(tmp_path / "cli")
    assert [e["path"] for e in entries] == [str(source / "landscape.png")]
    assert (tmp_path / "cli" / "images" / "landscape.jpg").exists()
    assert main(["detect", "predict", f"source={source}", f"out={tmp_path}"]) == 2
    assert "needs model=" in capsys.readouterr().err
    keras.backend.clear_session()
