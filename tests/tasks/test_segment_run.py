"""A segmentation run end to end on tiny binary 0/255 masks (the membrane layout)."""

from __future__ import annotations

import json

import keras
import numpy as np
from PIL import Image

from visionkit.cfg import resolve
from visionkit.tasks.registry import get_task
from visionkit.train.trainer import train


def _masks(root, count: int = 10, size: int = 64):
    rng = np.random.default_rng(0)
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    for i in range(count):
        mask = np.zeros((size, size), np.uint8)
        y, x = rng.integers(0, size // 2, 2)
        mask[y : y + size // 2, x : x + size // 2] = 255
        image = np.where(mask > 0, 200, 40).astype(np.uint8) + rng.integers(
            0, 20, (size, size), dtype=np.uint8
        )
        Image.fromarray(image).save(root / "image" / f"{i}.png")
        Image.fromarray(mask).save(root / "label" / f"{i}.png")
    return root


def test_segmentation_run(tmp_path):
    data = _masks(tmp_path / "cells")
    config = resolve(
        {
            "task": "segment",
            "data": str(data),
            "model": "unet",
            "model_options": {"base_filters": 8},
            "weights": None,
            "imgsz": 64,
            "batch": 4,
            "epochs": 6,
            "lr": 0.01,
            "out": str(tmp_path / "runs"),
            "verbose": 0,
            "patience": 0,
        }
    )
    result = train(get_task("segment"), config)
    metrics = json.loads(result.run.metrics.read_text())
    assert {"miou", "dice", "pixel_accuracy", "per_class_iou", "num_examples", "split"} <= set(
        metrics
    )
    assert set(metrics["per_class_iou"]) == {"background", "foreground"}  # 0/255 mapped to {0, 1}
    assert metrics["num_examples"] == 2
    assert metrics["pixel_accuracy"] > 0.7  # two flat regions: learnable in a few epochs
    model = keras.saving.load_model(result.run.model, safe_mode=True)
    assert model.output_shape == (None, 64, 64, 2)

    report = get_task("segment").val_command(
        resolve(
            {
                "task": "segment",
                "model": str(result.run.dir),
                "data": str(data),
                "out": str(tmp_path / "reports"),
                "name": "all",
                "verbose": 0,
            }
        )
    )
    assert report["num_examples"] == 10 and report["pixel_accuracy"] > 0.7
    assert (tmp_path / "reports" / "all" / "metrics.json").exists()
    keras.backend.clear_session()
