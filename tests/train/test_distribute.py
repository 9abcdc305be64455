"""Distribution strategies: resolution (offline, fast), batch and learning-rate scaling, the
chief rule, and real runs in fresh processes: MirroredStrategy over two logical CPUs gives
the loss of one device on the same global batch; two MultiWorkerMirroredStrategy workers
on localhost finish an epoch with only the chief writing the run folder."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionkit.cfg import resolve
from visionkit.config import ConfigError
from visionkit.train import distribute
from visionkit.train.distribute import Distribution, is_chief, resolve_distribution
from visionkit.train.trainer import check_settings

HELPER = Path(__file__).with_name("distributed_run.py")


@pytest.fixture
def fresh(monkeypatch):
    """No cached strategies, no cluster or TPU in the environment."""
    monkeypatch.setattr(distribute, "_CACHE", {})
    for name in ("TF_CONFIG", "TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)


def test_auto_is_one_device_here_and_never_waits(fresh):
    import tensorflow  # noqa: F401  (its import is not what is timed)

    started = time.perf_counter()
    dist = resolve_distribution({"strategy": "auto"})
    assert time.perf_counter() - started < 5
    assert dist.kind == "default" and dist.replicas == 1 and dist.is_chief
    assert not dist.distributed
    assert resolve_distribution({"strategy": "auto"}) is dist  # created once per process


def test_tpu_without_a_tpu_fails_fast_and_says_what_to_do(fresh):
    import tensorflow  # noqa: F401

    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"no TPU found.*strategy=auto"):
        resolve_distribution({"strategy": "tpu"})
    assert time.perf_counter() - started < 5


def test_cluster_settings_are_checked(fresh, monkeypatch):
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        resolve_distribution({"strategy": "multiworker"})
    monkeypatch.setenv("TF_CONFIG", "{'cluster': 1}")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        resolve_distribution({"strategy": "multiworker"})
    monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match='needs a "cluster"'):
        resolve_distribution({"strategy": "auto"})
    with pytest.raises(ConfigError, match="strategy=gpus: use one of auto, one_device"):
        check_settings(resolve({"strategy": "gpus"}))
    with pytest.raises(ConfigError, match="steps_per_execution=0"):
        check_settings(resolve({"steps_per_execution": 0}))


def test_the_chief_writes(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief(None, 0) and is_chief("chief", 0)
    assert is_chief("worker", 0) and not is_chief("worker", 1)
    cluster = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker"}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert not is_chief("worker", 0)  # with a chief task, worker 0 is an ordinary worker


def test_batch_is_per_replica_and_lr_scales_linearly(tmp_path):
    class FourReplicas:
        num_replicas_in_sync = 4

    dist = Distribution(FourReplicas(), "mirrored", ("/gpu:0", "/gpu:1", "/gpu:2", "/gpu:3"))
    assert dist.global_batch(32) == 128 and dist.distributed
    assert dist.scaled_lr(0.001) == pytest.approx(0.004)
    assert dist.scaled_lr(0.001, enabled=False) == pytest.approx(0.001)
    assert "4 replicas on /gpu:0" in dist.describe()
    worker = Distribution(FourReplicas(), "multiworker", workers=2, task_type="worker", task_id=1)
    folder = worker.worker_dir()
    (folder / "model.keras").write_text("x")
    worker.cleanup()
    assert not folder.exists()


# -- real strategies, each in a fresh process ---------------------------------------------
def _colours(root: Path, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for name, colour in colours.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 60, (32, 32, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def _settings(tmp_path: Path, **overrides) -> dict:
    data = tmp_path / "data"
    if not data.exists():
        _colours(data / "train", 16)  # 48 images: 3 full global batches of 16
        _colours(data / "val", 4)
    return {
        "task": "classify",
        "data": str(data / "train"),
        "val": str(data / "val"),
        "model": "lenet5",  # no BatchNorm: per-replica batch statistics would differ
        "weights": None,
        "imgsz": 32,
        "epochs": 2,
        "lr": 0.01,
        "optimizer": "sgd",
        "augment": False,
        "out": str(tmp_path / "runs"),
        "verbose": 0,
        "patience": 0,
        **overrides,
    }


def _start(spec: dict, path: Path, env: dict | None = None) -> subprocess.Popen:
    path.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, str(HELPER), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )


def _finish(process: subprocess.Popen, timeout: float = 150) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"timed out after {timeout} s:\n{output[-3000:]}") from None
    assert process.returncode == 0, output[-3000:]
    return output


def _losses(result: dict, key: str) -> list[float]:
    return [float(row[key]) for row in result["history"]]


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device_on_the_same_global_batch(tmp_path):
    spec = {
        "cpus": 2,
        "runs": [
            _settings(tmp_path, name="one", strategy="one_device", batch=16),
            # 2 replicas × 8 = the same global batch of 16; lr left as is to compare
            _settings(tmp_path, name="two", strategy="mirrored", batch=8, scale_lr=False),
        ],
        "result": str(tmp_path / "result.json"),
    }
    _finish(_start(spec, tmp_path / "spec.json"))
    one, two = json.loads((tmp_path / "result.json").read_text())
    assert (one["replicas"], one["global_batch"]) == (1, 16)
    assert (two["replicas"], two["global_batch"]) == (2, 16)
    for key in ("loss", "val_loss", "accuracy"):
        assert len(_losses(one, key)) == 2
        np.testing.assert_allclose(_losses(two, key), _losses(one, key), rtol=1e-5, atol=1e-6)
    assert _losses(one, "loss") != _losses(one, "val_loss")  # real numbers, not a constant


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_two_workers_on_localhost_finish_an_epoch_and_only_the_chief_writes(tmp_path):
    hosts = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tmp = tmp_path / f"tmp{index}"  # each worker's own temporary folder
        tmp.mkdir()
        spec = {
            "tf_config": {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}},
            "runs": [_settings(tmp_path, name="mw", epochs=1, batch=8)],
            "result": str(tmp_path / f"worker{index}.json"),
        }
        processes.append(_start(spec, tmp_path / f"spec{index}.json", env={"TMPDIR": str(tmp)}))
    outputs = [_finish(p) for p in processes]
    chief, other = (json.loads((tmp_path / f"worker{i}.json").read_text())[0] for i in range(2))
    assert chief["chief"] and not other["chief"]
    assert chief["replicas"] == other["replicas"] == 2 and chief["global_batch"] == 16
    (row,) = chief["history"]
    assert math.isfinite(float(row["loss"])) and math.isfinite(float(row["val_loss"]))
    assert 0.0 <= chief["metrics"]["accuracy"] <= 1.0
    assert "peak lr 0.02" in outputs[0]  # 0.01 × 2 replicas (scale_lr)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mw"]
    assert (tmp_path / "runs" / "mw" / "model.keras").exists()
    assert list((tmp_path / "tmp1").iterdir()) == []  # the worker's own copy is gone


@pytest.mark.slow
def test_segmentation_with_its_epoch_metrics_trains_under_mirrored(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
    from test_segment_run import _masks

    data = _masks(tmp_path / "cells", count=8)
    settings = {
        "task": "segment",
        "data": str(data),
        "model": "unet",  # BatchNorm and the per-epoch val_miou callback
        "model_options": {"base_filters": 8},
        "weights": None,
        "imgsz": 64,
        "batch": 2,
        "epochs": 2,
        "out": str(tmp_path / "runs"),
        "name": "seg",
        "verbose": 0,
        "patience": 0,
        "strategy": "mirrored",
    }
    spec = {"cpus": 2, "task": "segment", "runs": [settings], "result": str(tmp_path / "r.json")}
    _finish(_start(spec, tmp_path / "spec.json"))
    (result,) = json.loads((tmp_path / "r.json").read_text())
    assert result["replicas"] == 2 and result["global_batch"] == 4
    assert [int(r["epoch"]) for r in result["history"]] == [0, 1]
    for row in result["history"]:
        assert 0.0 <= float(row["val_miou"]) <= 1.0 and math.isfinite(float(row["loss"]))
    assert 0.0 <= result["metrics"]["miou"] <= 1.0
    assert (tmp_path / "runs" / "seg" / "model.keras").exists()
