"""What running each batch as two half batches side by side gains, model by model.

    python bench/forward_halves.py [--repeats 6] [--rounds 2] [--models NAME:SIZE:BATCH ...]

``visionkit.predict.compiled_forward(model, fold=True)`` (the forward of ``val`` and
``predict``) runs a batch as two half batches, independent ops of one graph that
TensorFlow's executor runs side by side (``visionkit.predict.in_halves``). This times the
folded forward with ``halves=True`` and ``halves=False`` on the same random images
(uniform 0–255), in alternation: ``--rounds`` rounds, each the fastest of ``--repeats``
calls per variant after two warm-up calls. Models other than the ImageNet
EfficientNet-Lite0 get seeded random weights and BatchNorm statistics (speed does not
depend on the values, except that an all-zero folded bias loses a fusion when frozen).
Also reports the largest output difference between the two variants. No data needed.

Writes ``bench/results/forward_halves.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # shared test helpers
import _common as C
import numpy as np

DEFAULT_MODELS = [
    f"{C.LITE0}:224:32",
    "mobilenet_v2:224:32",
    "resnet50:224:32",
    "yolo_lite0:640:16",
    "yolo_n:640:16",
    "unet_lite0:256:16",
    "unet:256:8",
    "deeplabv3plus_mobilenetv2:256:16",
]


def fastest(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(spec: str, repeats: int, rounds: int, freeze: bool) -> dict:
    import tensorflow as tf

    from visionkit.predict import compiled_forward

    name, size, batch = spec.rsplit(":", 2)
    size, batch = int(size), int(batch)
    C.reset_keras()
    model = C.speed_model(name, size)
    images = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    x = tf.constant(images)
    variants = {
        halves: compiled_forward(model, fold=True, freeze=freeze, halves=halves)
        for halves in (False, True)
    }
    outputs = {}
    for halves, forward in variants.items():  # warm-up: trace, freeze, oneDNN primitives
        forward(x)
        outputs[halves] = [t.numpy() for t in tf.nest.flatten(forward(x))]
    diff = max(
        float(np.max(np.abs(a - b))) for a, b in zip(outputs[False], outputs[True], strict=True)
    )
    scale = max(float(np.max(np.abs(a))) for a in outputs[False])
    times = {False: [], True: []}
    for _ in range(rounds):
        for halves, forward in variants.items():
            times[halves].append(fastest(lambda f=forward: f(x), repeats))
    return {
        "model": name,
        "size": size,
        "batch": batch,
        "whole_ms": [1000 * t for t in times[False]],
        "halves_ms": [1000 * t for t in times[True]],
        "speedup": [w / h for w, h in zip(times[False], times[True], strict=True)],
        "max_abs_diff": diff,
        "output_scale": scale,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="NAME:SIZE:BATCH")
    parser.add_argument("--repeats", type=int, default=6, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--freeze", action="store_true", help="freeze the weights too (long passes)"
    )
    parser.add_argument("--tag", default="forward_halves")
    args = parser.parse_args()
    started = time.time()
    cond = C.conditions()
    results = []
    for spec in args.models:
        result = measure(spec, args.repeats, args.rounds, args.freeze)
        results.append(result)
        print(
            f"{spec}: whole {result['whole_ms']} ms, halves {result['halves_ms']} ms",
            flush=True,
        )
    rows = [
        [
            f"{r['model']} {r['size']}, batch {r['batch']}",
            " / ".join(f"{t:.0f}" for t in r["whole_ms"]),
            " / ".join(f"{t:.0f}" for t in r["halves_ms"]),
            " / ".join(f"{s:.2f}×" for s in r["speedup"]),
            f"{r['max_abs_diff']:.1e} (outputs up to {r['output_scale']:.2g})",
        ]
        for r in results
    ]
    table = C.md_table(
        ["model", "whole batch, ms", "two halves, ms", "speed-up", "max |Δ output|"], rows
    )
    print("\n" + table)
    payload = {
        "results": results,
        "freeze": args.freeze,
        "conditions": C.finish_conditions(cond, started),
        "table": table,
    }
    C.write_results(args.tag, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
