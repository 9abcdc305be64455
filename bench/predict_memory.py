"""Peak memory of ``visionkit classify predict`` over many images: constant, or growing?

    python bench/predict_memory.py [--images 10000] [--small 1000] [--size 64]
                                   [--model lenet5] [--batch 32] [--interval 0.2]
                                   [--workdir DIR] [--keep] [--out bench/results/predict_memory.json]

Steps:

1. Generate ``--images`` random-noise JPEGs of ``--size``×``--size`` pixels (quality 90) in a
   temporary folder, and a second folder holding hard links to the first ``--small`` of
   them (the same bytes, no extra disk).
2. Train a tiny run to predict with: ``--model`` (``lenet5`` at 32 px or ``resnet20``),
   2 epochs on 3 classes × 20 generated images, the way a user does
   (``visionkit.cfg.resolve`` + ``visionkit.train.trainer.train``).
3. Run ``python -m visionkit.cli classify predict model=RUN source=FOLDER batch=BATCH
   verbose=0`` on the small folder, then on the large one, each in a fresh subprocess.
   Every ``--interval`` seconds the subprocess's ``VmRSS`` and ``VmHWM`` are read from
   ``/proc/PID/status``; the peak is the largest of both seen (``VmHWM`` is the kernel's
   own high-water mark, so short spikes between samples are counted too).
   ``resource.getrusage(RUSAGE_CHILDREN)`` is not used: ``ru_maxrss`` survives ``exec``
   and would carry this process's own peak into the child's.

Constant memory means the two peaks are close: the ratio ``peak(large) / peak(small)``
near 1 while the image count grows ``large / small`` times. Reported per run: peak and
final RSS (MB), wall time, images per second, rows in ``predictions.csv`` and an RSS
timeline (one sample per second). Writes ``--out`` (JSON, with the machine conditions)
and prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, conditions, finish_conditions

_STATUS = re.compile(r"^(VmRSS|VmHWM):\s+(\d+) kB", re.MULTILINE)


def write_images(folder: Path, count: int, size: int, seed: int = 0) -> float:
    """``count`` noise JPEGs named ``00000.jpg``...; returns the seconds it took."""
    import numpy as np
    from PIL import Image

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return time.perf_counter() - started


def link_subset(source: Path, target: Path, count: int) -> None:
    """Hard links to the first ``count`` files of ``source`` (copies where links fail)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir())[:count]:
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


def train_tiny_run(work: Path, model: str) -> Path:
    """A 3-class run of ``model`` trained for 2 epochs on 60 generated images."""
    import numpy as np
    from PIL import Image

    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    data = work / "train_data"
    rng = np.random.default_rng(1)
    for k, name in enumerate(("dark", "mid", "light")):
        (data / name).mkdir(parents=True, exist_ok=True)
        for i in range(20):
            level = 50 + 80 * k
            pixels = np.clip(level + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(data / name / f"{i}.png")
    config = resolve(
        {
            "data": str(data),
            "model": model,
            "weights": None,
            "imgsz": 32,
            "batch": 16,
            "epochs": 2,
            "patience": 0,
            "verbose": 0,
            "out": str(work / "runs"),
            "name": "tiny",
        }
    )
    return train(get_task("classify"), config).run.dir


def _status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in kB ({} once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return {k: int(v) for k, v in _STATUS.findall(handle.read())}
    except (FileNotFoundError, ProcessLookupError):
        return {}


def measure_predict(
    run: Path, source: Path, out: Path, batch: int, interval: float
) -> dict[str, Any]:
    """Run ``visionkit classify predict`` on ``source`` in a subprocess, sampling its RSS."""
    command = [
        sys.executable,
        "-m",
        "visionkit.cli",
        "classify",
        "predict",
        f"model={run}",
        f"source={source}",
        f"out={out}",
        f"name={source.name}",
        f"batch={batch}",
        "verbose=0",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak_kb, last_kb, timeline, next_mark = 0, 0, [], 0.0
    while proc.poll() is None:
        status = _status(proc.pid)
        if status:
            last_kb = status.get("VmRSS", last_kb)
            peak_kb = max(peak_kb, status.get("VmRSS", 0), status.get("VmHWM", 0))
            now = time.perf_counter() - started
            if now >= next_mark:
                timeline.append([round(now, 1), round(last_kb / 1024, 1)])
                next_mark += 1.0
        time.sleep(interval)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"predict failed ({proc.returncode}) on {source}:\n{stderr[-3000:]}")
    with open(out / source.name / "predictions.csv", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    images = sum(1 for _ in source.iterdir())
    return {
        "images": images,
        "rows": rows,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "final_rss_mb": round(last_kb / 1024, 1),
        "seconds": round(seconds, 1),
        "images_per_s": round(images / seconds, 1),
        "timeline_s_mb": timeline,
        "stdout_tail": stdout.strip().splitlines()[-1:] if stdout.strip() else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the large run")
    parser.add_argument("--small", type=int, default=1_000, help="images in the small run")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--model", default="lenet5", choices=["lenet5", "resnet20"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--workdir", help="where to write images and runs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", default="bench/results/predict_memory.json", help="results JSON")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.images:
        parser.error("--small must be between 1 and --images - 1")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.time()
    cond = conditions()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vk-predict-memory-"))
    try:
        large = work / f"images_{args.images}"
        small = work / f"images_{args.small}"
        generate_s = write_images(large, args.images, args.size)
        link_subset(large, small, args.small)
        print(f"wrote {args.images} {args.size}×{args.size} JPEGs in {generate_s:.0f} s ({large})")
        run = train_tiny_run(work, args.model)
        results = {}
        for folder in (small, large):
            results[folder.name] = measure_predict(
                run, folder, work / "predictions", args.batch, args.interval
            )
            r = results[folder.name]
            print(
                f"{r['images']:>6} images: peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"{r['seconds']:.0f} s ({r['images_per_s']:.0f} img/s)"
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    a, b = results[small.name], results[large.name]
    payload = {
        "conditions": finish_conditions(cond, started),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
        "results": results,
        "peak_ratio": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
        "peak_growth_mb": round(b["peak_rss_mb"] - a["peak_rss_mb"], 1),
        "peak_growth_kb_per_image": round(
            1024 * (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["images"] - a["images"]), 2
        ),
    }
    print(
        "\n| images | peak RSS (MB) | final RSS (MB) | wall (s) | img/s | rows |\n"
        "|---:|---:|---:|---:|---:|---:|"
    )
    for r in (a, b):
        print(
            f"| {r['images']:,} | {r['peak_rss_mb']:.0f} | {r['final_rss_mb']:.0f} "
            f"| {r['seconds']:.0f} | {r['images_per_s']:.0f} | {r['rows']:,} |"
        )
    print(
        f"\npeak ratio {payload['peak_ratio']:.2f} for {b['images'] / a['images']:.0f}× the "
        f"images ({payload['peak_growth_mb']:+.0f} MB, "
        f"{payload['peak_growth_kb_per_image']:.2f} kB per extra image)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
