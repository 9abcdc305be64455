"""Sharded TFRecord files of any dataset: written by ``visionkit data export-tfrecord``,
read back by the ``tfrecord`` source (``data=EXPORT_FOLDER``) for every command.

An export folder holds, per split, ``SPLIT-00000-of-0000N.tfrecord`` shards (contiguous,
balanced runs of examples) and one ``manifest.json``::

    {"format": "visionkit-tfrecord", "version": 1, "task": "detect",
     "class_names": [...], "mask_value_map": null | {"255": 1},
     "splits": {"train": {"files": [...], "examples": 1200, "bytes": 51234567}, ...},
     "source": "path/of/the/data", "source_format": "voc", "skipped": 3}

Each record is a ``tf.train.Example`` (one image):

==========================  ======  ===================================================
feature                     type    meaning
==========================  ======  ===================================================
``image/encoded``           bytes   the image file's own bytes when TensorFlow decodes
                                    them to exactly ``read_image``'s pixels (JPEG, PNG
                                    without EXIF rotation, palette, alpha, 16 bits or
                                    CMYK); otherwise a PNG of the decoded RGB pixels
``image/format``            bytes   ``jpeg`` or ``png``
``image/height``, ``/width``  int64   size of the decoded image
``image/source``            bytes   the original file (or origin) for messages
``index``                   int64   position of the example in its split
``image/class/label``       int64   classify: the class id
``image/object/bbox``       float   detect: boxes ``xyxy`` in pixels, flattened (4·N)
``image/object/class``      int64   detect: class id per box (N)
``mask/encoded``            bytes   segment: 16-bit greyscale PNG of the mask as stored
                                    (``mask_value_map`` of the manifest still applies)
==========================  ======  ===================================================

Reading: the source finds each record's byte offset by walking the shards' length headers,
and reads the annotations with ``tf.data`` interleaved over the shards in parallel (which
also checks every record's CRC). Training then reads records by offset (random access,
as ArrayRecord does), so shuffling, per-epoch seeding, resume and Mosaic partners behave
exactly as for image folders; ``cache=true`` keeps the decoded images in memory after the
first epoch.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from visionkit.data.errors import DataError
from visionkit.data.types import Dataset, Example, RecordRef

FORMAT = "visionkit-tfrecord"
VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".tfrecord"
SHARD_BYTES = 128 * 2**20  # target shard size when shards= is not given

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
# image conversions that TensorFlow's decoder does not do like read_image: re-encoded
_REENCODE = ("exif_rotated", "cmyk", "sixteen_bit", "palette", "alpha")


def shard_name(split: str, index: int, count: int) -> str:
    """``train-00003-of-00008.tfrecord``."""
    return f"{split}-{index:05d}-of-{count:05d}{SUFFIX}"


# -- encoding one example ---------------------------------------------------------------
def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_image(example: Example) -> tuple[bytes, str, int, int]:
    """``(bytes, format, height, width)`` of an example's image for ``image/encoded``."""
    from visionkit.data.images import example_image, inspect_image

    if example.image_path is not None:
        path = str(example.image_path)
        with open(path, "rb") as handle:
            data = handle.read()
        if data.startswith((_PNG, _JPEG)):
            info = inspect_image(path, decode=True, data=data)
            if info.readable and not any(getattr(info, kind) for kind in _REENCODE):
                return data, "png" if data.startswith(_PNG) else "jpeg", info.height, info.width
    elif example.record is not None:
        features = record_features(example.record)
        data = features["image/encoded"][0]
        return (
            data,
            features["image/format"][0].decode(),
            int(features["image/height"][0]),
            int(features["image/width"][0]),
        )
    from visionkit.data.pipeline import _as_rgb

    pixels = _as_rgb(example_image(example))
    return _png(pixels), "png", int(pixels.shape[0]), int(pixels.shape[1])


