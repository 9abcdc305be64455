"""Training speed on this machine: matmul peak, achieved FLOP/s of training steps, epoch
time before and after each input/runtime optimisation, float32 vs bfloat16.

    python bench/train_throughput.py --data ../shared/data [--part all|peak|models|epochs|threads]

Everything runs in one invocation, so ratios are measured side by side under the same
load (recorded at start and end, as the machine may be shared).

Part ``peak``: a float32 ``tf.matmul`` microbenchmark (n = 2048 and 4096, square, inside
a ``tf.function``, best of 3 timings of ≥ 40 GFLOP each): the machine's attainable dense
float32 rate on all its cores, ``2·n³ / t``. The same for bfloat16 (AVX-512 BF16).

Part ``models``: the train step (forward, backward, optimizer update; SGD with momentum)
of a ResNet-style model (``resnet18`` at 224, batch 32), the default classifier
(EfficientNet-Lite0 with its classification head at 224, batch 32) and the default
detector (``yolo_lite0`` at 320, batch 16, with the task's YOLO loss), on one constant
in-memory batch (no input pipeline), in float32 and in ``mixed_bfloat16``. FLOPs per
image: ``6 × MACs`` (forward 2·MACs, backward about twice that), MACs from
``visionkit.analysis.layer_table`` (convolutions and dense layers; BatchNorm,
activations and the optimizer are not counted, so the rate is slightly understated).
Step time: after two untimed warm-up steps (tracing), K steps timed one by one
(``train_on_batch``, which returns when the step is done), the float32 and the bfloat16
model in turn, with a float32 matmul timing after each pair. The machine may be shared
(another process's load comes and goes), so rates are "best of": the fastest step against
the fastest matmul of the whole run (interference only ever slows things down); the
median step and the best matmul around each model's steps are reported too.

Part ``epochs``: time per training epoch with the trainer's own pieces (``prepare_data``,
``task.build_model``, ``build_pipeline``, ``task.adapt_dataset``, ``make_optimizer``,
``task.compile_args``, the ``DataEpoch`` callback), each optimisation switched off or on
alone against the default setting (``cache=true``, prefetch on, ``steps_per_execution=1``):
  * LeNet-5 on the 10,000 MNIST test images (IDX; 8,000 after the validation split),
    batch 32: a tiny model, 250 steps per epoch, where per-step overhead dominates;
  * EfficientNet-Lite0 (random init) at 128 on ``cats_dogs/training_set`` (300 JPEGs of
    mixed sizes, 240 after the validation split), batch 16: decoding dominates uncached.
One model per ``steps_per_execution`` value (traced once) and one pipeline per variant; each
variant runs one untimed epoch (tracing, filling its cache), then 3 rounds in which every
variant trains one epoch in turn (so load changes hit all alike); reported: the best and
the median epoch. Also timed (best of 3 alternating rounds): the input pipeline alone, no
model, from JPEG files, from TFRecord shards and from the memory cache, at 224, images/s.

Part ``threads``: the EfficientNet-Lite0 epoch in fresh processes with
``tf.config.threading`` intra-/inter-op thread counts set before TensorFlow starts.

Writes ``bench/results/train_throughput.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

MODELS = (
    # label, task, model, image size, batch, timed steps
    ("resnet18 (ResNet-style)", "classify", "resnet18", 224, 32, 6),
    ("efficientnet_lite0 (default classifier)", "classify", "efficientnet_lite0", 224, 32, 8),
    ("yolo_lite0 (default detector)", "detect", "yolo_lite0", 320, 16, 6),
)


# -- peak ------------------------------------------------------------------------------------
_MATMULS: dict = {}


def matmul_rate(n: int, dtype: str, repeats: int = 3) -> float:
    """Best GFLOP/s of an n×n×n matmul under tf.function."""
    import tensorflow as tf

    if (n, dtype) not in _MATMULS:
        a = tf.cast(tf.random.normal((n, n), seed=1), dtype)
        b = tf.cast(tf.random.normal((n, n), seed=2), dtype)
        _MATMULS[n, dtype] = (tf.function(tf.matmul), a, b)
    matmul, a, b = _MATMULS[n, dtype]
    matmul(a, b).numpy()
    reps = max(2, int(4e10 / (2 * n**3)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(reps):
            c = matmul(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * n**3 / best / 1e9


def peak_part() -> dict:
    out = {}
    for dtype in ("float32", "bfloat16"):
        out[dtype] = {str(n): matmul_rate(n, dtype) for n in (2048, 4096)}
        out[f"{dtype}_peak"] = max(out[dtype].values())
    return out


# -- models ----------------------------------------------------------------------------------
def _config(task_name: str, model: str, size: int, batch: int, precision: str) -> dict:
    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task

    config = resolve(
        {
            "task": task_name,
            "model": model,
            "weights": None,
            "imgsz": size,
            "batch": batch,
            "precision": precision,
            "optimizer": "sgd",
            "lr": 0.01,
        },
        where="bench",
    )
    return get_task(task_name).fill_defaults(config)


def _synthetic_batch(task_name: str, size: int, batch: int, num_classes: int):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)), tf.float32)
    if task_name == "classify":
        return images, tf.one_hot(rng.integers(0, num_classes, batch), num_classes)
    boxes = np.zeros((batch, 8, 4), np.float32)
    classes = np.full((batch, 8), -1, np.int32)
    for i in range(batch):
        for j in range(3):
            x, y = rng.uniform(0, size * 0.6, 2)
            w, h = rng.uniform(size * 0.1, size * 0.4, 2)
            boxes[i, j] = [x, y, x + w, y + h]
            classes[i, j] = rng.integers(0, num_classes)
    return images, {"boxes": tf.constant(boxes), "classes": tf.constant(classes)}


def _step_model(task, config, names, precision):
    import keras

    from visionkit.analysis import layer_table, layer_table_totals

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(precision)
    try:
        model, _ = task.build_model({**config, "precision": precision}, names)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            **task.compile_args(config, len(names)),
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, layer_table_totals(layer_table(model))["macs"]


def train_step_rates(label, task_name, model_name, size, batch, steps) -> list[dict]:
    """The float32 and the mixed_bfloat16 model timed step by step in turn, with a float32
    matmul timing after each pair (the peak available at that moment)."""
    import tensorflow as tf

    from visionkit.tasks.registry import get_task

    C.reset_keras()
    task = get_task(task_name)
    config = _config(task_name, model_name, size, batch, "float32")
    names = [f"c{i}" for i in range(10)]
    config["num_classes"] = len(names)
    models = {p: _step_model(task, config, names, p) for p in ("float32", "mixed_bfloat16")}
    batch_data = _synthetic_batch(task_name, size, batch, len(names))
    x, y = next(
        iter(task.adapt_dataset(tf.data.Dataset.from_tensors(batch_data), models["float32"][0]))
    )
    for model, _ in models.values():
        for _ in range(2):  # tracing
            model.train_on_batch(x, y)
    times: dict[str, list[float]] = {p: [] for p in models}
    peaks = []
    for _ in range(steps):
        for precision, (model, _) in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)  # returns NumPy: the step has finished
            times[precision].append(time.perf_counter() - start)
        peaks.append(matmul_rate(2048, "float32", repeats=1))
    rows = []
    for precision, (_, macs) in models.items():
        flops = 6 * macs * batch
        best, median = min(times[precision]), statistics.median(times[precision])
        rows.append(
            {
                "model": label,
                "precision": precision,
                "imgsz": size,
                "batch": batch,
                "gmacs_per_image": macs / 1e9,
                "train_gflop_per_step": flops / 1e9,
                "step_s_min": best,
                "step_s_median": median,
                "step_s_all": times[precision],
                "images_per_s": batch / best,
                "gflops": flops / best / 1e9,
                "gflops_median": flops / median / 1e9,
                "adjacent_peak_gflops": max(peaks),
            }
        )
    return rows


def models_part() -> list[dict]:
    rows = []
    for spec in MODELS:
        for row in train_step_rates(*spec):
            rows.append(row)
            print(f"  {row['model']} {row['precision']}: {row['gflops']:.1f} GFLOP/s (best step)")
    return rows


# -- epochs ----------------------------------------------------------------------------------
class EpochTimer:
    """Wall time of every epoch (a Keras callback, built lazily so keras loads late)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.start)

        return Timer()


