"""Shared helpers of the classification benchmarks (``bench/classify_*.py``).

Paths, machine conditions, timing, result files and markdown tables, and the two calls a
user makes: train a recipe (``visionkit.cfg.resolve`` + ``visionkit.train.trainer.train``)
and evaluate a run on test data (``visionkit.tasks.classify.val_command``, i.e.
``visionkit classify val model=RUN data=TEST``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
RUNS = RESULTS / "runs"


def data_root(arg: str) -> Path:
    """``--data`` resolved relative to the repository root (absolute paths kept)."""
    path = Path(arg)
    path = path if path.is_absolute() else (REPO / path)
    path = path.resolve()
    if not path.is_dir():
        raise SystemExit(f"--data {arg}: no such folder ({path})")
    return path


def conditions() -> dict[str, Any]:
    """Date, machine and load: what a reader needs to compare numbers."""
    import keras
    import tensorflow as tf

    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpus": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),  # cores this process may use
        "loadavg_start": list(os.getloadavg()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": _git_state(),
    }


def _git_state() -> str:
    """The commit the library ran at, with ``+dirty`` when visionkit/ has local edits."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "visionkit"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def finish_conditions(cond: dict[str, Any], started: float) -> dict[str, Any]:
    cond["loadavg_end"] = list(os.getloadavg())
    cond["script_seconds"] = round(time.time() - started, 1)
    return cond


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(path)
    print(f"\nwrote {path.relative_to(REPO)}")
    return path


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def reset_keras() -> None:
    import keras

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")


LITE0 = "imagenet:efficientnet_lite0"


def speed_model(name: str, size: int = 224):
    """The model a speed benchmark times: ``LITE0`` (the ImageNet EfficientNet-Lite0), a
    registered detector or segmenter (3 classes), or a backbone or classic classifier
    name (1000 classes), the latter two with seeded weights and seeded BatchNorm
    statistics. Speed does not depend on the values, with one exception: at
    initialisation every folded bias is zero, and TensorFlow's graph optimiser drops an
    all-zero constant bias and with it the conv+bias+activation fusion."""
    import keras
    from batchnorm_statistics import random_statistics  # tests/, on the scripts' sys.path

    from visionkit.models import create_model
    from visionkit.models.classifier import image_classifier
    from visionkit.models.registry import list_models
    from visionkit.tasks.classify import load_classifier

    if name == LITE0:
        return load_classifier(LITE0)[0]
    keras.utils.set_random_seed(0)
    if name in set(list_models()) - set(list_models("classify")):
        model = create_model(name, num_classes=3, input_shape=(size, size, 3))
    else:
        model = image_classifier(name, num_classes=1000, input_shape=(size, size, 3))
    return random_statistics(model)


# -- visionkit, used the way a user does ----------------------------------------------------
def train_recipe(pipeline: str | Path | None, task: str = "classify", **overrides: Any):
    """Train the recipe ``pipeline`` (a YAML under pipelines/) with ``overrides``; return
    ``(RunResult, seconds of the train() call)``. Runs go to ``bench/results/runs``."""
    from visionkit.cfg import load_pipeline, resolve
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    reset_keras()
    layers = [load_pipeline(str(REPO / pipeline))] if pipeline else []
    settings = {"out": str(RUNS), "exist_ok": True, "verbose": 0, **overrides}
    config = resolve(*layers, settings, where="bench")
    t0 = time.perf_counter()
    result = train(get_task(task), config)
    return result, time.perf_counter() - t0


def test_run(
    run_dir: str | Path,
    data: str | Path,
    split: str | None = None,
    task: str = "classify",
    **extra: Any,
):
    """``visionkit TASK val model=RUN data=DATA [split=...]``: the test metrics."""
    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task

    reset_keras()
    config = resolve(
        {
            "task": task,
            "mode": "val",
            "model": str(run_dir),
            "data": str(data),
            "split": split,
            "out": str(run_dir),
            "name": "test",
            "verbose": 0,
            **extra,
        },
        where="bench",
    )
    return get_task(task).val_command(config)


def history_summary(run_dir: str | Path) -> dict[str, Any]:
    """Best validation numbers of a run from its ``history.csv`` (what tuning looks at), at
    the epoch its ``monitor`` (from ``config.yaml``) picked."""
    import pandas as pd
    import yaml

    run_dir = Path(run_dir)
    frame = pd.read_csv(run_dir / "history.csv")
    monitor = yaml.safe_load((run_dir / "config.yaml").read_text()).get("monitor") or "val_loss"
    out: dict[str, Any] = {"epochs_run": len(frame), "monitor": monitor}
    if monitor in frame:
        from visionkit.train.callbacks import BestCheckpoint

        higher = BestCheckpoint(run_dir / "unused", monitor=monitor).mode == "max"
        best = int(frame[monitor].idxmax() if higher else frame[monitor].idxmin())
        out["best_epoch"] = int(frame.loc[best, "epoch"])
        for column in frame.columns:
            if column.startswith("val_"):
                out[f"{column}_at_best"] = float(frame.loc[best, column])
        if "val_accuracy" in frame:
            out["max_val_accuracy"] = float(frame["val_accuracy"].max())
    return out
