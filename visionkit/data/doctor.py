"""The dataset doctor: check every example of a :class:`~visionkit.data.types.Dataset`.

``check_dataset`` decodes every image file (in a thread pool; Pillow releases the GIL while
decoding), checks the annotations against the decoded, EXIF-oriented image, and returns a
:class:`DoctorReport`: counts, image-size statistics, every fault found (plus the faults the
source recorded while parsing, ``dataset.faults``) and the indices of the usable examples.
``format_report`` renders it for people; ``DoctorReport.to_json`` gives the object printed
by ``visionkit data check --json``: ``images``, ``classes`` (name → count), ``boxes``,
``faults`` (a list of ``{"file", "kind", "detail"[, "where"], "fatal"}``) and the extras
``image_sizes`` and ``usable_images``.

Fault kinds (stable identifiers) and whether they make the example unusable (fatal):

==========================  =====  =====================================================
kind                        fatal  meaning
==========================  =====  =====================================================
missing_file                yes    the image (or mask) file does not exist
empty_file                  yes    the file has 0 bytes
not_an_image                yes    Pillow cannot identify the file as an image
truncated                   yes    the file ends before its pixels do
unreadable                  yes    any other decoding error (corrupt data, permissions)
too_large                   yes    more than ``max_pixels`` pixels (decompression bomb)
bad_array                   yes    an in-memory ``Example.image`` is not an image array
no_label                    yes    classification example without a label
unknown_class               yes    label or box class id outside ``0..num_classes-1``
bad_box                     yes    box not (N, 4), not finite, non-positive width/height,
                                   or ``box_classes`` of another length
box_outside_image           yes    box beyond the decoded image by more than 1 pixel
no_mask                     yes    segmentation example without a mask
bad_mask                    yes    mask is not a single-channel map (H×W×3, say)
mask_size_mismatch          yes    mask height/width differ from the decoded image's
mask_value_out_of_range     yes    mask value not a class id (and not the ignore value)
no_annotation               no     detection image without boxes (kept as background)
exif_rotated, grayscale,    no     handled on reading (see :mod:`visionkit.data.images`):
cmyk, sixteen_bit, alpha,          "notes"
palette
duplicate                   no     same bytes as an earlier file (sha1), or the same
                                   file listed twice: a note
==========================  =====  =====================================================

Exit codes (:func:`exit_code`): **2** when the input is unusable (no examples, or none
usable); **1** when any fault other than a note was found (every fatal fault,
``no_annotation``, and the source's own parsing faults); **0** otherwise. Notes (the
handled conversions and duplicates, :data:`NOTE_KINDS`) are listed in the report and in the
JSON ``faults`` with ``"fatal": false`` but do not change the exit code: real datasets are
full of grayscale JPEGs and re-uploaded copies (``raccoon`` has 3 grayscale images and 4
byte-identical pairs), and they train fine.

Segmentation masks: values must lie in ``0..num_classes-1``, or be keys of
``dataset.mask_value_map`` (stored value → class id) when the dataset has one;
``ignore_value`` (for example 255, the usual "void" label) is allowed in addition when
given, or when the dataset has an ``ignore_value`` attribute. Class counts for segmentation
are mask pixels per class.
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from .errors import DataError
from .images import (
    DEFAULT_MAX_PIXELS,
    HANDLED_KINDS,
    ImageInfo,
    ImageReadError,
    inspect_image,
    read_mask,
)
from .types import Dataset, Example, Fault

BOX_TOLERANCE = 1.0  # pixels a box may stick out of its image before it is a fault

# kind → (fatal, what to do). The single source of truth for the table in the module doc.
FAULT_KINDS: dict[str, tuple[bool, str]] = {
    "missing_file": (True, "restore the file or fix its path in the annotations"),
    "empty_file": (True, "re-download or re-export the file"),
    "not_an_image": (
        True,
        "the file is not an image (text or HTML saved as .jpg?): replace or remove it",
    ),
    "truncated": (True, "the download or copy was cut short: re-download or re-export the file"),
    "unreadable": (True, "open it in an image viewer; re-encode it as PNG/JPEG or remove it"),
    "too_large": (True, "downscale the image, or raise max_pixels if it is genuine"),
    "bad_array": (True, "in-memory images must be numeric H×W or H×W×C arrays (C = 1, 3 or 4)"),
    "no_label": (True, "give the example a class (its folder or label column)"),
    "unknown_class": (True, "add the class to the class list or fix the class id"),
    "bad_box": (True, "boxes are xyxy pixels with xmin < xmax and ymin < ymax, one class per box"),
    "box_outside_image": (
        True,
        "check the box format (xyxy pixels, not normalised or xywh) and that boxes were drawn "
        "on the EXIF-rotated image",
    ),
    "no_mask": (True, "add the mask file for this image"),
    "bad_mask": (True, "masks are single-channel maps of class ids (an L or palette PNG)"),
    "mask_size_mismatch": (True, "re-export the mask at the size of its (EXIF-rotated) image"),
    "mask_value_out_of_range": (
        True,
        "map mask values to class ids 0..N-1, or declare the ignore value (e.g. 255)",
    ),
    "no_annotation": (
        False,
        "the image trains as pure background: add its boxes if it shows objects",
    ),
    "exif_rotated": (
        False,
        "none needed: pixels are rotated on reading; annotate the rotated image",
    ),
    "grayscale": (False, "none needed: converted to RGB on reading"),
    "cmyk": (False, "none needed: converted to RGB on reading"),
    "sixteen_bit": (False, "none needed: scaled to 8 bits (>> 8) on reading"),
    "alpha": (
        False,
        "none needed: alpha is dropped on reading; flatten the images if transparency matters",
    ),
    "palette": (False, "none needed: expanded to RGB on reading"),
    "duplicate": (False, "remove the copies, or at least keep copies in the same split"),
}

# Non-fatal kinds that do not change the exit code.
NOTE_KINDS = frozenset((*HANDLED_KINDS, "duplicate"))


class DatasetFaultError(DataError):
    """A fatal fault found with ``strict=True``; ``fault`` holds it."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(
            f"{fault} (strict mode stops at the first fatal fault; run `visionkit data check` "
            "for the full report, or set strict=false to skip such examples)"
        )
        self.fault = fault