def _prepared(data: str, model: str, imgsz: int, batch: int):
    from visionkit.cfg import resolve
    from visionkit.data.prepare import prepare_data
    from visionkit.tasks.registry import get_task

    task = get_task("classify")
    config = task.fill_defaults(
        resolve(
            {
                "data": data,
                "model": model,
                "weights": None,
                "imgsz": imgsz,
                "batch": batch,
                "optimizer": "sgd",
                "lr": 0.01,
                "augment": True,
            },
            where="bench",
        )
    )
    return task, config, prepare_data(config, task="classify", progress=False)


def _model(task, config, prepared, spe: int, steps: int, epochs: int):
    import keras

    from visionkit.train.recipes import make_optimizer, plan_stages

    keras.utils.set_random_seed(0)
    model, _ = task.build_model(config, prepared.class_names)
    (stage,) = plan_stages({**config, "epochs": epochs, "freeze": "none"}, pretrained=False)
    model.compile(
        optimizer=make_optimizer(config, stage, steps),
        steps_per_execution=spe,
        **task.compile_args(config, len(prepared.class_names)),
    )
    return model


def epoch_study(task, config, prepared, variants, rounds: int = 3) -> list[dict]:
    """Epoch times of each variant (pipeline options and ``spe``), measured in rounds that
    alternate the variants, so that a change in the machine's load hits them alike.

    One model per ``steps_per_execution`` (compiled, hence traced, once); one pipeline per
    variant. Each variant first runs one untimed epoch (tracing, filling its cache)."""
    from visionkit.data.pipeline import build_pipeline
    from visionkit.train.callbacks import DataEpoch

    C.reset_keras()
    models: dict[int, object] = {}
    runs = []
    for name, options in variants:
        options = dict(options)
        spe, train = options.pop("spe", 1), options.pop("train", prepared.train)
        ds = build_pipeline(
            train,
            task="classify",
            imgsz=int(config["imgsz"]),
            batch=int(config["batch"]),
            training=True,
            augment=True,
            seed=0,
            needs_pil=prepared.needs_pil,
            **{"cache": True, "prefetch": True, **options},
        )
        controls = ds.controls
        if spe not in models:
            models[spe] = _model(task, config, prepared, spe, int(ds.cardinality()), 1 + rounds)
        ds = task.adapt_dataset(ds, models[spe])
        runs.append({"variant": name, "spe": spe, "ds": ds, "controls": controls, "times": []})

    def epoch(run, k: int) -> float:
        timer = EpochTimer()
        models[run["spe"]].fit(
            run["ds"],
            initial_epoch=k,
            epochs=k + 1,
            callbacks=[DataEpoch(run["controls"]), timer],
            verbose=0,
            shuffle=False,
        )
        return timer.times[0]

    for run in runs:
        run["first_epoch_s"] = epoch(run, 0)
    for k in range(1, rounds + 1):
        for run in runs:
            run["times"].append(epoch(run, k))
    return [
        {
            "variant": r["variant"],
            "first_epoch_s": r["first_epoch_s"],
            "epoch_s": min(r["times"]),
            "epoch_s_median": statistics.median(r["times"]),
            "epoch_s_all": r["times"],
        }
        for r in runs
    ]


