"""Mixed precision per task: under ``mixed_bfloat16`` the body computes in bfloat16 while
every head's output and every task loss stay float32; one training step of a tiny model of
each task is finite. (``mixed_float16`` has the same checks in test_classify_commands,
test_detection_losses and test_segmentation_losses.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionkit.cfg import resolve
from visionkit.tasks.registry import get_task

CASES = {
    # case: (model, options, image size): one model of each task (kept small: the heads,
    # the detector's box decoding and the losses are what is checked)
    "classify": ("resnet20", {}, 32),
    "detect": ("yolo_n", {}, 64),
    "segment": ("unet", {"base_filters": 8}, 32),
}
SLOW = ("detect",)


def _batch(task: str, size: int, num_classes: int):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (2, size, size, 3)), tf.float32)
    if task == "classify":
        return images, tf.one_hot([0, 2], num_classes)
    if task == "detect":
        boxes = np.zeros((2, 4, 4), np.float32)
        boxes[:, 0] = [4, 6, size / 2, size / 2 + 5]
        classes = np.full((2, 4), -1, np.int32)
        classes[:, 0] = [1, 0]
        return images, {"boxes": tf.constant(boxes), "classes": tf.constant(classes)}
    return images, tf.constant(rng.integers(0, num_classes, (2, size, size)), tf.int32)


@pytest.fixture(autouse=True)
def _policy():
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES]
)
def test_bfloat16_heads_and_losses_stay_float32(case):
    name, options, size = CASES[case]
    task = get_task(case.split("_")[0])
    precision = "mixed_bfloat16"
    config = task.fill_defaults(
        resolve(
            {
                "task": task.name,
                "model": name,
                "model_options": options,
                "weights": None,
                "imgsz": size,
                "precision": precision,
                "lr": 1e-3,
            }
        )
    )
    config["num_classes"] = 3
    keras.mixed_precision.set_global_policy(precision)
    model, _ = task.build_model(config, ["a", "b", "c"])
    low = "bfloat16"
    computes = {layer.dtype_policy.compute_dtype for layer in model.layers if layer.weights}
    assert low in computes  # the body runs in the low precision...
    for output in model.outputs:
        assert output.dtype == "float32", model.name  # ...the head does not

    compile_args = task.compile_args(config, 3)
    images, targets = _batch(task.name, size, 3)
    dataset = task.adapt_dataset(tf.data.Dataset.from_tensors((images, targets)), model)
    x, y = next(iter(dataset))
    predictions = model(x, training=False)
    loss = compile_args["loss"](y, tf.nest.map_structure(lambda t: tf.cast(t, low), predictions))
    assert loss.dtype == tf.float32  # low-precision predictions, float32 loss

    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args)
    model.optimizer.build(model.trainable_variables)  # one trace of the step, not two
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
