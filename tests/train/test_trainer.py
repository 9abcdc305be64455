"""Training runs end to end on a tiny folder dataset: the run folder of the design card,
metrics, val and predict commands, resume after an interruption."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from visionkit.cfg import resolve
from visionkit.tasks.classify import predict_command, val_command
from visionkit.tasks.registry import get_task
from visionkit.train import callbacks as vk_callbacks
from visionkit.train.trainer import train


def _folder(root, per_class: int = 12, size: int = 32):
    """Three classes told apart by colour: learnable in a couple of epochs."""
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for split, count in (("train", per_class), ("test", 4)):
        for name, colour in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                noise = rng.normal(0, 25, (size, size, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _config(tmp_path, data, **overrides):
    base = dict(
        task="classify",
        data=str(data / "train"),
        model="resnet20",
        weights=None,
        imgsz=32,
        batch=8,
        epochs=6,  # BatchNorm moving statistics need ~20 steps to settle
        lr=0.01,
        out=str(tmp_path / "runs"),
        name="run",
        verbose=0,
        patience=0,
        cache=True,
    )
    base.update(overrides)
    return resolve(base)


@pytest.fixture(autouse=True)
def _clean():
    yield
    keras.backend.clear_session()


def test_run_folder_and_metrics(tmp_path):
    data = _folder(tmp_path / "data")
    result = train(get_task("classify"), _config(tmp_path, data))
    run = result.run
    for name in (
        "config.yaml",
        "history.csv",
        "metrics.json",
        "model.keras",
        "labels.txt",
        "curves.png",
        "confusion_matrix.png",
    ):
        assert (run.dir / name).exists(), name
    config = run.read_config()
    assert config["class_names"] == ["blue", "green", "red"]
    assert config["input_shape"] == [32, 32, 3]
    with open(run.history) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "stage"} <= set(rows[0])
    metrics = json.loads(run.metrics.read_text())
    assert (
        metrics["split"] == "val" and metrics["num_examples"] == 7
    )  # round(20 % of 36), stratified
    assert set(metrics["per_class"]) == {"blue", "green", "red"}
    assert "top5_accuracy" not in metrics  # only 3 classes
    assert metrics["accuracy"] >= 6 / 7
    model = keras.saving.load_model(run.model, safe_mode=True)
    assert model.output_shape == (None, 3)

    report = val_command(
        resolve(
            {
                "model": str(run.dir),
                "data": str(data / "test"),
                "out": str(tmp_path / "reports"),
                "name": "test",
                "verbose": 0,
            }
        )
    )
    assert report["num_examples"] == 12 and report["split"] == "test"
    assert (tmp_path / "reports" / "test" / "metrics.json").exists()

    out = predict_command(
        resolve(
            {
                "model": str(run.dir),
                "source": str(data / "test"),
                "out": str(tmp_path / "pred"),
                "name": "p",
                "topk": 2,
                "verbose": 0,
                "explain": True,
            }
        )
    )
    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and set(rows[0]) == {
        "path",
        "class1",
        "prob1",
        "class2",
        "prob2",
        "error",
    }
    assert all(row["error"] == "" for row in rows)
    assert (out / "gradcam.png").exists()

    # a truncated JPEG (a valid header) and a non-image get error rows; the rest go on
    bad = tmp_path / "bad"
    shutil.copytree(data / "test", bad)
    first = sorted(bad.rglob("*.*"))[0]
    whole = first.read_bytes()
    (bad / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (bad / "garbage.jpg").write_bytes(b"not an image at all")
    settings = {"model": str(run.dir), "source": str(bad), "out": str(tmp_path / "pred")}
    out = predict_command(resolve({**settings, "name": "bad", "verbose": 0}))
    with open(out / "predictions.csv") as handle:
        rows = {str(Path(r["path"]).relative_to(bad)): r for r in csv.DictReader(handle)}
    assert len(rows) == 14
    assert rows["garbage.jpg"]["error"].startswith("not_an_image")
    assert rows["truncated.jpg"]["error"].startswith("truncated")
    assert sum(1 for r in rows.values() if not r["error"]) == 12


def test_existing_run_folder_is_protected(tmp_path):
    data = _folder(tmp_path / "data", per_class=4)
    (tmp_path / "runs" / "run").mkdir(parents=True)
    (tmp_path / "runs" / "run" / "something").write_text("x")
    from visionkit.config import ConfigError

    with pytest.raises(ConfigError, match="already exists"):
        train(get_task("classify"), _config(tmp_path, data, epochs=1))


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    data = _folder(tmp_path / "data")
    # cache=False: the exact per-epoch data order of the uninterrupted run is re-derived.
    reference = train(get_task("classify"), _config(tmp_path, data, name="whole", cache=False))

    original = vk_callbacks.HistoryLog.on_epoch_end

    def stop_after_epoch_1(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 3:
            raise _Interrupt  # as if killed during epoch 4, before its backup was written

    keras.backend.clear_session()
    monkeypatch.setattr(vk_callbacks.HistoryLog, "on_epoch_end", stop_after_epoch_1)
    with pytest.raises(_Interrupt):
        train(get_task("classify"), _config(tmp_path, data, name="cut", cache=False))
    monkeypatch.setattr(vk_callbacks.HistoryLog, "on_epoch_end", original)
    keras.backend.clear_session()
    resumed = train(
        get_task("classify"), _config(tmp_path, data, name="cut", resume=True, cache=False)
    )

    with open(resumed.run.history) as handle:
        epochs = [int(r["epoch"]) for r in csv.DictReader(handle)]
    assert epochs == [0, 1, 2, 3, 4, 5]
    a = keras.saving.load_model(reference.run.model, safe_mode=True)
    b = keras.saving.load_model(resumed.run.model, safe_mode=True)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-4)
    assert resumed.metrics["accuracy"] == pytest.approx(reference.metrics["accuracy"])


def test_faulty_files_are_skipped_and_listed_or_stop_the_run(tmp_path):
    data = _folder(tmp_path / "data", per_class=8)
    (data / "train" / "red" / "zero.png").write_bytes(b"")
    (data / "train" / "blue" / "text.png").write_text("not an image")
    good = (data / "train" / "green" / "0.png").read_bytes()
    (data / "train" / "green" / "cut.png").write_bytes(good[: len(good) // 2])
    result = train(get_task("classify"), _config(tmp_path, data, epochs=1, name="skip"))
    with open(result.run.faults) as handle:
        faults = {(row["file"].rsplit("/", 1)[-1], row["kind"]) for row in csv.DictReader(handle)}
    assert faults == {
        ("zero.png", "empty_file"),
        ("text.png", "not_an_image"),
        ("cut.png", "truncated"),
    }
    config = result.run.read_config()
    assert config["num_classes"] == 3

    from visionkit.data.doctor import DatasetFaultError

    keras.backend.clear_session()
    with pytest.raises(DatasetFaultError, match=r"(zero|text|cut)\.png"):
        train(get_task("classify"), _config(tmp_path, data, epochs=1, name="strict", strict=True))


def test_validation_epochs_are_the_multiples_and_each_stage_end():
    from visionkit.train.trainer import validation_epochs

    assert validation_epochs(0, 5, None) == 1
    assert validation_epochs(0, 5, 1) == 1
    assert validation_epochs(0, 5, 2) == [2, 4, 5]
    assert validation_epochs(5, 12, 3) == [6, 9, 12]
    assert validation_epochs(5, 6, 4) == [6]


def test_val_every_validates_the_multiples_and_the_last_epoch_quietly(tmp_path):
    import warnings

    data = _folder(tmp_path / "data")
    config = _config(tmp_path, data, epochs=5, val_every=2, patience=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(get_task("classify"), config)
    assert not [w for w in caught if "Early stopping conditioned" in str(w.message)]
    with open(result.run.history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    validated = [int(r["epoch"]) for r in rows if r.get("val_loss")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert validated == [1, 3, 4]  # epochs 2 and 4 (1-based), and the last one
    assert result.run.model.exists()
    assert json.loads(result.run.metrics.read_text())["num_examples"] == 7


def test_refit_trains_on_training_and_validation_data_without_validating(tmp_path, capsys):
    data = _folder(tmp_path / "data")
    config = _config(tmp_path, data, refit=True, patience=3, test=str(data / "test"))
    result = train(get_task("classify"), config)
    out = capsys.readouterr().out
    assert "refit: training on all 36 examples" in out  # 29 training + 7 validation
    with open(result.run.history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6  # patience is ignored: nothing to stop on
    assert not [key for key in rows[0] if key.startswith("val_")]
    metrics = json.loads(result.run.metrics.read_text())
    assert metrics["train_examples"] == 36 and metrics["num_examples"] == 0
    assert result.run.model.exists() and (result.run.dir / "curves.png").exists()
    assert result.test_metrics["accuracy"] >= 11 / 12  # the held-out folder, scored once
    assert "refit on 36 examples, no validation" in result.summary()