def is_note(fault: Fault) -> bool:
    """True for a handled, informational fault that does not change the exit code."""
    return not fault.fatal and fault.kind in NOTE_KINDS


@dataclass
class DoctorReport:
    """What :func:`check_dataset` found.

    ``classes``: images per class (classify), boxes per class (detect) or mask pixels per
    class (segment), over every valid annotation (also those of examples whose image turned
    out unusable; an unknown class id is not counted). ``boxes``: total boxes for
    detection, else None. ``image_sizes``: ``{"width": {"min", "median", "max"},
    "height": {...}}`` over the readable images (None when there is none). ``usable``:
    indices into ``dataset.examples`` of the examples without a fatal fault.
    """

    task: str
    images: int
    classes: dict[str, int]
    boxes: int | None
    image_sizes: dict[str, dict[str, float]] | None
    faults: list[Fault]
    usable: list[int]
    dataset: Dataset | None = field(default=None, repr=False, compare=False)

    @property
    def fatal_faults(self) -> list[Fault]:
        return [f for f in self.faults if f.fatal]

    @property
    def notes(self) -> list[Fault]:
        return [f for f in self.faults if is_note(f)]

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    def usable_dataset(self) -> Dataset:
        """The checked dataset restricted to its usable examples (faults: this report's)."""
        if self.dataset is None:
            raise ValueError("this report holds no dataset")
        examples = [self.dataset.examples[i] for i in self.usable]
        return replace(self.dataset, examples=examples, faults=list(self.faults))

    def to_json(self) -> dict:
        """The ``visionkit data check --json`` object (plain JSON types)."""
        return {
            "images": self.images,
            "classes": dict(self.classes),
            "boxes": self.boxes,
            "faults": [f.to_dict() for f in self.faults],
            "image_sizes": self.image_sizes,
            "usable_images": len(self.usable),
        }


def exit_code(report: DoctorReport) -> int:
    """0 clean (notes only), 1 faults found, 2 unusable input (nothing usable to train on)."""
    if report.images == 0 or not report.usable:
        return 2
    return 1 if any(not is_note(f) for f in report.faults) else 0


# ---------------------------------------------------------------------------------------
# File inspection (runs in worker threads)


def _sha1_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _inspect_file(path: str, max_pixels: int | None, hash_: bool) -> tuple[ImageInfo, str | None]:
    """Fully decode one image file; hash its bytes when it is readable and hashing is on."""
    info = inspect_image(path, decode=True, max_pixels=max_pixels)
    digest = None
    if hash_ and info.readable:
        try:
            digest = _sha1_file(path)
        except OSError:
            digest = None
    return info, digest


