"""Membrane (ISBI 2012 EM slices): a U-Net fine-tuned on 24 images, scored on 6 held out.

    python bench/segment_membrane.py --data ../shared/data [--seeds 0] [--model unet_lite0]
        [--imgsz 512] [--epochs 60] [key=value ...]

Fixed split (the issue's): pairs 0–23 train, 24–29 are the held-out test set, copied to a
temporary folder (the masks source reads ``image/`` + ``label/``; 0/255 labels become
{0, 1}, 1 = cell interior). The trainer carves its seeded validation split (20 %) from the
24 training pairs; it alone picks the checkpoint (``monitor=val_miou``). The test numbers
come from ``visionkit segment val model=RUN data=TEST`` at the images' full 512×512
resolution. Time: the whole ``train()`` call on 2 cores.

``key=value`` overrides apply to ``pipelines/segment_unet.yaml``.

Writes ``bench/results/segment_membrane.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

RECIPE = "pipelines/segment_unet.yaml"
TRAIN, TEST = range(0, 24), range(24, 30)


def split_membrane(root: Path, tmp: Path) -> tuple[Path, Path]:
    """Copies of pairs 0–23 (train) and 24–29 (test) in ``tmp``."""
    out = []
    for name, ids in (("train", TRAIN), ("test", TEST)):
        for sub in ("image", "label"):
            (tmp / name / sub).mkdir(parents=True)
            for i in ids:
                shutil.copy2(root / sub / f"{i}.png", tmp / name / sub / f"{i}.png")
        out.append(tmp / name)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--model", default="unet_lite0")
    parser.add_argument("--imgsz", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("overrides", nargs="*", help="key=value for the recipe")
    args = parser.parse_args()
    from visionkit.cfg import coerce
    from visionkit.config import parse_overrides

    overrides = {k: coerce(k, v) for k, v in parse_overrides(args.overrides, raw=True).items()}
    root = C.data_root(args.data) / "membrane"
    started = time.time()
    cond = C.conditions()
    rows, runs = [], []
    with tempfile.TemporaryDirectory(prefix="vk_membrane_") as tmp:
        train_dir, test_dir = split_membrane(root, Path(tmp))
        for seed in args.seeds:
            name = f"membrane_{args.model}_{args.imgsz}_s{seed}{args.tag}"
            result, seconds = C.train_recipe(
                RECIPE,
                task="segment",
                data=str(train_dir),
                model=args.model,
                imgsz=args.imgsz,
                epochs=args.epochs,
                seed=seed,
                name=name,
                **overrides,
            )
            test = C.test_run(result.run.dir, test_dir, task="segment")
            val = result.metrics
            runs.append(
                {
                    "seed": seed,
                    "run": str(result.run.dir),
                    "train_seconds": round(seconds, 1),
                    "val": {k: val[k] for k in ("miou", "pixel_accuracy", "per_class_iou")},
                    "test": {
                        k: test[k] for k in ("miou", "pixel_accuracy", "dice", "per_class_iou")
                    },
                    "history": C.history_summary(result.run.dir),
                }
            )
            iou = test["per_class_iou"]
            rows.append(
                [
                    seed,
                    f"{test['miou']:.4f}",
                    f"{test['pixel_accuracy']:.4f}",
                    " / ".join(f"{v:.3f}" for v in iou.values()),
                    f"{val['miou']:.4f}",
                    f"{seconds / 60:.1f}",
                ]
            )
            print(
                C.md_table(
                    ["seed", "test mIoU", "test pixel acc", "IoU per class", "val mIoU", "minutes"],
                    rows,
                )
            )
    payload = {
        "conditions": C.finish_conditions(cond, started),
        "recipe": RECIPE,
        "model": args.model,
        "imgsz": args.imgsz,
        "epochs": args.epochs,
        "overrides": overrides,
        "runs": runs,
    }
    C.write_results(f"segment_membrane{args.tag}", payload)


if __name__ == "__main__":
    main()
