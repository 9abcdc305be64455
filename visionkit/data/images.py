"""Reading images and masks from disk into the canonical arrays, and inspecting image files.

``read_image`` returns uint8 H×W×3 RGB whatever the file holds, with EXIF orientation
applied, so every source and the tf.data pipeline see the same pixels:

  * grayscale (``1``, ``L``) and 16-bit grayscale (``I;16`` family, ``I``): the channel is
    repeated three times; 16-bit values are scaled to 8 bits by ``>> 8`` (always, never by
    looking at the data range);
  * 16-bit RGB/RGBA PNG: Pillow already keeps the high byte (``RGB;16B`` raw mode), which is
    the same ``>> 8``;
  * palette (``P``, ``PA``), with or without transparency: expanded to RGB;
  * alpha (``RGBA``, ``LA``, ``PA``, palette transparency): the alpha channel is **dropped**,
    not composited, as ``tf.io.decode_png(channels=3)`` does; the colour under a fully
    transparent pixel is whatever the file stores there;
  * CMYK (and Adobe-inverted CMYK) JPEG: converted to RGB by Pillow;
  * ``F`` (32-bit float): rounded and clipped to 0..255.

``inspect_image`` reports what a file is (size after EXIF orientation, mode, format, the
conversions above as flags) and the problems found, as :class:`~visionkit.data.types.Fault`
records, reading only the header unless ``decode=True``.

Decompression bombs: a file whose header claims more than ``max_pixels`` pixels
(``DEFAULT_MAX_PIXELS`` = 8000×8000 = 64 MP) is refused before any pixel is decoded.
Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, ~89 MP warning, twice that an error) stays
in force as a backstop; its error (or its warning, when warnings are errors) becomes a
``too_large`` fault, never a crash. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set: a
truncated file is an error, not a half-grey image.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .types import Fault

DEFAULT_MAX_PIXELS = 8000 * 8000

# Kinds of the handled conversions: reported as non-fatal faults ("notes").
HANDLED_KINDS = ("exif_rotated", "grayscale", "cmyk", "sixteen_bit", "alpha", "palette")

# Kinds of the fatal image-file faults.
FILE_FAULT_KINDS = (
    "missing_file",
    "empty_file",
    "not_an_image",
    "truncated",
    "unreadable",
    "too_large",
)

_ORIENTATION_TAG = 0x0112
_GRAY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_ORIENTATION_NAMES = {
    2: "mirrored left-right",
    3: "rotated 180°",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}


class ImageReadError(ValueError):
    """An image or mask file cannot be decoded; the message names the file and the problem.

    ``kind`` is one of :data:`FILE_FAULT_KINDS`; :meth:`to_fault` gives the matching Fault.
    """

    def __init__(self, path: str, kind: str, detail: str) -> None:
        super().__init__(f"{path}: {kind}: {detail}")
        self.path = str(path)
        self.kind = kind
        self.detail = detail

    def to_fault(self) -> Fault:
        return Fault(file=self.path, kind=self.kind, detail=self.detail, fatal=True)


@dataclass
class ImageInfo:
    """What an image file holds, as far as it could be read.

    ``width``/``height`` are those of the decoded image, after EXIF orientation (0 when the
    file could not be opened). The flags say which conversions ``read_image`` applies;
    ``faults`` holds one non-fatal fault per flag set and the fatal faults, if any.
    """

    path: str
    width: int = 0
    height: int = 0
    mode: str = ""
    format: str = ""
    orientation: int = 1
    exif_rotated: bool = False
    grayscale: bool = False
    cmyk: bool = False
    sixteen_bit: bool = False
    alpha: bool = False
    palette: bool = False
    faults: list[Fault] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        """True when no fatal fault was found."""
        return not any(f.fatal for f in self.faults)


def _classify_error(path: str, exc: BaseException) -> ImageReadError:
    """Turn an exception raised while opening or decoding into an ImageReadError."""
    if isinstance(exc, ImageReadError):
        return exc
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return ImageReadError(path, "missing_file", "file does not exist")
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageReadError(
            path, "too_large", f"refused by Pillow's decompression-bomb guard: {msg}"
        )
    if isinstance(exc, UnidentifiedImageError):
        return ImageReadError(
            path,
            "not_an_image",
            "not an image file Pillow can identify (text or HTML saved as an image?)",
        )
    if isinstance(exc, EOFError) or "truncat" in msg.lower():
        return ImageReadError(path, "truncated", f"file is truncated ({msg})")
    return ImageReadError(path, "unreadable", f"cannot decode: {type(exc).__name__}: {msg}")


def _open(path: str, max_pixels: int | None, data: bytes | None = None) -> Image.Image:
    """Open ``path`` lazily (header only), refusing missing, empty and oversized files.
    With ``data``, those bytes are the file (a record of a TFRecord); ``path`` names it."""
    path = str(path)
    try:
        if (len(data) if data is not None else os.path.getsize(path)) == 0:
            raise ImageReadError(path, "empty_file", "file is empty (0 bytes)")
        img = Image.open(io.BytesIO(data) if data is not None else path)
    except Exception as exc:  # DecompressionBombWarning is an Exception when warnings are errors
        raise _classify_error(path, exc) from exc
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise ImageReadError(
            path,
            "too_large",
            f"header says {w}×{h} = {w * h:,} pixels, above the limit of {max_pixels:,} "
            "(decompression-bomb guard); downscale the file or raise max_pixels",
        )
    return img


def _load(path: str, img: Image.Image) -> None:
    """Decode the pixels of an opened image, raising ImageReadError on failure."""
    try:
        img.load()
    except Exception as exc:
        raise _classify_error(path, exc) from exc


def _raw_mode(img: Image.Image) -> str:
    """The decoder's raw mode (``RGB;16B`` for a 16-bit RGB PNG), or ``""``."""
    tile = getattr(img, "tile", None) or []
    if not tile:
        return ""
    args = tile[0].args if hasattr(tile[0], "args") else tile[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _orientation(img: Image.Image, *, loaded: bool) -> int:
    """EXIF orientation 1..8 (1 when absent or invalid), without decoding pixels unless loaded.

    For a PNG not yet loaded, only an ``eXIf`` chunk placed before the image data is seen
    (Pillow would otherwise decode the whole file to look for one after it).
    """
    if not loaded and img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _set_flags(info: ImageInfo, img: Image.Image, raw_mode: str) -> None:
    """Fill the conversion flags of ``info`` from the mode (and raw mode) of ``img``."""
    mode = img.mode
    info.mode, info.format = mode, img.format or ""
    info.grayscale = mode in _GRAY_MODES or raw_mode.startswith("LA")
    info.palette = mode in ("P", "PA")
    info.alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info)
    info.cmyk = mode == "CMYK"
    info.sixteen_bit = mode.startswith("I;16") or mode == "I" or ";16" in raw_mode


