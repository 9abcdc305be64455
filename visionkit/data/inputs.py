"""The images a ``predict`` command reads: listing a file or folder, and screening each
file before it enters a TensorFlow pipeline (one bad file must not stop the run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from visionkit.config import ConfigError
from visionkit.data.images import ImageInfo

TF_FORMATS = frozenset(("JPEG", "PNG", "BMP", "GIF"))  # what tf.io.decode_image decodes


def image_files(source: str) -> list[str]:
    """The image files of ``source`` (a file, or a folder searched recursively), sorted."""
    from visionkit.data.sources._common import is_image_file

    path = Path(source)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_file(p))
    raise ConfigError(f"source={source}: no such file or folder")


@dataclass
class Screened:
    """``readable``: (path, info) in input order; ``failed``: (path, "kind: detail");
    ``needs_pil``: readable paths to decode with PIL (EXIF rotation, CMYK, 16-bit, ... and
    formats ``tf.io`` cannot decode, such as TIFF and WebP)."""

    readable: list[tuple[str, ImageInfo]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    needs_pil: set[str] = field(default_factory=set)

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.readable]


def screen_images(files: list[str], source: str = "") -> Screened:
    """Fully decode each file (a truncated JPEG has a good header) and sort it into
    readable or failed; raises a ConfigError naming ``source`` when none is readable."""
    from visionkit.data.images import inspect_image
    from visionkit.data.prepare import PIL_KINDS

    screened = Screened()
    for path in files:
        info = inspect_image(path, decode=True)
        fatal = [f for f in info.faults if f.fatal]
        if fatal:
            screened.failed.append((path, f"{fatal[0].kind}: {fatal[0].detail}"))
            continue
        screened.readable.append((path, info))
        if any(f.kind in PIL_KINDS for f in info.faults) or info.format not in TF_FORMATS:
            screened.needs_pil.add(path)
    if not screened.readable:
        raise ConfigError(
            f"source={source or files}: no readable images ({len(files)} files found, "
            f"{len(screened.failed)} unreadable)"
        )
    return screened
