"""YOLO (Ultralytics layout) txt labels with a ``data.yaml``, for detection and segmentation.

Layout::

    data.yaml                 path: ., train: images/train2017, val: images/val2017,
                              names: [..] or {id: name}
    images/<split>/*.jpg
    labels/<split>/*.txt      one object per line: ``cls cx cy w h`` (normalised), or a
                              YOLO-seg polygon ``cls x1 y1 x2 y2 ...`` (normalised, >= 3 points)

``train``/``val``/``test`` may be a folder, a ``.txt`` list of image paths, or a list of
those, relative to ``path`` (itself relative to the YAML's folder). Without a YAML, a folder
with ``images/`` and ``labels/`` is read with splits from ``images/``'s subfolders. The
label file of ``.../images/x/a.jpg`` is ``.../<labels_dir>/x/a.txt`` (``labels_dir="labels"``;
pass ``labels_dir="instance_labels"`` for coco128's polygons). A missing label file means an
image without objects.

Class ids: ``names`` as a list gives ids ``0..K-1``; as a dict (possibly with gaps, e.g.
panoptic ids) the keys map to contiguous ids in increasing key order. ``names=`` overrides
(a list, a dict, or a YAML file with a ``names`` or ``classes`` key).

Normalised coordinates become pixel ``xyxy`` using the image size from the header
(EXIF-transposed). Detection from polygons uses their extents. ``task="segment"``
rasterises polygons (pycocotools) into ``Example.mask``: class 0 is background (an existing
first name ``background``/``unlabeled`` is reused, else ``"background"`` is prepended), larger
polygons painted first. Lines with a wrong field count, a class id out of range, a non-number,
or a coordinate outside [0, 1] become faults with the label file and line number (1-based).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from ..errors import DataError
from ..types import Dataset, Example, Fault
from ._common import (
    SPLIT_ALIASES,
    escape_fault,
    image_size,
    is_image_file,
    is_inside,
    list_images,
    require_exists,
    visible_entries,
)
from .coco import decode_rle

BACKGROUND_NAMES = ("background", "unlabeled", "unlabelled", "bg")
_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


def read_yaml(path: Path) -> dict:
    """``yaml.safe_load`` a mapping, or raise DataError naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a YAML mapping (keys such as path, train, val, names)")
    return doc


def parse_names(names, source: str) -> dict[int, str]:
    """``names`` (list, dict or YAML path) → ``{raw_id: name}``; DataError when malformed."""
    if isinstance(names, str | Path) and str(names).lower().endswith((".yaml", ".yml")):
        doc = read_yaml(Path(names))
        key = "names" if "names" in doc else "classes"
        return parse_names(doc.get(key), f"{names} key {key!r}")
    if isinstance(names, list | tuple):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source}: class ids in 'names' must be integers ({exc})") from exc
    raise DataError(
        f"{source}: 'names' must be a list or an {{id: name}} mapping, got {type(names).__name__}"
    )


def find_yaml(path: Path) -> Path | None:
    """The data YAML for ``path`` (the file itself or a known name inside the folder)."""
    if path.is_file():
        return path
    return next((path / n for n in _YAML_NAMES if (path / n).is_file()), None)


def _split_sources(path: Path) -> tuple[Path, dict, dict[str, list[str]]]:
    """``(root, yaml_doc, {split: [entries]})`` where entries are folders or list files."""
    yml = find_yaml(path)
    if yml is not None:
        doc = read_yaml(yml)
        base = yml.parent
        root = Path(doc["path"]) if doc.get("path") else base
        root = root if root.is_absolute() else base / root
        splits = {}
        for key in ("train", "val", "test"):
            value = doc.get(key)
            if value:
                splits[key] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if not splits:
            raise DataError(f"{yml}: no train/val/test keys; add e.g. 'train: images/train'")
        return root, doc, splits
    images = path / "images"
    if not images.is_dir():
        raise DataError(
            f"{path}: no data.yaml and no images/ folder; expected the Ultralytics YOLO layout"
        )
    subdirs = [d for d in visible_entries(images) if d.is_dir()]
    if subdirs:
        return (
            path,
            {},
            {SPLIT_ALIASES.get(d.name.lower(), d.name): [f"images/{d.name}"] for d in subdirs},
        )
    return path, {}, {"all": ["images"]}


