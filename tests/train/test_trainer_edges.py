"""Edge cases of training runs: resume rules, failed runs, names, classes, monitor, cache,
grey models, and the two-stage recipe keeping pretrained BatchNorm statistics frozen."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
from PIL import Image

from visionkit.cfg import resolve, resolve_cli
from visionkit.config import ConfigError
from visionkit.data.errors import DataError
from visionkit.tasks.registry import get_task
from visionkit.train import callbacks as vk_callbacks
from visionkit.train.trainer import train


def _folder(root, classes=("dark", "light"), per_class: int = 10, size: int = 32):
    rng = np.random.default_rng(1)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            level = 60 + 130 * k
            pixels = np.clip(level + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _config(tmp_path, data, **overrides):
    base = dict(
        data=str(data),
        model="resnet20",
        weights=None,
        imgsz=32,
        batch=8,
        epochs=1,
        out=str(tmp_path / "runs"),
        verbose=0,
        patience=0,
    )
    base.update(overrides)
    return resolve(base)


@pytest.fixture(autouse=True)
def _clean():
    yield
    keras.backend.clear_session()


def test_numeric_names_stay_names_and_names_cannot_escape(tmp_path):
    config = resolve_cli(tokens=["name=2024", "data=1e3"], where="test")
    assert config["name"] == "2024" and config["data"] == "1e3"
    data = _folder(tmp_path / "data")
    with pytest.raises(ConfigError, match="single folder name"):
        train(get_task("classify"), _config(tmp_path, data, name="../outside"))
    assert not (tmp_path / "outside").exists()


def test_failed_run_leaves_no_folder_behind(tmp_path):
    data = _folder(tmp_path / "data")
    with pytest.raises(ConfigError, match="unknown model 'lenet55'"):
        train(get_task("classify"), _config(tmp_path, data, model="lenet55", name="bad"))
    assert not (tmp_path / "runs" / "bad").exists()


def test_single_class_is_refused(tmp_path):
    data = _folder(tmp_path / "data", classes=("only",))
    with pytest.raises(DataError, match="at least 2 classes"):
        train(get_task("classify"), _config(tmp_path, data, name="one"))


def test_misspelt_monitor_is_an_error(tmp_path):
    data = _folder(tmp_path / "data")
    with pytest.raises(
        ConfigError,
        match=r"monitor=val_acc is not a metric of this run; choose one of .*val_accuracy",
    ):
        train(get_task("classify"), _config(tmp_path, data, monitor="val_acc", name="mon"))


def test_cache_files_are_per_split_and_per_data(tmp_path):
    data = _folder(tmp_path / "data")
    cache = tmp_path / "cache"
    train(get_task("classify"), _config(tmp_path, data, cache=str(cache), name="c1"))
    names = sorted(p.name.split(".")[0] for p in cache.iterdir())
    assert any(n.startswith("train-") for n in names) and any(n.startswith("val-") for n in names)
    train_keys = {n for n in names if n.startswith("train-")}
    (data / "dark" / "0.png").touch()  # edited data: a new fingerprint, not a stale cache
    keras.backend.clear_session()
    train(get_task("classify"), _config(tmp_path, data, cache=str(cache), name="c2"))
    assert {
        p.name.split(".")[0] for p in cache.iterdir() if p.name.startswith("train-")
    } - train_keys


def test_grey_model_trains_on_rgb_data(tmp_path):
    data = _folder(tmp_path / "data")
    result = train(
        get_task("classify"),
        _config(tmp_path, data, model="lenet5", name="grey", lr=0.01, epochs=2),
    )
    assert result.run.read_config()["input_shape"] == [32, 32, 1]
    assert result.metrics["num_examples"] == 4


def test_exist_ok_replaces_a_run_and_resume_refuses_changes(tmp_path):
    data = _folder(tmp_path / "data")
    first = train(get_task("classify"), _config(tmp_path, data, name="same"))
    marker = first.run.dir / "logs" / "marker"
    marker.write_text("old")
    keras.backend.clear_session()
    train(get_task("classify"), _config(tmp_path, data, name="same", exist_ok=True))
    assert not marker.exists()
    with open(first.run.history) as handle:
        assert len(list(csv.DictReader(handle))) == 1  # a fresh history, not appended
    with pytest.raises(ConfigError, match=r"these keys differ: epochs=3 \(run: 1\)"):
        train(get_task("classify"), _config(tmp_path, data, name="same", resume=True, epochs=3))


class _Interrupt(Exception):
    pass


def test_two_stage_recipe_resumes_across_stages_and_keeps_bn_frozen(tmp_path, monkeypatch):
    data = _folder(tmp_path / "data")
    keras.utils.set_random_seed(3)
    source = keras.saving.load_model(
        train(
            get_task("classify"), _config(tmp_path, data, name="source", epochs=2, lr=0.01)
        ).run.model
    )
    pretrained = tmp_path / "pretrained.weights.h5"
    source.save_weights(pretrained)
    frozen_stats = {w.path: w.numpy() for w in source.weights if "moving_" in w.path}
    keras.backend.clear_session()

    original = vk_callbacks.HistoryLog.on_epoch_end

    def stop_in_finetune(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 2:
            raise _Interrupt  # during the finetune stage, after the head stage completed

    settings = dict(
        weights=str(pretrained), epochs=4, head_epochs=2, unfreeze=2, name="ft", cache=False
    )
    monkeypatch.setattr(vk_callbacks.HistoryLog, "on_epoch_end", stop_in_finetune)
    with pytest.raises(_Interrupt):
        train(get_task("classify"), _config(tmp_path, data, **settings))
    monkeypatch.setattr(vk_callbacks.HistoryLog, "on_epoch_end", original)
    keras.backend.clear_session()
    result = train(get_task("classify"), _config(tmp_path, data, **settings, resume=True))

    with open(result.run.history) as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["epoch"]), r["stage"]) for r in rows] == [
        (0, "head"),
        (1, "head"),
        (2, "finetune"),
        (3, "finetune"),
    ]
    final = keras.saving.load_model(result.run.state / "after_finetune.keras")
    for weight in final.weights:
        if "moving_" in weight.path:  # pretrained BatchNorm statistics: untouched by both stages
            np.testing.assert_array_equal(
                weight.numpy(), frozen_stats[weight.path], err_msg=weight.path
            )


def test_steps_per_execution_changes_speed_not_results(tmp_path):
    data = _folder(tmp_path / "data")
    histories = []
    for steps in (1, 3):
        config = _config(tmp_path, data, model="lenet5", epochs=2, batch=4, name=f"spe{steps}")
        config["steps_per_execution"] = steps
        result = train(get_task("classify"), config)
        with open(result.run.history) as handle:
            rows = list(csv.DictReader(handle))
        histories.append({k: [float(r[k]) for r in rows] for k in ("loss", "val_loss")})
        keras.backend.clear_session()
    # 16 training images at batch 4: 4 steps per epoch, run as 3 + 1 with N = 3
    for key in ("loss", "val_loss"):
        assert len(histories[0][key]) == 2
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5)


def test_a_training_stage_traces_its_step_once(tmp_path, monkeypatch):
    """The optimizer is built before ``fit``: built inside the first traced step instead,
    its new variables make TensorFlow trace the whole step twice (seconds per stage)."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    original = TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(self.name)
        return original(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    data = _folder(tmp_path / "data", per_class=6)
    train(get_task("classify"), _config(tmp_path, data, epochs=2))
    assert len(traces) == 1


def test_ema_keys_reach_the_average_and_bad_values_are_refused(tmp_path, monkeypatch):
    made = []

    class Recorded(vk_callbacks.ModelEMA):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(vk_callbacks, "ModelEMA", Recorded)
    data = _folder(tmp_path / "data", per_class=6)
    config = _config(tmp_path, data, model="lenet5", ema=True, ema_decay=0.9, ema_tau=5)
    train(get_task("classify"), config)
    assert [(e.decay, e.tau) for e in made] == [(0.9, 5.0)]
    assert made[0].updates > 0
    for key, value, match in (
        ("ema_decay", 1.0, "strictly between 0 and 1"),
        ("ema_tau", 0.0, "> 0"),
    ):
        bad = _config(tmp_path, data, model="lenet5", ema=True, **{key: value})
        with pytest.raises(ConfigError, match=f"{key}={value}: must.*{match}"):
            train(get_task("classify"), bad)


def test_resuming_a_run_saved_before_a_key_existed_uses_the_keys_default(tmp_path):
    """A run folder written by an older visionkit lacks keys added since (here ema_decay
    and ema_tau); resuming it fills them with their defaults instead of failing."""
    import yaml

    from visionkit.cfg import defaults
    from visionkit.train.runs import Run
    from visionkit.train.trainer import _resumed_config

    folder = tmp_path / "old_run"
    folder.mkdir()
    saved = {k: v for k, v in defaults().items() if k not in ("ema_decay", "ema_tau")}
    saved.update(task="detect", mode="train", ema=True, epochs=7)
    (folder / "config.yaml").write_text(yaml.safe_dump(saved), encoding="utf-8")
    config = _resumed_config(Run(folder), {"epochs": 7})
    assert config["ema_decay"] == defaults()["ema_decay"]
    assert config["ema_tau"] == defaults()["ema_tau"]
    assert config["epochs"] == 7 and config["ema"] is True and config["resume"] is True
