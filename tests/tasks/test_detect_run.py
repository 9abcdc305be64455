"""A detection run end to end on a tiny synthetic VOC dataset: packed targets, EMA,
Mosaic switched off at the end, COCO-style validation and the run folder."""

from __future__ import annotations

import json

import keras
import numpy as np
from PIL import Image

from visionkit.cfg import resolve
from visionkit.tasks.registry import get_task
from visionkit.train.trainer import train

VOC = """<annotation><filename>{name}</filename><size><width>96</width><height>96</height><depth>3</depth></size>
<object><name>square</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>
</annotation>"""


def _voc(root, count: int = 12):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(count):
        pixels = rng.integers(0, 60, (96, 96, 3), dtype=np.uint8)
        x0, y0 = rng.integers(5, 50, 2)
        x1, y1 = x0 + rng.integers(20, 40), y0 + rng.integers(20, 40)
        pixels[y0:y1, x0:x1] = (230, 200, 40)
        Image.fromarray(pixels).save(root / "images" / f"{i}.jpg")
        (root / "annotations" / f"{i}.xml").write_text(
            VOC.format(name=f"{i}.jpg", x0=x0, y0=y0, x1=x1, y1=y1)
        )
    return root


def test_detection_run(tmp_path):
    data = _voc(tmp_path / "voc")
    config = resolve(
        {
            "task": "detect",
            "data": str(data),
            "format": "voc",
            "model": "yolo_n",
            "weights": None,
            "imgsz": 64,
            "batch": 4,
            "epochs": 2,
            "close_mosaic": 1,
            "out": str(tmp_path / "runs"),
            "verbose": 0,
            "patience": 0,
        }
    )
    result = train(get_task("detect"), config)
    run = result.run
    metrics = json.loads(run.metrics.read_text())
    assert {"map50", "map50_95", "per_class_ap50", "num_examples", "split"} <= set(metrics)
    assert metrics["num_examples"] == 2 and 0.0 <= metrics["map50"] <= 1.0
    assert set(metrics["per_class_ap50"]) == {"square"}
    for name in ("pr_curves.png", "confusion_matrix.png", "curves.png", "config.yaml"):
        assert (run.dir / name).exists(), name
    saved = run.read_config()
    assert saved["ema"] is True and saved["model"] == "yolo_n" and saved["imgsz"] == 64
    model = keras.saving.load_model(run.model, safe_mode=True)
    assert model.output_shape == (None, 84, 4 * 16 + 1)

    # `visionkit detect val` on other data labelled with the same classes.
    test = _voc(tmp_path / "voc_test", count=4)
    report = get_task("detect").val_command(
        resolve(
            {
                "task": "detect",
                "model": str(run.dir),
                "data": str(test),
                "format": "voc",
                "out": str(tmp_path / "reports"),
                "name": "test",
                "verbose": 0,
            }
        )
    )
    assert report["num_examples"] == 4 and report["split"] == "voc_test"
    assert (tmp_path / "reports" / "test" / "pr_curves.png").exists()
    keras.backend.clear_session()
