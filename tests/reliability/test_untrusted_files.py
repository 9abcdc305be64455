"""Untrusted files: ``.keras`` models with Lambda layers or unknown classes, YAML with Python
tags, PyTorch pickles that would run code, and dataset annotations pointing out of their
root. Nothing in them may run, and each is refused with a message saying what and why."""

from __future__ import annotations

import contextlib
import csv
import json
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from faultkit import (
    CLASSES,
    TALLY,
    layout_pixels,
    run_cli,
    summary_counts,
    train_args,
    write_layout_folder,
)
from PIL import Image

from visionkit.backbones import torch_pickle as tp

# ----------------------------------------------------------------------------- .keras files


def _lambda_model(path: Path, marker: Path) -> None:
    """A 32×32×1 → 3 model whose Lambda layer writes ``marker`` whenever it is called
    (which unsafe loading does while rebuilding the graph). A ``lambda`` expression is
    stored as bytecode; a named function would only be stored by name."""
    # The path is a constant of the bytecode (no defaults or closure to serialise).
    payload = eval(f"lambda t: (open({str(marker)!r}, 'w').write('code ran'), t)[1]")
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Lambda(payload)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)
    marker.unlink()  # building the model ran it once; loading must not run it again


def _unknown_class_model(source: Path, path: Path) -> None:
    """A copy of the ``.keras`` file ``source`` whose Dense layer claims to be a class
    ``evil>Backdoor`` from module ``evil.payload``, which nothing here defines."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                stack, renamed = [config], 0
                while stack:
                    node = stack.pop()
                    if isinstance(node, dict):
                        if node.get("class_name") == "Dense" and not renamed:
                            node.update(
                                class_name="Backdoor",
                                module="evil.payload",
                                registered_name="evil>Backdoor",
                            )
                            renamed += 1
                        stack.extend(node.values())
                    elif isinstance(node, list):
                        stack.extend(node)
                assert renamed == 1
                data = json.dumps(config).encode()
            zout.writestr(item, data)


@pytest.fixture(scope="module")
def evil_models(tmp_path_factory, trained_run) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "MARKER"
    _lambda_model(folder / "lambda.keras", marker)
    _unknown_class_model(trained_run / "model.keras", folder / "unknown.keras")
    keras.backend.clear_session()
    return {
        "lambda": folder / "lambda.keras",
        "unknown": folder / "unknown.keras",
        "marker": marker,
    }


def test_lambda_keras_files_are_refused_by_default_and_run_nothing(evil_models, capsys):
    """Loading a ``.keras`` file with a Lambda layer through visionkit is refused with a
    message naming the file and how to allow it (``safe_mode=False``); its code never
    runs, and ``visionkit classify export`` exits 2 with that message. (Control: Keras
    with ``safe_mode=False`` does run it.)"""
    from visionkit.models.saving import load_model

    path, marker = evil_models["lambda"], evil_models["marker"]
    with pytest.raises(ValueError) as refused:
        load_model(path)
    message = str(refused.value)
    assert str(path) in message and "Lambda" in message
    assert "safe_mode=False" in message  # how to allow a file you trust
    assert not marker.exists()
    result = run_cli(capsys, "classify", "export", f"model={path}", "formats=tflite_fp32")
    assert result.code == 2 and "refused to load" in result.err and "safe_mode=False" in result.err
    assert not marker.exists()

    keras.saving.load_model(path, safe_mode=False)  # the control: this file does run code
    assert marker.exists()
    marker.unlink()
    TALLY.add("untrusted", keras_files=1, refused=1, code_ran=0)


COMMANDS = {
    "predict": lambda m, d, o: ["classify", "predict", f"model={m}", f"source={d}", f"out={o}"],
    "val": lambda m, d, o: ["classify", "val", f"model={m}", f"data={d}", f"out={o}"],
    "train-from": lambda m, d, o: ["classify", "train", *train_args(d, o, "t", model=m)],
    "weights": lambda m, d, o: ["classify", "train", *train_args(d, o, "w", weights=m)],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_lambda_model_with_a_message(
    command, evil_models, layout_data, tmp_path, capsys
):
    """``model=``/``weights=`` a Lambda ``.keras`` file in predict, val and train: exit 2
    with the refusal on stderr, no traceback, nothing run."""
    path, marker = evil_models["lambda"], evil_models["marker"]
    result = run_cli(capsys, *COMMANDS[command](path, layout_data, tmp_path / "out"))
    assert not marker.exists()
    assert result.code == 2
    assert "refused to load" in result.err and "safe_mode=False" in result.err
    assert "Traceback" not in result.err


def test_keras_files_with_unknown_classes_are_refused_with_a_message(
    evil_models, layout_data, tmp_path, capsys
):
    """A ``.keras`` file naming a layer class nothing registers: refused with a message
    naming the file and the class and saying how to allow it (register the class / load
    it yourself); at the command line exit 2 without a traceback."""
    from visionkit.models.saving import load_model

    path = evil_models["unknown"]
    with pytest.raises(ValueError) as refused:
        load_model(path)
    assert str(path) in str(refused.value) and "Backdoor" in str(refused.value)
    args = [f"model={path}", f"source={layout_data}", f"out={tmp_path}"]
    result = run_cli(capsys, "classify", "predict", *args)
    assert result.code == 2 and "Backdoor" in result.err and "Traceback" not in result.err


# ----------------------------------------------------------------------------- YAML

PAYLOADS = {
    "apply": "!!python/object/apply:os.system ['touch {marker}']",
    "new": "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "name": "!!python/name:os.system",
}


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_yaml_with_python_tags_runs_nothing(payload, tmp_path, trained_run, capsys):
    """Python-object YAML tags in a pipeline file, a run's config.yaml (read by predict
    and resume), a YOLO data.yaml and a masks.yaml: every one is loaded with the safe
    loader, so nothing runs; the pipeline and dataset files get a clear error."""
    marker = tmp_path / "MARKER"
    tag = PAYLOADS[payload].format(marker=marker)

    pipeline = tmp_path / "evil.yaml"
    pipeline.write_text(f"task: classify\ndata: {tag}\n")
    result = run_cli(capsys, "run", str(pipeline))
    assert result.code == 2 and "not valid YAML" in result.err

    run = tmp_path / "runs" / "evil"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export", ".export*"))
    with open(run / "config.yaml", "a") as handle:
        handle.write(f"pwn: {tag}\n")
    for args in (
        ["classify", "predict", f"model={run}", f"source={tmp_path}", f"out={tmp_path}"],
        ["classify", "train", "resume=true", f"out={run.parent}", "name=evil"],
    ):
        with contextlib.suppress(Exception):  # the message is checked apart (next test)
            run_cli(capsys, *args)

    yolo = tmp_path / "yolo"
    (yolo / "images" / "train").mkdir(parents=True)
    (yolo / "data.yaml").write_text(f"train: images/train\nnames: {tag}\n")
    result = run_cli(capsys, "data", "check", str(yolo), "format=yolo")
    assert result.code == 2 and "data.yaml" in result.err

    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "masks.yaml").write_text(f"train: {tag}\n")
    result = run_cli(capsys, "data", "check", str(masks), "format=masks")
    assert result.code == 2 and "masks.yaml" in result.err

    assert not marker.exists()
    TALLY.add("untrusted", yaml_files=5, code_ran=0)


def test_a_tampered_run_config_is_a_clear_error(tmp_path, trained_run, capsys):
    """A run folder whose config.yaml holds a Python tag: predict exits 2 naming the file."""
    run = tmp_path / "evil"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export", ".export*"))
    with open(run / "config.yaml", "a") as handle:
        handle.write("pwn: !!python/object/apply:os.system ['true']\n")
    result = run_cli(capsys, "classify", "predict", f"model={run}", f"source={tmp_path}")
    assert result.code == 2 and "config.yaml" in result.err and "Traceback" not in result.err


# ----------------------------------------------------------------------------- PyTorch pickles


def _legacy_file(main_pickle: bytes, *, in_header: bool = False) -> bytes:
    """A legacy ``torch.save`` stream whose main pickle (or sys_info header) is given."""
    magic = pickle.dumps(tp.MAGIC_NUMBER, protocol=2)
    protocol = pickle.dumps(tp.PROTOCOL_VERSION, protocol=2)
    sys_info = pickle.dumps({"little_endian": True, "protocol_version": 1001}, protocol=2)
    if in_header:
        return magic + protocol + main_pickle
    return magic + protocol + sys_info + main_pickle + pickle.dumps([], protocol=2)


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _opcodes(module: str, name: str, arg: str) -> dict[str, bytes]:
    """One call of ``module.name(arg)`` written with each opcode that imports a global."""
    text = arg.encode()
    binarg = b"X" + struct.pack("<I", len(text)) + text  # BINUNICODE
    return {
        "GLOBAL+REDUCE (protocol 2)": b"\x80\x02c%s\n%s\n" % (module.encode(), name.encode())
        + binarg
        + b"\x85R.",
        "STACK_GLOBAL+REDUCE (protocol 4)": b"\x80\x04"
        + _unicode(module)
        + _unicode(name)
        + b"\x93"
        + binarg
        + b"\x85R.",
        "INST (protocol 0)": b"(S'%s'\ni%s\n%s\n." % (text, module.encode(), name.encode()),
        "GLOBAL+OBJ (protocol 1)": b"(c%s\n%s\n" % (module.encode(), name.encode())
        + binarg
        + b"o.",
    }


GLOBALS = [
    ("os", "system"),
    ("posix", "system"),
    ("subprocess", "check_call"),
    ("builtins", "exec"),
    ("builtins", "eval"),
    ("builtins", "__import__"),
    ("builtins", "getattr"),
    ("shutil", "rmtree"),
    ("numpy", "load"),
    ("torch", "load"),
    ("torch._utils", "_rebuild_tensor"),  # close to the allow-list, but not on it
    ("collections", "OrderedDict.__class__"),
]


def test_the_pytorch_pickle_reader_refuses_every_global_outside_its_allow_list(tmp_path):
    """12 globals (``os.system``, ``exec``, ``eval``, ``subprocess``, ``getattr``, near
    misses of the allow-list, ...) × 4 opcodes that import a global, in the main pickle
    and in the header pickles: every file is refused with UnsafePickleError naming the
    global, and none of the calls runs. (Control: ``pickle.loads`` runs the payload.)"""
    marker = tmp_path / "MARKER"
    command = f"touch {marker}"
    assert pickle.loads(_opcodes("os", "system", command)["GLOBAL+REDUCE (protocol 2)"]) == 0
    assert marker.exists()  # the control: a plain unpickler runs it
    marker.unlink()

    tried = 0
    for module, name in GLOBALS:
        for opcode, payload in _opcodes(module, name, command).items():
            for in_header in (False, True):
                path = tmp_path / "evil.pth"
                path.write_bytes(_legacy_file(payload, in_header=in_header))
                with pytest.raises(tp.UnsafePickleError, match="refused to load global") as err:
                    tp.load_legacy_state_dict(path)
                assert f"{module}.{name}" in str(err.value), (opcode, in_header)
                tried += 1
    assert not marker.exists()
    TALLY.add("untrusted", pickles=tried, refused=tried, code_ran=0)


def test_a_malicious_pth_given_to_the_model_builder_runs_nothing(tmp_path):
    """``efficientnet_lite(0, weights="evil.pth")`` (the public API that reads PyTorch
    files) refuses a pickle calling ``os.system`` before any weight is assigned."""
    from visionkit.backbones.efficientnet_lite import efficientnet_lite

    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pth"
    payload = _opcodes("os", "system", f"touch {marker}")["GLOBAL+REDUCE (protocol 2)"]
    evil.write_bytes(_legacy_file(payload))
    with pytest.raises(tp.UnsafePickleError, match=r"os\.system"):
        efficientnet_lite(0, input_shape=(64, 64, 3), num_classes=3, weights=str(evil))
    assert not marker.exists()
    TALLY.add("untrusted", pickles=1, refused=1, code_ran=0)


# ----------------------------------------------------------------------------- path escapes


def _escape_layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A dataset root with clean images, and a secret image outside it (plus a symlink to
    it and a symlinked class folder inside the root)."""
    root = write_layout_folder(tmp_path / "data" / "imgs", per_class=8).parent
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    Image.fromarray(layout_pixels("top", np.random.default_rng(0))).save(secret)
    (root / "imgs" / "top" / "link.png").symlink_to(secret)
    return root, outside, secret


