"""Semantic segmentation: U-Net and DeepLabV3+ as a task of the shared trainer.

Masks come from the segmentation pipeline (mask-aware augmentation, nearest-neighbour
resizing, 255 = ignore for padding and rotation fill; binary 0/255 masks are mapped to
{0, 1} by the dataset's ``mask_value_map``). The loss is cross-entropy plus Dice, both
honouring the ignore index; validation accumulates a confusion matrix for mIoU, Dice and
pixel accuracy, with per-image scores (``per_image.csv``) and the worst images drawn with
their errors (``worst.png``).

``visionkit segment predict`` writes class-id masks, colour masks and overlays per image
and a CSV of class fractions. Both val and predict take ``slide=true``: images larger than
the model's input are then predicted at native resolution by overlapping windows
(``visionkit.sliding_window``); otherwise each image is resized to the model's input and
the probabilities back to the image's size. ``tta=true`` averages the probabilities over
the flips of each image (and its transposes when square; 4× or 8× the compute);
``tta=hflip`` (or any comma-separated subset of ``hflip,vflip,transpose``) over those only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionkit.config import ConfigError
from visionkit.data.types import Dataset
from visionkit.io import write_json
from visionkit.tasks.base import Task, output_dir

MAX_GRID_SIDE = 512  # longest side of an image in the overlay and worst-image grids


class SegmentTask(Task):
    """Semantic segmentation with U-Net (from scratch or on a pretrained encoder) or DeepLabV3+."""

    name = "segment"
    defaults: ClassVar[dict[str, Any]] = {
        "model": "unet_lite0",
        "imgsz": 256,
        "monitor": "val_miou",
    }

    metrics: ClassVar[tuple[str, ...]] = ("loss", "miou", "pixel_accuracy")

    def epoch_metrics(self, config: dict[str, Any], val_pipeline) -> list:
        """mIoU and pixel accuracy on the validation split after every epoch."""
        from visionkit.train.epoch_metrics import segmentation_epoch_metrics

        return [segmentation_epoch_metrics(config, val_pipeline)]

    def build_model(self, config: dict[str, Any], class_names: list[str]):
        size = int(config["imgsz"]) if isinstance(config["imgsz"], int) else config["imgsz"]
        shape = (size, size, 3) if isinstance(size, int) else (int(size[0]), int(size[1]), 3)
        model = self.trained_model(str(config["model"]))
        if model is not None:
            return model, {"pretrained": True, "backbone": None}
        return self.build_registered(config, class_names, shape, "encoder_weights")

    def weight_training_batches(self, dataset, config: dict[str, Any]):
        """With ``border_weight`` = w0 > 0, each training mask's U-Net border weight map
        (Ronneberger et al. 2015, eq. 2: w0 · exp(−(d1 + d2)² / 2σ²) on background pixels
        between two objects, σ = ``border_sigma``) becomes the batch's per-pixel loss weight,
        computed after augmentation so it follows the deformed mask."""
        w0 = float(config.get("border_weight") or 0.0)
        if w0 <= 0:
            return dataset
        import tensorflow as tf

        from visionkit.train.losses_segmentation import border_weight_maps

        sigma = float(config.get("border_sigma") or 5.0)

        def weights(masks):
            return border_weight_maps(masks, w0=w0, sigma=sigma)

        def add(images, masks):
            maps = tf.numpy_function(weights, [masks], tf.float32, stateful=False)
            maps.set_shape(masks.shape[:3])
            return images, masks, maps

        return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)

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
        """mIoU, per-class IoU, Dice and pixel accuracy into ``metrics.json``; per-image
        scores into ``per_image.csv`` (worst first) and the ``worst`` images into ``worst.png``.

        ``slide=false``: the batched evaluation pipeline (images resized to the model's
        input, masks nearest), scored at the model's resolution. ``slide=true``: each image
        at its native resolution (sliding windows where it is larger than the model's
        input, see ``predict_masks``) against its native mask, mapped through the dataset's
        ``mask_value_map``.
        """
        from tqdm.auto import tqdm

        from visionkit.evaluate.segmentation import (
            SegmentationMetrics,
            format_segmentation_report,
            probabilities_to_labels,
        )
        from visionkit.predict import run_model

        out_dir = Path(out_dir)
        class_names = list(config.get("class_names") or dataset.class_names)
        meter = SegmentationMetrics(len(class_names))
        worst = _WorstImages(int(config.get("worst", 16)))
        scores: list[dict[str, Any]] = []

        def score(index: int, true: np.ndarray, pred: np.ndarray) -> None:
            one = SegmentationMetrics(len(class_names)).update(true, pred)
            meter.confusion += one.confusion
            meter.num_examples += 1
            row = {"path": _example_name(dataset, index), **image_scores(one.confusion)}
            scores.append(row)
            worst.add(row["score"], index, true, pred, row["metric"])

        if config.get("slide"):
            size = _input_size(model, config)
            forward, channels = segment_forward(model, config), int(model.output_shape[-1])
            batch = int(config.get("batch") or 16)
            table = _mask_table(getattr(dataset, "mask_value_map", None))
            with tqdm(
                total=len(dataset), desc=f"val {split}", unit="img", disable=not progress
            ) as bar:
                for start in range(0, len(dataset), batch):
                    indices = range(start, min(start + batch, len(dataset)))
                    images = [_example_image(dataset.examples[i]) for i in indices]
                    preds = predict_masks(
                        forward,
                        images,
                        size,
                        channels=channels,
                        slide=True,
                        overlap=_overlap(config),
                        batch=batch,
                    )
                    for i, pred in zip(indices, preds, strict=True):
                        score(i, _example_mask(dataset.examples[i], table), pred)
                    bar.update(len(indices))
        else:
            pipeline = self.eval_pipeline(model, dataset, config, needs_pil)
            index = 0
            for probs, (masks,) in run_model(
                model,
                pipeline,
                progress=progress,
                desc=f"val {split}",
                forward=segment_forward(model, config),
            ):
                for true, pred in zip(
                    masks, probabilities_to_labels(np.asarray(probs)), strict=True
                ):
                    score(index, true, pred)
                    index += 1
        metrics = meter.result(class_names, split)
        write_json(out_dir / "metrics.json", metrics)
        _write_per_image(out_dir / "per_image.csv", scores)
        worst.plot(dataset, out_dir / "worst.png")
        print(format_segmentation_report(metrics))
        return metrics

    def predict_command(self, config: dict[str, Any]) -> Path:
        """``visionkit segment predict model=RUN_FOLDER|FILE.keras source=FILE|DIR
        [slide=true overlap=0.25]``.

        Writes in ``out/name``: ``masks/<stem>.png`` (class ids, single channel, the image's
        size), ``colour/<stem>.png`` (the fixed palette, class 0 black),
        ``overlays/<stem>.jpg`` (the colour mask blended on the image),
        ``predictions.csv`` (path, width, height, the pixel fraction of each class, error)
        and ``overlays.png`` (the first 16 overlays with the class colours). Unreadable
        images get an error row; the run goes on. ``<stem>`` is the image's path relative
        to ``source`` without its suffix. Returns the output folder.
        """
        import csv

        from PIL import Image
        from tqdm.auto import tqdm

        from visionkit.data.images import ImageReadError, read_image
        from visionkit.data.inputs import image_files
        from visionkit.evaluate.segmentation_plots import (
            class_legend,
            colourise,
            overlay,
            palette,
            plot_mask_grid,
        )
        from visionkit.io import atomic_path

        if not config.get("model") or not config.get("source"):
            raise ConfigError(
                "visionkit segment predict needs model=RUN_FOLDER|FILE.keras and source=FILE|DIR"
            )
        slide, overlap = bool(config.get("slide")), _overlap(config)
        model, names, run_config = self.load_trained(str(config["model"]))
        size = _input_size(model, run_config)
        channels = int(model.output_shape[-1])
        class_names = _class_names(names, channels)
        colours = palette(len(class_names))
        files = image_files(str(config["source"]))
        stems = _output_stems(files, Path(str(config["source"])))
        out = output_dir(config, "predict")
        forward = segment_forward(model, config)
        batch = int(config.get("batch") or 16)
        rows: list[list[Any]] = []
        shown: list[tuple[np.ndarray, str]] = []
        present: set[int] = set()
        failed = slid = 0

        def save(array: np.ndarray, path: Path, **options) -> None:
            with atomic_path(path) as tmp:
                Image.fromarray(array).save(tmp, **options)

        with tqdm(
            total=len(files), desc="predict", unit="img", disable=int(config["verbose"]) <= 0
        ) as bar:
            for start in range(0, len(files), batch):
                chunk = files[start : start + batch]
                images: dict[str, np.ndarray] = {}
                errors: dict[str, str] = {}
                for path in chunk:
                    try:
                        images[path] = read_image(path)
                    except ImageReadError as err:
                        errors[path] = f"{err.kind}: {err.detail}"
                masks = predict_masks(
                    forward,
                    list(images.values()),
                    size,
                    channels=channels,
                    slide=slide,
                    overlap=overlap,
                    batch=batch,
                )
                predicted = dict(zip(images, masks, strict=True))
                for path in chunk:
                    if path in errors:
                        failed += 1
                        rows.append([path, "", "", *[""] * len(class_names), errors[path]])
                        continue
                    image, mask = images[path], predicted[path]
                    height, width = mask.shape
                    slid += slide and (height > size[0] or width > size[1])
                    stem = stems[path]
                    dtype = np.uint8 if len(class_names) <= 256 else np.uint16
                    save(mask.astype(dtype), out / "masks" / f"{stem}.png")
                    save(colourise(mask, colours), out / "colour" / f"{stem}.png")
                    blended = overlay(image, mask, colours)
                    save(blended, out / "overlays" / f"{stem}.jpg", quality=90)
                    counts = np.bincount(mask.ravel(), minlength=len(class_names))
                    fractions = counts / mask.size
                    rows.append([path, width, height, *(f"{f:.6f}" for f in fractions), ""])
                    if len(shown) < 16:
                        shown.append((_thumbnail(blended), Path(path).name))
                        present.update(np.flatnonzero(counts).tolist())
                bar.update(len(chunk))
        with atomic_path(out / "predictions.csv") as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "width", "height", *class_names, "error"])
            writer.writerows(rows)
        if shown:
            plot_mask_grid(
                [image for image, _ in shown],
                [title for _, title in shown],
                out / "overlays.png",
                legend=class_legend(class_names, colours, sorted(present)),
                suptitle="predicted masks",
            )
        else:
            (out / "overlays.png").unlink(missing_ok=True)
        done = len(files) - failed
        how = f"{slid} by sliding windows" if slide else f"at {size[0]}x{size[1]}, resized back"
        print(f"{done} images segmented ({how}), {failed} unreadable: {out / 'predictions.csv'}")
        return out


def segment_forward(model, config: dict[str, Any]):
    """The forward pass of segment val/predict: BatchNorm folded, and averaged over the
    symmetries ``tta`` names (``visionkit.predict.flip_averaged``)."""
    from visionkit.predict import compiled_forward, flip_averaged

    symmetries = tta_symmetries(config.get("tta"))
    forward = compiled_forward(model, fold=True)
    return flip_averaged(forward, symmetries) if symmetries else forward


def tta_symmetries(value: bool | str | None) -> tuple[str, ...]:
    """The ``tta`` setting as the symmetries to average over: false none, true all of
    ``hflip, vflip, transpose``, or a comma-separated subset such as ``hflip``."""
    from visionkit.predict import TTA_SYMMETRIES

    if value is None or value is False:
        return ()
    if value is True:
        return TTA_SYMMETRIES
    names = tuple(name.strip() for name in str(value).split(",") if name.strip())
    unknown = [name for name in names if name not in TTA_SYMMETRIES]
    if unknown or not names:
        raise ConfigError(
            f"tta={value}: use true, false or a comma-separated list of "
            f"{', '.join(TTA_SYMMETRIES)} (e.g. tta=hflip)"
        )
    return names


def predict_masks(
    forward,
    images: list[np.ndarray],
    size: tuple[int, int],
    *,
    channels: int,
    slide: bool = False,
    overlap: float = 0.25,
    batch: int = 16,
) -> list[np.ndarray]:
    """Class-id masks (H, W) int64, one per image (H, W, 3), at each image's own size.

    ``forward`` maps float32 (B, h, w, 3) in [0, 255] to (B, h, w, ``channels``)
    probabilities, ``size`` = (h, w) is the model's input. With ``slide`` an image larger
    than ``size`` in a dimension is predicted at native resolution by
    :func:`visionkit.sliding_window.sliding_window_predict`; every other image is resized
    to ``size`` (bilinear, as the evaluation pipeline does), predicted in batches, and its
    probabilities resized back to the image's size (bilinear) before the argmax (or the
    0.5 threshold of a single sigmoid channel).
    """
    import tensorflow as tf

    from visionkit.evaluate.segmentation import probabilities_to_labels
    from visionkit.sliding_window import sliding_window_predict

    size = (int(size[0]), int(size[1]))
    masks: list[np.ndarray | None] = [None] * len(images)
    resized: list[int] = []
    for i, image in enumerate(images):
        height, width = image.shape[:2]
        if slide and (height > size[0] or width > size[1]):
            probs = sliding_window_predict(forward, image, size, overlap, channels, batch)
            masks[i] = probabilities_to_labels(probs)
        else:
            resized.append(i)
    for start in range(0, len(resized), max(1, batch)):
        part = resized[start : start + max(1, batch)]
        inputs = tf.stack([tf.image.resize(tf.cast(images[i], tf.float32), size) for i in part])
        outputs = forward(inputs)
        for i, probs in zip(part, outputs, strict=True):
            native = images[i].shape[:2]
            if tuple(native) != size:
                probs = tf.image.resize(probs, native, method="bilinear")
            masks[i] = probabilities_to_labels(np.asarray(probs))
    return masks  # type: ignore[return-value]


def image_scores(confusion: np.ndarray) -> dict[str, Any]:
    """Scores of one image from its (C, C) confusion matrix (rows true, columns predicted).

    ``miou``: mean IoU over the classes in the truth or the prediction (the rule of
    ``SegmentationMetrics``); ``pixel_accuracy``; ``score``: the mIoU, or the pixel
    accuracy when the image's truth holds a single class (where one stray pixel of another
    class would halve the mIoU); ``metric`` names which. NaN when no pixel was scored.
    """
    cm = np.asarray(confusion, np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    total = cm.sum()
    miou = float((tp[present] / union[present]).mean()) if present.any() else float("nan")
    accuracy = float(tp.sum() / total) if total else float("nan")
    single = int((cm.sum(axis=1) > 0).sum()) <= 1
    return {
        "pixels": int(total),
        "miou": miou,
        "pixel_accuracy": accuracy,
        "score": accuracy if single else miou,
        "metric": "pixel_accuracy" if single else "miou",
    }


class _WorstImages:
    """The ``count`` lowest-scoring images seen, with their error maps (kept small)."""

    def __init__(self, count: int):
        self.count = max(0, int(count))
        self.heap: list[tuple[float, int, np.ndarray, str]] = []

    def add(
        self, score: float, index: int, true: np.ndarray, pred: np.ndarray, metric: str = "miou"
    ) -> None:
        import heapq

        if self.count == 0 or not np.isfinite(score) or score >= 1.0:
            return
        key = (-score, -index)
        if len(self.heap) == self.count and key <= self.heap[0][:2]:
            return
        from visionkit.evaluate.segmentation_plots import error_categories

        errors = _shrink(error_categories(np.asarray(true), np.asarray(pred)), nearest=True)
        item = (-score, -index, errors, metric)
        if len(self.heap) < self.count:
            heapq.heappush(self.heap, item)
        else:
            heapq.heapreplace(self.heap, item)

    def plot(self, dataset: Dataset, path: Path) -> None:
        """The grid of the worst images (lowest score first), or no file when none."""
        from PIL import Image

        from visionkit.evaluate.segmentation_plots import ERROR_LEGEND, paint_errors, plot_mask_grid

        if not self.heap:
            Path(path).unlink(missing_ok=True)  # no stale grid from an earlier evaluation
            return
        pictures, titles = [], []
        for neg_score, neg_index, errors, metric in sorted(self.heap, key=lambda t: t[:2])[::-1]:
            index = -neg_index
            image = _example_image(dataset.examples[index])
            height, width = errors.shape
            if image.shape[:2] != (height, width):
                image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
            pictures.append(paint_errors(image, errors))
            label = "IoU" if metric == "miou" else "pixel acc."
            titles.append(f"{Path(_example_name(dataset, index)).name}\n{label} {-neg_score:.3f}")
        plot_mask_grid(
            pictures,
            titles,
            path,
            legend=ERROR_LEGEND,
            suptitle="worst images (per-image IoU; pixel accuracy where one class is present)",
        )


def _input_size(model, config: dict[str, Any]) -> tuple[int, int]:
    """The model's (height, width) input, or the run's ``imgsz`` for a model without one."""
    height, width = model.input_shape[1:3]
    if height and width:
        return int(height), int(width)
    if config.get("imgsz"):
        from visionkit.data.pipeline import parse_imgsz

        return parse_imgsz(config["imgsz"])
    raise ConfigError("the model has no fixed input size and its run config no imgsz")


def _overlap(config: dict[str, Any]) -> float:
    """``overlap`` of the sliding windows, checked to be in [0, 1)."""
    value = float(config.get("overlap", 0.25))
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"overlap must be in [0, 1) (a fraction of the window), got {value}")
    return value


def _class_names(names: list[str], channels: int) -> list[str]:
    """The run's class names, or ``0 .. C-1`` when they do not match the model's outputs
    (a single sigmoid channel predicts two classes)."""
    count = 2 if channels == 1 else channels
    return list(names) if len(names) == count else [str(i) for i in range(count)]


def _output_stems(files: list[str], source: Path) -> dict[str, str]:
    """Output name (no suffix) of each file: its path relative to ``source`` (a folder),
    else its stem; a clash (``a.jpg`` and ``a.png``) gets the suffix appended."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for path in files:
        p = Path(path)
        stem = p.relative_to(source).with_suffix("").as_posix() if source.is_dir() else p.stem
        if stem in used:
            stem = f"{stem}_{p.suffix.lstrip('.')}"
        used.add(stem)
        stems[path] = stem
    return stems