def pipeline_rates(sources: dict, imgsz: int, batch: int, rounds: int = 3) -> dict:
    """Images/s of the training input pipeline alone (no model) per source
    (``name: (dataset, cache, needs_pil)``): best of ``rounds`` alternating epochs, after one
    untimed epoch each."""
    from visionkit.data.pipeline import build_pipeline

    pipelines = {
        name: build_pipeline(
            dataset,
            task="classify",
            imgsz=imgsz,
            batch=batch,
            training=True,
            seed=0,
            cache=cache,
            needs_pil=pil,
        )
        for name, (dataset, cache, pil) in sources.items()
    }

    def rate(ds) -> float:
        start, count = time.perf_counter(), 0
        for images, _ in ds:
            count += int(images.shape[0])
        return count / (time.perf_counter() - start)

    for ds in pipelines.values():
        rate(ds)
    best = dict.fromkeys(pipelines, 0.0)
    for _ in range(rounds):
        for name, ds in pipelines.items():
            best[name] = max(best[name], rate(ds))
    return best


def epochs_part(root: Path) -> dict:
    from visionkit.data.loader import load_dataset
    from visionkit.data.tfrecord import export_tfrecord

    out: dict = {}
    mnist = _prepared(str(root / "mnist"), "lenet5", 32, 32)
    out["lenet5_mnist"] = epoch_study(
        *mnist,
        [
            ("default (cache, prefetch, steps_per_execution=1)", {}),
            ("cache=false", {"cache": False}),
            ("prefetch off", {"prefetch": False}),
            ("steps_per_execution=16", {"spe": 16}),
        ],
    )
    for row in out["lenet5_mnist"]:
        print(f"  lenet5/mnist {row['variant']}: {row['epoch_s']:.2f} s")

    cats = _prepared(str(root / "cats_dogs" / "training_set"), "efficientnet_lite0", 128, 16)
    train = cats[2].train
    with tempfile.TemporaryDirectory() as tmp:
        export_tfrecord(
            str(root / "cats_dogs" / "training_set"), Path(tmp) / "r", shards=4, progress=False
        )
        records = load_dataset(Path(tmp) / "r")
        # the same 240 training examples, read from the records
        train_records = type(train)("classify", train.class_names, _match_records(train, records))
        out["efficientnet_lite0_cats_dogs"] = epoch_study(
            *cats,
            [
                ("default (cache, prefetch, steps_per_execution=1)", {}),
                ("cache=false (decode the JPEG files every epoch)", {"cache": False}),
                (
                    "cache=false, read from TFRecord shards",
                    {"cache": False, "train": train_records},
                ),
                ("prefetch off", {"prefetch": False}),
                ("steps_per_execution=8", {"spe": 8}),
            ],
        )
        for row in out["efficientnet_lite0_cats_dogs"]:
            print(f"  efficientnet_lite0/cats_dogs {row['variant']}: {row['epoch_s']:.2f} s")
        pil = cats[2].needs_pil
        out["pipeline_224"] = pipeline_rates(
            {
                "jpeg_files": (train, False, pil),
                "tfrecord": (train_records, False, ()),
                "cache": (train, True, pil),
            },
            224,
            32,
        )
        out["pipeline_224"]["needs_pil"] = len(pil)
    print(f"  pipeline alone at 224: {out['pipeline_224']}")
    return out