def test_csv_paths_escaping_the_root_are_refused_in_a_training_run(tmp_path, capsys):
    """A classification CSV whose rows name ``../secret.png``, an absolute path and an
    in-tree symlink to a file outside: the run trains on the 24 rows inside the root,
    lists the three escapes (with their CSV line) in data_faults.csv, and ``strict=true``
    stops at the first."""
    root, _, secret = _escape_layout(tmp_path)
    rows = [("path", "label")]
    rows += [(f"imgs/{c}/{i:03d}.png", c) for c in CLASSES for i in range(8)]
    rows += [("../outside/secret.png", "top"), (str(secret), "top"), ("imgs/top/link.png", "top")]
    table = root / "labels.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)

    result = run_cli(
        capsys, "classify", "train", *train_args(table, tmp_path / "runs", "csv", epochs=1)
    )
    assert result.code == 0, result.err
    with open(tmp_path / "runs" / "csv" / "data_faults.csv", newline="") as handle:
        escapes = [r for r in csv.DictReader(handle) if r["kind"] == "path_escapes_root"]
    assert sorted(r["where"] for r in escapes) == ["26", "27", "28"]
    assert all(r["fatal"] == "True" and "outside the dataset root" in r["detail"] for r in escapes)
    counts = summary_counts(result.out)
    assert counts["train"] + counts["val"] == 24 and counts["skipped"] == 0

    strict = run_cli(
        capsys,
        "classify",
        "train",
        *train_args(table, tmp_path / "runs", "strict", epochs=1, strict="true"),
    )
    assert strict.code == 1 and "path_escapes_root" in strict.err and "labels.csv" in strict.err
    assert not (tmp_path / "runs" / "strict").exists()
    TALLY.add("untrusted", escaping_paths=3, refused=3, runs=1, survived=1)


