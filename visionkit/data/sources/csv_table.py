"""CSV annotation tables (read with pandas), for classification and detection.

Classification: columns ``path,label`` (aliases: ``filename``/``file``/``image`` for the
path, ``class`` for the label). Detection: ``filename,width,height,class,xmin,ymin,xmax,ymax``,
one row per box, grouped by filename (as in the raccoon dataset). Column names are
case-insensitive. Image paths are relative to the CSV's folder or to an ``images/``
folder beside it (or ``images_dir=``). Class names are sorted label values unless
``classes=`` is given.

Faults name the CSV line (the header is line 1): unreadable numbers, empty labels, unknown
classes, degenerate boxes, boxes outside the image (more than 1 px beyond the edge; within
1 px they are clipped), missing images, paths escaping the dataset root. Detection images
keep the size read from their header (EXIF orientation applied); a disagreeing
width/height column is reported (non-fatal) and the image's real size wins for clipping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..types import Dataset, Example, Fault
from ._common import escape_fault, image_size, require_exists, resolve_in_root

DETECT_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
CLASSIFY_COLUMNS = ("path", "label")
_PATH_ALIASES = ("path", "filename", "file", "image", "image_path")
_LABEL_ALIASES = ("label", "class", "category")
EDGE_TOLERANCE = 1.0  # pixels a box may overshoot the image before it is a fault


def _read_table(path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
        )
    except Exception as exc:  # pandas raises several parser error types
        raise DataError(
            f"{path}: cannot parse as CSV ({exc}); check the file is comma-separated text"
        ) from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


def _pick(columns: list[str], aliases: tuple[str, ...]) -> str | None:
    return next((a for a in aliases if a in columns), None)


def _bases(csv_path: Path, images_dir: str | Path | None) -> list[Path]:
    if images_dir is not None:
        return [Path(images_dir)]
    return [csv_path.parent, csv_path.parent / "images"]


def load_csv(
    path: str | Path,
    *,
    task: str | None = None,
    split: str | None = None,
    classes: list[str] | None = None,
    images_dir: str | Path | None = None,
) -> Dataset:
    """Read a classification or detection CSV into a Dataset.

    ``task`` is inferred from the columns when ``None`` (box columns → ``"detect"``).
    ``split`` only labels the result (a CSV is one split). Raises DataError when the file
    is missing, unparseable, or lacks the expected columns.
    """
    csv_path = require_exists(path, "CSV")
    frame = _read_table(csv_path)
    columns = list(frame.columns)
    if task is None:
        task = "detect" if "xmin" in columns else "classify"
    root = csv_path.parent if images_dir is None else Path(images_dir)
    if task == "detect":
        missing = [c for c in DETECT_COLUMNS if c not in columns]
        if missing:
            raise DataError(
                f"{csv_path}: missing column(s) {missing}; a detection CSV needs "
                f"{list(DETECT_COLUMNS)}, found {columns}"
            )
        return _load_detect(csv_path, frame, root, split, classes, images_dir)
    if task == "classify":
        path_col, label_col = _pick(columns, _PATH_ALIASES), _pick(columns, _LABEL_ALIASES)
        if path_col is None or label_col is None:
            raise DataError(
                f"{csv_path}: a classification CSV needs columns {list(CLASSIFY_COLUMNS)} "
                f"(or filename,class), found {columns}"
            )
        return _load_classify(
            csv_path, frame, path_col, label_col, root, split, classes, images_dir
        )
    raise DataError(f"{csv_path}: CSV tables hold classify or detect data, not task={task!r}")


def _resolve(csv_path, line, name, bases, root, faults) -> Path | None:
    if not name:
        faults.append(
            Fault(
                str(csv_path),
                "empty_path",
                "no image path on this line; fill it or delete the line",
                str(line),
            )
        )
        return None
    found, escaped = resolve_in_root(name, bases, root)
    if escaped:
        faults.append(escape_fault(csv_path, line, name, root))
        return None
    if found is None:
        faults.append(
            Fault(
                str(csv_path),
                "missing_image",
                f"image {name!r} not found in {', '.join(str(b) for b in bases)}; fix the path or add the file",
                str(line),
            )
        )
    return found


def _load_classify(
    csv_path, frame, path_col, label_col, root, split, classes, images_dir
) -> Dataset:
    faults: list[Fault] = []
    bases = _bases(csv_path, images_dir)
    labels = [str(v).strip() for v in frame[label_col]]
    class_names = list(classes) if classes else sorted({v for v in labels if v})
    index = {n: i for i, n in enumerate(class_names)}
    examples = []
    for row, (name, label) in enumerate(zip(frame[path_col], labels, strict=True)):
        line = row + 2
        if not label and not str(name).strip():
            continue  # a blank line (kept by the reader so line numbers stay right)
        if not label:
            faults.append(
                Fault(
                    str(csv_path),
                    "empty_label",
                    "no label on this line; fill it or delete the line",
                    str(line),
                )
            )
            continue
        if label not in index:
            faults.append(
                Fault(
                    str(csv_path),
                    "unknown_class",
                    f"label {label!r} is not in classes={class_names}",
                    str(line),
                )
            )
            continue
        found = _resolve(csv_path, line, str(name).strip(), bases, root, faults)
        if found is not None:
            examples.append(
                Example(image_path=str(found), label=index[label], origin=f"{csv_path}:{line}")
            )
    if not examples:
        raise DataError(
            f"{csv_path}: no usable rows ({len(faults)} faults, first: {faults[0] if faults else '-'})"
        )
    return Dataset("classify", class_names, examples, str(root), "csv", split or "all", faults)


def _number(value: str) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _load_detect(csv_path, frame, root, split, classes, images_dir) -> Dataset:
    faults: list[Fault] = []
    bases = _bases(csv_path, images_dir)
    names = [str(v).strip() for v in frame["class"]]
    class_names = list(classes) if classes else sorted({v for v in names if v})
    index = {n: i for i, n in enumerate(class_names)}
    per_image: dict[str, dict] = {}
    for row in range(len(frame)):
        line = row + 2
        rec = frame.iloc[row]
        if not any(str(v).strip() for v in rec.values):
            continue  # a blank line (kept by the reader so line numbers stay right)
        fname = str(rec["filename"]).strip()
        if fname not in per_image:
            found = _resolve(csv_path, line, fname, bases, root, faults)
            size = None
            if found is not None:
                try:
                    size = image_size(found)
                except OSError as exc:
                    faults.append(
                        Fault(
                            str(found),
                            "unreadable",
                            f"not a readable image ({exc}); replace or remove it",
                            None,
                        )
                    )
                    found = None
            per_image[fname] = {
                "path": found,
                "size": size,
                "boxes": [],
                "classes": [],
                "line": line,
            }
        entry = per_image[fname]
        if entry["path"] is None:
            continue
        label = names[row]
        if label not in index:
            faults.append(
                Fault(
                    str(csv_path),
                    "unknown_class",
                    f"class {label!r} is not in classes={class_names}",
                    str(line),
                )
            )
            continue
        coords = [_number(rec[c]) for c in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            faults.append(
                Fault(
                    str(csv_path),
                    "not_a_number",
                    "xmin,ymin,xmax,ymax must be numbers; fix or delete the line",
                    str(line),
                )
            )
            continue
        width, height = entry["size"]
        w_col, h_col = _number(rec["width"]), _number(rec["height"])
        if (w_col, h_col) != (width, height) and not entry.get("size_reported"):
            entry["size_reported"] = True
            faults.append(
                Fault(
                    str(csv_path),
                    "size_mismatch",
                    f"width,height columns say {w_col}x{h_col} but the image is {width}x{height}; "
                    "boxes are taken as pixels of the real image",
                    str(line),
                    fatal=False,
                )
            )
        box, fault = check_box(coords, width, height)
        if fault:
            faults.append(Fault(str(csv_path), fault[0], fault[1], str(line)))
            continue
        entry["boxes"].append(box)
        entry["classes"].append(index[label])
    examples = [
        Example(
            image_path=str(e["path"]),
            boxes=np.asarray(e["boxes"], np.float32).reshape(-1, 4),
            box_classes=np.asarray(e["classes"], np.int32),
            origin=f"{csv_path}:{e['line']}",
        )
        for e in per_image.values()
        if e["path"] is not None
    ]
    if not examples:
        raise DataError(
            f"{csv_path}: no usable rows ({len(faults)} faults, first: {faults[0] if faults else '-'})"
        )
    return Dataset("detect", class_names, examples, str(root), "csv", split or "all", faults)


def check_box(
    coords: list[float], width: float, height: float, tolerance: float = EDGE_TOLERANCE
) -> tuple[list[float], tuple[str, str] | None]:
    """Validate an xyxy pixel box against an image size; clip overshoots within ``tolerance``.

    Returns ``(box, None)`` or ``(coords, (kind, detail))`` for a degenerate box or one
    outside the image.
    """
    x1, y1, x2, y2 = coords
    if x2 <= x1 or y2 <= y1:
        return coords, (
            "degenerate_box",
            f"box {coords} has xmax<=xmin or ymax<=ymin; fix or delete it",
        )
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        return coords, (
            "box_outside_image",
            f"box {coords} lies outside the {width}x{height} image; fix the coordinates",
        )
    return [max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)], None


load = load_csv
