"""One entry point over all sources: format detection, loading, and train/val splits.

``detect_format(path)`` decides the format from the path's shape alone:

* ``tfds:NAME`` → tfds; a file: ``.tfrecord`` or an export's ``manifest.json`` →
  tfrecord, ``.json`` → coco, ``.csv`` → csv, ``.xml`` → voc, ``masks.yaml`` → masks,
  other ``.yaml`` → yolo, ``*-idx?-ubyte[.gz]`` → idx;
* a folder: ``*.tfrecord`` files → tfrecord (``visionkit data export-tfrecord``);
  ``data.yaml`` or ``labels/*.txt`` beside ``images/`` → yolo; ``masks.yaml`` or
  an images folder beside ``label(s)/``/``mask(s)/`` holding PNGs → masks; ``*.json`` (top or
  ``annotations/``) → coco; ``*.csv`` → csv; ``*.xml`` (top or ``annotations/``) → voc;
  IDX files → idx; otherwise class subfolders with images → folder.

When several fit and ``task`` does not settle it (yolo vs masks with ``task="segment"``
picks masks, with ``"detect"`` yolo), DataError lists the candidates: pass ``format=``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import DataError
from .sources import FORMATS, TASKS_BY_FORMAT, get_source
from .sources._common import IMAGE_EXTENSIONS, find_dir, is_image_file, visible_entries
from .split import stratified_split
from .synthetic import resolve_builtin
from .types import Dataset

_IMAGE_DIRS = ("images", "image", "imgs", "img", "JPEGImages")
# When a folder fits several formats (raccoon: VOC annotations beside split CSV files;
# coco128: YOLO labels beside masks), the first of these that fits is read, with a note.
# Per-image annotation formats cover the whole folder; CSV files are often per split.
PREFERENCE = ("yolo", "coco", "voc", "masks", "csv")
_MASK_DIRS = ("masks", "mask", "labels", "label")


def _has_files(folder: Path | None, suffixes: tuple[str, ...], depth: int = 2) -> bool:
    """True when ``folder`` holds a file ending in ``suffixes`` within ``depth`` levels."""
    if folder is None or not folder.is_dir():
        return False
    for entry in visible_entries(folder):
        if entry.is_file() and entry.name.lower().endswith(suffixes):
            return True
        if entry.is_dir() and depth > 1 and _has_files(entry, suffixes, depth - 1):
            return True
    return False


def _top_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(
        p for p in folder.glob(f"*{suffix}") if p.is_file() and not p.name.startswith(".")
    )


def _candidates(folder: Path) -> list[str]:
    from .sources.idx import is_idx_file

    out = []
    images = find_dir(folder, _IMAGE_DIRS)
    labels = find_dir(folder, ("labels",))
    if any((folder / n).is_file() for n in ("data.yaml", "data.yml", "dataset.yaml")) or (
        images and _has_files(labels, (".txt",))
    ):
        out.append("yolo")
    masks_dir = find_dir(folder, _MASK_DIRS)
    if (folder / "masks.yaml").is_file() or (images and _has_files(masks_dir, (".png",))):
        out.append("masks")
    ann = find_dir(folder, ("annotations", "Annotations"))
    if _top_files(folder, ".json") or (ann and _top_files(ann, ".json")):
        out.append("coco")
    if _top_files(folder, ".csv"):
        out.append("csv")
    if _top_files(folder, ".xml") or (ann and _top_files(ann, ".xml")):
        out.append("voc")
    if any(is_idx_file(p) for p in folder.iterdir() if p.is_file()):
        out.append("idx")
    return out


def _is_export(folder: Path) -> bool:
    """A TFRecord export: ``*.tfrecord`` shards at the top of the folder."""
    return any(p.suffix == ".tfrecord" for p in folder.iterdir() if p.is_file())


def _is_class_folder_tree(folder: Path) -> bool:
    for sub in (p for p in visible_entries(folder) if p.is_dir()):
        if any(is_image_file(p) for p in sub.iterdir()) or any(
            any(is_image_file(q) for q in d.iterdir()) for d in sub.iterdir() if d.is_dir()
        ):
            return True
    return False


def detect_format(path: str | Path, task: str | None = None) -> str:
    """The format name of ``path`` (one of ``sources.FORMATS``); DataError when unknown or ambiguous."""
    path = resolve_builtin(str(path))
    text = str(path)
    if text.startswith("tfds:"):
        return "tfds"
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: path does not exist")
    if p.is_file():
        from .sources.idx import is_idx_file

        name = p.name.lower()
        if is_idx_file(p):
            return "idx"
        if name.endswith(".tfrecord") or (name == "manifest.json" and _is_export(p.parent)):
            return "tfrecord"
        by_suffix = {".json": "coco", ".csv": "csv", ".xml": "voc", ".yaml": "yolo", ".yml": "yolo"}
        if name in ("masks.yaml", "masks.yml"):
            return "masks"
        if p.suffix.lower() in by_suffix:
            return by_suffix[p.suffix.lower()]
        raise DataError(
            f"{p}: cannot tell the data format from this file; pass format= (one of {list(FORMATS)})"
        )
    if _is_export(p):
        return "tfrecord"
    found = _candidates(p)
    if task is not None:
        found = [f for f in found if task in TASKS_BY_FORMAT[f]]
        if set(found) == {"yolo", "masks"}:
            found = ["masks"] if task == "segment" else ["yolo"]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        preferred = [f for f in PREFERENCE if f in found]
        if not preferred:
            raise DataError(
                f"{p}: ambiguous data format, it fits {found}; pass format= (e.g. format={found[0]!r}) "
                "or point at the annotation file itself"
            )
        print(
            f"note: {p} fits several formats {found}; reading it as {preferred[0]} "
            f"(per-image annotations over the whole folder). Pass format= to choose another.",
            file=sys.stderr,
        )
        return preferred[0]
    if _is_class_folder_tree(p):
        return "folder"
    raise DataError(
        f"{p}: no known data layout (class subfolders of images {IMAGE_EXTENSIONS}, CSV, COCO JSON, "
        "VOC XML, YOLO data.yaml, images+masks, IDX); pass format= or fix the layout"
    )


def _annotation_file(path: Path, fmt: str) -> Path | str:
    """For csv/coco given a folder, the single annotation file inside it."""
    if fmt not in ("csv", "coco") or not path.is_dir():
        return path
    suffix = ".csv" if fmt == "csv" else ".json"
    files = _top_files(path, suffix)
    ann = find_dir(path, ("annotations", "Annotations"))
    if not files and ann is not None:
        files = _top_files(ann, suffix)
    if len(files) == 1:
        return files[0]
    if not files:
        raise DataError(f"{path}: no {suffix} file found for format={fmt!r}")
    raise DataError(
        f"{path}: several {suffix} files {[f.name for f in files]}; pass the file path itself"
    )


def load_dataset(
    path: str | Path,
    format: str | None = None,
    task: str | None = None,
    split: str | None = None,
    **options,
) -> Dataset:
    """Read ``path`` into a Dataset with the source for ``format`` (detected when ``None``).

    ``options`` go to the source (``classes=``, ``images_dir=``, ``labels_dir=``, ``names=``,
    ``data_dir=``, ...). ``split=None`` reads everything the path holds.
    """
    path = resolve_builtin(str(path))
    fmt = format or detect_format(path, task)
    source = get_source(fmt)
    target = path if fmt == "tfds" else _annotation_file(Path(path), fmt)
    if fmt == "tfrecord":
        options.pop("data_dir", None)
    return source.load(target, task=task, split=split, **options)


def available_splits(path: str | Path, format: str | None = None, **options) -> list[str]:
    """The splits the data itself defines (``[]`` when it has none)."""
    path = resolve_builtin(str(path))
    fmt = format or detect_format(path, options.get("task"))
    source = get_source(fmt)
    if not hasattr(source, "available_splits"):
        return []
    target = path if fmt == "tfds" else _annotation_file(Path(path), fmt)
    extra = {"data_dir": options["data_dir"]} if fmt == "tfds" and "data_dir" in options else {}
    return [s for s in source.available_splits(target, **extra) if s != "all"]


def load_splits(
    path: str | Path,
    format: str | None = None,
    task: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    **options,
) -> dict[str, Dataset]:
    """``{split: Dataset}``: the data's own splits when it has a ``train`` split, else a split.

    With its own splits, each is loaded as is; when ``val`` is missing it is carved from
    ``train`` (stratified, seeded; ``test`` stays untouched). Without a ``train`` split the
    whole data is split into ``train``/``val`` with :func:`stratified_split`.
    """
    path = resolve_builtin(str(path))
    fmt = format or detect_format(path, task)
    splits = available_splits(path, fmt, **options)
    if "train" in splits:
        out = {s: load_dataset(path, fmt, task, s, **options) for s in splits}
        if "val" not in out:
            out["train"], out["val"] = stratified_split(out["train"], val_fraction, seed)
        return out
    train, val = stratified_split(
        load_dataset(path, fmt, task, None, **options), val_fraction, seed
    )
    return {"train": train, "val": val}
