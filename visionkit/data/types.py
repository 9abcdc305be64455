"""The canonical example every data source produces, and the dataset that holds them.

A source (folder, CSV, COCO, VOC, YOLO, masks, IDX, TFDS) reads annotations and returns a
:class:`Dataset` of :class:`Example` records. Images are referenced by path and decoded
later (by the doctor and the tf.data pipeline); in-memory sources (IDX, TFDS) carry the
pixels in ``Example.image`` instead, and the TFRecord source points at a record of a
shard (``Example.record``) that holds the encoded image (and mask).

Conventions:
  * images: uint8, H×W×3 (RGB) once decoded;
  * classification: ``label`` is the class index;
  * detection: ``boxes`` float32 (N, 4) ``xyxy`` in pixels of the decoded image,
    ``box_classes`` int32 (N,);
  * segmentation: ``mask_path`` (or ``mask``) holds an H×W map of class ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TASKS = ("classify", "detect", "segment")


@dataclass
class Fault:
    """One problem found in a dataset: which file, what kind, and the details.

    ``kind`` is a short stable identifier (for example ``"unreadable"``,
    ``"box_outside_image"``); ``detail`` says what is wrong and, where it helps, what to do.
    ``where`` is the line or object index inside an annotation file, when there is one.
    ``fatal`` faults make the example unusable (it is skipped); the others are handled
    and only reported (an EXIF-rotated or CMYK image, say).
    """

    file: str
    kind: str
    detail: str
    where: str | None = None
    fatal: bool = True

    def to_dict(self) -> dict:
        out = {"file": self.file, "kind": self.kind, "detail": self.detail}
        if self.where is not None:
            out["where"] = self.where
        out["fatal"] = self.fatal
        return out

    def __str__(self) -> str:
        loc = f"{self.file}:{self.where}" if self.where else self.file
        return f"{loc}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class RecordRef:
    """Where one serialized ``tf.train.Example`` lies in a TFRecord file: the byte offset
    of its data and its length, and its position among the file's records."""

    path: str
    offset: int
    length: int
    position: int

    @property
    def name(self) -> str:
        return f"{self.path}[{self.position}]"


@dataclass
class Example:
    """One canonical example. Exactly one of ``image_path`` / ``image`` / ``record`` is set
    (a ``record`` also holds the mask of a segmentation example)."""

    image_path: str | None = None
    image: np.ndarray | None = None
    label: int | None = None
    boxes: np.ndarray | None = None
    box_classes: np.ndarray | None = None
    mask_path: str | None = None
    mask: np.ndarray | None = None
    origin: str | None = None  # annotation file and line/object, for error messages
    record: RecordRef | None = None

    @property
    def name(self) -> str:
        return (
            self.image_path
            or self.origin
            or (self.record.name if self.record is not None else "<in-memory>")
        )


@dataclass
class Dataset:
    """Examples of one task and split, with the class names that give ids their meaning."""

    task: str
    class_names: list[str]
    examples: list[Example]
    root: str = ""
    format: str = ""
    split: str = "all"
    faults: list[Fault] = field(default_factory=list)
    # Segmentation only: raw mask pixel value -> class id, for masks stored with other
    # values (binary 0/255 masks, COCO panoptic category ids). ``None`` means the stored
    # values already are the class ids. Apply with ``sources.masks.apply_mask_value_map``.
    mask_value_map: dict[int, int] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
