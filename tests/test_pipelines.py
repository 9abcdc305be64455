"""Every pipeline file and the documented defaults: keys known, types right, errors clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionkit.cfg import check_value, defaults, format_keys, key_specs, load_pipeline, resolve
from visionkit.config import ConfigError

PIPELINES = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml"))


def test_pipeline_files_exist():
    names = {p.stem for p in PIPELINES}
    assert {"quickstart", "lenet_mnist", "classify_transfer", "classify_scratch"} <= names


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_pipeline_validates(path):
    config = resolve(load_pipeline(str(path)))
    assert config["task"] in ("classify", "detect", "segment")
    assert config["mode"] == "train"


def test_every_key_is_documented_with_a_type_and_meaning():
    text = (Path(__file__).resolve().parents[1] / "visionkit" / "cfg" / "default.yaml").read_text()
    keys = [
        line.split(":")[0] for line in text.splitlines() if line and not line.startswith(("#", " "))
    ]
    assert keys == list(key_specs())  # every line parsed, none skipped
    for spec in key_specs().values():
        assert spec.help and spec.types
    assert defaults()["epochs"] == 10 and defaults()["weights"] == "auto"
    assert "label_smoothing" in format_keys()


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: classify\nepochz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'epochz'\. Did you mean 'epochs'\?"):
        load_pipeline(str(bad))
    with pytest.raises(ConfigError, match=r"key 'batch' must be int, got 'big'"):
        check_value("batch", "big")
    with pytest.raises(ConfigError, match="must be float"):
        resolve({"lr": True})
    assert check_value("lr", 1) == 1.0


def test_yaml_errors_name_the_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("task: classify\nepochs: [1, 2\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_pipeline(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline(str(tmp_path / "missing.yaml"))
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_pipeline(str(bad))


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("task: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError):
        load_pipeline(str(evil))
    assert not (tmp_path / "pwned").exists()
