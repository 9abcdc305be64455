"""Parity of exports with the Keras model: the largest output difference on the same
inputs, agreement of the decisions, the task metric on the validation split, and latency.

One pass over the validation batches runs the Keras model and every export on the same
uint8 images, so memory stays constant whatever the split's size. Metrics use the task's
own code: classification ``accuracy`` from ``evaluate.classification.classification_metrics``
(as ``ClassifyTask.validate``), segmentation ``miou`` from ``SegmentationMetrics`` (as
``SegmentTask.validate``); detection is added by ``visionkit.export.detection``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from visionkit.export.runtime import Predictor


class Accumulator:
    """Collects one model's outputs over the batches and turns them into metrics."""

    metric = ""

    def update(self, outputs: np.ndarray, targets: Any, reference: np.ndarray) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError


class ClassifyAccumulator(Accumulator):
    """``accuracy`` (and ``top5_accuracy`` with 5+ classes) and top-1 ``agreement``."""

    metric = "accuracy"

    def __init__(self, class_names: list[str]):
        self.class_names = class_names
        self.probs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.same = 0
        self.count = 0

    def update(self, outputs, targets, reference) -> None:
        self.probs.append(np.asarray(outputs, np.float32))
        if targets is not None:
            self.labels.append(np.asarray(targets))
        self.same += int(np.sum(outputs.argmax(-1) == reference.argmax(-1)))
        self.count += len(outputs)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agreement": self.same / max(self.count, 1)}
        if self.labels:
            from visionkit.evaluate.classification import classification_metrics

            metrics = classification_metrics(
                np.concatenate(self.labels), np.concatenate(self.probs), self.class_names
            )
            out = {k: metrics[k] for k in ("accuracy", "top5_accuracy") if k in metrics} | out
        return out


class SegmentAccumulator(Accumulator):
    """``miou`` and ``pixel_accuracy`` against the masks, pixel ``agreement`` with Keras."""

    metric = "miou"

    def __init__(self, class_names: list[str]):
        from visionkit.evaluate.segmentation import SegmentationMetrics

        self.class_names = class_names
        self.meter = SegmentationMetrics(max(len(class_names), 2))
        self.has_targets = False
        self.same = 0
        self.count = 0

    def update(self, outputs, targets, reference) -> None:
        from visionkit.evaluate.segmentation import probabilities_to_labels

        labels = probabilities_to_labels(outputs)
        if targets is not None:
            self.meter.update(targets, labels)
            self.has_targets = True
        self.same += int(np.sum(labels == probabilities_to_labels(reference)))
        self.count += labels.size

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agreement": self.same / max(self.count, 1)}
        if self.has_targets:
            names = self.class_names if len(self.class_names) >= 2 else ["background", "foreground"]
            metrics = self.meter.result(names, "val")
            out = {"miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"]} | out
        return out


def accumulator(
    task: str, class_names: list[str], config: dict[str, Any], size: tuple[int, int]
) -> Accumulator:
    """The metric accumulator of ``task`` (``size``: the model's input, for detection)."""
    if task == "classify":
        return ClassifyAccumulator(class_names)
    if task == "segment":
        return SegmentAccumulator(class_names)
    if task == "detect":
        from visionkit.export.detection import DetectAccumulator

        return DetectAccumulator(class_names, config, size)
    raise ValueError(f"unknown task {task!r}")


def max_abs_diff(outputs: Any, reference: np.ndarray) -> float:
    """max |outputs − reference| (float64); a shape mismatch is an error."""
    outputs = np.asarray(outputs)
    if outputs.shape != reference.shape:
        raise ValueError(
            f"output shape {outputs.shape} differs from the Keras model's {reference.shape}"
        )
    if not outputs.size:
        return 0.0
    return float(np.max(np.abs(outputs.astype(np.float64) - reference.astype(np.float64))))


def compare(
    reference: Predictor,
    predictors: dict[str, Predictor],
    batches: Iterable[tuple[np.ndarray, Any]],
    task: str,
    class_names: list[str],
    config: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``reference`` (the Keras model) and every predictor over ``batches`` of
    ``(uint8 images, targets or None)``; per name (``"keras"`` for the reference):
    ``max_abs_diff`` (predictors only), the task metrics (when targets are given),
    ``agreement`` with the reference's decisions, ``num_examples``.

    Outputs that are dicts (detection TFLite files with post-processing) are compared by
    the task's accumulator, which reports their ``max_abs_diff`` itself."""
    config = config or {}
    size = reference.input_size
    meters = {"keras": accumulator(task, class_names, config, size)}
    meters.update({name: accumulator(task, class_names, config, size) for name in predictors})
    diffs = dict.fromkeys(predictors, 0.0)
    count = 0
    for images, targets in batches:
        ref = np.asarray(reference(images))
        meters["keras"].update(ref, targets, ref)
        for name, predictor in predictors.items():
            outputs = predictor(images)
            if not isinstance(outputs, dict):
                outputs = np.asarray(outputs)
                diffs[name] = max(diffs[name], max_abs_diff(outputs, ref))
            meters[name].update(outputs, targets, ref)
        count += len(images)
    results = {}
    for name, meter in meters.items():
        entry: dict[str, Any] = {} if name == "keras" else {"max_abs_diff": diffs[name]}
        entry.update(meter.result())
        entry["num_examples"] = count
        results[name] = entry
    return results


def latency_ms(
    predictor: Predictor, image: np.ndarray, *, runs: int = 20, warmup: int = 3
) -> float:
    """Median wall time of ``predictor`` on one image (batch 1), in ms, after ``warmup``."""
    batch = np.asarray(image)[None] if np.asarray(image).ndim == 3 else np.asarray(image)[:1]
    for _ in range(max(warmup, 0)):
        predictor(batch)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        predictor(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def random_batches(size: tuple[int, int], count: int = 8, seed: int = 0):
    """Seeded random uint8 images without targets: parity when the run has no data."""
    rng = np.random.default_rng(seed)
    yield rng.integers(0, 256, (count, size[0], size[1], 3), dtype=np.uint8), None
