"""Per-epoch validation metrics that Keras cannot compute as compiled metrics: COCO mAP of
a detector (after decoding and NMS) and mIoU of a segmenter, added to the epoch's logs
as ``val_map50``/``val_map50_95`` and ``val_miou``/``val_pixel_accuracy`` so they can pick
checkpoints (``monitor``) and drive early stopping."""

from __future__ import annotations

from typing import Any

import numpy as np

from visionkit.train.callbacks import EpochMetrics


def detection_epoch_metrics(task, config: dict[str, Any], val_pipeline) -> EpochMetrics:
    """mAP@0.5 and mAP@0.5:0.95 of the model on ``val_pipeline`` (unpacked targets)."""
    from visionkit.evaluate.detection import evaluate_detections
    from visionkit.models.yolo.nms import EVAL_SCORE_THRESHOLD
    from visionkit.predict import compiled_forward

    forwards: dict[int, Any] = {}
    settings = {**config, "num_classes": int(config["num_classes"])}
    names = [str(i) for i in range(int(config["num_classes"]))]

    def compute(model) -> dict[str, float]:
        if id(model) not in forwards:
            forwards[id(model)] = compiled_forward(model)
        forward = forwards[id(model)]
        truths, predictions = task.detections(
            model,
            val_pipeline,
            settings,
            progress=False,
            score_threshold=EVAL_SCORE_THRESHOLD,
            forward=forward,
        )
        metrics = evaluate_detections(truths, predictions, names).metrics
        return {"map50": metrics["map50"], "map50_95": metrics["map50_95"]}

    return EpochMetrics(compute)


def segmentation_epoch_metrics(config: dict[str, Any], val_pipeline) -> EpochMetrics:
    """mIoU and pixel accuracy of the model on ``val_pipeline``."""
    from visionkit.evaluate.segmentation import SegmentationMetrics, probabilities_to_labels
    from visionkit.predict import compiled_forward, run_model

    forwards: dict[int, Any] = {}
    num_classes = int(config["num_classes"])
    names = [str(i) for i in range(num_classes)]

    def compute(model) -> dict[str, float]:
        if id(model) not in forwards:
            forwards[id(model)] = compiled_forward(model)
        forward = forwards[id(model)]
        meter = SegmentationMetrics(num_classes)
        for probs, (masks,) in run_model(model, val_pipeline, progress=False, forward=forward):
            meter.update(masks, probabilities_to_labels(np.asarray(probs)))
        metrics = meter.result(names, "val")
        return {"miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"]}

    return EpochMetrics(compute)
