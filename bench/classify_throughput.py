"""Throughput ratios, measured side by side in one process on the same model and images.

    python bench/classify_throughput.py --data ../shared/data [--part predict|train|all]
                                        [--repeats 3] [--epochs 3] [--model NAME]

Part ``predict``: ImageNet EfficientNet-Lite0 at 224 (``imagenet:efficientnet_lite0``, the
same model object for every path; ``--model mobilenet_v2`` or another backbone name runs
that backbone with a 1000-class head instead, seeded random weights and BatchNorm
statistics: the reference model of ``DESIGN.md``'s speed facts), the 300 JPEGs of
``cats_dogs/test_set``, batch 32.
Paths (each timed ``--repeats`` times, alternating, after one untimed warm-up pass each;
medians reported):

* ``vk_files``: visionkit's predict loop, ``visionkit.predict.run_model`` over the
  ``build_pipeline`` that ``predict_command`` builds (JPEG read + decode + resize in
  tf.data, overlapped with the model), running the model with BatchNormalization folded
  into its convolutions and the weights frozen into the graph
  (``compiled_forward(model, fold=True, freeze=True)``: what ``predict_command`` runs on
  passes of ``FREEZE_MIN_BATCHES`` = 200 batches or more; the repeated 300-image passes
  here stand for the steady state of such a run; shorter runs skip the one-off freezing),
  each batch run as two half batches side by side (``visionkit.predict.in_halves``).
  The ``tf.function`` is built once and reused.
* ``vk_files_unfrozen``: the same loop with the forward a shorter predict command runs
  (``compiled_forward(model, fold=True)``: folded, halves, weights left as variables).
* ``keras_numpy``: ``model.predict(x, batch_size=32)`` on a NumPy array of the same images,
  already decoded and resized (decoding and resizing NOT timed: favours Keras).
* ``keras_tfdata``: ``model.predict`` on ``tf.data.Dataset.from_tensor_slices(x).batch(32)``
  (same decoded images, not timed).
* ``keras_files``: ``model.predict`` over the very pipeline of ``vk_files`` (decode timed,
  as in ``vk_files``): the like-for-like comparison of the two loops.
* ``vk_memory``: ``run_model`` over the in-memory ``tf.data`` of ``keras_tfdata``.
* ``vk_memory_unfrozen``: the same with BatchNorm folded but the weights left as
  variables: what freezing gains.
* ``vk_memory_whole``: ``vk_memory`` with each batch run whole: what the halves gain.
* ``vk_memory_unfolded``: the same with the model as trained (no folding): what the
  ``tf.function`` loop alone gains.
* ``vk_cli``: the whole ``predict_command`` (``visionkit classify predict
  model=imagenet:efficientnet_lite0 source=test_set batch=32``): model build, file checks,
  a fresh ``tf.function`` trace, decoding, inference and the CSV. Reported apart.

Part ``train``: the visionkit trainer's epoch time vs a bare ``model.fit`` on the same
tf.data pipeline and the same compiled model. The model, pipelines, stage, optimizer and
callbacks are built with the trainer's own building blocks exactly as
``visionkit/train/trainer.py`` does (``prepare_data``, ``task.build_model``,
``build_pipeline``, ``plan_stages``, ``task.set_trainable``, ``make_optimizer``,
``task.compile_args``; callbacks ``DataEpoch``, ``HistoryLog``, ``BestCheckpoint``,
``BackupAndRestore``, ``TensorBoard``, ``EarlyStopping``). EfficientNet-Lite0 ImageNet,
224, batch 32, the fine-tuning stage (top 3 blocks) on ``cats_dogs/training_set`` (240
training / 60 validation images). One warm-up epoch, then ``--repeats`` × (bare fit,
trainer fit) of ``--epochs`` epochs each, alternating; each fit also validates. Reported:
median epoch wall time (train steps + validation + every callback's epoch-end work),
median train-step time, and the overhead ratio.

Writes ``bench/results/classify_throughput.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # shared test helpers
import _common as C
import numpy as np

BATCH = 32
LITE0 = C.LITE0


# -- predict -------------------------------------------------------------------------------
def predict_part(
    root: Path, repeats: int, only: list[str] | None = None, model_name: str = LITE0
) -> tuple[dict, str]:
    import keras
    import tensorflow as tf

    from visionkit.cfg import resolve
    from visionkit.data.inputs import image_files
    from visionkit.data.pipeline import build_pipeline
    from visionkit.data.types import Dataset, Example
    from visionkit.predict import compiled_forward, run_model
    from visionkit.tasks.classify import predict_command

    C.reset_keras()
    source = root / "cats_dogs" / "test_set"
    files = image_files(str(source))
    model = C.speed_model(model_name)
    imgsz = tuple(model.input_shape[1:3])
    dataset = Dataset("classify", ["?"], [Example(image_path=p, label=0) for p in files])

    def files_pipeline():  # as predict_command builds it
        return build_pipeline(
            dataset, task="classify", imgsz=imgsz, batch=BATCH, training=False, augment=False
        )

    x = np.concatenate([b.numpy() for b, _ in files_pipeline()])  # the same decoded pixels
    n = len(x)
    memory = tf.data.Dataset.from_tensor_slices(x).batch(BATCH)
    forward = compiled_forward(model, fold=True, freeze=True)  # a long pass's forward
    unfolded = compiled_forward(model)
    unfrozen = compiled_forward(model, fold=True)  # what a shorter predict command runs
    whole = compiled_forward(model, fold=True, freeze=True, halves=False)

    def vk(ds, through=forward):
        return np.concatenate([o for o, _ in run_model(model, ds, progress=False, forward=through)])

    out_dir = Path(tempfile.mkdtemp(prefix="predict_bench_"))
    cli_config = resolve(
        {
            "task": "classify",
            "mode": "predict",
            "model": model_name,
            "source": str(source),
            "batch": BATCH,
            "out": str(out_dir),
            "exist_ok": True,
            "verbose": 0,
        },
        where="bench",
    )
    counter = iter(range(10_000))
    # the same model exported to TFLite fp32 (visionkit.export), run by the predict command
    keras_file = out_dir / "model.keras"
    model.save(keras_file)
    if model_name != LITE0:
        cli_config["model"] = str(keras_file)
    from visionkit.export import export_run
    from visionkit.predict import ExportedModel

    export = export_run(keras_file, "tflite_fp32", task="classify", progress=False)
    tflite_file = export / "model_fp32.tflite"
    tflite = ExportedModel(tflite_file)
    tflite_config = {**cli_config, "model": str(tflite_file)}

    def vk_tflite(ds):
        return np.concatenate([o for o, _ in run_model(tflite, ds, progress=False)])

    paths = {
        "vk_files": lambda: vk(files_pipeline()),
        "vk_files_unfrozen": lambda: vk(files_pipeline(), unfrozen),
        "keras_numpy": lambda: model.predict(x, batch_size=BATCH, verbose=0),
        "keras_tfdata": lambda: model.predict(memory, verbose=0),
        "keras_files": lambda: model.predict(files_pipeline().map(lambda i, y: i), verbose=0),
        "vk_memory": lambda: vk(memory.map(lambda i: (i,))),
        "vk_memory_unfrozen": lambda: vk(memory.map(lambda i: (i,)), unfrozen),
        "vk_memory_whole": lambda: vk(memory.map(lambda i: (i,)), whole),
        "vk_memory_unfolded": lambda: vk(memory.map(lambda i: (i,)), unfolded),
        "vk_cli": lambda: predict_command({**cli_config, "name": f"p{next(counter)}"}),
        "vk_tflite_files": lambda: vk_tflite(files_pipeline()),
        "vk_tflite_cli": lambda: predict_command({**tflite_config, "name": f"t{next(counter)}"}),
    }
    if only:
        paths = {k: v for k, v in paths.items() if k in set(only) | {"keras_numpy"}}
    outputs = {}
    for name, fn in paths.items():  # warm-up: tracing, thread pools, Keras' predict_function
        outputs[name] = fn()
    ref = outputs["keras_numpy"]
    agree = {
        k: float(np.max(np.abs(outputs[k] - ref)))
        for k in (
            "vk_files",
            "vk_files_unfrozen",
            "keras_tfdata",
            "keras_files",
            "vk_memory",
            "vk_memory_unfrozen",
            "vk_memory_whole",
            "vk_memory_unfolded",
            "vk_tflite_files",
        )
        if k in outputs
    }
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    includes = {
        "vk_files": "JPEG read+decode+resize (tf.data) + model (BN folded, frozen, halves), "
        "tf.function loop",
        "vk_files_unfrozen": "as vk_files, weights as variables (a shorter command's forward)",
        "keras_numpy": "model only (images decoded+resized beforehand)",
        "keras_tfdata": "model only, tf.data from the decoded array",
        "keras_files": "JPEG read+decode+resize (same tf.data) + model.predict",
        "vk_memory": "model only (BN folded, frozen, halves), tf.function loop over the "
        "decoded array",
        "vk_memory_unfrozen": "model only (BN folded, halves, weights as variables), same loop",
        "vk_memory_whole": "model only (BN folded, frozen, each batch whole), same loop",
        "vk_memory_unfolded": "model only (as trained), tf.function loop over the decoded array",
        "vk_cli": "predict_command end to end: model build, file checks, trace, decode, model, CSV",
        "vk_tflite_files": "as vk_files, the model exported to TFLite fp32 (2 threads, uint8 in)",
        "vk_tflite_cli": "as vk_cli with model=export/model_fp32.tflite",
    }
    rows = [
        [f"`{k}`", includes[k], " / ".join(f"{t:.2f}" for t in times[k]), f"{rate[k]:.0f}"]
        for k in paths
    ]
    pairs = {
        "vk_files / keras_numpy": ("vk_files", "keras_numpy"),
        "vk_files_unfrozen / keras_numpy (a shorter command's forward)": (
            "vk_files_unfrozen",
            "keras_numpy",
        ),
        "vk_files / keras_tfdata": ("vk_files", "keras_tfdata"),
        "vk_files / keras_files (same pipeline)": ("vk_files", "keras_files"),
        "vk_memory / keras_tfdata (same in-memory data)": ("vk_memory", "keras_tfdata"),
        "vk_memory_unfolded / keras_tfdata (the loop alone)": (
            "vk_memory_unfolded",
            "keras_tfdata",
        ),
        "vk_memory / vk_memory_unfrozen (freezing alone)": ("vk_memory", "vk_memory_unfrozen"),
        "vk_memory / vk_memory_whole (halves alone)": ("vk_memory", "vk_memory_whole"),
        "vk_memory_unfrozen / vk_memory_unfolded (folding and halves)": (
            "vk_memory_unfrozen",
            "vk_memory_unfolded",
        ),
        "vk_cli / keras_numpy": ("vk_cli", "keras_numpy"),
        "vk_tflite_files / keras_numpy": ("vk_tflite_files", "keras_numpy"),
        "vk_tflite_cli / keras_numpy": ("vk_tflite_cli", "keras_numpy"),
    }
    pairs = {k: (a, b) for k, (a, b) in pairs.items() if a in paths and b in paths}
    # Three estimates of each speed-up: medians of each path's passes, the median of the
    # per-round ratios (passes of one round run seconds apart, so a slow phase of the shared
    # VM hits both sides), and the fastest passes (interference only ever slows a pass).
    ratios = {k: rate[a] / rate[b] for k, (a, b) in pairs.items()}
    paired = {
        k: statistics.median(tb / ta for ta, tb in zip(times[a], times[b], strict=True))
        for k, (a, b) in pairs.items()
    }
    fastest = {k: min(times[b]) / min(times[a]) for k, (a, b) in pairs.items()}
    table = (
        f"predict: {model_name} at 224, {n} images of cats_dogs/test_set, "
        f"batch {BATCH}, {repeats} alternating repeats after a warm-up, median:\n\n"
        + C.md_table(["path", "what is timed", "seconds per pass", "images/s (median)"], rows)
        + "\n\n"
        + C.md_table(
            ["ratio", "× (medians)", "× (median of per-round ratios)", "× (fastest passes)"],
            [[k, f"{ratios[k]:.2f}", f"{paired[k]:.2f}", f"{fastest[k]:.2f}"] for k in ratios],
        )
        + f"\n\nmax |Δ prob| vs keras_numpy: {max(agree.values()):.2e}"
    )
    keras.backend.clear_session()
    return {
        "images": n,
        "times": times,
        "images_per_s": rate,
        "ratios": ratios,
        "ratios_paired": paired,
        "ratios_fastest": fastest,
        "max_abs_diff": agree,
    }, table


# -- train ---------------------------------------------------------------------------------
class EpochTimer:
    """Timestamps of epoch ends (put last: after every other callback's epoch-end work) and
    the mean train-step time of each epoch."""

    def __init__(self):
        import keras

        timer = self

        class _CB(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer.batch_times = []
                timer.last = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                timer.batch_times.append(now - timer.last)
                timer.last = now

            def on_epoch_end(self, epoch, logs=None):
                now = time.perf_counter()
                timer.epoch_seconds.append(now - timer.epoch_start)
                # median step time: robust to the step that overlaps pipeline start-up
                timer.step_seconds.append(statistics.median(timer.batch_times))
                timer.epoch_start = now

        self.callback = _CB()
        self.epoch_seconds: list[float] = []
        self.step_seconds: list[float] = []
        self.epoch_start = 0.0

    def start(self):
        self.epoch_start = time.perf_counter()


def train_part(root: Path, repeats: int, epochs: int, ablate: bool = False) -> tuple[dict, str]:
    import keras

    from visionkit.cfg import load_pipeline, resolve
    from visionkit.data.pipeline import build_pipeline
    from visionkit.data.prepare import prepare_data
    from visionkit.tasks.registry import get_task
    from visionkit.train.callbacks import BestCheckpoint, DataEpoch, HistoryLog
    from visionkit.train.recipes import make_optimizer, plan_stages

    C.reset_keras()
    config = resolve(
        load_pipeline(str(C.REPO / "pipelines/classify_transfer.yaml")),
        {
            "data": str(root / "cats_dogs" / "training_set"),
            "model": "efficientnet_lite0",
            "weights": "imagenet",
            "verbose": 0,
        },
        where="bench",
    )
    task = get_task("classify")
    config = task.fill_defaults(config)  # as train() does: monitor null -> the task's
    keras.utils.set_random_seed(int(config["seed"]))
    data = prepare_data(config, task="classify", progress=False)
    model, info = task.build_model(config, data.class_names)
    config.update(
        backbone=info.get("backbone"), pretrained=info["pretrained"], class_names=data.class_names
    )
    common = dict(
        task="classify",
        imgsz=tuple(model.input_shape[1:3]),
        batch=int(config["batch"]),
        seed=int(config["seed"]),
        needs_pil=data.needs_pil,
    )
    train_ds = build_pipeline(
        data.train, training=True, augment=config["augment"], cache=True, **common
    )
    val_ds = build_pipeline(data.val, training=False, augment=False, cache=True, **common)
    controls = train_ds.controls
    train_ds, val_ds = task.adapt_dataset(train_ds, model), task.adapt_dataset(val_ds, model)
    steps = int(train_ds.cardinality())
    stage = next(s for s in plan_stages(config, pretrained=True) if s.name == "finetune")
    task.set_trainable(model, stage, config)
    model.compile(
        optimizer=make_optimizer(config, stage, steps),
        **task.compile_args(config, len(data.class_names)),
    )
    work = Path(tempfile.mkdtemp(prefix="trainer_bench_"))

    factories = {
        "DataEpoch": lambda k: DataEpoch(controls),
        "HistoryLog": lambda k: HistoryLog(work / "history.csv", stage.name),
        "BestCheckpoint": lambda k: BestCheckpoint(work / "model.keras", monitor=config["monitor"]),
        "BackupAndRestore": lambda k: keras.callbacks.BackupAndRestore(str(work / f"backup_{k}")),
        "TensorBoard": lambda k: keras.callbacks.TensorBoard(
            str(work / "logs"), write_graph=False, profile_batch=0
        ),
        "EarlyStopping": lambda k: keras.callbacks.EarlyStopping(
            monitor=config["monitor"], patience=int(config["patience"])
        ),
    }
    variants = {"bare": [], "trainer": list(factories)}
    if ablate:  # bare fit + one callback: where the per-epoch cost goes
        variants.update(
            {
                f"+{n}": [n]
                for n in ("HistoryLog", "BestCheckpoint", "BackupAndRestore", "TensorBoard")
            }
        )

    epoch = 0

    def fit(callbacks, n):
        nonlocal epoch
        timer = EpochTimer()
        timer.start()
        model.fit(
            train_ds,
            validation_data=val_ds,
            initial_epoch=epoch,
            epochs=epoch + n,
            callbacks=[*callbacks, timer.callback],
            shuffle=False,
            verbose=0,
        )
        epoch += n
        return timer

    fit([], 1)  # warm-up: tracing of train and test functions, pipeline cache fill
    results = {name: {"epoch": [], "step": []} for name in variants}
    for k in range(repeats):
        for name, names in variants.items():
            timer = fit([factories[n](k) for n in names], epochs)
            results[name]["epoch"] += timer.epoch_seconds
            results[name]["step"] += timer.step_seconds
            print(
                f"[train {name} rep {k}] epochs "
                + ", ".join(f"{s:.2f}" for s in timer.epoch_seconds)
                + " s",
                flush=True,
            )
    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in results.items()}
    overhead_epoch = med["trainer"]["epoch"] / med["bare"]["epoch"] - 1
    overhead_step = med["trainer"]["step"] / med["bare"]["step"] - 1
    rows = [
        [
            name,
            f"{med[name]['epoch']:.2f}",
            f"{steps / med[name]['epoch']:.2f}",
            f"{1000 * med[name]['step']:.0f}",
            f"{1 / med[name]['step']:.2f}",
            f"{100 * (med[name]['epoch'] / med['bare']['epoch'] - 1):+.1f} %",
        ]
        for name in variants
    ]
    table = (
        f"trainer vs bare `model.fit`: EfficientNet-Lite0 ImageNet at 224, stage finetune "
        f"(top {config['unfreeze']} blocks), {len(data.train)} train / {len(data.val)} val images, "
        f"batch {config['batch']} ({steps} steps/epoch), {repeats} × {epochs} epochs each, alternating, medians:\n\n"
        + C.md_table(
            [
                "fit",
                "epoch s (steps + val + callbacks)",
                "steps/s (epoch)",
                "train step ms",
                "steps/s (steps only)",
                "epoch vs bare",
            ],
            rows,
        )
        + f"\n\noverhead of the trainer's callbacks: {100 * overhead_epoch:+.1f} % per epoch, "
        f"{100 * overhead_step:+.1f} % per train step"
    )
    keras.backend.clear_session()
    return {
        "results": results,
        "medians": med,
        "steps_per_epoch": steps,
        "overhead_epoch": overhead_epoch,
        "overhead_step": overhead_step,
    }, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--part", choices=["predict", "train", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="train part: epochs per fit")
    parser.add_argument(
        "--ablate", action="store_true", help="train part: also bare fit + each callback alone"
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        help="predict part: time only these paths (keras_numpy, the reference, always runs)",
    )
    parser.add_argument(
        "--model",
        default=LITE0,
        help=f"predict part: {LITE0} (ImageNet weights) or a backbone name such as "
        "mobilenet_v2 (seeded random weights, 1000 classes)",
    )
    parser.add_argument("--tag", default="classify_throughput")
    args = parser.parse_args()
    started = time.time()
    cond = C.conditions()
    root = C.data_root(args.data)
    payload, tables = {}, []
    if args.part in ("predict", "all"):
        payload["predict"], table = predict_part(root, args.repeats, args.paths, args.model)
        tables.append(table)
    if args.part in ("train", "all"):
        payload["train"], table = train_part(root, args.repeats, args.epochs, args.ablate)
        tables.append(table)
    text = "\n\n".join(tables)
    print("\n" + text)
    payload["conditions"] = C.finish_conditions(cond, started)
    payload["table"] = text
    C.write_results(args.tag, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
