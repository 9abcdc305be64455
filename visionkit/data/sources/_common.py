"""Helpers shared by the sources: image extensions, safe path resolution, header sizes.

Nothing here decodes pixels: :func:`image_size` reads only the image header (PIL opens
files lazily) and applies the EXIF orientation to the reported size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from ..errors import DataError
from ..types import Fault

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Folder names that mean a split, mapped to the canonical split name.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "training_set": "train",
    "train_set": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "val_set": "val",
    "test": "test",
    "testing": "test",
    "test_set": "test",
}

# EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def is_image_file(path: str | Path) -> bool:
    """True when ``path`` has an image extension (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def is_hidden(name: str) -> bool:
    """True for hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``, ...)."""
    return name.startswith(".")


def visible_entries(folder: Path) -> list[Path]:
    """The non-hidden entries of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if not is_hidden(p.name))


def require_exists(path: str | Path, what: str = "dataset") -> Path:
    """Return ``path`` as a Path, or raise DataError when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"{p}: {what} path does not exist; check the path (relative to {os.getcwd()})"
        )
    return p


def is_inside(path: str | Path, root: str | Path) -> bool:
    """True when ``path``, with symlinks resolved, lies inside ``root`` (also resolved)."""
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def escape_fault(file: str | Path, where: str | int | None, target: str, root: str | Path) -> Fault:
    """The fault for an annotation path that points outside the dataset root."""
    return Fault(
        file=str(file),
        where=None if where is None else str(where),
        kind="path_escapes_root",
        detail=(
            f"path {target!r} resolves outside the dataset root {root}; "
            "refused. Keep images inside the dataset folder and use relative paths"
        ),
    )


def resolve_in_root(target: str, bases: Iterable[Path], root: Path) -> tuple[Path | None, bool]:
    """Find ``target`` under the first of ``bases`` where it exists, staying inside ``root``.

    Returns ``(path, escaped)``: ``path`` is the existing file (or ``None``); ``escaped`` is
    True when the only matches lie outside ``root`` (``../``, absolute paths, symlinks out).
    """
    escaped = False
    target = target.strip()
    for base in bases:
        candidate = Path(target) if os.path.isabs(target) else base / target
        if not candidate.exists():
            continue
        if is_inside(candidate, root):
            return candidate, False
        escaped = True
    if not escaped:
        # A path that climbs out of the root is refused even when the file is missing.
        for base in bases:
            candidate = Path(target) if os.path.isabs(target) else base / target
            if not is_inside(candidate, root):
                escaped = True
                break
    return None, escaped


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the image as it will be decoded (EXIF orientation applied).

    Reads only the header; raises OSError (PIL's UnidentifiedImageError) for non-images.
    """
    with Image.open(path) as img:
        width, height = img.size
        try:
            orientation = img.getexif().get(0x0112)
        except Exception:  # broken EXIF block: the decoder ignores it too
            orientation = None
    if orientation in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def list_images(
    folder: Path, faults: list[Fault] | None = None, root: Path | None = None
) -> list[Path]:
    """Image files directly in ``folder`` (sorted, hidden files ignored).

    Other files are reported in ``faults`` as ``not_an_image`` and skipped; subfolders are
    ignored. With ``root``, files (symlinks) resolving outside it are ``path_escapes_root``.
    """
    out = []
    for p in visible_entries(folder):
        if p.is_dir():
            continue
        if root is not None and not is_inside(p, root):
            if faults is not None:
                faults.append(escape_fault(p, None, str(p), root))
            continue
        if is_image_file(p):
            out.append(p)
        elif faults is not None:
            faults.append(
                Fault(
                    file=str(p),
                    kind="not_an_image",
                    detail="not an image extension "
                    f"({', '.join(IMAGE_EXTENSIONS)}); skipped. Move it out of the image folder",
                )
            )
    return out


def find_dir(parent: Path, names: Iterable[str]) -> Path | None:
    """The first existing subfolder of ``parent`` among ``names`` (case-insensitive)."""
    if not parent.is_dir():
        return None
    by_lower = {p.name.lower(): p for p in parent.iterdir() if p.is_dir()}
    for name in names:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    return None
