"""The command line: --help everywhere, the model table, the dataset doctor's exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from visionkit.cli import build_parser, main

HELP_COMMANDS = [
    [],
    ["models"],
    ["keys"],
    ["run"],
    ["classify"],
    ["detect"],
    ["segment"],
    ["data"],
    ["data", "check"],
    ["data", "show"],
]


@pytest.mark.parametrize("words", HELP_COMMANDS, ids=lambda w: " ".join(w) or "visionkit")
def test_help_works_for_every_command(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: visionkit")
    assert len(out.splitlines()) > 3


def test_console_script_is_installed():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="visionkit")
    assert script.value == "visionkit.cli:main"


def test_version(capsys):
    from visionkit import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"visionkit {__version__}"


def test_models_table_lists_every_model(capsys):
    from visionkit.models import list_models, model_info

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert f"{model_info(name).params:,}" in out
    assert "lenet5" in out and "61,706" in out


def test_models_json(capsys):
    from visionkit.backbones import list_backbones
    from visionkit.models import list_models

    assert main(["models", "--json", "--task", "classify"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = listing["models"]
    assert [r["name"] for r in rows] == list_models(task="classify")
    assert [b["name"] for b in listing["backbones"]] == list_backbones()
    lite = next(b for b in listing["backbones"] if b["name"] == "efficientnet_lite0")
    assert lite["levels"] == ["P2", "P3", "P4", "P5"] and lite["imagenet"] == "offline (PyPI)"
    by_name = {r["name"]: r for r in rows}
    assert by_name["vgg16"]["params"] == 138_357_544
    assert by_name["alexnet"]["input"] == "227x227x3"


def _image_folder(root, corrupt: bool = False):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    if corrupt:
        (root / "dogs" / "broken.jpg").write_bytes(b"not a jpeg at all")
    return root


def test_data_check_clean_folder_exits_0(tmp_path, capsys):
    root = _image_folder(tmp_path / "set")
    assert main(["data", "check", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 6
    assert report["classes"] == {"cats": 3, "dogs": 3}
    assert report["faults"] == []


def test_data_check_finds_the_broken_file_and_exits_1(tmp_path, capsys):
    root = _image_folder(tmp_path / "set", corrupt=True)
    assert main(["data", "check", str(root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(f["file"].endswith("broken.jpg"), f["kind"]) for f in report["faults"]] == [
        (True, "not_an_image")
    ]


def test_data_check_strict_stops_at_the_first_fault(tmp_path, capsys):
    root = _image_folder(tmp_path / "set", corrupt=True)
    assert main(["data", "check", str(root), "strict=true"]) == 1
    assert "broken.jpg" in capsys.readouterr().err


def test_data_check_unusable_input_exits_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_unknown_key_names_the_closest_valid_one(tmp_path, capsys):
    root = _image_folder(tmp_path / "set")
    assert main(["data", "check", str(root), "formt=folder"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'formt'" in err and "Did you mean 'format'?" in err


def test_malformed_token_is_an_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path), "format"]) == 2
    assert "expected key=value" in capsys.readouterr().err


@pytest.mark.parametrize(
    "target", [("raccoon",), ("raccoon", "raccoon_labels.csv")], ids=["folder", "csv"]
)
def test_raccoon_checks_clean(shared, capsys, target):
    path = shared("data", *target)
    assert main(["data", "check", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 200 and report["boxes"] == 217


def test_parser_has_the_documented_commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"classify", "detect", "segment", "run", "keys", "models", "data"}


def test_data_show_writes_a_grid(tmp_path, capsys):
    root = _image_folder(tmp_path / "set")
    out = tmp_path / "grid.png"
    assert main(["data", "show", str(root), "n=4", f"out={out}", "imgsz=32"]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert "wrote" in capsys.readouterr().out


def test_data_check_json_error_is_the_documented_object(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing"), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert {"images", "classes", "boxes", "faults", "error"} <= set(report)
    assert report["faults"][0]["kind"] == "unusable" and "missing" in report["faults"][0]["detail"]


def test_keys_lists_every_documented_key(capsys):
    from visionkit.cfg import key_specs

    assert main(["keys"]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in key_specs())


def test_unavailable_task_modes_say_so(capsys, monkeypatch):
    from visionkit.tasks import registry

    monkeypatch.setattr(registry, "is_available", lambda task, mode: mode != "predict")
    assert main(["detect", "predict", "source=x"]) == 2
    assert "not available in this version" in capsys.readouterr().err


def test_task_errors_exit_2_without_a_traceback(tmp_path, capsys):
    assert (
        main(["classify", "train", f"data={tmp_path / 'nothing'}", f"out={tmp_path}", "verbose=0"])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["classify", "train", "epochz=3"]) == 2
    assert "Did you mean 'epochs'" in capsys.readouterr().err
