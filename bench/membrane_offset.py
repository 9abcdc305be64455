"""Membrane probe: how the labels sit on the images, and whether a model learnt it.

    python bench/membrane_offset.py --data ../shared/data [--runs RUN ... --seed 0]

1. Registration of the labels on the training pairs 0–23 only: the correlation between
   the image's darkness (membranes are dark) and the label's membrane pixels, with the
   label moved by (dy, dx) ∈ [−2, 2]² whole pixels; the sub-pixel peak comes from a
   parabola through the best shift and its neighbours. A peak away from (0, 0) means the
   labels are drawn displaced from the membranes they trace: an up-down flip of an image
   then moves its true label by twice that, which no flip-trained model can follow.
2. With ``--runs`` (finished runs of ``bench/segment_membrane.py``, all trained with
   ``--seed``): each run's class probabilities on its validation split, moved by
   dy ∈ {−1, −0.5, 0, 0.5, 1} pixels (bilinear) before the argmax, scored as mIoU. The
   best shift at 0 means the model already reproduces the labels' placement.

Writes ``bench/results/membrane_offset[tag].json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
from segment_ensemble import membrane_pairs, run_folder
from segment_membrane import TRAIN

REACH = 2  # whole-pixel shifts tried each way


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def label_offset(root: Path, ids) -> dict:
    """Sub-pixel (dy, dx) at which the labels of ``ids`` best match the image content."""
    from PIL import Image

    r = REACH
    shifts = range(-r, r + 1)
    corr = np.zeros((2 * r + 1, 2 * r + 1))
    for i in ids:
        image = np.asarray(Image.open(root / "image" / f"{i}.png").convert("L"), np.float32)
        label = np.asarray(Image.open(root / "label" / f"{i}.png").convert("L"))
        dark = standardised(255.0 - image)[r:-r, r:-r]
        membrane = standardised((label < 128).astype(np.float32))
        h, w = membrane.shape
        for a, dy in enumerate(shifts):
            for b, dx in enumerate(shifts):
                moved = membrane[r + dy : h - r + dy, r + dx : w - r + dx]
                corr[a, b] += float((dark * moved).mean()) / len(ids)
    a, b = np.unravel_index(np.argmax(corr), corr.shape)

    def vertex(left: float, mid: float, right: float) -> float:
        return 0.5 * (left - right) / (left - 2 * mid + right)

    dy = a - r + (vertex(corr[a - 1, b], corr[a, b], corr[a + 1, b]) if 0 < a < 2 * r else 0)
    dx = b - r + (vertex(corr[a, b - 1], corr[a, b], corr[a, b + 1]) if 0 < b < 2 * r else 0)
    return {"dy": float(dy), "dx": float(dx), "correlation": corr.round(4).tolist()}


def shifted_miou(run: Path, images, masks) -> dict[str, float]:
    """mIoU of the run's probabilities moved down by dy pixels (negative: up)."""
    from scipy.ndimage import shift

    from visionkit.evaluate.segmentation import SegmentationMetrics
    from visionkit.models.saving import load_model
    from visionkit.predict import compiled_forward

    forward = compiled_forward(load_model(run / "model.keras", compile=False), fold=True)
    probs = [np.asarray(forward(np.asarray(im, np.float32)[None]))[0] for im in images]
    out = {}
    for dy in (-1.0, -0.5, 0.0, 0.5, 1.0):
        metrics = SegmentationMetrics(2, ignore_index=255)
        for p, truth in zip(probs, masks, strict=True):
            moved = shift(p, (dy, 0, 0), order=1, mode="nearest")
            metrics.update(truth[None], moved.argmax(-1)[None])
        out[f"{dy:+.1f}"] = metrics.result(["membrane", "cell"], "probe")["miou"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--runs", nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0, help="the runs' seed (validation split)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    root = C.data_root(args.data) / "membrane"
    started, cond = time.time(), C.conditions()

    quarters = [TRAIN[i : i + 6] for i in range(0, len(TRAIN), 6)]
    registration = {"pairs 0-23": label_offset(root, TRAIN)}
    for ids in quarters:
        registration[f"pairs {ids[0]}-{ids[-1]}"] = label_offset(root, ids)
    print("labels against image content (training pairs; + = label lies lower / further right):")
    print(
        C.md_table(
            ["pairs", "dy (px)", "dx (px)"],
            [[k, f"{v['dy']:+.2f}", f"{v['dx']:+.2f}"] for k, v in registration.items()],
        )
    )
    shifts = {}
    if args.runs:
        images, masks = membrane_pairs(args.data, "val", args.seed)
        for name in args.runs:
            run = run_folder(name)
            shifts[run.name] = shifted_miou(run, images, masks)
        keys = list(next(iter(shifts.values())))
        print(f"\nvalidation mIoU (seed {args.seed}) with the predictions moved down by dy pixels:")
        print(
            C.md_table(
                ["run", *[f"dy {k}" for k in keys]],
                [[n, *[f"{v[k]:.4f}" for k in keys]] for n, v in shifts.items()],
            )
        )
    payload = {
        "conditions": C.finish_conditions(cond, started),
        "registration": registration,
        "seed": args.seed,
        "prediction_shifts": shifts,
    }
    C.write_results(f"membrane_offset{args.tag}", payload)


if __name__ == "__main__":
    main()
