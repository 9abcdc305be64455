"""segment predict (masks, colour masks, overlays, class fractions), sliding windows in
predict and val, per-image scores and the worst-images grid, on one tiny trained U-Net."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from visionkit.cfg import resolve
from visionkit.tasks.registry import get_task
from visionkit.train.trainer import train

SIZE = 32  # the model's input


def _square(rng, height: int, width: int, invert: bool = False):
    """A bright square on a dark background (inverted: dark on bright) and its 0/255 mask."""
    mask = np.zeros((height, width), np.uint8)
    h, w = height // 2, width // 2
    y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    mask[y : y + h, x : x + w] = 255
    fg, bg = (40, 200) if invert else (200, 40)
    image = np.where(mask > 0, fg, bg).astype(np.uint8) + rng.integers(
        0, 20, (height, width), dtype=np.uint8
    )
    return np.repeat(image[..., None], 3, axis=-1), mask


def _folder(root: Path, shapes, *, seed: int, inverted: tuple[int, ...] = ()) -> Path:
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    for i, (height, width) in enumerate(shapes):
        image, mask = _square(rng, height, width, invert=i in inverted)
        Image.fromarray(image).save(root / "image" / f"{i}.png")
        Image.fromarray(mask).save(root / "label" / f"{i}.png")
    return root


def _settings(**overrides):
    return resolve({"task": "segment", "verbose": 0, **overrides})


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _iou_score(true: np.ndarray, pred: np.ndarray, classes: int = 2) -> float:
    """The per-image score as documented: mIoU over present classes, pixel accuracy when
    the truth holds one class."""
    if len(np.unique(true)) == 1:
        return float((true == pred).mean())
    ious = []
    for c in range(classes):
        union = ((true == c) | (pred == c)).sum()
        if union:
            ious.append(((true == c) & (pred == c)).sum() / union)
    return float(np.mean(ious))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A U-Net trained for a few epochs on 32×32 bright squares (binary 0/255 masks)."""
    root = tmp_path_factory.mktemp("segment")
    data = _folder(root / "cells", [(SIZE, SIZE)] * 8, seed=0)
    config = resolve(
        {
            "task": "segment",
            "data": str(data),
            "model": "unet",
            "model_options": {"base_filters": 4},
            "weights": None,
            "imgsz": SIZE,
            "batch": 4,
            "epochs": 3,
            "lr": 0.01,
            "out": str(root / "runs"),
            "verbose": 0,
            "patience": 0,
        }
    )
    result = train(get_task("segment"), config)
    keras.backend.clear_session()
    return result.run.dir


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Images to predict: model-sized, larger (non-square), smaller, nested, and a corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    shapes = {"same.png": (SIZE, SIZE), "large.png": (70, 45), "small.jpg": (20, 24)}
    for name, (h, w) in shapes.items():
        Image.fromarray(_square(rng, h, w)[0]).save(folder / name)
    (folder / "sub").mkdir()
    Image.fromarray(_square(rng, 40, 40)[0]).save(folder / "sub" / "nested.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def test_predict_writes_masks_colours_overlays_and_fractions(run, photos, tmp_path, capsys):
    out = get_task("segment").predict_command(
        _settings(model=str(run), source=str(photos), out=str(tmp_path), name="p", batch=2)
    )
    assert out == tmp_path / "p"
    rows = {Path(r["path"]).name: r for r in _read_csv(out / "predictions.csv")}
    assert set(rows) == {"same.png", "large.png", "small.jpg", "nested.png", "broken.png"}
    assert rows["broken.png"]["error"] and rows["broken.png"]["width"] == ""  # listed, no crash
    for name, stem in [
        ("same.png", "same"),
        ("large.png", "large"),
        ("small.jpg", "small"),
        ("nested.png", "sub/nested"),
    ]:
        row = rows[name]
        assert row["error"] == ""
        with Image.open(Path(row["path"])) as original:
            size = original.size
        with Image.open(out / "masks" / f"{stem}.png") as file:
            assert file.mode == "L" and file.size == size  # (width, height) of the image
            mask = np.asarray(file)
        assert (int(row["width"]), int(row["height"])) == size
        assert set(np.unique(mask)) <= {0, 1}
        fractions = np.array([float(row["background"]), float(row["foreground"])])
        assert fractions.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(
            fractions, np.bincount(mask.ravel(), minlength=2) / mask.size, atol=1e-6
        )
        with Image.open(out / "colour" / f"{stem}.png") as colour:
            assert colour.mode == "RGB" and colour.size == size
            colours = np.asarray(colour)
        assert (colours[mask == 0] == 0).all()  # class 0 is black
        with Image.open(out / "overlays" / f"{stem}.jpg") as blended:
            assert blended.size == size
    assert (out / "overlays.png").exists()
    printed = capsys.readouterr().out
    assert "4 images segmented" in printed and "1 unreadable" in printed


def test_predict_mask_is_what_the_validation_pipeline_predicts(run, photos, tmp_path):
    """Parity: predict's mask of a model-sized image equals the labels of val's batched path
    (evaluation pipeline + run_model) and the model's own argmax."""
    from visionkit.data.types import Dataset, Example
    from visionkit.evaluate.segmentation import probabilities_to_labels
    from visionkit.predict import run_model

    task = get_task("segment")
    out = task.predict_command(
        _settings(model=str(run), source=str(photos / "same.png"), out=str(tmp_path), name="one")
    )
    predicted = np.asarray(Image.open(out / "masks" / "same.png"))
    model, names, config = task.load_trained(str(run))
    dataset = Dataset(
        "segment",
        names,
        [Example(image_path=str(photos / "same.png"), mask=np.zeros((SIZE, SIZE), np.uint8))],
    )
    ((probs, _),) = list(
        run_model(model, task.eval_pipeline(model, dataset, config), progress=False)
    )
    np.testing.assert_array_equal(predicted, probabilities_to_labels(probs)[0])
    image = np.asarray(Image.open(photos / "same.png").convert("RGB"), np.float32)
    direct = np.argmax(model(image[None], training=False).numpy()[0], axis=-1)
    np.testing.assert_array_equal(predicted, direct)
    keras.backend.clear_session()


def test_slide_predicts_large_images_at_native_size(run, photos, tmp_path, capsys):
    out = get_task("segment").predict_command(
        _settings(
            model=str(run), source=str(photos), out=str(tmp_path), name="s", slide=True, overlap=0.5
        )
    )
    with Image.open(out / "masks" / "large.png") as file:
        assert file.size == (45, 70)
        assert set(np.unique(np.asarray(file))) <= {0, 1}
    assert "2 by sliding windows" in capsys.readouterr().out  # large.png and sub/nested.png


@pytest.mark.parametrize(
    "slide,tta",
    [(False, False), (True, False), (True, True), (False, "hflip")],
    ids=["resized", "sliding", "tta", "tta-hflip"],
)
def test_val_scores_and_worst_images_agree_with_predict(run, tmp_path, slide, tta, monkeypatch):
    """Per-image scores of val equal the scores of predict's masks (the same computation,
    with or without flip averaging), and the worst grid starts with the lowest-scoring
    image (an inverted one)."""
    import visionkit.evaluate.segmentation_plots as plots

    shape = (48, 56) if slide else (SIZE, SIZE)
    data = _folder(tmp_path / "evalset", [shape] * 5, seed=3, inverted=(2,))
    drawn = {}
    original = plots.plot_mask_grid

    def record(images, titles, path, **kwargs):
        drawn[Path(path).name] = list(titles)
        return original(images, titles, path, **kwargs)

    monkeypatch.setattr(plots, "plot_mask_grid", record)
    task = get_task("segment")
    common = {"model": str(run), "out": str(tmp_path), "slide": slide, "tta": tta}
    metrics = task.val_command(_settings(**common, data=str(data), name="val", worst=3))
    report = tmp_path / "val"
    assert (report / "worst.png").exists() and metrics["num_examples"] == 5
    scores = _read_csv(report / "per_image.csv")
    assert len(scores) == 5
    values = [float(r["score"]) for r in scores]
    assert values == sorted(values)  # worst first

    predicted = task.predict_command(_settings(**common, source=str(data / "image"), name="pred"))
    recomputed = {}
    for i in range(5):
        true = (np.asarray(Image.open(data / "label" / f"{i}.png")) > 0).astype(np.int64)
        pred = np.asarray(Image.open(predicted / "masks" / f"{i}.png")).astype(np.int64)
        assert pred.shape == shape
        recomputed[f"{i}.png"] = _iou_score(true, pred)
    for row in scores:
        assert float(row["score"]) == pytest.approx(recomputed[Path(row["path"]).name], abs=1e-6)
    lowest = min(recomputed, key=lambda name: (recomputed[name], name))
    assert Path(scores[0]["path"]).name == lowest
    assert drawn["worst.png"][0].startswith(lowest + "\n")
    assert len(drawn["worst.png"]) <= 3

    task.val_command(_settings(**common, data=str(data), name="val", worst=0))
    assert not (report / "worst.png").exists()  # no stale grid
    keras.backend.clear_session()


def test_cli_segment_predict(run, photos, tmp_path, capsys):
    from visionkit.cli import main

    code = main(
        [
            "segment",
            "predict",
            f"model={run / 'model.keras'}",
            f"source={photos}",
            f"out={tmp_path}",
            "name=cli",
            "verbose=0",
        ]
    )
    assert code == 0
    assert "4 images segmented" in capsys.readouterr().out
    assert (tmp_path / "cli" / "masks" / "large.png").exists()
    assert main(["segment", "predict", f"out={tmp_path}"]) == 2  # model and source missing
    bad = ["segment", "predict", f"model={run}", f"source={photos}", f"out={tmp_path}"]
    assert main([*bad, "slide=true", "overlap=1.5"]) == 2
    assert "overlap must be in [0, 1)" in capsys.readouterr().err