def test_escaping_paths_in_every_annotation_format_are_refused(tmp_path, capsys):
    """COCO ``file_name: ../secret.png``, a VOC ``<filename>`` with an absolute path, a
    masks.yaml split folder outside the root, a folder dataset with a symlink and a
    symlinked class folder out of the tree: ``visionkit data check --json`` lists each
    as path_escapes_root and never counts the secret image as usable."""
    root, outside, secret = _escape_layout(tmp_path)
    (root / "imgs" / "elsewhere").symlink_to(outside, target_is_directory=True)
    found: dict[str, list[str]] = {}

    def check(path: Path, *options: str) -> dict:
        result = run_cli(capsys, "data", "check", str(path), *options, "--json")
        report = json.loads(result.out)
        found[path.name] = [f["kind"] for f in report["faults"]]
        return report

    report = check(root / "imgs")
    assert found["imgs"].count("path_escapes_root") == 2  # link.png and elsewhere/secret.png
    assert report["usable_images"] == 24

    coco = tmp_path / "coco"
    (coco / "images").mkdir(parents=True)
    Image.fromarray(layout_pixels("top", np.random.default_rng(1))).save(coco / "images" / "a.png")
    images = [
        {"id": 1, "file_name": "a.png", "width": 32, "height": 32},
        {"id": 2, "file_name": "../../outside/secret.png", "width": 32, "height": 32},
        {"id": 3, "file_name": str(secret), "width": 32, "height": 32},
    ]
    boxes = [{"id": k, "image_id": k, "category_id": 1, "bbox": [2, 2, 10, 10]} for k in (1, 2, 3)]
    doc = {"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "sq"}]}
    (coco / "instances.json").write_text(json.dumps(doc))
    report = check(coco / "instances.json", "format=coco")
    assert found["instances.json"].count("path_escapes_root") == 2
    assert report["usable_images"] == 1

    voc = tmp_path / "voc"
    (voc / "images").mkdir(parents=True)
    shutil.copy(coco / "images" / "a.png", voc / "images" / "a.png")
    xml = (
        "<annotation><filename>{}</filename><object><name>sq</name><bndbox><xmin>2</xmin>"
        "<ymin>2</ymin><xmax>12</xmax><ymax>12</ymax></bndbox></object></annotation>"
    )
    (voc / "a.xml").write_text(xml.format("a.png"))
    (voc / "b.xml").write_text(xml.format(secret))
    (voc / "c.xml").write_text(xml.format("../outside/secret.png"))
    report = check(voc, "format=voc")
    assert found["voc"].count("path_escapes_root") == 2
    assert report["usable_images"] == 1

    masks = tmp_path / "masks"
    for split in ("train",):
        (masks / "images" / split).mkdir(parents=True)
        (masks / "masks" / split).mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(masks / "images" / split / "a.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(masks / "masks" / split / "a.png")
    (masks / "masks.yaml").write_text(
        "train: {images: images/train, masks: masks/train}\n"
        f"val: {{images: {outside}, masks: ../outside}}\n"
        "classes: [background, thing]\n"
    )
    report = check(masks, "format=masks")
    assert "path_escapes_root" in found["masks"]
    assert report["usable_images"] == 1
    escapes = sum(kinds.count("path_escapes_root") for kinds in found.values())
    TALLY.add("untrusted", escaping_paths=escapes, refused=escapes)
