"""Semantic-segmentation folders: images and single-channel class-id PNG masks paired by stem.

Layouts::

    root/{image,images}/a.png      + root/{label,labels,mask,masks}/a.png
    root/images/<split>/a.jpg      + root/masks/<split>/a.png          (splits by subfolder)
    root/masks.yaml                {train: {images: .., masks: ..}, val: {..}, classes: {id: name}}

Class names and values, in order of precedence:

* ``masks.yaml`` ``classes`` (a list, or an ``{id: name}`` dict that may have gaps, e.g.
  coco128's panoptic category ids with ``0 = unlabeled``): class ``i`` is the i-th id in
  increasing order;
* ``classes.txt`` beside the folders: one name per line, pixel value = line index;
* otherwise the masks are scanned (at most ``scan_limit`` of them): values within
  ``{0, 255}`` or ``{0, 1}`` are binary → ``["background", "foreground"]``; other values
  give ``class_0 .. class_<max>`` with the values as ids.

Masks are referenced by path (``Example.mask_path``) and not rewritten. When the stored
values are not the class ids (0/255 binary masks, id dicts with gaps),
``Dataset.mask_value_map`` holds ``{stored value: class id}``; the pipeline applies it
with :func:`apply_mask_value_map` (values outside the map become class 0). ``None`` means
the stored values are the class ids.

Faults (by file): an image without a mask (``missing_mask``), a mask without an image
(``missing_image``), different image and mask sizes (``size_mismatch``), a colour mask
(``mask_not_single_channel``), non-image files (``not_an_image``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..types import Dataset, Example, Fault
from ._common import (
    SPLIT_ALIASES,
    escape_fault,
    find_dir,
    image_size,
    is_inside,
    list_images,
    require_exists,
    visible_entries,
)
from .yolo import parse_names, read_yaml

IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label", "annotations")
_MASK_MODES = ("L", "P", "1", "I", "I;16", "I;16L", "I;16B")


def apply_mask_value_map(mask: np.ndarray, value_map: dict[int, int] | None) -> np.ndarray:
    """Map stored mask values to class ids (values not in the map → 0); identity for ``None``."""
    if value_map is None:
        return mask
    lut = np.zeros(max(int(mask.max(initial=0)), *value_map) + 1, np.int32)
    for value, cls in value_map.items():
        lut[value] = cls
    out = lut[mask.astype(np.int64)]
    return out.astype(np.uint8 if max(value_map.values(), default=0) < 256 else np.int32)


def _pairs_dirs(root: Path) -> tuple[Path | None, Path | None]:
    return find_dir(root, IMAGE_DIRS), find_dir(root, MASK_DIRS)


def _layout(root: Path) -> tuple[dict, dict[str, tuple[Path, Path]]]:
    """``(yaml_doc, {split: (image_dir, mask_dir)})``."""
    yml = root / "masks.yaml"
    if yml.is_file():
        doc = read_yaml(yml)
        splits = {}
        for key in ("train", "val", "test"):
            entry = doc.get(key)
            if isinstance(entry, dict) and entry.get("images") and entry.get("masks"):
                splits[key] = (root / str(entry["images"]), root / str(entry["masks"]))
        if splits:
            return doc, splits
        images, masks = _pairs_dirs(root)
        if images and masks:
            return doc, {"all": (images, masks)}
        raise DataError(f"{yml}: no train/val/test entries with 'images' and 'masks' folders")
    images, masks = _pairs_dirs(root)
    if images is None or masks is None:
        raise DataError(
            f"{root}: expected an images folder ({'/'.join(IMAGE_DIRS)}) and a masks folder "
            f"({'/'.join(MASK_DIRS)}) with masks paired to images by file stem"
        )
    subdirs = [d for d in visible_entries(images) if d.is_dir()]
    if subdirs:
        return {}, {SPLIT_ALIASES.get(d.name.lower(), d.name): (d, masks / d.name) for d in subdirs}
    return {}, {"all": (images, masks)}


def available_splits(path: str | Path) -> list[str]:
    """Splits from ``masks.yaml`` or the images folder's subfolders (``["all"]`` when none)."""
    root = require_exists(path, "masks")
    _, splits = _layout(root.parent if root.is_file() else root)
    return list(splits)


