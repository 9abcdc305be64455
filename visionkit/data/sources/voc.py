"""Pascal VOC XML annotations: one ``.xml`` per image, for detection.

Accepted paths: a folder of ``.xml`` files, a dataset folder with ``annotations/`` or
``Annotations/`` inside, or a single ``.xml``. The dataset root is the folder given, or the
parent of an ``annotations`` folder. ``filename`` is looked up in ``images_dir=``, else in
``images/``, ``JPEGImages/`` under the root, the root, and the XML's folder.

Boxes are the ``bndbox`` values as written (no 1-based shift: the raccoon XMLs and its
CSVs hold identical numbers, with ``xmin >= 1`` and ``xmax`` up to the image width, i.e.
they already read as pixel-edge coordinates), validated against the image size read from
the image header (EXIF orientation applied; within 1 px overshoot clipped). ``difficult``
objects are kept. Class names are all object names sorted, unless ``classes=`` is given.
Splits come from ``ImageSets/Main/{train,val,test,trainval}.txt`` when present.

An XML file that does not parse is a fault of kind ``unparseable_xml`` (it is one image's
annotation among many); faults inside a file carry ``where = "object N"`` (0-based).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..types import Dataset, Example, Fault
from ._common import escape_fault, find_dir, image_size, require_exists, resolve_in_root
from .csv_table import check_box


def _layout(path: Path) -> tuple[Path, list[Path]]:
    """``(root, xml_files)`` for a VOC path."""
    if path.is_file():
        return path.parent, [path]
    ann = find_dir(path, ("annotations", "Annotations"))
    if ann is not None and any(ann.glob("*.xml")):
        return path, sorted(ann.glob("*.xml"))
    xmls = sorted(p for p in path.glob("*.xml") if not p.name.startswith("."))
    if path.name.lower() == "annotations":
        return path.parent, xmls
    return path, xmls


def available_splits(path: str | Path) -> list[str]:
    """Splits listed in ``ImageSets/Main/*.txt`` (``[]`` when there are none)."""
    root, _ = _layout(require_exists(path))
    main = root / "ImageSets" / "Main"
    return sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem) if main.is_dir() else []


def _text(node, tag: str) -> str | None:
    child = node.find(tag)
    return None if child is None or child.text is None else child.text.strip()


def load_voc(
    path: str | Path,
    *,
    task: str | None = None,
    split: str | None = None,
    classes: list[str] | None = None,
    images_dir: str | Path | None = None,
) -> Dataset:
    """Read Pascal VOC XML annotations into a detection Dataset."""
    if task not in (None, "detect"):
        raise DataError(f"{path}: Pascal VOC annotations hold detection data, not task={task!r}")
    root, xmls = _layout(require_exists(path, "VOC"))
    if not xmls:
        raise DataError(f"{path}: no .xml files found (looked in the folder and in annotations/)")
    if split not in (None, "all"):
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise DataError(
                f"{root}: no split {split!r}: {listing} does not exist; splits: {available_splits(root)}"
            )
        stems = {ln.split()[0] for ln in listing.read_text().splitlines() if ln.strip()}
        xmls = [x for x in xmls if x.stem in stems]
    if images_dir is not None:
        bases = [Path(images_dir)]
    else:
        bases = [d for d in (find_dir(root, ("images", "JPEGImages")),) if d] + [root]
    faults: list[Fault] = []
    parsed = []
    for xml in xmls:
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            faults.append(
                Fault(str(xml), "unparseable_xml", f"not valid XML ({exc}); fix or remove the file")
            )
            continue
        parsed.append((xml, tree))
    if classes:
        class_names = list(classes)
    else:
        class_names = sorted(
            {n for _, t in parsed for o in t.findall("object") if (n := _text(o, "name"))}
        )
    index = {n: i for i, n in enumerate(class_names)}
    examples = []
    for xml, tree in parsed:
        fname = _text(tree, "filename")
        if not fname:
            faults.append(
                Fault(str(xml), "missing_filename", "no <filename> tag; add the image file name")
            )
            continue
        found, escaped = resolve_in_root(fname, [*bases, xml.parent], root)
        if escaped:
            faults.append(escape_fault(xml, None, fname, root))
            continue
        if found is None:
            faults.append(
                Fault(
                    str(xml),
                    "missing_image",
                    f"image {fname!r} not found in {', '.join(map(str, bases))}; pass images_dir=",
                )
            )
            continue
        try:
            width, height = image_size(found)
        except OSError as exc:
            faults.append(
                Fault(
                    str(found), "unreadable", f"not a readable image ({exc}); replace or remove it"
                )
            )
            continue
        boxes, labels = [], []
        for k, obj in enumerate(tree.findall("object")):
            where = f"object {k}"
            name = _text(obj, "name")
            if name not in index:
                faults.append(
                    Fault(
                        str(xml),
                        "unknown_class",
                        f"object name {name!r} is not in classes={class_names}",
                        where,
                    )
                )
                continue
            bnd = obj.find("bndbox")
            try:
                coords = [float(_text(bnd, t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError, AttributeError):
                faults.append(
                    Fault(
                        str(xml), "bad_bndbox", "bndbox needs numeric xmin, ymin, xmax, ymax", where
                    )
                )
                continue
            box, fault = check_box(coords, width, height)
            if fault:
                faults.append(Fault(str(xml), fault[0], fault[1], where))
                continue
            boxes.append(box)
            labels.append(index[name])
        examples.append(
            Example(
                image_path=str(found),
                boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                box_classes=np.asarray(labels, np.int32),
                origin=str(xml),
            )
        )
    if not examples:
        raise DataError(
            f"{path}: no usable annotations ({len(faults)} faults, first: {faults[0] if faults else '-'})"
        )
    return Dataset("detect", class_names, examples, str(root), "voc", split or "all", faults)


load = load_voc
