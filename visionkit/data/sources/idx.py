"""MNIST-style IDX files (raw or gzip), held in memory.

A dataset is a pair ``PREFIX-images-idx3-ubyte[.gz]`` + ``PREFIX-labels-idx1-ubyte[.gz]``
(``PREFIX`` ``train`` → split ``train``, ``t10k``/``test`` → ``test``). The header is a
4-byte magic (two zero bytes, a type code: 0x08 = uint8, then the number of dims) and one
big-endian int32 per dim. Images (N, H, W) become ``Example.image`` H×W×3 uint8 views into
one array (grey repeated over RGB); labels are ``Example.label``. Class names are
``"0" .. str(max label)``.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..types import Dataset, Example
from ._common import require_exists

IDX_PATTERN = re.compile(
    r"^(?P<prefix>.*?)[-_.]?(?P<kind>images|labels)[-_.]idx(?P<ndim>\d)[-_.]ubyte(\.gz)?$", re.I
)
_SPLITS = {"train": "train", "t10k": "test", "test": "test"}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def is_idx_file(path: str | Path) -> bool:
    """True for file names like ``t10k-images-idx3-ubyte.gz``."""
    return IDX_PATTERN.match(Path(path).name) is not None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip detected by its magic bytes) into an array of its dims."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: broken gzip stream ({exc}); download the file again") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(
            f"{path}: not an IDX file (bad magic {data[:4].hex()}); expected 0000 08 0N"
        )
    ndim = data[3]
    dims = np.frombuffer(data, ">i4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise DataError(
            f"{path}: header says dims {dims.tolist()} ({expected} bytes) but {len(data) - offset} follow; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def _pairs(folder: Path) -> dict[str, dict[str, Path]]:
    """``{split: {"images": path, "labels": path}}`` found in ``folder``."""
    out: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        m = IDX_PATTERN.match(p.name)
        if m:
            prefix = m["prefix"].lower()
            out.setdefault(_SPLITS.get(prefix, prefix or "all"), {})[m["kind"].lower()] = p
    return out


def available_splits(path: str | Path) -> list[str]:
    """Splits with both an images and a labels file."""
    p = require_exists(path, "IDX")
    folder = p.parent if p.is_file() else p
    return sorted(s for s, kinds in _pairs(folder).items() if len(kinds) == 2)


def load_idx(path: str | Path, *, task: str | None = None, split: str | None = None) -> Dataset:
    """Read an IDX images/labels pair (``path``: the folder or either file)."""
    if task not in (None, "classify"):
        raise DataError(f"{path}: IDX files hold classification data, not task={task!r}")
    p = require_exists(path, "IDX")
    folder = p.parent if p.is_file() else p
    pairs = _pairs(folder)
    if p.is_file():
        m = IDX_PATTERN.match(p.name)
        if m is None:
            raise DataError(f"{p}: not an IDX file name (PREFIX-images-idx3-ubyte[.gz])")
        prefix = m["prefix"].lower()
        split = split or _SPLITS.get(prefix, prefix or "all")
    complete = {s: k for s, k in pairs.items() if len(k) == 2}
    if not complete:
        raise DataError(f"{folder}: no matching *-images-idx3-ubyte / *-labels-idx1-ubyte pair")
    if split is None:
        if len(complete) > 1:
            raise DataError(f"{folder}: several IDX splits {sorted(complete)}; pass split=")
        split = next(iter(complete))
    if split not in complete:
        raise DataError(f"{folder}: no IDX split {split!r}; found {sorted(complete)}")
    images = read_idx(complete[split]["images"])
    labels = read_idx(complete[split]["labels"])
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(
            f"{folder}: expected images (N, H, W) and labels (N,), got {images.shape} and {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{folder}: {len(images)} images but {len(labels)} labels; the files do not belong together"
        )
    rgb = np.repeat(images.astype(np.uint8)[..., None], 3, axis=-1)
    names = [str(i) for i in range(int(labels.max(initial=0)) + 1)]
    origin = str(complete[split]["images"])
    examples = [
        Example(image=rgb[i], label=int(labels[i]), origin=f"{origin}[{i}]")
        for i in range(len(rgb))
    ]
    return Dataset("classify", names, examples, str(folder), "idx", split, [])


load = load_idx
