"""Detection: the YOLO-style detectors (and YOLOv1) as a task of the shared trainer, with
COCO-exact validation.

Training data come from the detection pipeline (letterboxed, Mosaic, MixUp, box-aware
augmentation); targets are packed as one (B, M, 5) tensor ``[x1, y1, x2, y2, class]``
because Keras 3 refuses a dict ``y_true`` for a single-output model. Validation decodes the
raw head, applies class-aware NMS and evaluates with the COCO-style evaluator; boxes are
compared in the letterboxed frame, a uniform scaling and shift of the original one, so IoU
and therefore mAP@0.5 and mAP@0.5:0.95 are the same as in original pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from visionkit.config import ConfigError
from visionkit.data.types import Dataset
from visionkit.io import write_json
from visionkit.tasks.base import Task


class DetectTask(Task):
    """Object detection with an anchor-free YOLO-style detector (or the YOLOv1 teaching model)."""

    name = "detect"
    defaults: ClassVar[dict[str, Any]] = {
        "model": "yolo_lite0",
        "imgsz": 640,
        "ema": True,
        "monitor": "val_map50_95",
    }

    def build_model(self, config: dict[str, Any], class_names: list[str]):
        size = _square(config["imgsz"])
        model = self.trained_model(str(config["model"]))
        if model is not None:
            return model, {"pretrained": True, "backbone": None}
        if config["model"] == "yolov1" and config["weights"] == "imagenet":
            raise ConfigError("yolov1 is a from-scratch teaching model; use weights=null")
        return self.build_registered(config, class_names, (size, size, 3), "backbone_weights")

    def callbacks(self, config: dict[str, Any], controls, stage) -> list:
        """Mosaic off for the last ``close_mosaic`` epochs (YOLOX/YOLOv8 practice)."""
        import keras

        last = int(config["epochs"]) - int(config["close_mosaic"])

        class CloseMosaic(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs=None) -> None:
                if epoch >= last:
                    controls.set_mosaic_prob(0.0)
                    controls.set_mixup_prob(0.0)

        return [CloseMosaic()]

    def compile_args(self, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
        from visionkit.train.losses import YoloLoss, YoloV1Loss

        size = _square(config["imgsz"])
        if config["model"] == "yolov1":
            return {"loss": YoloV1Loss(image_size=(size, size), num_classes=num_classes)}
        return {"loss": YoloLoss(image_size=(size, size), num_classes=num_classes)}

    metrics: ClassVar[tuple[str, ...]] = ("loss", "map50", "map50_95")

    def epoch_metrics(self, config: dict[str, Any], val_pipeline) -> list:
        """mAP@0.5 and mAP@0.5:0.95 on the validation split after every epoch."""
        from visionkit.train.epoch_metrics import detection_epoch_metrics

        return [detection_epoch_metrics(self, config, val_pipeline)]

    def adapt_dataset(self, dataset, model):
        import tensorflow as tf

        from visionkit.train.losses import pack_targets, trim_padding

        return dataset.map(
            lambda x, y: (x, trim_padding(pack_targets(y))), num_parallel_calls=tf.data.AUTOTUNE
        )

    # -- evaluation ----------------------------------------------------------------------
    def detections(
        self,
        model,
        pipeline,
        config: dict[str, Any],
        *,
        progress: bool,
        score_threshold: float,
        forward=None,
        desc: str = "val",
    ):
        """Per image: ground truth and NMS'd predictions (NumPy), in the pipeline's frame."""
        import tensorflow as tf

        from visionkit.models.yolo.nms import postprocess
        from visionkit.models.yolov1 import postprocess_yolov1
        from visionkit.predict import run_model

        size = tuple(model.input_shape[1:3])
        postprocessed = getattr(model, "postprocessed", False)  # a TFLite file with NMS inside
        is_v1 = not postprocessed and len(model.output_shape) == 4
        truths, predictions = [], []
        # forward: the per-epoch metrics pass the training model's own; val and predict fold
        batches = run_model(
            model, pipeline, progress=progress, desc=desc, forward=forward, fold=forward is None
        )
        for raw, (targets,) in batches:
            if postprocessed:
                from visionkit.export.detection import from_postprocess

                found = from_postprocess(raw, size)
                for i, dets in enumerate(found):
                    keep = targets["classes"][i] >= 0
                    truths.append(
                        {"boxes": targets["boxes"][i][keep], "classes": targets["classes"][i][keep]}
                    )
                    above = dets["scores"] >= score_threshold
                    predictions.append({k: v[above] for k, v in dets.items()})
                continue
            if is_v1:
                boxes, scores, classes, valid = postprocess_yolov1(
                    tf.constant(raw),
                    size,
                    num_classes=int(config["num_classes"]),
                    score_threshold=score_threshold,
                )
            else:
                boxes, scores, classes, valid = postprocess(
                    tf.constant(raw),
                    size,
                    score_threshold=score_threshold,
                    iou_threshold=float(config["iou"]),
                    max_detections=int(config["max_det"]),
                )
            boxes, scores, classes, valid = (t.numpy() for t in (boxes, scores, classes, valid))
            for i in range(len(valid)):
                keep = targets["classes"][i] >= 0
                truths.append(
                    {"boxes": targets["boxes"][i][keep], "classes": targets["classes"][i][keep]}
                )
                n = int(valid[i])
                predictions.append(
                    {"boxes": boxes[i, :n], "scores": scores[i, :n], "classes": classes[i, :n]}
                )
        return truths, predictions

    def validate(
        self,
        model,
        dataset: Dataset,
        config: dict[str, Any],
        out_dir: str | Path,
        *,
        split: str = "val",
        progress: bool = True,
        needs_pil: set[str] | None = None,
    ) -> dict[str, Any]:
        """mAP@0.5:0.95, mAP@0.5, per-class AP; ``metrics.json``, PR curves, confusion matrix."""
        from visionkit.evaluate.detection import (
            detection_confusion_matrix,
            evaluate_detections,
            format_detection_report,
        )
        from visionkit.evaluate.detection_plots import (
            plot_detection_confusion_matrix,
            plot_pr_curves,
        )
        from visionkit.models.yolo.nms import EVAL_SCORE_THRESHOLD

        out_dir = Path(out_dir)
        class_names = list(config.get("class_names") or dataset.class_names)
        pipeline = self.eval_pipeline(model, dataset, config, needs_pil)
        config = {**config, "num_classes": len(class_names)}
        truths, predictions = self.detections(
            model, pipeline, config, progress=progress, score_threshold=EVAL_SCORE_THRESHOLD
        )
        result = evaluate_detections(truths, predictions, class_names, split=split)
        metrics = result.metrics
        write_json(out_dir / "metrics.json", metrics)
        plot_pr_curves(result, class_names, out_dir / "pr_curves.png")
        matrix = detection_confusion_matrix(
            truths, predictions, len(class_names), score_threshold=float(config["conf"])
        )
        plot_detection_confusion_matrix(matrix, class_names, out_dir / "confusion_matrix.png")
        print(format_detection_report(metrics))
        return metrics

    def predict_command(self, config: dict[str, Any]) -> Path:
        """``visionkit detect predict model=RUN source=FILE|DIR``: boxes in original-image
        pixels (CSV, JSON) and annotated images (``visionkit.tasks.detect_predict``)."""
        from visionkit.tasks.detect_predict import predict_command

        return predict_command(self, config)


def _square(value) -> int:
    if isinstance(value, int):
        size = value
    elif isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        size = int(value[0])
    else:
        raise ConfigError(f"detection needs a square imgsz divisible by 32, got {value!r}")
    if size % 32:
        raise ConfigError(
            f"imgsz={size}: detectors need a multiple of 32 (e.g. {32 * round(size / 32) or 32})"
        )
    return size
