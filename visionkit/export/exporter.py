"""``export_run``: a run folder → ``RUN/export/`` with every requested format, the labels,
the preprocessing description and the parity report, written atomically.

The whole ``export/`` folder is built in a hidden staging folder beside it and moved into
place only when every format converted, passed the builtin-ops check and was measured; a
failure leaves the previous ``export/`` (or none) untouched and no partial files.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from visionkit.export.formats import FORMATS, TFLITE_MODES, parse_formats

TASKS = ("classify", "detect", "segment")


def resolve_task(task: str | None, config: dict[str, Any], model) -> str:
    """``task`` if given (it must agree with the run's), else the run's, else guessed from
    the output rank: (B, C) classify, (B, A, K) detect, (B, H, W, C) segment."""
    from visionkit.config import ConfigError

    saved = config.get("task")
    if task is not None:
        if task not in TASKS:
            raise ConfigError(f"task={task!r}: one of {', '.join(TASKS)}")
        if saved and saved != task:
            raise ConfigError(
                f"the run is a {saved} run (config.yaml task: {saved}); export it with "
                f"`visionkit {saved} export`"
            )
        return task
    if saved in TASKS:
        return saved
    rank = len(model.output_shape)
    return {2: "classify", 3: "detect", 4: "segment"}.get(rank) or _unknown_rank(model)


def _unknown_rank(model) -> str:
    from visionkit.config import ConfigError

    raise ConfigError(
        f"cannot tell the task of {model.name} (output {model.output_shape}); pass task="
    )


def folder_bytes(path: Path) -> int:
    """Size of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_run(
    run_dir: str | Path,
    formats: str | list[str],
    *,
    task: str | None = None,
    val_data=None,
    progress: bool = True,
    num_threads: int | None = None,
    latency_runs: int = 20,
    calibration: int = 100,
    detection_nms: bool = True,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
) -> Path:
    """Export the model of ``run_dir`` (a run folder or a ``.keras`` file) to ``RUN/export/``.

    Args:
        formats: names or a comma-separated string: ``saved_model``, ``tflite_fp32``,
            ``tflite_fp16``, ``tflite_dynamic``, ``tflite_int8``, ``onnx``.
        task: ``classify``, ``segment`` or ``detect``; defaults to the run's.
        val_data: a path or Dataset replacing the run's validation split for parity.
        progress: print each step and the report table.
        num_threads: TFLite/ONNX threads for parity and latency (default: all cores).
        latency_runs: timed batch-1 runs per format (median reported), after 3 warmups.
        calibration: training images for int8 calibration (seeded sample).
        detection_nms: detection TFLite files end in ``TFLite_Detection_PostProcess``
            (else they return the raw head).
        conf, iou, max_det: detection NMS settings built into the SavedModel and TFLite
            files: the score threshold (default 0.001, the one mAP is computed at, so the
            files keep every candidate and ``predict conf=`` filters on top), the NMS IoU
            and the most detections (default: the run's ``iou`` and ``max_det``).

    Mixed-precision models are exported as float32 copies (``precision.as_float32``);
    parity is still measured against the model as trained.

    Writes ``saved_model/``, ``model_{fp32,fp16,dynamic,int8}.tflite``, ``model.onnx`` (as
    requested), ``labels.txt``, ``preprocessing.json`` and ``report.json`` (format →
    ``path`` relative to ``export/``, ``bytes``, ``max_abs_diff`` against Keras on the same
    uint8 inputs, the task metric on the validation split, ``agreement``, ``latency_ms``,
    ``num_examples``; ``keras`` is the reference row). Returns the ``export/`` path.
    """
    from visionkit.export.data import ExportData, load_export_data
    from visionkit.export.metadata import preprocessing, write_labels, write_preprocessing
    from visionkit.export.precision import as_float32
    from visionkit.export.report import format_table
    from visionkit.export.signatures import model_size
    from visionkit.io import atomic_directory, write_json
    from visionkit.train.trainer import load_run_model

    formats = parse_formats(formats)
    source = Path(run_dir)
    model, config = load_run_model(source)
    folder = source if source.is_dir() else source.parent
    task = resolve_task(task, config, model)
    config = {**config, "task": task}
    config.update(
        {
            k: v
            for k, v in (("export_conf", conf), ("iou", iou), ("max_det", max_det))
            if v is not None
        }
    )
    size = model_size(model)
    class_names = _class_names(config, model, task)
    say = print if progress else (lambda *a, **k: None)

    data = ExportData(None, None)
    if config.get("data") or val_data is not None:
        data = load_export_data(
            config, task, class_names, val_data=val_data, calibration=calibration, progress=progress
        )
    if "tflite_int8" in formats and data.train is None:
        from visionkit.config import ConfigError

        raise ConfigError(
            f"tflite_int8 needs calibration images from the run's training data, but "
            f"{folder / 'config.yaml'} has no usable data= ({data.note or 'no images'}); "
            "export from a run folder whose data is still in place, or leave tflite_int8 out"
        )

    exported = as_float32(model)
    if exported is not model:
        say(f"export: {model.name} was trained with mixed precision; exporting a float32 copy")
    target = folder / "export"
    with atomic_directory(target) as stage:
        files = _write_formats(
            exported, task, config, formats, stage, data, size, say, detection_nms=detection_nms
        )
        write_labels(stage / "labels.txt", class_names)
        write_preprocessing(
            stage / "preprocessing.json",
            preprocessing(
                task,
                size,
                int(model.input_shape[-1]),
                detection_nms=detection_nms,
                num_classes=len(class_names),
                **({"nms": _nms_settings(config)} if task == "detect" else {}),
            ),
        )
        say("export: measuring parity and latency ...")
        report = _measure(
            model,
            source if source.suffix == ".keras" else folder / "model.keras",
            files,
            task,
            config,
            class_names,
            data,
            size,
            stage,
            num_threads=num_threads,
            latency_runs=latency_runs,
        )
        write_json(stage / "report.json", report)
    say(format_table(report))
    say(f"wrote {target}")
    return target


def _nms_settings(config: dict[str, Any]) -> dict[str, Any]:
    from visionkit.export.detection import nms_settings

    conf, iou, max_det = nms_settings(config)
    return {
        "score_threshold": conf,
        "iou_threshold": iou,
        "max_detections": max_det,
        "per_class": True,
    }


def _class_names(config: dict[str, Any], model, task: str) -> list[str]:
    names = config.get("class_names")
    if names:
        return [str(n) for n in names]
    count = int(config.get("num_classes") or 0)
    if not count and task == "detect":
        from visionkit.config import ConfigError

        raise ConfigError(
            "the detector's number of classes is unknown (no config.yaml beside the model); "
            "export the run folder"
        )
    return [str(i) for i in range(count or int(model.output_shape[-1]))]


def _write_formats(
    model, task, config, formats, stage: Path, data, size, say, *, detection_nms: bool
) -> dict[str, Path]:
    """Write each format into ``stage``; ``{format: path}``."""
    from visionkit.export.saved_model import write_saved_model, write_static_saved_model
    from visionkit.export.tflite import check_builtin_ops, convert_saved_model

    files: dict[str, Path] = {}
    saved = None
    if "saved_model" in formats or "onnx" in formats:  # ONNX converts its raw signature
        started = time.perf_counter()
        saved = write_saved_model(model, task, stage / FORMATS["saved_model"], config)
        say(f"export: saved_model ({time.perf_counter() - started:.1f} s)")
        if "saved_model" in formats:
            files["saved_model"] = saved
    tflite_formats = [f for f in formats if f in TFLITE_MODES]
    if tflite_formats:
        source = stage / ".tflite_source"
        fn, allow_custom, float_scopes = tflite_graph(model, task, config, detection_nms)
        write_static_saved_model(fn, model, source)
        representative = None
        if "tflite_int8" in tflite_formats:
            from visionkit.export.data import representative_images

            images = representative_images(data.train, task, size, needs_pil=data.needs_pil)

            def representative():
                for image in images:
                    yield {"images": image}

        for fmt in tflite_formats:
            started = time.perf_counter()
            content = convert_saved_model(
                source,
                TFLITE_MODES[fmt],
                representative=representative,
                allow_custom_ops=allow_custom,
                float_scopes=float_scopes,
            )
            ops = check_builtin_ops(content, f"{fmt} ({FORMATS[fmt]})")
            path = stage / FORMATS[fmt]
            path.write_bytes(content)
            files[fmt] = path
            say(
                f"export: {fmt} {len(content) / 1e6:.2f} MB, {len(ops)} op kinds ({time.perf_counter() - started:.1f} s)"
            )
        shutil.rmtree(source)
    if "onnx" in formats:
        from visionkit.export.onnx import convert_onnx

        started = time.perf_counter()
        files["onnx"] = convert_onnx(saved, stage / FORMATS["onnx"])
        say(f"export: onnx ({time.perf_counter() - started:.1f} s)")
    if saved is not None and "saved_model" not in formats:
        shutil.rmtree(saved)
    return {fmt: files[fmt] for fmt in formats}


def tflite_graph(model, task: str, config: dict[str, Any], detection_nms: bool):
    """The function converted to TFLite, whether it may hold custom ops, and the name
    scopes whose ops int8 keeps float (detection's box decoding)."""
    from visionkit.export.signatures import raw_fn

    if task == "detect" and detection_nms:
        from visionkit.export.detection import DECODE_SCOPE, tflite_postprocess_fn

        return tflite_postprocess_fn(model, config), True, (DECODE_SCOPE,)
    return raw_fn(model, task), False, ()


def _measure(
    model,
    keras_path: Path,
    files: dict[str, Path],
    task: str,
    config: dict[str, Any],
    class_names: list[str],
    data,
    size: tuple[int, int],
    stage: Path,
    *,
    num_threads: int | None,
    latency_runs: int,
) -> dict[str, dict[str, Any]]:
    """The report: parity on the validation split (or random images) and latency."""
    from visionkit.export.data import batches
    from visionkit.export.parity import compare, latency_ms, random_batches
    from visionkit.export.runtime import KerasPredictor, load_predictor

    reference = KerasPredictor(model, keras_path)
    predictors = {fmt: load_predictor(path, num_threads=num_threads) for fmt, path in files.items()}
    if data.val is not None:
        batch = int(config.get("batch") or 16)
        val_batches = batches(data.val, task, size, batch=batch, needs_pil=data.needs_pil)
        split = "val"
    else:
        val_batches = random_batches(size)
        split = "random"
    results = compare(reference, predictors, val_batches, task, class_names, config)
    image = np.random.default_rng(0).integers(0, 256, (1, size[0], size[1], 3), dtype=np.uint8)
    report: dict[str, dict[str, Any]] = {}
    for name, predictor in {"keras": reference, **predictors}.items():
        path = keras_path if name == "keras" else files[name]
        entry: dict[str, Any] = {
            "path": str(Path("..") / keras_path.name)
            if name == "keras"
            else str(path.relative_to(stage)),
            "bytes": folder_bytes(path) if path.exists() else None,
        }
        entry.update(results.get(name, {}))
        if name == "keras":
            entry["max_abs_diff"] = 0.0
        entry["latency_ms"] = latency_ms(predictor, image, runs=latency_runs)
        entry["split"] = split
        if predictor.kind in ("tflite", "onnx"):
            entry["num_threads"] = getattr(predictor, "num_threads", None)
        report[name] = _ordered(entry)
    return report


ORDER = (
    "path",
    "bytes",
    "max_abs_diff",
    "accuracy",
    "top5_accuracy",
    "miou",
    "pixel_accuracy",
    "map50_95",
    "map50",
    "agreement",
    "latency_ms",
    "num_threads",
    "num_examples",
    "split",
)


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in ORDER if k in entry] + [k for k in entry if k not in ORDER]
    return {k: entry[k] for k in keys}
