"""key=value parsing and validation."""

from __future__ import annotations

import pytest

from visionkit.config import ConfigError, closest_key, parse_overrides, validate_keys


def test_values_are_typed_as_yaml_scalars():
    values = parse_overrides(
        ["epochs=3", "lr=1e-3", "strict=true", "data=path/to/set", "imgsz=[224, 224]", "name="]
    )
    assert values == {
        "epochs": 3,
        "lr": 1e-3,
        "strict": True,
        "data": "path/to/set",
        "imgsz": [224, 224],
        "name": "",
    }


def test_mapping_like_values_stay_text():
    assert parse_overrides(["name=a: b"]) == {"name": "a: b"}


@pytest.mark.parametrize("token", ["epochs", "=3"])
def test_bad_tokens(token):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides([token])


def test_duplicate_key():
    with pytest.raises(ConfigError, match="given twice"):
        parse_overrides(["epochs=1", "epochs=2"])


def test_validation_names_key_and_closest():
    valid = {"epochs": int, "lr": float, "data": str, "strict": bool}
    validate_keys({"epochs": 3, "lr": 1, "data": 2024, "strict": False}, valid, where="train")
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' for train\. Did you mean 'epochs'"):
        validate_keys({"epoch": 3}, valid, where="train")
    with pytest.raises(ConfigError, match="'epochs' must be int, got 'three'"):
        validate_keys({"epochs": "three"}, valid, where="train")
    with pytest.raises(ConfigError, match="'strict' must be bool"):
        validate_keys({"strict": 1}, valid, where="train")
    with pytest.raises(ConfigError, match="'epochs' must be int"):
        validate_keys({"epochs": True}, valid, where="train")
    assert closest_key("zzz", valid) is None


def test_dict_keys_take_a_flow_mapping_on_the_command_line():
    from visionkit.cfg import resolve_cli

    config = resolve_cli(
        {"task": "segment"},
        tokens=["augment={elastic_prob: 0.5}", "model_options={base_filters: 8}", "name={x}"],
        where="cli",
    )
    assert config["augment"] == {"elastic_prob": 0.5}
    assert config["model_options"] == {"base_filters": 8}
    assert config["name"] == "{x}"  # a text key keeps its text
    with pytest.raises(ConfigError, match="not a valid YAML mapping"):
        resolve_cli({}, tokens=["augment={a: [}"], where="cli")
