"""What tf.data's autotuning costs on these machines: the stall when an iterator is deleted.

    python bench/tfdata_autotune.py --data ../shared/data [--part predict|train|pipelines|all]
                                    [--repeats 10] [--train-repeats 2] [--seconds 8]

``visionkit.data.pipeline.build_pipeline`` switches tf.data's autotuning model off
(``without_autotune``). In TF 2.21 deleting an iterator of an autotuned pipeline often
blocks until the autotuning thread's next wake-up, at 1.27, 2.55, 5.11, 10.2 ... s after
the iterator started, so a pass over the data can take up to twice its time; Keras makes a
new iterator every epoch and every validation. Each part runs the library's pipeline as
built ("off") and the same pipeline with autotuning left on ("on": ``without_autotune``
swapped for the identity while the pipelines are built), alternating:

* ``predict``: ImageNet EfficientNet-Lite0 at 224 with BatchNorm folded (as ``visionkit
  classify predict`` runs it) over the 300 JPEGs of ``cats_dogs/test_set``, batch 32.
  Per pass: the time to the last batch (pipeline build, decode and model) and the time to
  delete the iterator (the stall), after one untimed pass of each.
* ``train``: the cats_dogs recipe ``pipelines/classify_transfer.yaml`` (EfficientNet-Lite0
  ImageNet, 8 epochs, seed 0) trained ``--train-repeats`` times each way. Reported: the ``train()``
  wall time and the validation accuracy, which must be identical (same seed, deterministic
  pipeline: autotuning only changes parallelism).
* ``pipelines``: each task's default training pipeline of ``bench/data_pipeline.py``
  (cats_dogs at 224, coco128 with Mosaic at 640, membrane at 256), images/s over whole
  epochs for ``--seconds`` after a warm-up epoch, 3 times each way, alternating.

Writes ``bench/results/tfdata_autotune.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

RECIPE = "pipelines/classify_transfer.yaml"


@contextlib.contextmanager
def autotuning(name: str):
    """Pipelines built inside are the library's (``"off"``) or keep tf.data's autotuning
    (``"on"``: ``without_autotune`` is swapped for the identity, then restored)."""
    import visionkit.data.pipeline as pipeline_module

    library = pipeline_module.without_autotune
    if name == "on":
        pipeline_module.without_autotune = lambda ds: ds
    try:
        yield
    finally:
        pipeline_module.without_autotune = library


def predict_part(root: Path, repeats: int) -> tuple[dict, str]:
    from visionkit.data.inputs import image_files
    from visionkit.data.pipeline import build_pipeline
    from visionkit.data.types import Dataset, Example
    from visionkit.predict import compiled_forward
    from visionkit.tasks.classify import load_classifier

    C.reset_keras()
    files = image_files(str(root / "cats_dogs" / "test_set"))
    model, _, _ = load_classifier("imagenet:efficientnet_lite0")
    forward = compiled_forward(model, fold=True)
    dataset = Dataset("classify", ["?"], [Example(image_path=p, label=0) for p in files])

    def pipeline():
        return build_pipeline(dataset, imgsz=model.input_shape[1:3], batch=32, training=False)

    variants = ("off", "on")

    def one_pass(name: str) -> tuple[float, float]:
        start = time.perf_counter()
        with autotuning(name):
            iterator = iter(pipeline())
        for images, _ in iterator:
            forward(images).numpy()
        done = time.perf_counter()
        del iterator
        return done - start, time.perf_counter() - done

    for name in variants:
        one_pass(name)
    passes: dict[str, list] = {k: [] for k in variants}
    for _ in range(repeats):
        for name in variants:
            passes[name].append(one_pass(name))
    out = {}
    for name, rows in passes.items():
        totals = [a + b for a, b in rows]
        out[name] = {
            "pass_seconds": [round(a, 3) for a, _ in rows],
            "delete_seconds": [round(b, 3) for _, b in rows],
            "median_total": statistics.median(totals),
            "stalls": sum(b > 0.05 for _, b in rows),
        }
    lines = [
        f"predict: EfficientNet-Lite0 (BN folded) over {len(files)} JPEGs, batch 32, "
        f"{repeats} alternating passes each:",
        "",
        "| autotuning | pipeline build + decode + model, s per pass | deleting the iterator, s | "
        "passes that stalled | median total s |",
        "|---|---|---|---|---|",
    ]
    for name, row in out.items():
        lines.append(
            f"| {name} | {' / '.join(f'{s:.2f}' for s in row['pass_seconds'])} | "
            f"{' / '.join(f'{s:.2f}' for s in row['delete_seconds'])} | "
            f"{row['stalls']} of {repeats} | {row['median_total']:.2f} |"
        )
    return out, "\n".join(lines)


def train_part(root: Path, repeats: int) -> tuple[dict, str]:
    rows: dict[str, list] = {"off": [], "on": []}
    for k in range(repeats):
        for name in ("off", "on"):
            with autotuning(name):
                result, seconds = C.train_recipe(
                    RECIPE,
                    data=str(root / "cats_dogs" / "training_set"),
                    seed=0,
                    name=f"autotune_{name}_{k}",
                )
            rows[name].append(
                {"train_seconds": seconds, "val_accuracy": float(result.metrics["accuracy"])}
            )
    lines = [
        f"train: {RECIPE} on cats_dogs/training_set, seed 0, {repeats} runs each way, alternating:",
        "",
        "| autotuning | train() seconds | validation accuracy |",
        "|---|---|---|",
    ]
    for name, runs in rows.items():
        seconds = " / ".join(f"{r['train_seconds']:.1f}" for r in runs)
        accuracy = " / ".join(f"{r['val_accuracy']:.4f}" for r in runs)
        lines.append(f"| {name} | {seconds} | {accuracy} |")
    return rows, "\n".join(lines)


def pipelines_part(root: Path, seconds: float) -> tuple[dict, str]:
    import data_pipeline

    rates: dict[str, dict[str, list]] = {}
    for task in data_pipeline.TASKS:
        rates[task] = {"off": [], "on": []}
        for _ in range(3):
            for name in ("off", "on"):
                with autotuning(name):
                    row = data_pipeline.pipeline_rate(task, root, seconds, cache=False)
                rates[task][name].append(row["pipeline_img_per_s"])
    lines = [
        f"pipelines: each task's default training pipeline, images/s over {seconds:g} s of "
        "whole epochs, 3 alternating runs each way:",
        "",
        "| task | autotuning off (the library) | on | off / on (medians) |",
        "|---|---|---|---|",
    ]
    for task, row in rates.items():
        ratio = statistics.median(row["off"]) / statistics.median(row["on"])
        off, on = (" / ".join(f"{r:.0f}" for r in row[k]) for k in ("off", "on"))
        lines.append(f"| {task} | {off} | {on} | {ratio:.2f}× |")
    return rates, "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--part", choices=["predict", "train", "pipelines", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=10, help="predict passes each way")
    parser.add_argument("--train-repeats", type=int, default=2, help="training runs each way")
    parser.add_argument("--seconds", type=float, default=8, help="pipelines: seconds per run")
    parser.add_argument("--tag", default="tfdata_autotune")
    args = parser.parse_args()
    started = time.time()
    root = C.data_root(args.data)
    cond = C.conditions()
    payload: dict = {}
    tables = []
    if args.part in ("predict", "all"):
        payload["predict"], table = predict_part(root, args.repeats)
        tables.append(table)
    if args.part in ("train", "all"):
        payload["train"], table = train_part(root, args.train_repeats)
        tables.append(table)
    if args.part in ("pipelines", "all"):
        payload["pipelines"], table = pipelines_part(root, args.seconds)
        tables.append(table)
    payload["conditions"] = C.finish_conditions(cond, started)
    C.write_results(args.tag, payload)
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