def _notes(info: ImageInfo) -> list[Fault]:
    """One non-fatal fault per handled conversion, saying what read_image does about it."""
    p, notes = info.path, []
    if info.exif_rotated:
        how = _ORIENTATION_NAMES.get(info.orientation, "")
        notes.append(
            Fault(
                p,
                "exif_rotated",
                f"EXIF orientation {info.orientation} ({how}): pixels are transposed on "
                f"reading to {info.width}×{info.height}; annotations must use that frame",
                fatal=False,
            )
        )
    if info.grayscale:
        notes.append(
            Fault(
                p,
                "grayscale",
                f"grayscale (mode {info.mode}): channel repeated to RGB",
                fatal=False,
            )
        )
    if info.cmyk:
        notes.append(Fault(p, "cmyk", "CMYK image: converted to RGB", fatal=False))
    if info.sixteen_bit:
        notes.append(
            Fault(
                p,
                "sixteen_bit",
                f"16-bit samples (mode {info.mode}): scaled to 8 bits by >> 8",
                fatal=False,
            )
        )
    if info.alpha:
        notes.append(
            Fault(
                p,
                "alpha",
                f"alpha channel (mode {info.mode}): dropped, not composited",
                fatal=False,
            )
        )
    if info.palette:
        notes.append(
            Fault(p, "palette", f"palette image (mode {info.mode}): expanded to RGB", fatal=False)
        )
    return notes


