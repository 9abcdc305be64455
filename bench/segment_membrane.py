"""Segmentation benchmarks: membrane (a U-Net on 24 EM slices, 6 held out) and coco128
semantic masks (a pretrained encoder vs the same network from scratch).

    python bench/segment_membrane.py --data ../shared/data [--part membrane|coco128]
        [--seeds 0] [--model unet_lite0] [--imgsz 512] [--epochs 60]
        [--scratch] [key=value ...]

Fixed split (the issue's): pairs 0–23 train, 24–29 are the held-out test set, copied to a
temporary folder (the masks source reads ``image/`` + ``label/``; 0/255 labels become
{0, 1}, 1 = cell interior). The trainer carves its seeded validation split (20 %) from the
24 training pairs; it alone picks the checkpoint (``monitor=val_miou``). The test numbers
come from ``visionkit segment val model=RUN data=TEST`` at the images' full 512×512
resolution. Time: the whole ``train()`` call on 2 cores.

coco128: ``masks.yaml`` split ``train`` (100 images with panoptic masks, 134 classes
counting 0 = unlabeled) → split ``val`` (100), the same recipe; the trainer carves its
validation split from train. ``--scratch`` adds the same model with ``weights=null``
(every layer trained from the first epoch) for the same epochs, run after the pretrained
one with the same seed.

``key=value`` overrides apply to ``pipelines/segment_unet.yaml``. With ``refit=true`` the
trainer merges its validation split back and trains on all 24 pairs for ``--epochs`` with
no validation, keeping the last weights (choose the epochs on a validation run first).

Writes ``bench/results/segment_<part>_s<seeds>[tag].json`` (seeds joined by ``-``, so a
second seed with the same tag keeps the first one's file) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
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
    parser.add_argument("--part", choices=["membrane", "coco128"], default="membrane")
    parser.add_argument("--scratch", action="store_true", help="also train with weights=null")
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
    root = C.data_root(args.data)
    started = time.time()
    cond = C.conditions()
    rows, runs = [], []
    variants = [("pretrained", {})] + ([("scratch", {"weights": None})] if args.scratch else [])
    with tempfile.TemporaryDirectory(prefix="vk_segment_") as tmp:
        if args.part == "membrane":
            train_dir, test_dir = split_membrane(root / "membrane", Path(tmp))
            data, test_split = {"data": str(train_dir)}, None
        else:
            test_dir = root / "coco128" / "masks.yaml"
            data, test_split = {"data": str(test_dir), "split": "train"}, "val"
        for seed, (variant, extra) in itertools.product(args.seeds, variants):
            name = f"{args.part}_{args.model}_{args.imgsz}_{variant}_s{seed}{args.tag}"
            result, seconds = C.train_recipe(
                RECIPE,
                task="segment",
                model=args.model,
                imgsz=args.imgsz,
                epochs=args.epochs,
                seed=seed,
                name=name,
                **data,
                **{**overrides, **extra},
            )
            test = C.test_run(result.run.dir, test_dir, split=test_split, task="segment")
            val = result.metrics
            runs.append(
                {
                    "seed": seed,
                    "variant": variant,
                    "run": str(result.run.dir),
                    "train_seconds": round(seconds, 1),
                    "val": {
                        k: val[k] for k in ("miou", "pixel_accuracy", "per_class_iou") if k in val
                    },
                    "test": {
                        k: test[k] for k in ("miou", "pixel_accuracy", "dice", "per_class_iou")
                    },
                    "history": C.history_summary(result.run.dir),
                }
            )
            iou = test["per_class_iou"]
            shown = iou.values() if len(iou) <= 4 else []
            rows.append(
                [
                    seed,
                    variant,
                    f"{test['miou']:.4f}",
                    f"{test['pixel_accuracy']:.4f}",
                    " / ".join(f"{v:.3f}" for v in shown) or f"{len(iou)} classes",
                    f"{val['miou']:.4f}" if "miou" in val else "– (refit)",
                    f"{seconds / 60:.1f}",
                ]
            )
            print(
                C.md_table(
                    [
                        "seed",
                        "weights",
                        "test mIoU",
                        "test pixel acc",
                        "IoU per class",
                        "val mIoU",
                        "minutes",
                    ],
                    rows,
                )
            )
    payload = {
        "conditions": C.finish_conditions(cond, started),
        "recipe": RECIPE,
        "part": args.part,
        "model": args.model,
        "imgsz": args.imgsz,
        "epochs": args.epochs,
        "overrides": overrides,
        "runs": runs,
    }
    seeds = "-".join(str(seed) for seed in args.seeds)
    C.write_results(f"segment_{args.part}_s{seeds}{args.tag}", payload)


if __name__ == "__main__":
    main()