def _thumbnail(image: np.ndarray, side: int = MAX_GRID_SIDE) -> np.ndarray:
    """``image`` scaled down (bilinear) so that its longest side is at most ``side``."""
    return _shrink(image, side=side, nearest=False)


def _shrink(array: np.ndarray, *, side: int = MAX_GRID_SIDE, nearest: bool) -> np.ndarray:
    from PIL import Image

    height, width = array.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return array
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(array).resize(new, method))


def _example_name(dataset: Dataset, index: int) -> str:
    example = dataset.examples[index]
    return example.image_path or example.origin or f"example {index}"


def _example_image(example) -> np.ndarray:
    """The example's image, uint8 (H, W, 3)."""
    from visionkit.data.images import example_image

    image = np.asarray(example_image(example))
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def _mask_table(mapping: dict[int, int] | None) -> np.ndarray | None:
    from visionkit.data.pipeline import mask_lookup_table

    return mask_lookup_table(mapping)


def _example_mask(example, table: np.ndarray | None) -> np.ndarray:
    """The example's class-id mask (H, W) int32 at native size, mapped as the pipeline
    maps it (``mask_value_map`` as a lookup table, identity outside it)."""
    from visionkit.data.images import example_mask

    mask = np.asarray(example_mask(example))
    if mask.ndim == 3:
        mask = mask[..., 0]
    mask = mask.astype(np.int32)
    if table is not None:
        inside = (mask >= 0) & (mask < len(table))
        mask = np.where(inside, table[np.clip(mask, 0, len(table) - 1)], mask)
    return mask


def _write_per_image(path: Path, scores: list[dict[str, Any]]) -> None:
    """``per_image.csv``: one row per image, lowest score first (unscored images last)."""
    import csv

    from visionkit.io import atomic_path

    order = sorted(
        range(len(scores)),
        key=lambda i: (not np.isfinite(scores[i]["score"]), scores[i]["score"], i),
    )
    columns = ["path", "score", "metric", "miou", "pixel_accuracy", "pixels"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i in order:
            row = scores[i]
            writer.writerow([_cell(row[k]) for k in columns])


def _cell(value: Any) -> Any:
    """A CSV cell: floats with 6 decimals, NaN empty."""
    if isinstance(value, float):
        return f"{value:.6f}" if np.isfinite(value) else ""
    return value
