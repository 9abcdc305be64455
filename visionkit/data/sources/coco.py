"""COCO JSON annotations (``instances_*.json``) for detection and segmentation.

* Categories map to contiguous ids ``0..K-1`` in increasing order of COCO category id;
  ``Dataset.class_names`` keeps their names.
* Detection: ``bbox`` ``[x, y, w, h]`` → ``xyxy`` pixels; ``iscrowd=1`` annotations are
  left out of the boxes (no fault: that is COCO's convention).
* Segmentation (``task="segment"``): class 0 is ``"background"`` and category ``i`` is
  class ``i + 1``. Polygons and RLE (compressed string or uncompressed counts, crowd
  regions included) are rasterised with ``pycocotools.mask`` into an H×W mask held in
  ``Example.mask`` (uint8, uint16 above 255 classes). Larger objects are painted first so
  smaller ones on top stay visible.
* Images without annotations are kept (empty boxes / all-background mask).

Image files are looked up relative to ``images_dir`` (default: the JSON's folder, the
dataset root, or ``images/`` under it; the root is the JSON's folder, or its parent when
the JSON sits in ``annotations/``). A JSON that does not parse, or lacks ``images`` /
``categories``, raises DataError; bad annotations are faults with ``where`` = the
annotation's index in the ``annotations`` list.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..types import Dataset, Example, Fault
from ._common import escape_fault, require_exists, resolve_in_root
from .csv_table import check_box


def _root_for(json_path: Path) -> Path:
    parent = json_path.parent
    return parent.parent if parent.name.lower() == "annotations" else parent


def load_coco(
    path: str | Path,
    *,
    task: str | None = None,
    split: str | None = None,
    images_dir: str | Path | None = None,
) -> Dataset:
    """Read a COCO instances JSON into a detection (default) or segmentation Dataset."""
    json_path = require_exists(path, "COCO JSON")
    task = task or "detect"
    if task not in ("detect", "segment"):
        raise DataError(
            f"{json_path}: COCO annotations hold detect or segment data, not task={task!r}"
        )
    try:
        with open(json_path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{json_path}: not valid JSON ({exc}); check the file is a COCO annotation file"
        ) from exc
    if not isinstance(doc, dict):
        raise DataError(
            f"{json_path}: top level must be an object with images/annotations/categories"
        )
    for key in ("images", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(
                f"{json_path}: key {key!r} missing or not a list; this is not a COCO instances file"
            )
    annotations = doc.get("annotations") or []
    root = _root_for(json_path) if images_dir is None else Path(images_dir)
    bases = (
        [Path(images_dir)] if images_dir is not None else [json_path.parent, root, root / "images"]
    )
    if split:
        bases.append(root / "images" / split)
    faults: list[Fault] = []
    file = str(json_path)

    cats = sorted(
        (c for c in doc["categories"] if isinstance(c, dict) and "id" in c),
        key=lambda c: int(c["id"]),
    )
    cat_index = {int(c["id"]): i for i, c in enumerate(cats)}
    names = [str(c.get("name", c["id"])) for c in cats]
    class_names = ["background", *names] if task == "segment" else names

    images: dict[int, dict] = {}
    for i, img in enumerate(doc["images"]):
        try:
            image_id, fname = int(img["id"]), str(img["file_name"])
            width, height = int(img["width"]), int(img["height"])
        except (KeyError, TypeError, ValueError):
            faults.append(
                Fault(
                    file,
                    "bad_image_record",
                    "image record needs id, file_name, width, height",
                    f"images[{i}]",
                )
            )
            continue
        found, escaped = resolve_in_root(fname, bases, root)
        if escaped:
            faults.append(escape_fault(file, f"images[{i}]", fname, root))
            continue
        if found is None:
            faults.append(
                Fault(
                    file,
                    "missing_image",
                    f"{fname!r} not found under {', '.join(map(str, bases))}; pass images_dir=",
                    f"images[{i}]",
                )
            )
            continue
        images[image_id] = {
            "path": found,
            "w": width,
            "h": height,
            "boxes": [],
            "classes": [],
            "segs": [],
        }

    all_ids = {r.get("id") for r in doc["images"] if isinstance(r, dict)}
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            faults.append(Fault(file, "bad_annotation", "annotation must be an object", where))
            continue
        img = images.get(ann.get("image_id"))
        if img is None:
            if ann.get("image_id") not in all_ids:
                faults.append(
                    Fault(
                        file,
                        "unknown_image",
                        f"image_id {ann.get('image_id')!r} is not in images",
                        where,
                    )
                )
            continue
        cid = ann.get("category_id")
        if cid not in cat_index:
            faults.append(
                Fault(file, "unknown_category", f"category_id {cid!r} is not in categories", where)
            )
            continue
        if task == "segment":
            seg = ann.get("segmentation")
            if not seg:
                faults.append(
                    Fault(
                        file,
                        "no_segmentation",
                        "annotation has no segmentation; it is left out of the mask",
                        where,
                    )
                )
                continue
            area = float(ann.get("area") or 0.0)
            img["segs"].append((area, i, seg, cat_index[cid] + 1))
            continue
        if ann.get("iscrowd"):
            continue
        bbox = ann.get("bbox")
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            faults.append(
                Fault(file, "bad_bbox", f"bbox {bbox!r} must be [x, y, w, h] numbers", where)
            )
            continue
        box, fault = check_box([x, y, x + w, y + h], img["w"], img["h"])
        if fault:
            faults.append(Fault(file, fault[0], fault[1], where))
            continue
        img["boxes"].append(box)
        img["classes"].append(cat_index[cid])

    examples = []
    for image_id, img in images.items():
        origin = f"{json_path}:image_id={image_id}"
        if task == "segment":
            mask = _rasterise(img, len(class_names), faults, file)
            examples.append(Example(image_path=str(img["path"]), mask=mask, origin=origin))
        else:
            examples.append(
                Example(
                    image_path=str(img["path"]),
                    boxes=np.asarray(img["boxes"], np.float32).reshape(-1, 4),
                    box_classes=np.asarray(img["classes"], np.int32),
                    origin=origin,
                )
            )
    if not examples:
        raise DataError(
            f"{json_path}: no usable images ({len(faults)} faults, first: {faults[0] if faults else '-'})"
        )
    return Dataset(task, class_names, examples, str(root), "coco", split or "all", faults)


def segmentation_to_mask(seg, height: int, width: int) -> np.ndarray:
    """Rasterise one COCO ``segmentation`` (polygons, RLE string or uncompressed counts) to H×W bool."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            raise ValueError("polygons need at least 3 points")
        rles = mask_utils.frPyObjects(polys, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, *seg["size"])
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), str | bytes):
        rle = dict(seg)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    else:
        raise ValueError(f"unknown segmentation type {type(seg).__name__}")
    out = decode_rle(rle)
    if out.shape[:2] != (height, width):
        raise ValueError(f"RLE size {out.shape[:2]} differs from the image size {(height, width)}")
    return out.astype(bool)


def decode_rle(rle) -> np.ndarray:
    """``pycocotools.mask.decode`` without its NumPy-2 ``copy=`` DeprecationWarning."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)


def _rasterise(img: dict, num_classes: int, faults: list[Fault], file: str) -> np.ndarray:
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    mask = np.zeros((img["h"], img["w"]), dtype)
    for _, index, seg, cls in sorted(img["segs"], key=lambda s: (-s[0], s[1])):
        try:
            mask[segmentation_to_mask(seg, img["h"], img["w"])] = cls
        except (ValueError, TypeError, KeyError) as exc:
            faults.append(
                Fault(
                    file,
                    "bad_segmentation",
                    f"cannot rasterise ({exc}); fix or delete it",
                    f"annotations[{index}]",
                )
            )
    return mask


load = load_coco
