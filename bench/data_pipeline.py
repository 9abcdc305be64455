"""Throughput of each task's default training input pipeline (images/s).

    python bench/data_pipeline.py --data ../shared/data [--task classify|detect|segment|all]
                                  [--seconds 20] [--cache] [--model-rate IMG_PER_S]

* classify: ``cats_dogs/training_set`` (image folders) at 224, batch 32;
* detect: ``coco128`` train2017 (YOLO labels) at 640 with Mosaic (p = 1), batch 16;
* segment: ``membrane`` (``image/N.png`` + ``label/N.png``, {0, 255} → {0, 1}) at 256,
  batch 8.

Each pipeline is built with the task's default ``AugmentConfig``, warmed up for one
epoch (tracing, thread pools), then iterated for whole epochs until ``--seconds`` have
passed. Datasets come from ``visionkit.data.loader.load_dataset`` when it can read them,
else are built here from the files. ``--model-rate`` (a measured model training rate,
img/s) adds the ratio pipeline / model: above 1 the input pipeline keeps up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from visionkit.data.types import Dataset, Example

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def _try_loader(path: Path, **kw) -> Dataset | None:
    try:
        from visionkit.data.loader import load_dataset

        ds = load_dataset(path, **kw)
        return ds if len(ds) else None
    except Exception as exc:  # the loader is optional here: fall back to direct reading
        print(
            f"  (loader could not read {path}: {type(exc).__name__}: {exc}; reading files directly)"
        )
        return None


def cats_dogs(root: Path) -> tuple[Dataset, str]:
    folder = root / "cats_dogs" / "training_set"
    ds = _try_loader(folder, format="folder", task="classify")
    if ds is not None:
        return ds, "loader"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    exs = [
        Example(image_path=str(f), label=k)
        for k, name in enumerate(names)
        for f in sorted((folder / name).iterdir())
        if f.suffix.lower() in IMAGE_EXT
    ]
    return Dataset("classify", names, exs, root=str(folder)), "files"


def coco128(root: Path) -> tuple[Dataset, str]:
    folder = root / "coco128"
    ds = _try_loader(folder, format="yolo", task="detect", split="train")
    if ds is not None:
        return ds, "loader"
    images = sorted((folder / "images" / "train2017").glob("*.jpg"))
    exs = []
    for img in images:
        with Image.open(img) as im:
            w, h = im.size
        label = folder / "labels" / "train2017" / (img.stem + ".txt")
        rows = np.loadtxt(label, ndmin=2) if label.exists() else np.zeros((0, 5))
        rows = rows.reshape(-1, 5)
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).astype(np.float32)
        exs.append(
            Example(image_path=str(img), boxes=boxes, box_classes=rows[:, 0].astype(np.int32))
        )
    names = [str(i) for i in range(80)]
    return Dataset("detect", names, exs, root=str(folder)), "files"


def membrane(root: Path) -> tuple[Dataset, str]:
    folder = root / "membrane"
    ds = _try_loader(folder, format="masks", task="segment")
    if ds is not None:
        return ds, "loader"
    exs = [
        Example(image_path=str(p), mask_path=str(folder / "label" / p.name))
        for p in sorted((folder / "image").glob("*.png"), key=lambda p: int(p.stem))
    ]
    return Dataset("segment", ["background", "cell"], exs, root=str(folder)), "files"


TASKS = {
    "classify": (cats_dogs, 224, 32, {}),
    "detect": (coco128, 640, 16, {}),
    "segment": (membrane, 256, 8, {"mask_value_map": {255: 1}}),
}


def bench(task: str, root: Path, seconds: float, cache: bool) -> dict:
    from visionkit.data.pipeline import build_pipeline

    make, size, batch, extra = TASKS[task]
    dataset, how = make(root)
    ds = build_pipeline(
        dataset, task=task, imgsz=size, batch=batch, training=True, seed=0, cache=cache, **extra
    )
    t0 = time.perf_counter()
    for _ in ds:  # warm-up epoch: tracing, thread pools, file cache
        pass
    warm = time.perf_counter() - t0
    images, epochs, t0 = 0, 0, time.perf_counter()
    while True:
        for x, _ in ds:
            images += int(x.shape[0])
        epochs += 1
        if time.perf_counter() - t0 >= seconds:
            break
    elapsed = time.perf_counter() - t0
    return {
        "task": task,
        "data": f"{Path(dataset.root).name or task} ({len(dataset)} imgs, {how})",
        "imgsz": size,
        "batch": batch,
        "epochs": epochs,
        "warmup_s": warm,
        "img_per_s": images / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding cats_dogs, coco128, membrane")
    parser.add_argument("--task", default="all", choices=["all", *TASKS])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per task")
    parser.add_argument("--cache", action="store_true", help="cache decoded images in memory")
    parser.add_argument(
        "--model-rate",
        type=float,
        default=None,
        metavar="IMG_PER_S",
        help="measured model training rate (img/s) to report pipeline/model ratios",
    )
    args = parser.parse_args(argv)
    root = Path(args.data)
    tasks = list(TASKS) if args.task == "all" else [args.task]
    rows = [bench(t, root, args.seconds, args.cache) for t in tasks]
    header = f"{'task':9} {'data':34} {'imgsz':>5} {'batch':>5} {'epochs':>6} {'warm-up s':>9} {'img/s':>8}"
    if args.model_rate:
        header += f" {'ratio':>6}"
    print(header)
    for r in rows:
        line = (
            f"{r['task']:9} {r['data']:34} {r['imgsz']:5d} {r['batch']:5d} {r['epochs']:6d}"
            f" {r['warmup_s']:9.1f} {r['img_per_s']:8.1f}"
        )
        if args.model_rate:
            line += f" {r['img_per_s'] / args.model_rate:6.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
