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
            "border_weight": 10.0,  # one square per mask: all weights 1, the 3-tuple path runs
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


def test_border_weights_follow_the_augmented_masks(tmp_path):
    """``border_weight`` adds each augmented training mask's U-Net weight map as the batch's
    sample weights (a run trains with them in ``test_segmentation_run``); 0 leaves the
    batches as they are."""
    from visionkit.data.loader import load_dataset
    from visionkit.data.pipeline import build_pipeline
    from visionkit.train.losses_segmentation import border_weight_maps

    data = tmp_path / "cells"
    (data / "image").mkdir(parents=True)
    (data / "label").mkdir()
    for i in range(4):  # two cells with a gap of 3 + i pixels: border weights between them
        mask = np.zeros((64, 64), np.uint8)
        mask[8:56, 6:30] = 255
        mask[8:56, 33 + i : 58] = 255
        Image.fromarray(mask).save(data / "label" / f"{i}.png")
        Image.fromarray(np.where(mask > 0, 200, 40).astype(np.uint8)).save(
            data / "image" / f"{i}.png"
        )
    task = get_task("segment")
    dataset = load_dataset(str(data), None, "segment", None)
    pipeline = build_pipeline(dataset, task="segment", imgsz=64, batch=2, training=True, seed=1)
    assert task.weight_training_batches(pipeline, {"border_weight": 0}) is pipeline
    weighted = task.weight_training_batches(pipeline, {"border_weight": 10.0, "border_sigma": 3.0})
    for images, masks, weights in weighted.take(2):
        assert weights.shape == masks.shape[:3] and images.shape[0] == 2
        np.testing.assert_allclose(
            weights.numpy(), border_weight_maps(masks.numpy(), w0=10.0, sigma=3.0)
        )
        assert weights.numpy().max() > 2.0  # the gap between the cells weighs more