def _match_records(train, records):
    """The records of ``train``'s examples (matched by source file), in ``train``'s order."""
    from visionkit.data.tfrecord import record_features

    by_source = {record_features(e.record)["image/source"][0].decode(): e for e in records.examples}
    return [by_source[str(e.image_path)] for e in train.examples]


# -- threads ---------------------------------------------------------------------------------
THREADS = ((0, 0), (2, 1), (1, 2), (4, 4))  # (intra, inter); 0 = TensorFlow's default


def threads_child(root: Path, intra: int, inter: int) -> None:
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    cats = _prepared(str(root / "cats_dogs" / "training_set"), "efficientnet_lite0", 128, 16)
    (row,) = epoch_study(*cats, [("default", {})], rounds=2)
    print("RESULT " + json.dumps(row))


def threads_part(root: Path) -> list[dict]:
    rows = []
    for intra, inter in THREADS:
        command = [
            sys.executable,
            __file__,
            "--data",
            str(root),
            "--part",
            "threads-child",
            "--intra",
            str(intra),
            "--inter",
            str(inter),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"threads child failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        rows.append({"intra": intra, "inter": inter, **json.loads(line[7:])})
        print(f"  threads intra={intra} inter={inter}: {rows[-1]['epoch_s']:.2f} s")
    return rows


# -- report ----------------------------------------------------------------------------------
def report(results: dict) -> str:
    parts = []
    peak = results.get("peak")
    if peak:
        parts.append("### Matmul peak (2 cores)\n")
        parts.append(
            C.md_table(
                ["dtype", "n=2048 GFLOP/s", "n=4096 GFLOP/s", "peak"],
                [
                    [d, peak[d]["2048"], peak[d]["4096"], peak[f"{d}_peak"]]
                    for d in ("float32", "bfloat16")
                ],
            )
        )
    if results.get("models"):
        f32 = max(
            [r["adjacent_peak_gflops"] for r in results["models"]]
            + ([peak["float32_peak"]] if peak else [])
        )
        results["float32_peak_gflops"] = f32
        parts.append(
            f"\n### Achieved training FLOP/s (train step, constant batch; "
            f"float32 matmul peak of the run {f32:.0f} GFLOP/s)\n"
        )
        rows = []
        by_key = {(r["model"], r["precision"]): r for r in results["models"]}
        for r in results["models"]:
            base = by_key[(r["model"], "float32")]
            rows.append(
                [
                    r["model"],
                    r["precision"],
                    f"{r['imgsz']}/{r['batch']}",
                    r["gmacs_per_image"],
                    f"{r['step_s_min']:.3f} / {r['step_s_median']:.3f}",
                    r["images_per_s"],
                    r["gflops"],
                    C.pct(r["gflops"] / f32),
                    r["adjacent_peak_gflops"],
                    f"{base['step_s_min'] / r['step_s_min']:.2f}×",
                ]
            )
        parts.append(
            C.md_table(
                [
                    "model",
                    "precision",
                    "imgsz/batch",
                    "GMACs/img",
                    "step s (best / median)",
                    "img/s",
                    "GFLOP/s",
                    "of fp32 peak",
                    "matmul around it",
                    "speed vs fp32",
                ],
                rows,
            )
        )
    epochs = results.get("epochs")
    if epochs:
        for key, title in (
            ("lenet5_mnist", "LeNet-5, MNIST 10k, batch 32"),
            ("efficientnet_lite0_cats_dogs", "EfficientNet-Lite0 at 128, cats_dogs 240, batch 16"),
        ):
            base = epochs[key][0]["epoch_s"]
            parts.append(f"\n### Epoch time: {title}\n")
            parts.append(
                C.md_table(
                    ["variant", "first epoch s", "epoch s (best / median)", "vs default"],
                    [
                        [
                            r["variant"],
                            f"{r['first_epoch_s']:.2f}",
                            f"{r['epoch_s']:.2f} / {r['epoch_s_median']:.2f}",
                            f"{r['epoch_s'] / base:.2f}×",
                        ]
                        for r in epochs[key]
                    ],
                )
            )
        rates = epochs["pipeline_224"]
        parts.append("\n### Input pipeline alone, cats_dogs at 224, batch 32 (img/s)\n")
        parts.append(
            C.md_table(
                ["JPEG files", "TFRecord shards", "cache (memory)"],
                [[rates["jpeg_files"], rates["tfrecord"], rates["cache"]]],
            )
        )
    if results.get("threads"):
        base = results["threads"][0]["epoch_s"]
        parts.append("\n### Thread settings: EfficientNet-Lite0 epoch (fresh process each)\n")
        parts.append(
            C.md_table(
                ["intra-op", "inter-op", "epoch s", "vs default"],
                [
                    [
                        r["intra"] or "default",
                        r["inter"] or "default",
                        f"{r['epoch_s']:.2f}",
                        f"{r['epoch_s'] / base:.2f}×",
                    ]
                    for r in results["threads"]
                ],
            )
        )
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument(
        "--part",
        default="all",
        choices=("all", "peak", "models", "epochs", "threads", "threads-child"),
    )
    parser.add_argument("--intra", type=int, default=0)
    parser.add_argument("--inter", type=int, default=0)
    args = parser.parse_args()
    root = C.data_root(args.data)
    if args.part == "threads-child":
        threads_child(root, args.intra, args.inter)
        return
    started = time.time()
    cond = C.conditions()
    results: dict = {}
    if args.part in ("all", "peak", "models"):
        print("matmul peak ...")
        results["peak"] = peak_part()
    if args.part in ("all", "models"):
        print("train steps ...")
        results["models"] = models_part()
    if args.part in ("all", "epochs"):
        print("epochs ...")
        results["epochs"] = epochs_part(root)
    if args.part in ("all", "threads"):
        print("threads ...")
        results["threads"] = threads_part(root)
    payload = {"conditions": C.finish_conditions(cond, started), **results}
    name = "train_throughput" if args.part == "all" else f"train_throughput_{args.part}"
    C.write_results(name, payload)
    print()
    print(report(results))
    load = cond["loadavg_start"][0], cond["loadavg_end"][0]
    print(
        f"\nload average (1 min) at start {load[0]:.2f}, end {load[1]:.2f}; {cond['script_seconds']} s"
    )


if __name__ == "__main__":
    main()
