"""What every task shares: its defaults, stage trainability, the evaluation pipeline and
loading a trained model; the tasks add their model, loss and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar


class Task:
    """Base of ``ClassifyTask``, ``DetectTask`` and ``SegmentTask`` (used by the trainer)."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def fill_defaults(self, config: dict[str, Any]) -> dict[str, Any]:
        """The task's defaults (``model``, ``imgsz``, ...) where the config leaves them null."""
        return {**config, **{k: v for k, v in self.defaults.items() if config.get(k) is None}}

    def set_trainable(self, model, stage, config: dict[str, Any]) -> None:
        """Apply a recipe stage's trainability (``visionkit.train.freeze.apply_stage``)."""
        from visionkit.train.freeze import apply_stage

        apply_stage(model, stage.trainable, config)

    def callbacks(self, config: dict[str, Any], controls, stage) -> list:
        """Task-specific callbacks of a stage (none by default)."""
        return []

    def adapt_dataset(self, dataset, model):
        """Turn the pipeline's batches into what the model's loss takes (as is by default)."""
        return dataset

    def eval_pipeline(
        self, model, dataset, config: dict[str, Any], needs_pil: set[str] | None = None
    ):
        """The unaugmented, unshuffled pipeline of ``dataset`` at the model's input size."""
        from visionkit.data.pipeline import build_pipeline

        return build_pipeline(
            dataset,
            task=self.name,
            imgsz=tuple(model.input_shape[1:3]),
            batch=int(config.get("batch") or 16),
            training=False,
            augment=False,
            needs_pil=needs_pil or set(),
        )

    @staticmethod
    def trained_model(name: str):
        """The model of a run folder or ``.keras`` file named by ``model=``, else None."""
        if not (name.endswith(".keras") or Path(name, "model.keras").exists()):
            return None
        from visionkit.train.trainer import load_run_model

        return load_run_model(name)[0]