def _inspect_record(ref, max_pixels: int | None, hash_: bool) -> tuple[ImageInfo, str | None]:
    """Fully decode the image inside a TFRecord record (``Example.record``), like a file."""
    from visionkit.data.tfrecord import record_bytes

    try:
        data = record_bytes(ref, "image")
    except (DataError, OSError) as err:
        info = ImageInfo(path=ref.name)
        info.faults.append(Fault(ref.name, "unreadable", f"cannot read the record: {err}"))
        return info, None
    info = inspect_image(ref.name, decode=True, max_pixels=max_pixels, data=data)
    digest = hashlib.sha1(data).hexdigest() if hash_ and info.readable else None
    return info, digest


def _inspect_record_mask(ref, max_pixels: int | None) -> _MaskInfo:
    from visionkit.data.tfrecord import record_bytes

    try:
        data = record_bytes(ref, "mask")
        return _summarise_mask(read_mask(ref.name, max_pixels=max_pixels, data=data))
    except ImageReadError as err:
        return _MaskInfo(fault=err.to_fault())
    except (DataError, OSError) as err:
        return _MaskInfo(fault=Fault(ref.name, "unreadable", f"cannot read the mask: {err}"))


@dataclass
class _MaskInfo:
    shape: tuple[int, ...] = ()
    values: np.ndarray | None = None
    counts: np.ndarray | None = None
    fault: Fault | None = None


def _summarise_mask(mask: np.ndarray) -> _MaskInfo:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype.kind not in "uib":
        return _MaskInfo(shape=mask.shape)
    values, counts = np.unique(mask, return_counts=True)
    return _MaskInfo(shape=mask.shape, values=values.astype(np.int64), counts=counts)


def _inspect_mask(path: str, max_pixels: int | None) -> _MaskInfo:
    try:
        return _summarise_mask(read_mask(path, max_pixels=max_pixels))
    except ImageReadError as err:
        return _MaskInfo(fault=err.to_fault())
    except Exception as exc:  # read_mask only lets ImageReadError out; belt and braces
        return _MaskInfo(fault=Fault(path, "unreadable", f"{type(exc).__name__}: {exc}"))


def _array_fault(ex: Example) -> Fault | None:
    """The fault of an in-memory image that is not a usable image array, else None."""
    img = ex.image
    ok = (
        isinstance(img, np.ndarray)
        and img.dtype.kind in "uifb"
        and (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4)))
        and img.size > 0
    )
    if ok:
        return None
    desc = (
        f"shape {img.shape}, dtype {img.dtype}"
        if isinstance(img, np.ndarray)
        else type(img).__name__
    )
    return Fault(
        ex.name,
        "bad_array",
        f"in-memory image is not an H×W or H×W×C image array ({desc})",
        where=ex.origin,
    )


# ---------------------------------------------------------------------------------------
# Annotation checks (main thread, in example order)


def _where(ex: Example, what: str | None = None) -> str | None:
    parts = [p for p in (ex.origin, what) if p]
    return ", ".join(parts) if parts else None