def encode_mask(example: Example) -> bytes:
    """A 16-bit greyscale PNG of the example's mask, values as stored."""
    from visionkit.data.images import example_mask

    mask = np.asarray(example_mask(example))
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.dtype.kind not in "uib" or mask.min(initial=0) < 0:
        raise DataError(
            f"{example.mask_path or example.name}: a mask must be an H×W map of class ids "
            f"≥ 0, got {mask.dtype} {mask.shape}"
        )
    if mask.max(initial=0) > 65535:
        raise DataError(f"{example.mask_path or example.name}: mask values above 65535")
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint16)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def serialize_example(example: Example, task: str, index: int) -> bytes:
    """One ``tf.train.Example`` (see the module docstring) as bytes."""
    import tensorflow as tf

    def bytes_(*values: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

    def ints(*values: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    data, kind, height, width = encode_image(example)
    features = {
        "image/encoded": bytes_(data),
        "image/format": bytes_(kind.encode()),
        "image/height": ints(height),
        "image/width": ints(width),
        "image/source": bytes_(str(example.name).encode()),
        "index": ints(index),
    }
    if task == "classify":
        features["image/class/label"] = ints(int(example.label))
    elif task == "detect":
        boxes = np.zeros((0, 4), np.float32) if example.boxes is None else example.boxes
        classes = np.zeros((0,), np.int64) if example.box_classes is None else example.box_classes
        features["image/object/bbox"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=np.asarray(boxes, np.float32).reshape(-1))
        )
        features["image/object/class"] = ints(*np.asarray(classes).reshape(-1))
    else:
        features["mask/encoded"] = bytes_(encode_mask(example))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


# -- writing ------------------------------------------------------------------------------
def _estimated_bytes(dataset: Dataset) -> int:
    total = 0
    for example in dataset.examples:
        if example.image_path:
            total += os.path.getsize(example.image_path)
        elif example.record is not None:
            total += example.record.length
        elif example.image is not None:
            total += example.image.nbytes // 2
    return total


def write_shards(
    dataset: Dataset,
    folder: Path,
    split: str,
    *,
    shards: int | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``dataset`` as ``folder/SPLIT-*.tfrecord``; return its manifest entry.

    ``shards``: how many files (default: one per ~128 MB of source images, at least one).
    Examples are encoded in a thread pool and written in order."""
    import tensorflow as tf

    n = len(dataset)
    count = int(shards or max(1, math.ceil(_estimated_bytes(dataset) / SHARD_BYTES)))
    count = max(1, min(count, n))
    files, written = [], 0
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tfrecord") as pool:
        for k in range(count):
            start, end = k * n // count, (k + 1) * n // count
            name = shard_name(split, k, count)
            jobs = pool.map(
                lambda i: serialize_example(dataset.examples[i], dataset.task, i),
                range(start, end),
            )
            with tf.io.TFRecordWriter(str(folder / name)) as writer:
                for record in jobs:
                    writer.write(record)
                    written += len(record)
                    if progress is not None:
                        progress(1)
            files.append(name)
    return {"files": files, "examples": n, "bytes": written}


def export_datasets(
    datasets: dict[str, Dataset],
    out: str | os.PathLike,
    *,
    shards: int | None = None,
    progress: bool = True,
    source: str = "",
    source_format: str = "",
    skipped: int = 0,
) -> dict[str, Any]:
    """Write ``{split: Dataset}`` (same task and classes) as an export folder ``out``:
    shards per split and ``manifest.json``. ``out`` is replaced atomically; an existing
    folder that is not an export is refused. Returns the manifest."""
    from tqdm.auto import tqdm

    from visionkit.io import atomic_directory, write_json

    out = Path(out)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())
    ):
        raise DataError(
            f"out={out}: exists and is not a visionkit TFRecord export (no {MANIFEST}); "
            "refusing to replace it: choose another out="
        )
    (first_name, first), *others = datasets.items()
    for name, dataset in others:
        if dataset.class_names != first.class_names or dataset.task != first.task:
            raise DataError(
                f"{source or out}: split {name} has {dataset.task} classes "
                f"{dataset.class_names}, split {first_name} {first.task} {first.class_names}; "
                "export the splits separately (split=)"
            )
    mapping = getattr(first, "mask_value_map", None)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "task": first.task,
        "class_names": list(first.class_names),
        "mask_value_map": {str(k): int(v) for k, v in mapping.items()} if mapping else None,
        "splits": {},
        "source": source,
        "source_format": source_format,
        "skipped": int(skipped),
    }
    total = sum(len(d) for d in datasets.values())
    with (
        atomic_directory(out) as tmp,
        tqdm(total=total, desc="export", unit="img", disable=not progress) as bar,
    ):
        for name, dataset in datasets.items():
            manifest["splits"][name] = write_shards(
                dataset, tmp, name, shards=shards, progress=bar.update
            )
        write_json(tmp / MANIFEST, manifest)
    return manifest


def export_tfrecord(
    path: str,
    out: str | os.PathLike,
    *,
    format: str | None = None,
    task: str | None = None,
    split: str | None = None,
    shards: int | None = None,
    strict: bool = False,
    progress: bool = True,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the dataset at ``path`` (any supported format) as TFRecord shards in ``out``.

    Every split the data defines is exported (or only ``split``), each checked by the
    dataset doctor first: faulty files are skipped and counted (``strict`` stops at the
    first). Returns the manifest (see :func:`export_datasets`)."""
    from visionkit.data.loader import available_splits, detect_format, load_dataset
    from visionkit.data.prepare import checked
    from visionkit.data.synthetic import resolve_builtin

    options = dict(options or {})
    source = resolve_builtin(str(path))
    fmt = format or detect_format(source, task)
    splits = [split] if split else (available_splits(source, fmt, task=task, **options) or [None])
    datasets, skipped = {}, 0
    for name in splits:
        dataset = load_dataset(source, fmt, task, name, **options)
        unread = sum(1 for f in dataset.faults if f.fatal)  # left out by the source itself
        usable, _, _, bad = checked(dataset, strict=strict, progress=progress)
        if len(usable) == 0:
            raise DataError(f"{path}: split {name or 'all'} has no usable examples to export")
        datasets[name or "all"], skipped = usable, skipped + bad + unread
    return export_datasets(
        datasets,
        out,
        shards=shards,
        progress=progress,
        source=str(path),
        source_format=fmt,
        skipped=skipped,
    )


# -- reading ------------------------------------------------------------------------------
def read_manifest(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """``(folder, manifest)`` of an export given its folder, its manifest or one shard."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: path does not exist")
    folder = p if p.is_dir() else p.parent
    file = folder / MANIFEST
    if not file.exists():
        raise DataError(
            f"{folder}: TFRecord files without {MANIFEST}; visionkit reads the TFRecords "
            "that `visionkit data export-tfrecord` writes (shards and a manifest)"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{file}: not valid JSON ({err}); export the data again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{file}: not a {FORMAT} manifest; export the data again")
    if int(manifest.get("version", 0)) > VERSION:
        raise DataError(
            f"{file}: format version {manifest['version']} is newer than this visionkit "
            f"reads ({VERSION}); upgrade visionkit"
        )
    for key in ("task", "class_names", "splits"):
        if key not in manifest:
            raise DataError(f"{file}: the manifest has no {key!r}; export the data again")
    return folder, manifest


def record_offsets(path: str | os.PathLike) -> list[tuple[int, int]]:
    """``(offset, length)`` of every record's data in a TFRecord file, from the length
    headers alone (8-byte length, 4-byte CRC, data, 4-byte CRC)."""
    out = []
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        offset = 0
        while offset < size:
            header = handle.read(12)
            if len(header) < 12:
                raise DataError(
                    f"{path}: truncated after record {len(out)} (a partial header); "
                    "the file was cut short: export the data again"
                )
            (length,) = struct.unpack("<Q", header[:8])
            offset += 12 + length + 4
            if offset > size:
                raise DataError(
                    f"{path}: record {len(out)} claims {length} bytes past the end of the "
                    "file; the file is truncated or not a TFRecord file"
                )
            out.append((offset - length - 4, length))
            handle.seek(offset)
    return out


# Open shards, shared by all threads (``os.pread`` does not move a file offset, so one
# descriptor serves concurrent reads); past the cap, a read opens and closes its file.
_OPEN: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()
MAX_OPEN = 128


def read_record(ref: RecordRef) -> bytes:
    """The serialized example of ``ref`` (``os.pread``: safe from many threads)."""
    fd = _OPEN.get(ref.path)
    if fd is None:
        with _OPEN_LOCK:
            fd = _OPEN.get(ref.path)
            if fd is None and len(_OPEN) < MAX_OPEN:
                fd = _OPEN[ref.path] = os.open(ref.path, os.O_RDONLY)
    if fd is None:
        with open(ref.path, "rb") as handle:
            data = os.pread(handle.fileno(), ref.length, ref.offset)
    else:
        data = os.pread(fd, ref.length, ref.offset)
    if len(data) != ref.length:
        raise DataError(f"{ref.name}: record cut short (the file changed since it was read)")
    return data


def record_features(ref: RecordRef) -> dict[str, list]:
    """The features of the record ``ref`` as Python lists."""
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(read_record(ref))
    except Exception as err:  # a DecodeError of protobuf
        raise DataError(f"{ref.name}: not a tf.train.Example ({err})") from None
    out: dict[str, list] = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = list(getattr(feature, kind).value) if kind else []
    return out


def record_bytes(ref: RecordRef, what: str = "image") -> bytes:
    """The encoded image (``what="image"``) or mask (``"mask"``) stored in ``ref``."""
    key = "image/encoded" if what == "image" else "mask/encoded"
    values = record_features(ref).get(key)
    if not values:
        raise DataError(f"{ref.name}: the record has no {key}")
    return values[0]


def _annotation_spec(task: str) -> dict:
    import tensorflow as tf

    spec = {"index": tf.io.FixedLenFeature([], tf.int64)}
    if task == "classify":
        spec["image/class/label"] = tf.io.FixedLenFeature([], tf.int64)
    elif task == "detect":
        spec["image/object/bbox"] = tf.io.VarLenFeature(tf.float32)
        spec["image/object/class"] = tf.io.VarLenFeature(tf.int64)
    return spec


def scan(files: Sequence[Path], task: str) -> list[dict[str, Any]]:
    """Annotations of every record of ``files``, read with ``tf.data`` interleaved over the
    shards (parallel, CRC-checked): per record its file, position, split index and task
    annotations. A damaged file is a DataError naming it."""
    import tensorflow as tf

    from visionkit.data.pipeline import without_autotune

    spec = _annotation_spec(task)
    names = tf.constant([str(f) for f in files])

    def records(k):
        return tf.data.TFRecordDataset(names[k]).enumerate().map(lambda i, r: (k, i, r))

    def parse(k, position, record):
        parsed = tf.io.parse_single_example(record, spec)
        out = {"file": k, "position": position, "index": parsed["index"]}
        if task == "classify":
            out["label"] = parsed["image/class/label"]
        elif task == "detect":
            out["boxes"] = tf.reshape(tf.sparse.to_dense(parsed["image/object/bbox"]), [-1, 4])
            out["classes"] = tf.sparse.to_dense(parsed["image/object/class"])
        return out

    dataset = (
        tf.data.Dataset.range(len(files))
        .interleave(
            records,
            cycle_length=min(len(files), 16),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    dataset = without_autotune(dataset)
    try:
        return list(dataset.as_numpy_iterator())
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        bad = _first_bad_file(files)
        detail = str(err).splitlines()[0]
        raise DataError(
            f"{bad or files[0]}: damaged TFRecord file ({detail}); export the data again"
        ) from None


def _first_bad_file(files: Sequence[Path]) -> Path | None:
    import tensorflow as tf

    for file in files:
        try:
            for _ in tf.data.TFRecordDataset(str(file)):
                pass
        except tf.errors.OpError:
            return file
    return None


def load_records(
    path: str | os.PathLike, *, task: str | None = None, split: str | None = None
) -> Dataset:
    """The canonical Dataset of an export (one split, or all of them with ``split=None``):
    examples with their annotations in memory and a :class:`RecordRef` to their record."""
    folder, manifest = read_manifest(path)
    if task is not None and task != manifest["task"]:
        raise DataError(f"{folder}: holds {manifest['task']} data (manifest.json), not task={task}")
    splits = manifest["splits"]
    if split is not None and split not in splits:
        raise DataError(f"{folder}: no split {split!r}; the export has {sorted(splits)}")
    chosen = [split] if split is not None else list(splits)
    files = [folder / f for name in chosen for f in splits[name]["files"]]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise DataError(
            f"{missing[0]}: shard listed in {folder / MANIFEST} is missing "
            f"({len(missing)} of {len(files)} missing); copy the whole export folder"
        )
    offsets = [record_offsets(f) for f in files]
    rows = scan(files, manifest["task"])
    expected = sum(int(splits[name]["examples"]) for name in chosen)
    split_of = [s for s, name in enumerate(chosen) for _ in splits[name]["files"]]
    rows.sort(key=lambda row: (split_of[int(row["file"])], int(row["index"])))
    indices = [(split_of[int(r["file"])], int(r["index"])) for r in rows]
    counts = [int(splits[name]["examples"]) for name in chosen]
    if (
        len(rows) != expected
        or len(rows) != sum(len(o) for o in offsets)
        or indices != [(s, i) for s, n in enumerate(counts) for i in range(n)]
    ):
        raise DataError(
            f"{folder}: the shards hold {len(rows)} records, the manifest says {expected} "
            "(or their indices do not match); a shard is damaged or from another export: "
            "export the data again"
        )
    examples = []
    for row in rows:
        k, position = int(row["file"]), int(row["position"])
        offset, length = offsets[k][position]
        ref = RecordRef(str(files[k]), offset, length, position)
        example = Example(record=ref, origin=ref.name)
        if "label" in row:
            example.label = int(row["label"])
        if "boxes" in row:
            example.boxes = np.asarray(row["boxes"], np.float32).reshape(-1, 4)
            example.box_classes = np.asarray(row["classes"], np.int32)
        examples.append(example)
    mapping = manifest.get("mask_value_map")
    dataset = Dataset(
        manifest["task"],
        list(manifest["class_names"]),
        examples,
        str(folder),
        "tfrecord",
        split if split is not None else ("all" if len(chosen) > 1 else chosen[0]),
    )
    if mapping:
        dataset.mask_value_map = {int(k): int(v) for k, v in mapping.items()}
    return dataset
