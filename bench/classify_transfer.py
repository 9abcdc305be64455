"""Transfer learning: visionkit's fine-tuning recipe beside the keras.io recipe and training
from scratch (cats_dogs), and a pretrained backbone vs ResNet-18 from scratch (flowers).

    python bench/classify_transfer.py --data ../shared/data [--part cats_dogs|flowers|all]
        [--seeds 0 1 2] [--methods visionkit keras_io scratch] [--no-test] [key=value ...]

``key=value`` overrides apply to the visionkit recipe ``pipelines/classify_transfer.yaml``
(cats_dogs' visionkit runs and the flowers EfficientNet-Lite0 run). For tuning on
validation, ``--no-test`` skips every test-set evaluation and reports the validation
accuracy of the kept checkpoint only.

cats_dogs (``training_set`` → ``test_set``, 300 + 300 images, 224×224), per seed:

* ``visionkit``: ``pipelines/classify_transfer.yaml`` with ``model=efficientnet_lite0
  weights=imagenet``: the trainer carves a seeded 20 % validation split from
  ``training_set``, which alone picks the checkpoint; the test accuracy comes from
  ``visionkit classify val model=RUN data=test_set``. Time: the whole ``train()`` call
  (data check, model build, both stages, validation and plots).
* ``keras_io``: the keras.io "Transfer learning & fine-tuning" recipe on the same ImageNet
  EfficientNet-Lite0 (``WEIGHTS/efficientnet_lite0_imagenet.keras``, cut at its global
  pooling): ``image_dataset_from_directory`` (224, batch 32, the same 80/20 split by
  seed; the 20 % is only watched), RandomFlip + RandomRotation(0.1), ``(x − 127) / 128``,
  ``base(x, training=False)``, Dropout 0.2 + Dense(1) logits; 5 epochs head-only (Adam
  1e-3), then the whole base unfrozen, 3 epochs at Adam 1e-5; the last model is tested.
  Time: the two ``fit`` calls.
* ``scratch``: the visionkit recipe with ``weights=null`` (one stage, all layers
  trainable) for ``--scratch-epochs`` epochs, chosen so its wall time matches the
  visionkit run (see the table's time column).

flowers (5 classes, 128×128): a seeded stratified 20 % test split is carved here
(copies in ``TMP/train`` and ``TMP/test``: the folder
source refuses symlinks that resolve outside the data root); the trainer carves its validation split
from ``TMP/train``. ResNet-18 from scratch (``pipelines/classify_scratch.yaml``) and
EfficientNet-Lite0 ImageNet (``pipelines/classify_transfer.yaml``), both at 128, one seed,
``--flowers-scratch-epochs`` (2) and ``--flowers-epochs`` (5: 3 head + 2
fine-tuning) epochs: each a run of under ~6 minutes on 2 cores.

Writes ``bench/results/classify_transfer[_PART].json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

RECIPE = "pipelines/classify_transfer.yaml"
SCRATCH_RECIPE = "pipelines/classify_scratch.yaml"
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


# -- cats_dogs -----------------------------------------------------------------------------
def visionkit_run(
    seed: int, train_dir: Path, test_dir: Path | None, name: str, **overrides
) -> dict:
    result, seconds = C.train_recipe(
        RECIPE, data=str(train_dir), seed=seed, name=f"{name}_s{seed}", **overrides
    )
    out = {
        "train_seconds": seconds,
        "val_accuracy": float(result.metrics["accuracy"]),
        "val": C.history_summary(result.run.dir),
        "run": str(result.run.dir.relative_to(C.REPO)),
    }
    if test_dir is not None:
        out["test_accuracy"] = float(C.test_run(result.run.dir, test_dir)["accuracy"])
    return out


def keras_io_run(seed: int, train_dir: Path, test_dir: Path | None, weights: Path) -> dict:
    """The keras.io transfer-learning guide's recipe, on the same backbone and images."""
    import keras
    from keras import layers

    C.reset_keras()
    keras.utils.set_random_seed(seed)
    size, batch = (224, 224), 32
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        train_dir,
        image_size=size,
        batch_size=batch,
        validation_split=0.2,
        subset="both",
        seed=seed,
        label_mode="binary",
    )
    train_ds, val_ds = train_ds.cache().prefetch(2), val_ds.cache().prefetch(2)

    reference = keras.models.load_model(weights, compile=False)
    base = keras.Model(
        reference.input, reference.get_layer("global_average_pooling2d").output, name="base"
    )
    base.trainable = False
    augmentation = keras.Sequential(
        [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)], name="augmentation"
    )
    inputs = keras.Input((*size, 3))
    x = augmentation(inputs)
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0)(x)  # (x - 127) / 128
    x = base(x, training=False)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)

    def compile_(lr):
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
        )

    t0 = time.perf_counter()
    compile_(1e-3)
    model.fit(train_ds, epochs=5, validation_data=val_ds, verbose=0)
    base.trainable = True
    compile_(1e-5)
    history = model.fit(train_ds, epochs=3, validation_data=val_ds, verbose=0)
    seconds = time.perf_counter() - t0
    out = {"train_seconds": seconds, "val_accuracy": float(history.history["val_accuracy"][-1])}
    if test_dir is not None:
        test_ds = keras.utils.image_dataset_from_directory(
            test_dir, image_size=size, batch_size=batch, shuffle=False, label_mode="binary"
        )
        out["test_accuracy"] = float(model.evaluate(test_ds, verbose=0)[1])
    return out