class _Checker:
    """Checks one example at a time and keeps the running counts."""

    def __init__(self, dataset: Dataset, ignore_value: int | None) -> None:
        self.task = dataset.task
        self.names = list(dataset.class_names)
        self.n = len(self.names)
        self.ignore_value = ignore_value
        self.value_map: dict[int, int] | None = getattr(dataset, "mask_value_map", None)
        self.class_counts = np.zeros(self.n, dtype=np.int64)
        self.boxes = 0

    def label(self, ex: Example) -> list[Fault]:
        if ex.label is None:
            return [Fault(ex.name, "no_label", "example has no class label", where=ex.origin)]
        label = ex.label
        if not isinstance(label, (int, np.integer)) or not 0 <= int(label) < self.n:
            return [
                Fault(
                    ex.name,
                    "unknown_class",
                    f"label {label!r} is not a class id 0..{self.n - 1}",
                    where=ex.origin,
                )
            ]
        self.class_counts[int(label)] += 1
        return []

    def boxes_of(self, ex: Example, size: tuple[int, int] | None) -> list[Fault]:
        """Faults of the boxes of ``ex``; ``size`` is the decoded (width, height) when known."""
        if ex.boxes is None or len(ex.boxes) == 0:
            return [
                Fault(ex.name, "no_annotation", "image has no boxes", where=ex.origin, fatal=False)
            ]
        boxes = np.asarray(ex.boxes, dtype=np.float64)
        classes = None if ex.box_classes is None else np.asarray(ex.box_classes).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            return [
                Fault(
                    ex.name,
                    "bad_box",
                    f"boxes have shape {boxes.shape}, expected (N, 4)",
                    where=ex.origin,
                )
            ]
        self.boxes += len(boxes)
        if classes is None or len(classes) != len(boxes):
            got = "no box_classes" if classes is None else f"{len(classes)} box classes"
            return [Fault(ex.name, "bad_box", f"{got} for {len(boxes)} boxes", where=ex.origin)]
        faults = []
        for j, (box, cls) in enumerate(zip(boxes, classes, strict=True)):
            where = _where(ex, f"box {j}")
            x1, y1, x2, y2 = box
            known = float(cls).is_integer() and 0 <= int(cls) < self.n
            if known:
                self.class_counts[int(cls)] += 1
            else:
                faults.append(
                    Fault(
                        ex.name,
                        "unknown_class",
                        f"box class {cls} is not a class id 0..{self.n - 1}",
                        where,
                    )
                )
            if not np.all(np.isfinite(box)) or x2 <= x1 or y2 <= y1:
                faults.append(
                    Fault(
                        ex.name,
                        "bad_box",
                        f"box {box.tolist()} has non-positive width/height or is not finite",
                        where,
                    )
                )
            elif size is not None:
                w, h = size
                t = BOX_TOLERANCE
                if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
                    faults.append(
                        Fault(
                            ex.name,
                            "box_outside_image",
                            f"box {box.tolist()} (xyxy) lies outside the {w}×{h} image",
                            where,
                        )
                    )
        return faults

    def mask(self, ex: Example, info: _MaskInfo, size: tuple[int, int] | None) -> list[Fault]:
        file = ex.mask_path or ex.name
        if info.fault is not None:
            return []  # reported once per mask file by the caller
        if len(info.shape) != 2 or info.values is None:
            return [
                Fault(
                    file,
                    "bad_mask",
                    f"mask has shape {info.shape}; expected H×W class ids",
                    where=ex.origin,
                )
            ]
        if size is not None and info.shape != (size[1], size[0]):
            mh, mw = info.shape
            return [
                Fault(
                    file,
                    "mask_size_mismatch",
                    f"mask is {mw}×{mh} but its image {ex.name} decodes to {size[0]}×{size[1]}",
                    where=ex.origin,
                )
            ]
        values, counts = info.values, info.counts
        if self.value_map is not None:  # stored value -> class id; values not in the map are faults
            ids = np.array([self.value_map.get(int(v), -1) for v in values], dtype=np.int64)
        else:
            ids = values
        valid = (ids >= 0) & (ids < self.n)
        bad = ~valid & (values != self.ignore_value) if self.ignore_value is not None else ~valid
        for cls, c in zip(ids[valid], counts[valid], strict=True):
            self.class_counts[int(cls)] += int(c)
        if bad.any():
            shown = ", ".join(str(int(v)) for v in values[bad][:8])
            if self.value_map is not None:
                allowed = f"the dataset's mask values {sorted(self.value_map)[:8]}"
            else:
                allowed = f"0..{self.n - 1}"
            if self.ignore_value is not None:
                allowed += f" or the ignore value {self.ignore_value}"
            return [
                Fault(
                    file,
                    "mask_value_out_of_range",
                    f"{int(counts[bad].sum())} pixels have values {shown}, not {allowed}",
                    where=ex.origin,
                )
            ]
        return []

    def class_dict(self) -> dict[str, int]:
        return {name: int(c) for name, c in zip(self.names, self.class_counts, strict=True)}


