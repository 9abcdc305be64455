"""Raccoon detection with a pretrained backbone, and coco128 for a stated budget.

    python bench/detect_raccoon.py --data ../shared/data [--part raccoon|coco128]
        [--seeds 0 1 2] [--model yolo_lite0] [--imgsz 320] [--epochs 60] [key=value ...]

raccoon: ``train_labels.csv`` (160 images) → ``test_labels.csv`` (40 images). The trainer
carves a seeded 20 % validation split from the training CSV; the checkpoint is the epoch
with the best validation mAP@0.5:0.95 of the moving-average weights (``monitor``); the test
split is evaluated once, afterwards, with ``visionkit detect val model=RUN
data=test_labels.csv`` (COCO-style, pycocotools-exact). Time: the whole ``train()`` call.

coco128: YOLO txt ``train2017`` → ``val2017`` (80 classes, 128 + 128 images), the same
recipe, validation carved from train2017.

``key=value`` overrides apply to ``pipelines/detect_yolo.yaml``. Writes
``bench/results/detect_<part>[tag].json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

RECIPE = "pipelines/detect_yolo.yaml"


def part_paths(root: Path, part: str) -> tuple[Path, Path]:
    if part == "raccoon":
        return root / "raccoon" / "train_labels.csv", root / "raccoon" / "test_labels.csv"
    return root / "coco128" / "data.yaml", root / "coco128" / "data.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--part", choices=["raccoon", "coco128"], default="raccoon")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="yolo_lite0")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("overrides", nargs="*", help="key=value for the recipe")
    args = parser.parse_args()
    from visionkit.cfg import coerce
    from visionkit.config import parse_overrides

    overrides = {k: coerce(k, v) for k, v in parse_overrides(args.overrides, raw=True).items()}
    train_data, test_data = part_paths(C.data_root(args.data), args.part)
    split = {"split": "train"} if args.part == "coco128" else {}  # data.yaml: train2017 images
    test_split = "val" if args.part == "coco128" else None  # val2017 images
    started, cond = time.time(), C.conditions()
    rows, runs = [], []
    for seed in args.seeds:
        name = f"{args.part}_{args.model}_{args.imgsz}_s{seed}{args.tag}"
        result, seconds = C.train_recipe(
            RECIPE,
            task="detect",
            data=str(train_data),
            model=args.model,
            imgsz=args.imgsz,
            epochs=args.epochs,
            seed=seed,
            name=name,
            **split,
            **overrides,
        )
        test = C.test_run(result.run.dir, test_data, split=test_split, task="detect")
        history = C.history_summary(result.run.dir)
        runs.append(
            {
                "seed": seed,
                "run": str(result.run.dir),
                "train_seconds": round(seconds, 1),
                "val": {k: result.metrics[k] for k in ("map50", "map50_95")},
                "test": {k: test[k] for k in ("map50", "map50_95", "per_class_ap50")},
                "history": history,
            }
        )
        rows.append(
            [
                seed,
                f"{test['map50']:.4f}",
                f"{test['map50_95']:.4f}",
                f"{result.metrics['map50']:.4f}",
                history.get("epochs_run"),
                f"{seconds / 60:.1f}",
            ]
        )
        print(
            C.md_table(
                ["seed", "test mAP@0.5", "test mAP@0.5:0.95", "val mAP@0.5", "epochs", "minutes"],
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
    C.write_results(f"detect_{args.part}{args.tag}", payload)


if __name__ == "__main__":
    main()
