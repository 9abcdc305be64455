"""LeNet-5 on MNIST: the visionkit recipe beside two plain-Keras recipes, same split, same seeds.

    python bench/classify_mnist.py --data ../shared/data [--seeds 0 1 2] [--skip-keras]
                                   [key=value ...]   # overrides of pipelines/lenet_mnist.yaml

Data: ``DATA/mnist/t10k-*-ubyte.gz`` (the official 10,000-image MNIST test set). Train on
the FIRST 8,000 images, test on the LAST 2,000. Nothing is chosen on the 2,000:

* visionkit: the two subsets are written as IDX files into a temporary folder
  (``train-*`` = the 8,000, ``t10k-*`` = the 2,000), the recipe
  ``pipelines/lenet_mnist.yaml`` trains on ``data=TMP`` (the trainer carves its validation
  split, ``val_fraction``, from the 8,000 and keeps the best-``val_loss`` checkpoint), then
  ``visionkit classify val model=RUN data=TMP split=test`` gives the test accuracy.
* plain Keras, as measured before: ``keras.Sequential`` LeNet-5 on the 28×28 digits
  zero-padded to 32×32 (as in the 1998 paper), ``x / 255`` inside,
  ``model.fit(x, y, epochs=20, batch_size=128)`` with Adam defaults on all 8,000, the
  final-epoch model evaluated on the 2,000: (a) 1998 tanh + average pooling;
  (b) ReLU + max pooling + ``RandomTranslation(0.1, 0.1)``.

Prints a markdown table (per seed, mean ± std, wall time) and writes
``bench/results/classify_mnist.json``.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import numpy as np

N_TRAIN, N_TEST = 8000, 2000
RECIPE = "pipelines/lenet_mnist.yaml"


def read_idx(path: Path) -> np.ndarray:
    from visionkit.data.sources.idx import read_idx as _read

    return _read(path)


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def load_split(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    images = read_idx(root / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert len(images) == N_TRAIN + N_TEST, images.shape
    return images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:]


# -- plain Keras ---------------------------------------------------------------------------
def keras_lenet(modern: bool):
    import keras
    from keras import layers

    act = "relu" if modern else "tanh"
    pool = layers.MaxPooling2D if modern else layers.AveragePooling2D
    stack = [keras.Input((32, 32, 1)), layers.Rescaling(1 / 255)]
    if modern:
        stack.append(layers.RandomTranslation(0.1, 0.1))
    stack += [
        layers.Conv2D(6, 5, activation=act),
        pool(2),
        layers.Conv2D(16, 5, activation=act),
        pool(2),
        layers.Flatten(),
        layers.Dense(120, activation=act),
        layers.Dense(84, activation=act),
        layers.Dense(10, activation="softmax"),
    ]
    return keras.Sequential(stack)


def run_keras(modern: bool, seed: int, xtr, ytr, xte, yte) -> dict:
    import keras

    C.reset_keras()
    keras.utils.set_random_seed(seed)
    pad = lambda x: np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None].astype("float32")  # noqa: E731
    model = keras_lenet(modern)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(pad(xtr), ytr, epochs=20, batch_size=128, verbose=0)
    seconds = time.perf_counter() - t0
    _, acc = model.evaluate(pad(xte), yte, batch_size=512, verbose=0)
    return {"test_accuracy": float(acc), "train_seconds": seconds}


# -- visionkit -----------------------------------------------------------------------------
def run_visionkit(seed: int, folder: Path, overrides: dict) -> dict:
    result, seconds = C.train_recipe(
        RECIPE, data=str(folder), seed=seed, name=f"mnist_lenet_s{seed}", **overrides
    )
    t0 = time.perf_counter()
    metrics = C.test_run(result.run.dir, folder, split="test")
    assert metrics["num_examples"] == N_TEST, metrics["num_examples"]
    return {
        "test_accuracy": float(metrics["accuracy"]),
        "train_seconds": seconds,
        "test_seconds": time.perf_counter() - t0,
        "val": C.history_summary(result.run.dir),
        "run": str(result.run.dir.relative_to(C.REPO)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-keras", action="store_true", help="only the visionkit recipe")
    parser.add_argument("--tag", default="classify_mnist", help="results file name")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    from visionkit.cli import parse_overrides

    overrides = parse_overrides(args.overrides)
    started = time.time()
    cond = C.conditions()
    root = C.data_root(args.data)
    xtr, ytr, xte, yte = load_split(root)

    recipes = {"visionkit": {}}
    if not args.skip_keras:
        recipes = {"keras_1998": {}, "keras_relu_max_translate": {}, **recipes}
    with tempfile.TemporaryDirectory(prefix="mnist_split_") as tmp:
        folder = Path(tmp)
        write_idx(folder / "train-images-idx3-ubyte.gz", xtr)
        write_idx(folder / "train-labels-idx1-ubyte.gz", ytr)
        write_idx(folder / "t10k-images-idx3-ubyte.gz", xte)
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", yte)
        for seed in args.seeds:  # alternate recipes seed by seed: load drifts hit all alike
            for name, per_seed in recipes.items():
                if name == "visionkit":
                    out = run_visionkit(seed, folder, overrides)
                else:
                    out = run_keras(name != "keras_1998", seed, xtr, ytr, xte, yte)
                per_seed[seed] = out
                print(
                    f"[{name} seed {seed}] test accuracy {C.pct(out['test_accuracy'])}, "
                    f"train {out['train_seconds']:.1f} s",
                    flush=True,
                )

    labels = {
        "keras_1998": "plain Keras LeNet-5 1998 (tanh, avg-pool), Adam, 20 ep",
        "keras_relu_max_translate": "plain Keras LeNet-5 ReLU + max-pool + RandomTranslation, Adam, 20 ep",
        "visionkit": f"visionkit `{RECIPE}`" + (f" + {args.overrides}" if overrides else ""),
    }
    rows, summary = [], {}
    for name, per_seed in recipes.items():
        accs = [per_seed[s]["test_accuracy"] for s in args.seeds]
        secs = [per_seed[s]["train_seconds"] for s in args.seeds]
        mean, std = C.mean_std(accs)
        summary[name] = {
            "mean_accuracy": mean,
            "std_accuracy": std,
            "mean_train_seconds": C.mean_std(secs)[0],
        }
        rows.append(
            [labels[name]]
            + [C.pct(a) for a in accs]
            + [f"{C.pct(mean)} ± {100 * std:.2f}", f"{C.mean_std(secs)[0]:.1f}"]
        )
    headers = ["recipe"] + [f"seed {s}" for s in args.seeds] + ["mean ± std", "train s (mean)"]
    table = C.md_table(headers, rows)
    if "visionkit" in recipes:
        vrows = [
            [
                s,
                recipes["visionkit"][s]["val"].get("best_epoch"),
                C.pct(recipes["visionkit"][s]["val"].get("val_accuracy_at_best", float("nan"))),
                f"{recipes['visionkit'][s]['val'].get('val_loss_at_best', float('nan')):.4f}",
            ]
            for s in args.seeds
        ]
        table += "\n\nvisionkit validation (carved from the 8,000; picks the checkpoint):\n\n"
        table += C.md_table(["seed", "best epoch", "val accuracy", "val loss"], vrows)
    print()
    print(table)
    C.write_results(
        args.tag,
        {
            "conditions": C.finish_conditions(cond, started),
            "split": {"train": "first 8000 of t10k", "test": "last 2000 of t10k"},
            "overrides": overrides,
            "results": {k: {str(s): v for s, v in r.items()} for k, r in recipes.items()},
            "summary": summary,
            "table": table,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
