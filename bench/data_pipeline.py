"""Throughput of each task's default training input pipeline, beside the training rate of
that task's default model, measured in the same run (images/s and their ratio).

    python bench/data_pipeline.py --data ../shared/data [--task classify|detect|segment|all]
                                  [--seconds 20] [--cache]

* classify: ``cats_dogs/training_set`` (image folders) at 224, batch 32; default model
  EfficientNet-Lite0 (ImageNet);
* detect: ``coco128`` train2017 (YOLO labels) at 640 with Mosaic (p = 1), batch 16;
  default model yolo_lite0 (EfficientNet-Lite0 backbone, ImageNet);
* segment: ``membrane`` (``image/N.png`` + ``label/N.png``, {0, 255} → {0, 1}) at 256,
  batch 8; default model unet_lite0 (EfficientNet-Lite0 encoder, ImageNet).

Each default model is timed in every stage of the task's default recipe (for pretrained
backbones: head only, then the top blocks unfrozen) on one real batch repeated, so its
rate does not depend on the pipeline. Each pipeline is warmed up for one epoch (tracing, thread pools), then
iterated for whole epochs until ``--seconds`` have passed. A ratio above 5 is the target:
the pipeline then delivers five times what training consumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from visionkit.data.loader import load_dataset

# task: (dataset folder, loader options, imgsz, batch, pipeline options)
TASKS = {
    "classify": ("cats_dogs/training_set", {"format": "folder", "task": "classify"}, 224, 32, {}),
    "detect": ("coco128", {"format": "yolo", "task": "detect", "split": "train"}, 640, 16, {}),
    "segment": ("membrane", {"format": "masks", "task": "segment"}, 256, 8, {}),
}


def pipeline_rate(task: str, root: Path, seconds: float, cache: bool) -> dict:
    from visionkit.data.pipeline import build_pipeline

    folder, load_options, size, batch, extra = TASKS[task]
    dataset = load_dataset(root / folder, **load_options)
    ds = build_pipeline(
        dataset,
        task=task,
        imgsz=size,
        batch=batch,
        training=True,
        seed=0,
        cache=cache,
        mask_value_map=dataset.mask_value_map,
        **extra,
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
    return {
        "task": task,
        "data": f"{folder} ({len(dataset)} images)",
        "imgsz": size,
        "batch": batch,
        "epochs": epochs,
        "warmup_s": round(warm, 1),
        "pipeline_img_per_s": images / (time.perf_counter() - t0),
    }


def model_rates(
    task_name: str, dataset, batch: int, size: int, steps: int = 6
) -> tuple[str, dict[str, float]]:
    """Training images/s of the task's default model in each stage of its default recipe,
    on one real batch repeated (so the rate does not depend on the input pipeline)."""
    import tensorflow as tf

    from visionkit.cfg import resolve
    from visionkit.data.pipeline import build_pipeline
    from visionkit.tasks.registry import get_task
    from visionkit.train.recipes import make_optimizer, plan_stages

    task = get_task(task_name)
    config = task.fill_defaults(resolve({"task": task_name, "imgsz": size, "batch": batch}))
    model, info = task.build_model(config, dataset.class_names)
    config.update(info, num_classes=len(dataset.class_names), class_names=dataset.class_names)
    sample = build_pipeline(dataset, task=task_name, imgsz=size, batch=batch, training=True, seed=0)
    sample = task.adapt_dataset(sample, model)
    one_batch = next(iter(sample))
    data = tf.data.Dataset.from_tensors(one_batch).repeat()
    rates = {}
    for stage in plan_stages(config, pretrained=info["pretrained"]):
        task.set_trainable(model, stage, config)
        model.compile(
            optimizer=make_optimizer(config, stage, steps),
            **task.compile_args(config, len(dataset.class_names)),
        )
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # tracing
        t0 = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        rates[stage.name] = steps * batch / (time.perf_counter() - t0)
    return config["model"], rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding cats_dogs, coco128, membrane")
    parser.add_argument("--task", default="all", choices=["all", *TASKS])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per pipeline")
    parser.add_argument("--cache", action="store_true", help="cache decoded images in memory")
    parser.add_argument("--out", default="bench/results/data_pipeline.json", help="results JSON")
    args = parser.parse_args(argv)
    root = Path(args.data)
    tasks = list(TASKS) if args.task == "all" else [args.task]
    rows = []
    for task in tasks:
        row = pipeline_rate(task, root, args.seconds, args.cache)
        folder, load_options, size, batch, _ = TASKS[task]
        row["model"], rates = model_rates(
            task, load_dataset(root / folder, **load_options), batch, size
        )
        row["model_img_per_s"] = rates
        # The pipeline must keep up with the fastest stage (backbone frozen).
        row["ratio"] = row["pipeline_img_per_s"] / max(rates.values())
        rows.append(row)
    print("| task | data | imgsz | batch | pipeline img/s | model | model train img/s | ratio |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    for r in rows:
        model = r.get("model", "none yet")
        rates = ", ".join(f"{k} {v:.1f}" for k, v in r.get("model_img_per_s", {}).items()) or "-"
        ratio = f"{r['ratio']:.1f}×" if "ratio" in r else "-"
        print(
            f"| {r['task']} | {r['data']} | {r['imgsz']} | {r['batch']} | {r['pipeline_img_per_s']:.0f} "
            f"| {model} | {rates} | {ratio} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
