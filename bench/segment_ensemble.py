"""Membrane probe: finished runs of ``bench/segment_membrane.py`` scored alone and with
their class probabilities averaged (an ensemble), on the held-out pairs or on a run's
validation split, plain and with each test-time augmentation asked for (``tta``).

    python bench/segment_ensemble.py --data ../shared/data --runs RUN [RUN ...]
        [--split test|val] [--seed 0] [--tta hflip true ...] [--tag _x]

``RUN`` is a run folder (or a name under ``bench/results/runs``). ``--split val`` rebuilds
the validation split the trainer carved from pairs 0–23 with ``--seed`` (the same seeded
split, ``val_fraction`` 0.2), so every run given must have been trained with that seed.
Every image is predicted at its full 512×512 as ``visionkit segment val`` does (BatchNorm
folded; the same numbers for a single run). An ensemble of N runs costs N trainings: it
is an upper bound on what the recipe's models can reach together, not a recipe within the
20-minute budget. Writes ``bench/results/segment_ensemble[tag].json``.
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
from segment_membrane import split_membrane

RUNS = Path(__file__).resolve().parent / "results" / "runs"


def run_folder(name: str) -> Path:
    path = Path(name)
    if not path.is_dir():
        path = RUNS / name
    if not (path / "model.keras").is_file():
        raise SystemExit(f"{name}: no model.keras there (nor under {RUNS}); give a run folder")
    return path


def validation_folder(train_dir: Path, seed: int, dest: Path) -> Path:
    """Copies of the validation pairs the trainer carves from ``train_dir`` with ``seed``."""
    from visionkit.data.loader import load_dataset
    from visionkit.data.split import stratified_split

    _, val = stratified_split(load_dataset(str(train_dir), task="segment"), 0.2, seed)
    for example in val.examples:
        name = Path(example.image_path).name
        for sub in ("image", "label"):
            (dest / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(train_dir / sub / name, dest / sub / name)
    return dest


def membrane_pairs(data: str, split: str, seed: int = 0) -> tuple[list, list]:
    """Images (H, W, 3) and class-id masks (H, W) of the held-out pairs (``split="test"``)
    or of the validation split the trainer carves with ``seed`` (``"val"``), read as
    ``visionkit segment val`` reads them (0/255 labels become {0, 1})."""
    from visionkit.data.loader import load_dataset
    from visionkit.tasks.segment import _example_image, _example_mask, _mask_table

    with tempfile.TemporaryDirectory(prefix="vk_membrane_") as tmp:
        train_dir, folder = split_membrane(C.data_root(data) / "membrane", Path(tmp))
        if split == "val":
            folder = validation_folder(train_dir, seed, Path(tmp) / "val")
        dataset = load_dataset(str(folder), task="segment")
        images = [_example_image(e) for e in dataset.examples]
        table = _mask_table(getattr(dataset, "mask_value_map", None))
        masks = [_example_mask(e, table) for e in dataset.examples]
    return images, masks


def score(forward, images, masks) -> dict:
    from visionkit.evaluate.segmentation import SegmentationMetrics
    from visionkit.tasks.segment import predict_masks

    predicted = predict_masks(forward, images, images[0].shape[:2], channels=2)
    metrics = SegmentationMetrics(2, ignore_index=255)
    for truth, pred in zip(masks, predicted, strict=True):
        metrics.update(truth[None], pred[None])
    return metrics.result(["membrane", "cell"], "probe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--seed", type=int, default=0, help="the runs' seed (--split val)")
    parser.add_argument(
        "--tta", nargs="*", default=[], help="tta values to score besides none (hflip, true, ...)"
    )
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    from visionkit.cfg import coerce
    from visionkit.models.saving import load_model
    from visionkit.predict import compiled_forward, flip_averaged
    from visionkit.tasks.segment import tta_symmetries

    runs = [run_folder(name) for name in args.runs]
    started, cond = time.time(), C.conditions()
    images, masks = membrane_pairs(args.data, args.split, args.seed)
    forwards = [
        compiled_forward(load_model(r / "model.keras", compile=False), fold=True) for r in runs
    ]
    variants = [(r.name, [f]) for r, f in zip(runs, forwards, strict=True)]
    if len(runs) > 1:
        variants.append((f"ensemble of {len(runs)}", forwards))
    rows, results = [], []
    for tta in ["false", *args.tta]:
        symmetries = tta_symmetries(coerce("tta", tta))
        for name, members in variants:
            members = [flip_averaged(f, symmetries) if symmetries else f for f in members]

            def forward(x, members=members):
                return sum(f(x) for f in members) / len(members)

            m = score(forward, images, masks)
            iou = m["per_class_iou"]
            results.append(
                {
                    "name": name,
                    "tta": tta,
                    **{k: m[k] for k in ("miou", "pixel_accuracy")},
                    "per_class_iou": iou,
                }
            )
            rows.append(
                [
                    name,
                    tta,
                    f"{m['miou']:.4f}",
                    f"{m['pixel_accuracy']:.4f}",
                    f"{iou['membrane']:.3f} / {iou['cell']:.3f}",
                ]
            )
    print(f"{args.split} split ({len(images)} pairs at 512×512):\n")
    print(C.md_table(["model", "tta", "mIoU", "pixel acc", "IoU membrane / cell"], rows))
    payload = {
        "conditions": C.finish_conditions(cond, started),
        "split": args.split,
        "seed": args.seed,
        "runs": [str(r) for r in runs],
        "results": results,
    }
    C.write_results(f"segment_ensemble{args.tag}", payload)


if __name__ == "__main__":
    main()
