"""Atomic file writes: write beside the target, then ``os.replace``, so a crash or a full
disk never leaves a half-written model, export, plot or report in place of a good one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) for writers that want a file name
    (``model.save``, ``fig.savefig``); it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as Keras refuse to overwrite silently in some versions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (the old one is removed last)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = target.with_name(f".{target.name}.old")
    if backup.exists() and not target.exists():  # killed between the two renames below
        os.replace(backup, target)
    for stale in target.parent.glob(f".{target.name}.*"):  # staging folders of killed writes
        if stale.is_dir() and stale != backup:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = backup
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old, target)  # put the previous one back (a SIGKILL here: next call)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, default=_json_default)
        handle.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def write_yaml(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as block-style YAML (safe dumper), atomically."""
    import yaml

    with atomic_write(path) as handle:
        yaml.safe_dump(data, handle, sort_keys=False, default_flow_style=False)


def save_figure(
    fig,
    path: str | os.PathLike,
    dpi: float | None = None,
    *,
    tight: bool = True,
    close: bool = True,
) -> Path:
    """Save a matplotlib figure atomically (the format follows the suffix).

    ``tight`` trims the margins (the pixel size then follows the content); ``close``
    releases pyplot's reference to the figure.
    """
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            dpi=dpi or fig.dpi,
            bbox_inches="tight" if tight else None,
            format=Path(path).suffix.lstrip(".") or "png",
        )
    if close and getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Path(path)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