def available_splits(path: str | Path) -> list[str]:
    """The splits named by the data YAML (or by ``images/``'s subfolders)."""
    _, _, splits = _split_sources(require_exists(path, "YOLO"))
    return list(splits)


def label_path_for(image: Path, labels_dir: str = "labels") -> Path:
    """``.../images/sub/a.jpg`` → ``.../<labels_dir>/sub/a.txt`` (sibling ``a.txt`` without ``images``)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = labels_dir
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _images_of(entry: str, root: Path, file: str, faults: list[Fault]) -> list[Path]:
    target = Path(entry) if os.path.isabs(entry) else root / entry
    if not is_inside(target, root):
        faults.append(escape_fault(file, None, entry, root))
        return []
    if target.is_dir():
        return list_images(target, faults, root)
    if target.is_file() and target.suffix.lower() == ".txt":
        out = []
        for n, line in enumerate(target.read_text().splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            p = Path(line) if os.path.isabs(line) else root / line
            if not is_inside(p, root):
                faults.append(escape_fault(target, n, line, root))
            elif not p.is_file():
                faults.append(
                    Fault(str(target), "missing_image", f"{line!r} does not exist", str(n))
                )
            elif is_image_file(p):
                out.append(p)
        return out
    faults.append(
        Fault(
            file,
            "missing_split_source",
            f"{entry!r} is neither a folder nor a .txt list under {root}",
        )
    )
    return []


def load_yolo(
    path: str | Path,
    *,
    task: str | None = None,
    split: str | None = None,
    labels_dir: str = "labels",
    names=None,
) -> Dataset:
    """Read a YOLO dataset (boxes or polygons) into a detection or segmentation Dataset.

    ``split=None`` reads every split the YAML names (deduplicated by image path).
    """
    task = task or "detect"
    if task not in ("detect", "segment"):
        raise DataError(f"{path}: YOLO labels hold detect or segment data, not task={task!r}")
    path = require_exists(path, "YOLO")
    root, doc, splits = _split_sources(path)
    file = str(find_yaml(path) or path)
    if names is not None:
        raw_names = parse_names(names, "names=")
    elif "names" in doc:
        raw_names = parse_names(doc["names"], f"{file} key 'names'")
    elif (root / "classes.txt").is_file():
        raw_names = dict(
            enumerate(
                ln.strip() for ln in (root / "classes.txt").read_text().splitlines() if ln.strip()
            )
        )
    elif doc.get("nc"):
        raw_names = {i: f"class_{i}" for i in range(int(doc["nc"]))}
    else:
        raise DataError(
            f"{file}: no class names; add 'names:' to the YAML, a classes.txt, or pass names="
        )
    raw_ids = sorted(raw_names)
    names_list = [raw_names[k] for k in raw_ids]
    to_index = {k: i for i, k in enumerate(raw_ids)}
    offset = 0
    if task == "segment" and names_list[0].lower() not in BACKGROUND_NAMES:
        names_list, offset = ["background", *names_list], 1

    if split not in (None, "all") and split not in splits:
        raise DataError(f"{file}: no split {split!r}; the YAML names {list(splits)}")
    chosen = [split] if split not in (None, "all") else list(splits)
    faults: list[Fault] = []
    images: list[Path] = []
    seen = set()
    for key in chosen:
        for entry in splits[key]:
            for img in _images_of(entry, root, file, faults):
                if img not in seen:
                    seen.add(img)
                    images.append(img)
    if not images:
        raise DataError(f"{file}: no images found for split(s) {chosen} under {root}")
    faults += _orphan_labels(images, labels_dir)
    examples = []
    for img in images:
        try:
            width, height = image_size(img)
        except OSError as exc:
            faults.append(
                Fault(str(img), "unreadable", f"not a readable image ({exc}); replace or remove it")
            )
            continue
        label_file = label_path_for(img, labels_dir)
        objects = _parse_label_file(label_file, to_index, faults) if label_file.is_file() else []
        example = Example(image_path=str(img), origin=str(label_file))
        if task == "detect":
            boxes = [_box(obj, width, height) for obj in objects]
            example.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            example.box_classes = np.asarray([o[0] for o in objects], np.int32)
        else:
            example.mask = _rasterise(
                objects, width, height, offset, len(names_list), label_file, faults
            )
        examples.append(example)
    return Dataset(task, names_list, examples, str(root), "yolo", split or "all", faults)


def _orphan_labels(images: list[Path], labels_dir: str) -> list[Fault]:
    """Faults for label files in the scanned label folders that match no image."""
    stems_by_dir: dict[Path, set[str]] = {}
    for img in images:
        label = label_path_for(img, labels_dir)
        stems_by_dir.setdefault(label.parent, set()).add(label.stem)
    faults = []
    for folder, stems in sorted(stems_by_dir.items()):
        if not folder.is_dir():
            continue
        for txt in sorted(folder.glob("*.txt")):
            if txt.stem not in stems and not txt.name.startswith("."):
                lines = sum(1 for ln in txt.read_text(errors="replace").splitlines() if ln.strip())
                faults.append(
                    Fault(
                        str(txt),
                        "label_without_image",
                        f"no image {txt.stem}.* for this label file ({lines} objects ignored); "
                        "add the image or delete the label file",
                    )
                )
    return faults


def _parse_label_file(label_file: Path, to_index: dict[int, int], faults: list[Fault]) -> list:
    """``[(class_index, values, line_no)]`` for the valid lines; faults for the others."""
    out = []
    file = str(label_file)
    for n, line in enumerate(label_file.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if not (len(fields) == 5 or (len(fields) >= 7 and len(fields) % 2 == 1)):
            faults.append(
                Fault(
                    file,
                    "wrong_field_count",
                    f"{len(fields)} fields; expected 5 (cls cx cy w h) or an odd count >= 7 "
                    "(cls x1 y1 x2 y2 x3 y3 ...); fix or delete the line",
                    str(n),
                )
            )
            continue
        try:
            raw_cls = float(fields[0])
            values = np.asarray([float(v) for v in fields[1:]], np.float64)
        except ValueError:
            faults.append(
                Fault(
                    file,
                    "not_a_number",
                    "every field must be a number; fix or delete the line",
                    str(n),
                )
            )
            continue
        if not raw_cls.is_integer() or int(raw_cls) not in to_index:
            faults.append(
                Fault(
                    file,
                    "class_out_of_range",
                    f"class id {fields[0]} is not one of the {len(to_index)} ids in names; fix the id or the names",
                    str(n),
                )
            )
            continue
        if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
            faults.append(
                Fault(
                    file,
                    "coordinate_out_of_range",
                    "coordinates must be normalised to [0, 1]; divide pixel values by the image size",
                    str(n),
                )
            )
            continue
        if len(values) == 4 and (values[2] <= 0 or values[3] <= 0):
            faults.append(Fault(file, "degenerate_box", "box width and height must be > 0", str(n)))
            continue
        out.append((to_index[int(raw_cls)], values, n))
    return out


def _box(obj, width: int, height: int) -> list[float]:
    _, v, _ = obj
    if len(v) == 4:
        cx, cy, w, h = v
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        xs, ys = v[0::2], v[1::2]
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
    return [
        float(np.clip(x1, 0, 1) * width),
        float(np.clip(y1, 0, 1) * height),
        float(np.clip(x2, 0, 1) * width),
        float(np.clip(y2, 0, 1) * height),
    ]


def _rasterise(objects, width, height, offset, num_classes, label_file, faults) -> np.ndarray:
    from pycocotools import mask as mask_utils

    mask = np.zeros((height, width), np.uint8 if num_classes <= 256 else np.uint16)
    polys = []
    for cls, v, n in objects:
        if len(v) == 4:
            faults.append(
                Fault(
                    str(label_file),
                    "box_without_polygon",
                    "a box line cannot be rasterised into a mask; give a polygon",
                    str(n),
                )
            )
            continue
        xy = (v.reshape(-1, 2) * (width, height)).ravel().tolist()
        rle = mask_utils.frPyObjects([xy], height, width)[0]
        polys.append((float(mask_utils.area(rle)), n, rle, cls + offset))
    for _, _, rle, value in sorted(polys, key=lambda p: (-p[0], p[1])):
        mask[decode_rle(rle).astype(bool)] = value
    return mask


load = load_yolo
