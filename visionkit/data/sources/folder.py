"""Image-folder classification datasets: one subfolder per class.

Layouts::

    root/CLASS/*.jpg                       (no splits)
    root/SPLIT/CLASS/*.jpg                 (SPLIT: train, val, test and aliases)

Split folder aliases: ``training_set``/``training`` → train, ``valid``/``validation`` → val,
``test_set`` → test. Class names are the sorted union of class folder names over all
splits, so every split shares one index mapping. Image extensions are matched
case-insensitively; other files become ``not_an_image`` faults; hidden files and folders
are ignored. Images are referenced by path (``Example.image_path``), not decoded.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..types import Dataset, Example, Fault
from ._common import (
    IMAGE_EXTENSIONS,
    SPLIT_ALIASES,
    is_image_file,
    list_images,
    require_exists,
    visible_entries,
)


def _subdirs(folder: Path) -> list[Path]:
    return [p for p in visible_entries(folder) if p.is_dir()]


def split_folders(root: str | Path) -> dict[str, Path]:
    """Canonical split name → folder, when ``root`` has a split level; else ``{}``."""
    root = Path(root)
    subdirs = _subdirs(root)
    found = {}
    for d in subdirs:
        canon = SPLIT_ALIASES.get(d.name.lower())
        if canon is None:
            return {}
        if canon in found:
            raise DataError(
                f"{root}: both {found[canon].name!r} and {d.name!r} mean split {canon!r}; "
                "keep one folder per split"
            )
        found[canon] = d
    # A split level holds class folders, not images.
    if found and all(_subdirs(d) for d in found.values()):
        return found
    return {}


def available_splits(path: str | Path) -> list[str]:
    """The splits present in the folder layout (``[]`` when there is no split level)."""
    return sorted(split_folders(require_exists(path)))


def load_folder(path: str | Path, *, split: str | None = None, task: str | None = None) -> Dataset:
    """Read a class-per-subfolder dataset.

    ``split`` picks one split of a split-level layout (``None`` reads all splits together,
    with ``Dataset.split == "all"``). ``task`` must be ``None`` or ``"classify"``.
    Raises DataError for a missing path, an unknown split, or a folder without class
    subfolders or images.
    """
    if task not in (None, "classify"):
        raise DataError(f"{path}: image folders hold classification data, not task={task!r}")
    root = require_exists(path)
    if not root.is_dir():
        raise DataError(f"{root}: an image-folder dataset must be a directory of class folders")
    splits = split_folders(root)
    if splits:
        if split is not None and split not in splits:
            raise DataError(
                f"{root}: no split {split!r}; found {sorted(splits)}. Pass one of those as split="
            )
        chosen = {split: splits[split]} if split else splits
        class_names = sorted({d.name for s in splits.values() for d in _subdirs(s)})
    else:
        if split not in (None, "all"):
            raise DataError(
                f"{root}: has no split folders (train/val/test); cannot select split={split!r}. "
                "Use load_splits to carve a validation split"
            )
        chosen = {"all": root}
        class_names = sorted(d.name for d in _subdirs(root))
    if not class_names:
        raise DataError(
            f"{root}: no class subfolders found; expected ROOT/CLASS/image files "
            "(optionally ROOT/train|val|test/CLASS/...)"
        )
    index = {name: i for i, name in enumerate(class_names)}
    faults: list[Fault] = []
    examples: list[Example] = []
    for folder in chosen.values():
        for entry in visible_entries(folder):
            if not entry.is_dir():
                faults.append(
                    Fault(
                        file=str(entry),
                        kind="outside_class_folder" if is_image_file(entry) else "not_an_image",
                        detail="file beside the class folders; skipped. Move it into a class folder",
                    )
                )
                continue
            for img in list_images(entry, faults, root):
                examples.append(Example(image_path=str(img), label=index[entry.name]))
    if not examples:
        raise DataError(
            f"{root}: no images found in the class folders (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return Dataset(
        task="classify",
        class_names=class_names,
        examples=examples,
        root=str(root),
        format="folder",
        split=split or "all",
        faults=faults,
    )


load = load_folder