def _unique(items: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _size_stats(sizes: list[tuple[int, int]]) -> dict[str, dict[str, float]] | None:
    if not sizes:
        return None
    out = {}
    for axis, name in ((0, "width"), (1, "height")):
        vals = [s[axis] for s in sizes]
        out[name] = {"min": min(vals), "median": float(statistics.median(vals)), "max": max(vals)}
    return out


def check_dataset(
    dataset: Dataset,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    hash_duplicates: bool = True,
    progress: bool = True,
    strict: bool = False,
    ignore_value: int | None = None,
    workers: int | None = None,
) -> DoctorReport:
    """Check every example of ``dataset`` and report counts and faults.

    Args:
      dataset: examples referencing image files (``image_path``), holding arrays (``image``)
        or pointing at TFRecord records (``record``, checked like files).
      max_pixels: refuse images with more pixels than this (``too_large``); None: no limit
        beyond Pillow's own guard.
      hash_duplicates: find byte-identical image files (sha1), reported as ``duplicate``.
      progress: show a progress bar (tqdm, on stderr) over the examples.
      strict: raise :class:`DatasetFaultError` at the first fatal fault (the dataset's own
        parsing faults first, then examples in order) instead of reporting.
      ignore_value: a mask value allowed besides the class ids (e.g. 255); defaults to
        ``dataset.ignore_value`` when the dataset has one.
      workers: threads decoding files (default: CPU count + 2, at most 8).
    """
    if ignore_value is None:
        ignore_value = getattr(dataset, "ignore_value", None)
    faults: list[Fault] = list(dataset.faults)
    if strict:
        for f in faults:
            if f.fatal:
                raise DatasetFaultError(f)
    examples = dataset.examples
    checker = _Checker(dataset, ignore_value)
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    usable: list[int] = []
    sizes: list[tuple[int, int]] = []
    first_by_hash: dict[str, str] = {}
    first_index: dict[str, int] = {}  # image or mask file → first example listing it

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="data-check")
    bar = tqdm(total=len(examples), desc="data check", unit="img", disable=not progress)
    try:
        image_jobs: dict[str, Future] = {
            p: pool.submit(_inspect_file, p, max_pixels, hash_duplicates)
            for p in _unique(ex.image_path for ex in examples if ex.image is None)
        }
        record_jobs: dict[int, Future] = {
            i: pool.submit(_inspect_record, ex.record, max_pixels, hash_duplicates)
            for i, ex in enumerate(examples)
            if ex.record is not None and ex.image is None and ex.image_path is None
        }
        mask_jobs: dict[str, Future] = {}
        if dataset.task == "segment":
            mask_jobs = {
                p: pool.submit(_inspect_mask, p, max_pixels)
                for p in _unique(ex.mask_path for ex in examples)
            }
            mask_jobs.update(
                {
                    ex.record.name: pool.submit(_inspect_record_mask, ex.record, max_pixels)
                    for ex in examples
                    if ex.record is not None and ex.mask is None and ex.mask_path is None
                }
            )

        for i, ex in enumerate(examples):
            found: list[Fault] = []
            inherited: Fault | None = None  # fatal fault of a file reported at an earlier example
            size: tuple[int, int] | None = None
            digest: str | None = None

            # The image itself.
            if ex.image is not None:
                bad = _array_fault(ex)
                if bad is not None:
                    found.append(bad)
                else:
                    size = (int(ex.image.shape[1]), int(ex.image.shape[0]))
                    if hash_duplicates:
                        arr = np.ascontiguousarray(ex.image)
                        digest = hashlib.sha1(str(arr.shape).encode() + arr.tobytes()).hexdigest()
            elif ex.image_path:
                info, digest = image_jobs[ex.image_path].result()
                inherited = next((f for f in info.faults if f.fatal), None)
                if ex.image_path in first_index:
                    j = first_index[ex.image_path]
                    found.append(
                        Fault(
                            ex.image_path,
                            "duplicate",
                            f"file listed again (example {i}; first at example {j})",
                            _where(ex),
                            fatal=False,
                        )
                    )
                    digest = None
                else:
                    first_index[ex.image_path] = i
                    found.extend(info.faults)
                if info.readable:
                    size = (info.width, info.height)
            elif i in record_jobs:
                info, digest = record_jobs[i].result()
                found.extend(info.faults)
                if info.readable:
                    size = (info.width, info.height)
            else:
                found.append(
                    Fault(
                        ex.name,
                        "missing_file",
                        "example has neither image_path nor image",
                        where=ex.origin,
                    )
                )

            if size is not None:
                sizes.append(size)
            if digest is not None:
                if digest in first_by_hash:
                    found.append(
                        Fault(
                            ex.name,
                            "duplicate",
                            f"same bytes (sha1 {digest[:12]}…) as {first_by_hash[digest]}",
                            fatal=False,
                        )
                    )
                else:
                    first_by_hash[digest] = ex.name

            # The annotations.
            if dataset.task == "classify":
                found.extend(checker.label(ex))
            elif dataset.task == "detect":
                found.extend(checker.boxes_of(ex, size))
            else:
                found.extend(_segment_faults(checker, ex, mask_jobs, first_index, size, i))

            fatal = next((f for f in found if f.fatal), inherited)
            if fatal is None:
                usable.append(i)
            elif strict:
                raise DatasetFaultError(fatal)
            faults.extend(found)
            bar.update(1)
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)

    return DoctorReport(
        task=dataset.task,
        images=len(examples),
        classes=checker.class_dict(),
        boxes=checker.boxes if dataset.task == "detect" else None,
        image_sizes=_size_stats(sizes),
        faults=faults,
        usable=usable,
        dataset=dataset,
    )