def inspect_image(
    path: str,
    *,
    decode: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    data: bytes | None = None,
) -> ImageInfo:
    """Describe the image file ``path`` and list its faults; never raises for a bad file.

    With ``decode=False`` only the header is read (size, mode, EXIF orientation of JPEGs and
    of PNGs with an early ``eXIf`` chunk). With ``decode=True`` the file is also checked
    with Pillow's ``verify()`` and fully decoded with ``load()``, which finds truncated and
    corrupt files. Fatal faults (kinds :data:`FILE_FAULT_KINDS`) leave the size at 0 when
    the header could not be read; handled conversions (kinds :data:`HANDLED_KINDS`) are
    non-fatal faults. ``data``: the file's bytes (an image inside a record), ``path`` its name.
    """
    path = str(path)
    info = ImageInfo(path=path)
    try:
        with _open(path, max_pixels, data) as img:
            raw_mode = _raw_mode(img)
            w, h = img.size
            info.width, info.height = w, h
            _set_flags(info, img, raw_mode)
            if not decode:
                info.orientation = _orientation(img, loaded=False)
            else:
                try:
                    img.verify()
                except Exception as exc:
                    raise _classify_error(path, exc) from exc
        if decode:  # verify() leaves the image unusable: open again and decode for real
            with _open(path, max_pixels, data) as img:
                _load(path, img)
                info.orientation = _orientation(img, loaded=True)
    except ImageReadError as err:
        info.faults.append(err.to_fault())
        return info
    if info.orientation in (5, 6, 7, 8):
        info.width, info.height = info.height, info.width
    info.exif_rotated = info.orientation != 1
    info.faults.extend(_notes(info))
    return info


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image of any mode to a uint8 H×W×3 RGB array (see module doc)."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.clip(np.asarray(img).astype(np.int64), 0, 65535) >> 8
        return np.repeat(arr.astype(np.uint8)[..., None], 3, axis=-1)
    if mode == "F":
        arr = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode == "PA" or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # the palette's transparency, then dropped below
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def read_image(
    path: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, data: bytes | None = None
) -> np.ndarray:
    """Decode ``path`` (or the file bytes ``data``, named ``path``) to uint8 H×W×3 RGB,
    applying EXIF orientation.

    Raises :class:`ImageReadError` (a ValueError) naming the file and the problem: missing,
    empty, not an image, truncated, undecodable, or larger than ``max_pixels``.
    """
    path = str(path)
    with _open(path, max_pixels, data) as img:
        _load(path, img)
        try:
            oriented = ImageOps.exif_transpose(img)
        except Exception as exc:
            raise _classify_error(path, exc) from exc
        return to_rgb(oriented)


def read_mask(
    path: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, data: bytes | None = None
) -> np.ndarray:
    """Decode a class-id mask PNG to an H×W integer array (no colour conversion).

    A palette PNG gives its palette indices, an ``L`` PNG its grey values, an ``I;16`` PNG
    its 16-bit values. EXIF orientation is *not* applied (masks are written in the frame of
    the decoded image). An RGB file comes back H×W×3 as stored; the doctor flags it.
    Raises :class:`ImageReadError` like :func:`read_image`.
    """
    path = str(path)
    with _open(path, max_pixels, data) as img:
        _load(path, img)
        return np.array(img)


def example_image(example) -> np.ndarray:
    """The pixels of a canonical example, wherever they are: decoded from its file, its
    TFRecord record, or the array it holds (returned as is)."""
    if example.image is not None:
        return example.image
    if example.record is not None:
        from visionkit.data.tfrecord import record_bytes

        return read_image(example.record.name, data=record_bytes(example.record, "image"))
    return read_image(example.image_path)


def example_mask(example) -> np.ndarray:
    """The stored mask of a segmentation example (file, record or array), values as stored
    (the dataset's ``mask_value_map`` is not applied)."""
    if example.mask is not None:
        return example.mask
    if example.record is not None and example.mask_path is None:
        from visionkit.data.tfrecord import record_bytes

        return read_mask(example.record.name, data=record_bytes(example.record, "mask"))
    return read_mask(example.mask_path)
