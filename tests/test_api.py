"""visionkit.api: the command line's verbs as functions, with the same key checking."""

from __future__ import annotations

import pytest

from visionkit import api as vk
from visionkit.config import ConfigError


def test_settings_layers_and_checks(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("task: detect\nepochs: 7\n")
    config = vk.settings(pipeline=pipeline, epochs=9, out=tmp_path)
    assert config["task"] == "detect" and config["epochs"] == 9 and config["mode"] == "train"
    assert config["out"] == str(tmp_path)
    with pytest.raises(ConfigError, match="epochs"):
        vk.settings("classify", epochz=3)


def test_train_val_predict_round_trip(tmp_path):
    run = vk.train(
        "classify",
        data="builtin:shapes",
        model="lenet5",
        weights=None,
        imgsz=32,
        epochs=1,
        batch=32,
        out=tmp_path,
        verbose=0,
    )
    assert (run.run.dir / "model.keras").exists()
    metrics = vk.val("classify", model=run.run.dir, data="builtin:shapes", out=tmp_path, verbose=0)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["num_examples"] > 0
