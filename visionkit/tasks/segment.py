"""Semantic segmentation: U-Net and DeepLabV3+ as a task of the shared trainer.

Masks come from the segmentation pipeline (mask-aware augmentation, nearest-neighbour
resizing, 255 = ignore for padding and rotation fill; binary 0/255 masks are mapped to
{0, 1} by the dataset's ``mask_value_map``). The loss is cross-entropy plus Dice, both
honouring the ignore index; validation accumulates a confusion matrix for mIoU, Dice and
pixel accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionkit.config import ConfigError
from visionkit.data.types import Dataset
from visionkit.io import write_json
from visionkit.tasks.base import Task


class SegmentTask(Task):
    """Semantic segmentation with U-Net (from scratch or on a pretrained encoder) or DeepLabV3+."""

    name = "segment"
    defaults: ClassVar[dict[str, Any]] = {"model": "unet_lite0", "imgsz": 256}

    def build_model(self, config: dict[str, Any], class_names: list[str]):
        from visionkit.backbones import backbone_info
        from visionkit.models import create_model, list_models, model_info

        name, num_classes = str(config["model"]), len(class_names)
        size = int(config["imgsz"]) if isinstance(config["imgsz"], int) else config["imgsz"]
        shape = (size, size, 3) if isinstance(size, int) else (int(size[0]), int(size[1]), 3)
        model = self.trained_model(name)
        if model is not None:
            return model, {"pretrained": True, "backbone": None}
        if name not in list_models(task="segment"):
            raise ConfigError(
                f"unknown segmentation model {name!r}: `visionkit models --task segment` lists them"
            )
        encoder = model_info(name).backbone
        weights = config["weights"]
        if weights == "auto":
            weights = "imagenet" if encoder and backbone_info(encoder).has_imagenet else None
        options: dict[str, Any] = dict(config.get("model_options") or {})
        model_weights = None
        if weights == "imagenet":
            if encoder is None:
                raise ConfigError(f"{name} has no pretrained encoder; use weights=null")
            options["encoder_weights"] = "imagenet"
        elif weights is not None:
            model_weights = weights
        model = create_model(
            name, num_classes=num_classes, input_shape=shape, weights=model_weights, **options
        )
        return model, {"pretrained": weights is not None, "backbone": encoder}

    def compile_args(self, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
        from visionkit.train.losses_segmentation import segmentation_loss

        return {"loss": segmentation_loss(config, num_classes)}

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
        """mIoU, per-class IoU, Dice and pixel accuracy into ``metrics.json``."""
        from visionkit.evaluate.segmentation import (
            SegmentationMetrics,
            format_segmentation_report,
            probabilities_to_labels,
        )
        from visionkit.predict import run_model

        class_names = list(config.get("class_names") or dataset.class_names)
        pipeline = self.eval_pipeline(model, dataset, config, needs_pil)
        meter = SegmentationMetrics(len(class_names))
        for probs, (masks,) in run_model(model, pipeline, progress=progress, desc=f"val {split}"):
            meter.update(masks, probabilities_to_labels(np.asarray(probs)))
        metrics = meter.result(class_names, split)
        write_json(Path(out_dir) / "metrics.json", metrics)
        print(format_segmentation_report(metrics))
        return metrics
