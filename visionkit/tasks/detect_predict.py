"""``visionkit detect predict``: boxes in original-image pixels as CSV and JSON, and the
images with their boxes drawn.

Each readable image goes through the same letterboxing evaluation pipeline and the same
decoding + class-aware NMS as ``visionkit detect val`` (``DetectTask.detections``); the
boxes are then mapped from the letterboxed input back to the original image with
:func:`visionkit.models.yolo.boxes_frame.unletterbox_boxes` and clipped to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionkit.config import ConfigError

DRAW_LIMIT = 200  # annotated images written per predict run (the first ones, in file order)
CSV_HEADER = ("path", "class", "class_id", "score", "x1", "y1", "x2", "y2", "error")
DECIMALS = 4  # pixel coordinates written to the CSV and JSON


def model_num_classes(model) -> int:
    """Classes a detector predicts, read from its output: YOLO (B, A, 4·16 + C) or YOLOv1
    (B, S, S, 5·2 + C)."""
    from visionkit.models.yolo.anchors import REG_MAX

    if getattr(model, "postprocessed", False):
        raise ValueError("a post-processed export does not show its class count")
    depth = int(model.output_shape[-1])
    return depth - 10 if len(model.output_shape) == 4 else depth - 4 * REG_MAX


def predict_command(task, config: dict[str, Any]) -> Path:
    """``visionkit detect predict model=RUN_FOLDER|FILE.keras source=FILE|DIR`` with
    ``conf`` (score threshold), ``iou`` (NMS IoU) and ``max_det`` (boxes per image).

    Writes into ``out/name`` (default ``out/predict``, ``predict2``, ...):

    * ``predictions.csv``: one row per detection ``path, class, class_id, score, x1, y1,
      x2, y2, error``; an image without detections gets one row with only its path, an
      unreadable one a row with only its path and ``error`` (``kind: detail``).
    * ``predictions.json``: a list with one entry per image, ``{"path", "width", "height",
      "detections": [{"class", "class_id", "score", "box": [x1, y1, x2, y2]}], "error"}``.
    * ``images/<stem>.jpg``: the first :data:`DRAW_LIMIT` readable images with their boxes
      drawn (always: the boxes are the point; ``save_images`` is not used). Colliding stems
      get ``_2``, ``_3``, ... suffixes; the folder is replaced as a whole.

    Boxes are ``xyxy`` in the pixels of the image as read (after EXIF orientation),
    pixel-edge coordinates (``[0, 0, W, H]`` is the whole image), clipped to it;
    detections lying wholly in the letterbox padding are dropped. Rows follow the sorted
    file order; unreadable or corrupt files do not stop the run. YOLOv1 models use their
    own NMS settings (as in ``detect val``). Returns the output folder.
    """
    import csv

    from visionkit.data.inputs import image_files
    from visionkit.data.types import Dataset, Example
    from visionkit.io import atomic_path, write_json
    from visionkit.models.yolo.boxes_frame import unletterbox_boxes
    from visionkit.tasks.base import output_dir

    if not config.get("model") or not config.get("source"):
        raise ConfigError(
            "visionkit detect predict needs model=RUN_FOLDER|FILE.keras and source=FILE|DIR"
        )
    model, class_names, _ = task.load_trained(str(config["model"]))
    class_names = list(class_names) or [str(i) for i in range(model_num_classes(model))]
    size = int(model.input_shape[1])
    files = image_files(str(config["source"]))
    records, readable, pil = _inspect(files, size, str(config["source"]))
    if not readable:
        raise ConfigError(
            f"source={config['source']}: no readable images ({len(files)} files found, "
            f"{len(records)} unreadable)"
        )
    progress = int(config["verbose"]) > 0
    dataset = Dataset("detect", class_names, [Example(image_path=r["path"]) for r in readable])
    pipeline = task.eval_pipeline(model, dataset, config, pil)
    settings = {**config, "num_classes": len(class_names)}
    _, predictions = task.detections(
        model,
        pipeline,
        settings,
        progress=progress,
        score_threshold=float(config["conf"]),
        desc="predict",
    )
    for record, found in zip(readable, predictions, strict=True):
        boxes = unletterbox_boxes(found["boxes"], (record["height"], record["width"]), size)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        record["detections"] = [
            {
                "class": _name(class_names, int(c)),
                "class_id": int(c),
                "score": round(float(s), 6),
                "box": [round(float(v), DECIMALS) for v in b],
            }
            for b, s, c in zip(
                boxes[keep], found["scores"][keep], found["classes"][keep], strict=True
            )
        ]
    records.extend(readable)
    order = {path: i for i, path in enumerate(files)}
    records.sort(key=lambda r: order[r["path"]])

    out = output_dir(config, "predict")
    with atomic_path(out / "predictions.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows(row for record in records for row in csv_rows(record))
    write_json(out / "predictions.json", records)
    drawn = _draw(readable[:DRAW_LIMIT], class_names, out / "images", progress=progress)

    count = sum(len(r["detections"]) for r in readable)
    failed = len(records) - len(readable)
    skipped = len(readable) - drawn
    print(
        f"{len(readable)} images, {count} detections (conf ≥ {float(config['conf']):g}), "
        f"{failed} unreadable: {out / 'predictions.csv'}, predictions.json and {drawn} "
        f"annotated images in {out / 'images'}"
        + (f" ({skipped} not drawn: at most the first {DRAW_LIMIT} are)" if skipped else "")
    )
    return out


def csv_rows(record: dict[str, Any]) -> list[list[Any]]:
    """The CSV rows of one image record: one per detection, or a single row with only the
    path (no detections) or the path and the error (unreadable)."""
    if record["error"] or not record["detections"]:
        return [[record["path"], *[""] * 7, record["error"] or ""]]
    return [
        [record["path"], d["class"], d["class_id"], f"{d['score']:.6f}", *d["box"], ""]
        for d in record["detections"]
    ]


def _inspect(files: list[str], size: int, source: str) -> tuple[list[dict], list[dict], set[str]]:
    """Records of the unreadable files (with their error), of the readable ones (with their
    size, detections to come) and the paths to decode with PIL rather than TensorFlow."""
    from visionkit.data.inputs import screen_images
    from visionkit.models.yolo.boxes_frame import letterbox_frame

    def record(path: str, width=None, height=None, error=None) -> dict:
        return {"path": path, "width": width, "height": height, "detections": [], "error": error}

    screened = screen_images(files, source)
    failed = [record(path, error=error) for path, error in screened.failed]
    readable = []
    for path, info in screened.readable:
        try:
            letterbox_frame((info.height, info.width), size)
        except ValueError as err:
            failed.append(record(path, info.width, info.height, f"too_elongated: {err}"))
            continue
        readable.append(record(path, info.width, info.height))
    return failed, readable, screened.needs_pil & {r["path"] for r in readable}


def _name(class_names: list[str], class_id: int) -> str:
    return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)


def _draw(records: list[dict], class_names: list[str], folder: Path, *, progress: bool) -> int:
    """Write each record's image with its boxes to ``folder/<stem>.jpg`` (unique names);
    the folder is replaced as a whole. Returns how many images were written."""
    from PIL import Image
    from tqdm.auto import tqdm

    from visionkit.data.images import ImageReadError, read_image
    from visionkit.draw import draw_boxes
    from visionkit.io import atomic_directory

    used: set[str] = set()
    drawn = 0
    with atomic_directory(folder) as tmp:
        for record in tqdm(records, desc="draw", unit="image", disable=not progress, leave=False):
            try:
                pixels = read_image(record["path"])
            except ImageReadError:  # changed since it was inspected: no picture, no failure
                continue
            found = record["detections"]
            image = draw_boxes(
                pixels,
                np.array([d["box"] for d in found], np.float64).reshape(-1, 4),
                [d["class_id"] for d in found],
                [d["score"] for d in found],
                class_names,
            )
            Image.fromarray(image).save(tmp / _unique(Path(record["path"]).stem, used), quality=90)
            drawn += 1
    return drawn


def _unique(stem: str, used: set[str]) -> str:
    """``stem.jpg``, or ``stem_2.jpg``, ``stem_3.jpg``, ... when taken (case-insensitive)."""
    name, k = f"{stem}.jpg", 2
    while name.lower() in used:
        name, k = f"{stem}_{k}.jpg", k + 1
    used.add(name.lower())
    return name