def _classes(root: Path, doc: dict, mask_files: list[Path], scan_limit: int):
    """``(class_names, value_map)``."""
    if doc.get("classes") is not None:
        raw = parse_names(doc["classes"], f"{root / 'masks.yaml'} key 'classes'")
        ids = sorted(raw)
        value_map = {v: i for i, v in enumerate(ids)}
        identity = all(v == i for v, i in value_map.items())
        return [raw[k] for k in ids], None if identity else value_map
    txt = root / "classes.txt"
    if txt.is_file():
        return [ln.strip() for ln in txt.read_text().splitlines() if ln.strip()], None
    values: set[int] = set()
    for f in mask_files[:scan_limit]:
        try:
            with Image.open(f) as img:
                values |= set(np.unique(np.asarray(img)).tolist())
        except (OSError, ValueError):
            continue  # unreadable: the dataset doctor reports it; the others name the classes
    if not values:
        values = {0}
    if values <= {0, 255} and 255 in values:
        return ["background", "foreground"], {0: 0, 255: 1}
    if values <= {0, 1}:
        return ["background", "foreground"], None
    return [f"class_{i}" for i in range(int(max(values)) + 1)], None


def load_masks(
    path: str | Path,
    *,
    task: str | None = None,
    split: str | None = None,
    scan_limit: int = 64,
) -> Dataset:
    """Pair images with class-id masks into a segmentation Dataset (see module docstring)."""
    if task not in (None, "segment"):
        raise DataError(f"{path}: mask folders hold segmentation data, not task={task!r}")
    root = require_exists(path, "masks")
    if root.is_file():
        root = root.parent
    doc, splits = _layout(root)
    if split not in (None, "all") and split not in splits:
        raise DataError(f"{root}: no split {split!r}; found {list(splits)}")
    chosen = [split] if split not in (None, "all") else list(splits)
    faults: list[Fault] = []
    pairs: list[tuple[Path, Path]] = []
    for key in chosen:
        image_dir, mask_dir = splits[key]
        for d in (image_dir, mask_dir):
            if not is_inside(d, root):
                faults.append(escape_fault(root / "masks.yaml", key, str(d), root))
                break
            if not d.is_dir():
                raise DataError(f"{root}: folder {d} of split {key!r} does not exist")
        else:
            pairs += _pair(image_dir, mask_dir, faults, root)
    if not pairs:
        raise DataError(f"{root}: no image/mask pairs found for split(s) {chosen}")
    class_names, value_map = _classes(root, doc, [m for _, m in pairs], scan_limit)
    examples = []
    for img, msk in pairs:
        fault = _check_pair(img, msk)
        if fault:
            faults.append(fault)
            continue
        examples.append(Example(image_path=str(img), mask_path=str(msk), origin=str(msk)))
    if not examples:
        raise DataError(
            f"{root}: no usable image/mask pairs ({len(faults)} faults, first: {faults[0]})"
        )
    return Dataset(
        "segment",
        class_names,
        examples,
        str(root),
        "masks",
        split or "all",
        faults,
        mask_value_map=value_map,
    )


def _pair(
    image_dir: Path, mask_dir: Path, faults: list[Fault], root: Path
) -> list[tuple[Path, Path]]:
    images = {p.stem: p for p in list_images(image_dir, faults, root)}
    masks = {p.stem: p for p in list_images(mask_dir, faults, root)}
    for stem in sorted(set(masks) - set(images)):
        faults.append(
            Fault(
                str(masks[stem]),
                "missing_image",
                f"no image named {stem}.* in {image_dir}; remove the mask or add the image",
            )
        )
    out = []
    for stem, img in sorted(images.items()):
        if stem in masks:
            out.append((img, masks[stem]))
        else:
            faults.append(
                Fault(
                    str(img),
                    "missing_mask",
                    f"no mask named {stem}.* in {mask_dir}; the image is skipped",
                )
            )
    return out


def _check_pair(img: Path, msk: Path) -> Fault | None:
    try:
        isize = image_size(img)
        with Image.open(msk) as m:
            mode, msize = m.mode, m.size
    except OSError as exc:
        return Fault(
            str(img), "unreadable", f"image or mask cannot be read ({exc}); replace or remove it"
        )
    if mode not in _MASK_MODES:
        return Fault(
            str(msk),
            "mask_not_single_channel",
            f"mask mode {mode} is not single-channel; save class ids as an 8-bit grey or palette PNG",
        )
    if isize != msize:
        return Fault(
            str(msk),
            "size_mismatch",
            f"mask is {msize[0]}x{msize[1]} but the image is {isize[0]}x{isize[1]}",
        )
    return None


load = load_masks