def cats_dogs(args, root: Path, overrides: dict) -> tuple[dict, str]:
    train_dir = root / "cats_dogs" / "training_set"
    test_dir = None if args.no_test else root / "cats_dogs" / "test_set"
    weights = C.data_root(args.weights) / "efficientnet_lite0_imagenet.keras"
    results: dict[str, dict] = {m: {} for m in args.methods}
    for seed in args.seeds:  # alternate the methods seed by seed
        for method in args.methods:
            if method == "visionkit":
                out = visionkit_run(
                    seed,
                    train_dir,
                    test_dir,
                    "cats_dogs_lite0",
                    model="efficientnet_lite0",
                    weights="imagenet",
                    **overrides,
                )
            elif method == "keras_io":
                out = keras_io_run(seed, train_dir, test_dir, weights)
            else:
                out = visionkit_run(
                    seed,
                    train_dir,
                    test_dir,
                    "cats_dogs_scratch",
                    model="efficientnet_lite0",
                    weights=None,
                    epochs=args.scratch_epochs,
                )
            results[method][seed] = out
            shown = "val" if args.no_test else "test"
            print(
                f"[cats_dogs {method} seed {seed}] {shown} accuracy "
                f"{C.pct(out[f'{shown}_accuracy'])} (val {C.pct(out['val_accuracy'])}), "
                f"train {out['train_seconds']:.1f} s",
                flush=True,
            )
    labels = {
        "visionkit": f"visionkit `{RECIPE}` (Lite0 ImageNet)"
        + (f" + {' '.join(args.overrides)}" if overrides else ""),
        "keras_io": "keras.io recipe (Lite0 ImageNet, 5 head + 3 full @1e-5)",
        "scratch": f"visionkit recipe, `weights=null`, {args.scratch_epochs} epochs",
    }
    key = "val_accuracy" if args.no_test else "test_accuracy"
    rows = []
    for method, per_seed in results.items():
        accs = [per_seed[s][key] for s in args.seeds]
        secs = [per_seed[s]["train_seconds"] for s in args.seeds]
        mean, std = C.mean_std(accs)
        rows.append(
            [labels[method]]
            + [C.pct(a) for a in accs]
            + [f"{C.pct(mean)} ± {100 * std:.2f}", f"{C.mean_std(secs)[0]:.1f}"]
        )
    what = "validation" if args.no_test else "test"
    headers = (
        ["recipe"] + [f"seed {s}" for s in args.seeds] + [f"{what} mean ± std", "train s (mean)"]
    )
    table = f"cats_dogs, {what} accuracy:\n\n" + C.md_table(headers, rows)
    vk = [m for m in ("visionkit", "scratch") if m in results]
    if vk and not args.no_test:
        vrows = [
            [m, s, C.pct(results[m][s]["val_accuracy"]), results[m][s]["val"].get("best_epoch")]
            for m in vk
            for s in args.seeds
        ]
        table += "\n\nvisionkit runs, validation (20 % of training_set; picks the checkpoint):\n\n"
        table += C.md_table(["recipe", "seed", "val accuracy", "best epoch"], vrows)
    return {m: {str(s): v for s, v in r.items()} for m, r in results.items()}, table


# -- flowers -------------------------------------------------------------------------------
def split_flowers(source: Path, dest: Path, seed: int, test_fraction: float = 0.2) -> dict:
    """Seeded stratified split into ``dest/train/<class>`` and ``dest/test/<class>`` (copies:
    symlinks resolving outside the root are refused by the folder source)."""
    counts = {}
    rng = random.Random(seed)
    for cls in sorted(p.name for p in source.iterdir() if p.is_dir()):
        files = sorted(p for p in (source / cls).iterdir() if p.suffix.lower() in IMAGE_EXT)
        rng.shuffle(files)
        n_test = round(test_fraction * len(files))
        for part, chosen in (("test", files[:n_test]), ("train", files[n_test:])):
            folder = dest / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy2(f, folder / f.name)
        counts[cls] = {"train": len(files) - n_test, "test": n_test}
    return counts