def _segment_faults(
    checker: _Checker,
    ex: Example,
    mask_jobs: dict[str, Future],
    first_index: dict[str, int],
    size: tuple[int, int] | None,
    i: int,
) -> list[Fault]:
    """Mask faults of one segmentation example (the mask file's read faults once per file)."""
    if ex.mask is not None:
        return checker.mask(ex, _summarise_mask(ex.mask), size)
    if not ex.mask_path and ex.record is not None:
        info = mask_jobs[ex.record.name].result()
        return [info.fault] if info.fault is not None else checker.mask(ex, info, size)
    if not ex.mask_path:
        return [Fault(ex.name, "no_mask", "segmentation example has no mask", where=ex.origin)]
    info: _MaskInfo = mask_jobs[ex.mask_path].result()
    if info.fault is not None:
        key = "mask:" + ex.mask_path
        if key in first_index:
            # Already reported; still fatal for this example.
            return [replace(info.fault, detail=info.fault.detail + f" (also used by example {i})")]
        first_index[key] = i
        return [info.fault]
    return checker.mask(ex, info, size)


def first_fatal_fault(dataset: Dataset, **kwargs) -> Fault | None:
    """The first fatal fault of ``dataset`` (parsing faults first, then examples), or None.

    ``kwargs`` go to :func:`check_dataset` (``max_pixels``, ``ignore_value``, ``workers``).
    """
    kwargs = {"progress": False, "hash_duplicates": False, **kwargs, "strict": True}
    try:
        check_dataset(dataset, **kwargs)
    except DatasetFaultError as err:
        return err.fault
    return None


def format_report(report: DoctorReport, *, max_files: int = 3) -> str:
    """A human-readable summary: counts, sizes, faults grouped by kind, what to do, exit code."""
    lines = [
        f"Dataset check ({report.task}): {report.images} images"
        + (f", {report.boxes} boxes" if report.boxes is not None else "")
    ]
    unit = {"classify": "images", "detect": "boxes", "segment": "pixels"}[report.task]
    if report.classes:
        width = max(len("class"), *(len(n) for n in report.classes))
        lines.append(f"  {'class'.ljust(width)}  {unit:>10}")
        lines.extend(
            f"  {name.ljust(width)}  {count:>10,}" for name, count in report.classes.items()
        )
    if report.image_sizes:
        w, h = report.image_sizes["width"], report.image_sizes["height"]
        lines.append(
            f"Image sizes (width × height): min {w['min']}×{h['min']}, "
            f"median {w['median']:g}×{h['median']:g}, max {w['max']}×{h['max']}"
        )
    lines.append(f"Usable examples: {len(report.usable)}/{report.images}")

    by_kind: dict[str, list[Fault]] = {}
    for f in report.faults:
        by_kind.setdefault(f.kind, []).append(f)
    if not by_kind:
        lines.append("Faults: none")
    for kind, group in sorted(by_kind.items(), key=lambda kv: (is_note(kv[1][0]), kv[0])):
        label = (
            "note"
            if all(is_note(f) for f in group)
            else ("fatal" if any(f.fatal for f in group) else "warning")
        )
        lines.append(f"{kind} ({len(group)}, {label}):")
        for f in group[:max_files]:
            loc = f"{f.file}:{f.where}" if f.where else f.file
            lines.append(f"    {loc}: {f.detail}")
        if len(group) > max_files:
            lines.append(f"    ... and {len(group) - max_files} more")
        advice = FAULT_KINDS.get(kind, (True, "see the detail above"))[1]
        lines.append(f"  what to do: {advice}")
    code = exit_code(report)
    meaning = {
        0: "clean (notes only)" if report.faults else "clean",
        1: "faults found",
        2: "unusable input",
    }[code]
    lines.append(f"Exit code {code}: {meaning}")
    return "\n".join(lines)
