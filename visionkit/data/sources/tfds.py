"""TensorFlow Datasets by name (``tfds:NAME``), image classification, held in memory.

Never downloads: the builder is created without network access and ``download_and_prepare``
is never called. When the prepared data is not in ``data_dir`` (default: TFDS's
``~/tensorflow_datasets``), reading fails at once with a DataError saying where to place
the prepared files (or to run ``tfds build NAME`` / ``tfds.load`` once with network).
``tfds.testing.mock_data`` works through this path (it replaces ``as_dataset``).

Features: the image feature and label come from ``info.supervised_keys`` (else ``image``
and ``label``); grey images are repeated to RGB. Class names come from the ``ClassLabel``
feature. ``max_examples=`` limits how many are read.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import DataError
from ..types import Dataset, Example

PREFIX = "tfds:"
_NAME = re.compile(r"^[a-z0-9_]+(/[a-zA-Z0-9_.+-]+)?(:[0-9.*]+)?$")


def parse_name(spec: str) -> str:
    """``"tfds:mnist"`` → ``"mnist"`` (also ``NAME/CONFIG`` and ``NAME:VERSION``)."""
    name = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    if not _NAME.match(name):
        raise DataError(
            f"{spec!r}: expected tfds:NAME (e.g. tfds:mnist, tfds:voc/2007, tfds:mnist:3.0.1)"
        )
    return name


def _builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # DatasetNotFoundError and friends
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"tfds:{name}: no such TFDS dataset ({first}); see tfds.list_builders()"
        ) from exc


def available_splits(spec: str, data_dir: str | None = None) -> list[str]:
    """The splits the dataset's metadata names (read from code or the prepared files)."""
    builder = _builder(parse_name(spec), data_dir)
    return sorted(builder.info.splits.keys())


def load_tfds(
    spec: str,
    *,
    task: str | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    max_examples: int | None = None,
) -> Dataset:
    """Read a prepared TFDS image-classification dataset into memory (never downloads)."""
    if task not in (None, "classify"):
        raise DataError(
            f"{spec}: only image-classification TFDS datasets are supported, not task={task!r}"
        )
    name = parse_name(spec)
    builder = _builder(name, data_dir)
    split = split or "train"
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as exc:  # AssertionError "not found", ValueError for bad splits, ...
        raise DataError(
            f"tfds:{name}: prepared data for split {split!r} not found at {builder.data_dir} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). visionkit never "
            f"downloads: place the prepared dataset (dataset_info.json and record files) in "
            f"{builder.data_dir} (or pass data_dir=), or run `tfds build {name}` once with network"
        ) from exc
    keys = builder.info.supervised_keys or ("image", "label")
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        raise DataError(f"tfds:{name}: supervised keys {keys!r} are not (image, label)")
    image_key, label_key = keys
    label_feature = builder.info.features[label_key]
    names = list(getattr(label_feature, "names", None) or [])
    examples = []
    for i, record in enumerate(ds.as_numpy_iterator()):
        if max_examples is not None and i >= max_examples:
            break
        image = np.asarray(record[image_key])
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.dtype != np.uint8:
            raise DataError(
                f"tfds:{name}: feature {image_key!r} is {image.dtype} {image.shape}, not an H×W×C uint8 image"
            )
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        elif image.shape[-1] == 4:
            image = image[..., :3]
        examples.append(
            Example(image=image, label=int(record[label_key]), origin=f"tfds:{name}/{split}[{i}]")
        )
    if not names:
        names = [str(i) for i in range(max((e.label for e in examples), default=-1) + 1)]
    if not examples:
        raise DataError(f"tfds:{name}: split {split!r} is empty")
    return Dataset("classify", names, examples, str(builder.data_dir), "tfds", split, [])


load = load_tfds
