"""TFRecord shards written by ``visionkit data export-tfrecord`` (format ``tfrecord``).

``path`` is the export folder (``manifest.json`` beside ``SPLIT-*-of-*.tfrecord``), its
manifest or one of its shards. Splits are the manifest's; ``split=None`` reads them all.
Images and masks stay in the records (``Example.record``); labels and boxes are read into
memory. Record layout and reading: :mod:`visionkit.data.tfrecord`.
"""

from __future__ import annotations

from pathlib import Path

from ..types import Dataset


def available_splits(path: str | Path) -> list[str]:
    """The splits the export holds."""
    from visionkit.data.tfrecord import read_manifest

    return sorted(read_manifest(path)[1]["splits"])


def load_tfrecord(
    path: str | Path, *, task: str | None = None, split: str | None = None
) -> Dataset:
    """Read an export's split (all splits with ``split=None``) into a Dataset."""
    from visionkit.data.tfrecord import load_records

    return load_records(path, task=task, split=split)


load = load_tfrecord