def flowers(args, root: Path, overrides: dict) -> tuple[dict, str]:
    seed = args.seeds[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="flowers_split_") as tmp:
        counts = split_flowers(root / "flowers", Path(tmp), seed)
        train_dir, test_dir = Path(tmp) / "train", Path(tmp) / "test"
        runs = {
            "resnet18_scratch": (
                SCRATCH_RECIPE,
                dict(model="resnet18", weights=None, epochs=args.flowers_scratch_epochs),
            ),
            "lite0_imagenet": (
                RECIPE,
                dict(
                    model="efficientnet_lite0",
                    weights="imagenet",
                    imgsz=128,
                    epochs=args.flowers_epochs,
                ),
            ),
        }
        runs["lite0_imagenet"][1].update(overrides)  # tuning keys apply to the transfer recipe
        runs = {k: v for k, v in runs.items() if k in args.flowers_models}
        for name, (recipe, options) in runs.items():
            result, seconds = C.train_recipe(
                recipe, data=str(train_dir), seed=seed, name=f"flowers_{name}_s{seed}", **options
            )
            out = {
                "recipe": recipe,
                "options": options,
                "train_seconds": seconds,
                "val_accuracy": float(result.metrics["accuracy"]),
                "val": C.history_summary(result.run.dir),
                "run": str(result.run.dir.relative_to(C.REPO)),
            }
            if not args.no_test:
                out["test_accuracy"] = float(C.test_run(result.run.dir, test_dir)["accuracy"])
            results[name] = out
            print(
                f"[flowers {name}] val {C.pct(out['val_accuracy'])}"
                + ("" if args.no_test else f", test {C.pct(out['test_accuracy'])}")
                + f", train {seconds:.1f} s",
                flush=True,
            )
    n_test = sum(c["test"] for c in counts.values())
    rows = [
        [
            f"`{r['recipe']}` " + " ".join(f"{k}={v}" for k, v in r["options"].items()),
            r["val"].get("epochs_run"),
            C.pct(r["val_accuracy"]),
            "-" if args.no_test else C.pct(r["test_accuracy"]),
            f"{r['train_seconds']:.0f}",
        ]
        for r in results.values()
    ]
    table = (
        f"flowers at 128×128, seed {seed} (one seed), test = {n_test} images (stratified 20 %):\n\n"
        + C.md_table(["recipe", "epochs", "val accuracy", "test accuracy", "train s"], rows)
    )
    return {"split": counts, "seed": seed, "runs": results}, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument(
        "--weights", default="../shared/weights", help="folder of the reference .keras"
    )
    parser.add_argument("--part", choices=["cats_dogs", "flowers", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["visionkit", "keras_io", "scratch"],
        default=["visionkit", "keras_io", "scratch"],
    )
    parser.add_argument("--scratch-epochs", type=int, default=3)
    parser.add_argument(
        "--flowers-scratch-epochs", type=int, default=2, help="ResNet-18 (~2.5 min an epoch)"
    )
    parser.add_argument(
        "--flowers-epochs",
        type=int,
        default=5,
        help="EfficientNet-Lite0: 3 head + the rest fine-tuned",
    )
    parser.add_argument(
        "--flowers-models",
        nargs="+",
        choices=["resnet18_scratch", "lite0_imagenet"],
        default=["resnet18_scratch", "lite0_imagenet"],
    )
    parser.add_argument("--no-test", action="store_true", help="tuning: validation only")
    parser.add_argument("--tag", default=None, help="results file name")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    from visionkit.cli import parse_overrides

    overrides = parse_overrides(args.overrides)
    started = time.time()
    cond = C.conditions()
    root = C.data_root(args.data)
    payload: dict = {"overrides": overrides, "no_test": args.no_test}
    tables = []
    if args.part in ("cats_dogs", "all"):
        payload["cats_dogs"], table = cats_dogs(args, root, overrides)
        tables.append(table)
    if args.part in ("flowers", "all"):
        payload["flowers"], table = flowers(args, root, overrides)
        tables.append(table)
    text = "\n\n".join(tables)
    print("\n" + text)
    payload["conditions"] = C.finish_conditions(cond, started)
    payload["table"] = text
    tag = args.tag or ("classify_transfer" + ("" if args.part == "all" else f"_{args.part}"))
    C.write_results(tag, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
