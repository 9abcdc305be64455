"""What every task shares: its defaults, stage trainability, the evaluation pipeline and
loading a trained model; the tasks add their model, loss and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from visionkit.config import ConfigError

# Keys of the val command line that override the run's own settings in ``validate``.
VAL_KEYS = ("batch", "worst", "conf", "iou", "max_det", "slide", "overlap", "tta")


def not_built(method):
    """Marks a base-class command that a task has not built yet (``is_available`` reads it)."""
    method.available = False
    return method


class Task:
    """Base of ``ClassifyTask``, ``DetectTask`` and ``SegmentTask`` (used by the trainer)."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def fill_defaults(self, config: dict[str, Any]) -> dict[str, Any]:
        """The task's defaults (``model``, ``imgsz``, ...) where the config leaves them null."""
        return {**config, **{k: v for k, v in self.defaults.items() if config.get(k) is None}}

    def build_registered(
        self,
        config: dict[str, Any],
        class_names: list[str],
        input_shape: tuple[int, int, int],
        backbone_option: str,
    ):
        """``(model, info)`` for the registered model ``config["model"]`` of this task.

        ``weights``: ``auto`` → ImageNet weights for its backbone where they exist offline,
        else random; ``imagenet`` → the backbone's (passed as ``backbone_option``); a path →
        weights of the whole model; null → random.
        """
        from visionkit.backbones import backbone_info
        from visionkit.models import create_model, list_models, model_info

        name = str(config["model"])
        if name not in list_models(task=self.name):
            raise ConfigError(
                f"unknown {self.name} model {name!r}: `visionkit models --task {self.name}` lists them"
            )
        backbone = model_info(name).backbone
        weights = config["weights"]
        if weights == "auto":
            weights = "imagenet" if backbone and backbone_info(backbone).has_imagenet else None
        options: dict[str, Any] = dict(config.get("model_options") or {})
        model_weights = None
        if weights == "imagenet":
            if backbone is None:
                raise ConfigError(f"{name} has no pretrained backbone; use weights=null")
            options[backbone_option] = "imagenet"
        elif weights is not None:
            model_weights = weights  # a checkpoint of the whole model
        model = create_model(
            name,
            num_classes=len(class_names),
            input_shape=input_shape,
            weights=model_weights,
            **options,
        )
        return model, {"pretrained": weights is not None, "backbone": backbone}

    def set_trainable(self, model, stage, config: dict[str, Any]) -> None:
        """Apply a recipe stage's trainability (``visionkit.train.freeze.apply_stage``)."""
        from visionkit.train.freeze import apply_stage

        apply_stage(model, stage.trainable, config)

    def callbacks(self, config: dict[str, Any], controls, stage) -> list:
        """Task-specific callbacks of a stage (none by default)."""
        return []

    # Metrics a run of this task logs (each also as ``val_`` + name): ``monitor`` choices.
    metrics: ClassVar[tuple[str, ...]] = ("loss",)

    def metric_names(self, num_classes: int) -> set[str]:
        """What ``monitor`` may name (without the ``val_`` prefix)."""
        return set(self.metrics)

    def epoch_metrics(self, config: dict[str, Any], val_pipeline) -> list:
        """Callbacks adding task metrics (e.g. ``val_map50``) to each epoch's logs (none by
        default: Keras' compiled metrics are enough)."""
        return []

    def adapt_dataset(self, dataset, model):
        """Turn the pipeline's batches into what the model's loss takes (as is by default)."""
        return dataset

    def weight_training_batches(self, dataset, config: dict[str, Any]):
        """Add per-example or per-pixel loss weights to the training batches, as a third
        element (x, y, sample_weight); none by default."""
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

    def test(self, config: dict[str, Any], run) -> dict[str, Any]:
        """Evaluate the run's best model once on ``config["test"]`` into ``RUN/test/``."""
        same = str(config["test"]) == str(config["data"])
        settings = {
            **config,
            "model": str(run.dir),
            "data": config["test"],
            "split": "test" if same else None,
            "out": str(run.dir),
            "name": "test",
        }
        return self.val_command(settings)

    # -- the val command -----------------------------------------------------------------
    def load_trained(self, source: str):
        """``(model, class_names, run_config)`` of a run folder or ``.keras`` file."""
        from visionkit.train.trainer import load_run_model

        model, config = load_run_model(source)
        names = config.get("class_names") or [
            str(i) for i in range(int(config.get("num_classes", 0)))
        ]
        return model, list(names), config

    def align_classes(self, dataset, class_names: list[str]):
        """The data's classes must be the model's, in the same order."""
        if dataset.class_names != class_names:
            raise ConfigError(
                f"the data's classes {dataset.class_names} differ from the model's {class_names}; "
                "evaluate on data labelled with the same classes"
            )
        return dataset

    def val_command(self, config: dict[str, Any]) -> dict[str, Any]:
        """``visionkit TASK val model=RUN data=PATH``: metrics and plots of that data in
        ``out/name`` (the data is checked by the doctor first; faulty files are skipped)."""
        from visionkit.data.loader import load_dataset
        from visionkit.data.prepare import checked

        if not config.get("model") or not config.get("data"):
            raise ConfigError(
                f"visionkit {self.name} val needs model=RUN_FOLDER (or a .keras file) and data=PATH"
            )
        model, class_names, run_config = self.load_trained(str(config["model"]))
        dataset = load_dataset(config["data"], config.get("format"), self.name, config.get("split"))
        dataset = self.align_classes(dataset, class_names)
        progress = int(config["verbose"]) > 0
        dataset, faults, pil, skipped = checked(
            dataset, strict=bool(config["strict"]), progress=progress
        )
        if skipped:
            print(
                f"skipped {skipped} faulty files: {', '.join(sorted({f.kind for f in faults if f.fatal}))}"
            )
        split = config.get("split") or (
            dataset.split if dataset.split != "all" else Path(str(config["data"])).name
        )
        out = output_dir(config, "val")
        merged = {
            **run_config,
            **{k: config[k] for k in VAL_KEYS if k in config},
        }
        merged["class_names"] = class_names
        metrics = self.validate(
            model, dataset, merged, out, split=split, needs_pil=pil, progress=progress
        )
        plots = ", ".join(sorted(p.name for p in out.glob("*.png")))
        print(f"wrote {out / 'metrics.json'}" + (f" and {plots}" if plots else ""))
        return metrics

    @not_built
    def predict_command(self, config: dict[str, Any]) -> Path:
        """``visionkit TASK predict model=... source=FILE|DIR`` (each task builds its own)."""
        raise ConfigError(f"visionkit {self.name} predict is not available in this version")

    def export_command(self, config: dict[str, Any]) -> Path:
        """``visionkit TASK export model=RUN formats=saved_model,tflite_fp32,...``: writes
        ``RUN/export/`` (the formats, labels.txt, preprocessing.json, report.json), each
        export checked against the Keras model on the run's validation split."""
        from visionkit.export import export_run

        if not config.get("model"):
            raise ConfigError(
                f"visionkit {self.name} export needs model=RUN_FOLDER (a folder with model.keras)"
            )
        try:
            return export_run(
                str(config["model"]),
                config["formats"],
                task=self.name,
                val_data=config.get("val"),
                progress=int(config["verbose"]) > 0,
                conf=config.get("export_conf"),
                iou=config.get("iou"),
                max_det=config.get("max_det"),
            )
        except ValueError as err:  # unknown formats, bad runs: a usage error, not a crash
            raise ConfigError(str(err)) from None


def output_dir(config: dict[str, Any], default_name: str) -> Path:
    """``out/name`` for val and predict results (the first free ``default_name`` when unnamed)."""
    from visionkit.train.runs import open_output

    return open_output(config["out"], config.get("name"), default_name)
