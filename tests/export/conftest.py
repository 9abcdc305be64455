"""Tiny run folders (model.keras + config.yaml + data) for the export tests, built once.

Classification: LeNet-5 (one grey channel: the exports convert RGB inside) at 32×32 on dark vs bright noise images (trained for a few
epochs so int8 agreement is meaningful). Segmentation: a U-Net with 8 base filters at
32×32 on bright squares (0/255 masks). Images are 40×48 so the pipeline resizes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _classify_data(root: Path, per_class: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for name, (low, high) in {"bright": (150, 256), "dark": (0, 100)}.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _segment_data(root: Path, count: int = 12) -> Path:
    rng = np.random.default_rng(1)
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    for i in range(count):
        mask = np.zeros((40, 48), np.uint8)
        y, x = rng.integers(0, 20, 2)
        mask[y : y + 20, x : x + 24] = 255
        image = np.where(mask > 0, 200, 40).astype(np.uint8) + rng.integers(
            0, 20, (40, 48), dtype=np.uint8
        )
        Image.fromarray(np.stack([image] * 3, -1)).save(root / "image" / f"{i}.png")
        Image.fromarray(mask).save(root / "label" / f"{i}.png")
    return root


VOC = """<annotation><filename>{name}</filename><size><width>96</width><height>64</height><depth>3</depth></size>
<object><name>square</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>
</annotation>"""


def _voc_data(root: Path, count: int = 8) -> Path:
    rng = np.random.default_rng(2)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(count):
        pixels = rng.integers(0, 60, (64, 96, 3), dtype=np.uint8)
        x0, y0 = rng.integers(5, 40, 2)
        x1, y1 = x0 + rng.integers(15, 40), y0 + rng.integers(10, 20)
        pixels[y0:y1, x0:x1] = (230, 200, 40)
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        (root / "annotations" / f"{i}.xml").write_text(
            VOC.format(name=f"{i}.png", x0=x0, y0=y0, x1=x1, y1=y1)
        )
    return root


def detect_run(root: Path) -> Path:
    """An untrained narrow YOLO-n at 64×64 (parity needs no training); conf=0.005 so that
    its near-prior scores (~0.01) still give detections to compare."""
    import keras

    from visionkit.cfg import resolve
    from visionkit.io import write_yaml
    from visionkit.models import create_model

    data = _voc_data(root / "voc")
    keras.utils.set_random_seed(0)
    options = {"width": 0.125, "depth": 0.33}
    model = create_model("yolo_n", num_classes=1, input_shape=(64, 64, 3), weights=None, **options)
    run = root / "run"
    run.mkdir()
    model.save(run / "model.keras")
    config = resolve(
        {
            "task": "detect",
            "data": str(data),
            "format": "voc",
            "model": "yolo_n",
            "model_options": options,
            "weights": None,
            "imgsz": 64,
            "batch": 4,
            "conf": 0.005,
            "max_det": 50,
        }
    )
    config.update(class_names=["square"], num_classes=1, input_shape=[64, 64, 3])
    write_yaml(run / "config.yaml", config)
    keras.backend.clear_session()
    return run


def make_run(root: Path, task: str, model_name: str, options: dict, epochs: int) -> Path:
    """Build, briefly train and save a run folder the way the trainer lays it out."""
    import keras

    from visionkit.cfg import resolve
    from visionkit.data.loader import load_dataset
    from visionkit.data.pipeline import build_pipeline
    from visionkit.io import write_yaml
    from visionkit.models import create_model

    data = (_classify_data if task == "classify" else _segment_data)(root / "data")
    dataset = load_dataset(str(data), task=task)
    keras.utils.set_random_seed(0)
    model = create_model(
        model_name,
        num_classes=len(dataset.class_names),
        input_shape=(32, 32, 1 if model_name == "lenet5" else 3),
        weights=None,
        **options,
    )
    pipeline = build_pipeline(dataset, task=task, imgsz=32, batch=4, training=False)
    if task == "segment":
        import tensorflow as tf

        pipeline = pipeline.map(lambda x, y: (x, tf.where(y == 255, 0, y)))
        loss = "sparse_categorical_crossentropy"
    else:
        from visionkit.tasks.classify import ClassifyTask

        pipeline = ClassifyTask().adapt_dataset(pipeline, model)  # grey for LeNet-5
        loss = "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=loss)
    model.optimizer.build(model.trainable_variables)  # one trace of the step, not two
    model.fit(pipeline, epochs=epochs, verbose=0, shuffle=False)
    run = root / "run"
    run.mkdir()
    model.save(run / "model.keras")
    config = resolve(
        {
            "task": task,
            "data": str(data),
            "model": model_name,
            "model_options": options,
            "weights": None,
            "imgsz": 32,
            "batch": 8,
            "val_fraction": 0.25,
            "out": str(root),
            "name": "run",
        }
    )
    config.update(
        class_names=list(dataset.class_names),
        num_classes=len(dataset.class_names),
        input_shape=list(model.input_shape[1:]),
    )
    write_yaml(run / "config.yaml", config)
    keras.backend.clear_session()
    return run


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("classify"), "classify", "lenet5", {}, epochs=8)


@pytest.fixture(scope="session")
def segment_run(tmp_path_factory) -> Path:
    return make_run(
        tmp_path_factory.mktemp("segment"), "segment", "unet", {"base_filters": 8}, epochs=3
    )


@pytest.fixture(scope="session")
def detection_run(tmp_path_factory) -> Path:
    return detect_run(tmp_path_factory.mktemp("detect"))
