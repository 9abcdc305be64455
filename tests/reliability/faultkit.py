"""Fault injection for the reliability suite: tiny learnable datasets, every kind of broken
or awkward image file, the user's command line run in-process or in a subprocess.

The clean data has three classes a LeNet-5 tells apart in three epochs (without
augmentation, whose flips would mix them) from the *layout* of the picture, not its colour: ``top`` (bright upper half), ``left`` (bright left half) and
``flat`` (uniform grey). Layout classes make EXIF orientation observable end to end: an
image displayed as ``top`` but stored rotated reads as ``left`` if the orientation is
ignored.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("flat", "left", "top")  # sorted: the folder source's class order
SIZE = 32

# Orientation 6 ("rotate 90° clockwise to display"): a camera stores the displayed picture
# rotated 90° counter-clockwise (EXIF 2.3, tag 0x0112).
EXIF_ORIENTATION_TAG = 0x0112


# ----------------------------------------------------------------------------- the tally


class Tally:
    """What the suite injected and what survived, summed per section (printed at the end
    of the session by ``conftest.pytest_terminal_summary``); ``kinds`` are collected as a
    set, so each section reports its distinct fault kinds."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, int]] = {}
        self.kinds: dict[str, set[str]] = {}

    def add(self, section: str, *, kinds: Iterable[str] = (), **counts: int) -> None:
        totals = self.sections.setdefault(section, {})
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + int(value)
        self.kinds.setdefault(section, set()).update(kinds)

    def lines(self) -> list[str]:
        out = []
        for section, totals in self.sections.items():
            parts = [f"{k} {v}" for k, v in totals.items()]
            if self.kinds.get(section):
                parts.append(f"distinct fault kinds {len(self.kinds[section])}")
            out.append(f"{section}: " + ", ".join(parts))
        return out


TALLY = Tally()


# ----------------------------------------------------------------------------- clean data


def layout_pixels(cls: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One noisy H×W×3 uint8 picture of class ``cls`` (see the module doc)."""
    base = np.full((size, size), 70.0)
    if cls == "top":
        base[: size // 2] = 200
    elif cls == "left":
        base[:, : size // 2] = 200
    elif cls == "flat":
        base[:] = 130
    else:
        raise ValueError(cls)
    noisy = base[..., None] + rng.normal(0, 18, (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_layout_folder(
    root: Path, per_class: int, *, seed: int = 0, classes: Sequence[str] = CLASSES
) -> Path:
    """``root/CLASS/i.png`` for each class: a clean folder dataset."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(layout_pixels(cls, rng)).save(folder / f"{i:03d}.png")
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder`` (hidden ones included)."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- bad files


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A minimal PNG: signature, IHDR, one IDAT (given, already compressed), IEND."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **kw)
    return buf.getvalue()


@dataclass(frozen=True)
class Planted:
    """A file planted in a dataset: where, the fault kinds the suite accepts for it (the
    doctor's kind, or the source's when the source already refuses it), and whether the
    example must be skipped (fatal) or kept (a handled conversion). ``example`` is False
    for files the source refuses before they become examples."""

    path: Path
    kinds: frozenset[str]
    fatal: bool = True
    example: bool = True


def plant_corrupt_files(folder: Path, outside: Path, rng: np.random.Generator) -> list[Planted]:
    """Ten broken files of every file-level fault kind the doctor knows, plus the two the
    folder source refuses itself (a non-image file, a symlink out of the tree)."""
    good_jpeg = encoded(layout_pixels("top", rng, 96), "JPEG", quality=90)
    good_png = encoded(layout_pixels("left", rng, 96), "PNG")
    planted: list[Planted] = []

    def put(name: str, data: bytes, *kinds: str) -> None:
        path = folder / name
        path.write_bytes(data)
        planted.append(Planted(path, frozenset(kinds)))

    put("zero.png", b"", "empty_file")
    put("page.jpg", b"<html><body>404 not found</body></html>\n", "not_an_image")
    put("cut.jpg", good_jpeg[: len(good_jpeg) // 2], "truncated")
    put("cut.png", good_png[: len(good_png) // 2], "truncated")
    put("garbage.png", png_bytes(8, 8, 8, 2, b"this is not zlib data" * 3), "unreadable")
    # 20000×20000 RGB claims 1.2 GB of pixels; the file is a few hundred bytes.
    put("bomb.png", png_bytes(20000, 20000, 8, 2, zlib.compress(b"\x00" * 60001 * 4)), "too_large")
    flipped = bytearray(good_png)
    flipped[len(flipped) // 2] ^= 0xFF  # one bit-rotten byte inside the IDAT chunk
    put("bitrot.png", bytes(flipped), "unreadable", "truncated")

    dangling = folder / "dangling.png"  # a symlink inside the tree to a file that is gone
    dangling.symlink_to(folder / "deleted-long-ago.png")
    planted.append(Planted(dangling, frozenset({"missing_file"})))

    notes = folder / "notes.txt"  # not an image extension: the source skips it
    notes.write_text("labelling notes, not an image\n")
    planted.append(Planted(notes, frozenset({"not_an_image"}), example=False))

    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.png"
    Image.fromarray(layout_pixels("top", rng)).save(secret)
    escape = folder / "escape.png"  # a symlink out of the dataset tree
    escape.symlink_to(secret)
    planted.append(Planted(escape, frozenset({"path_escapes_root"}), example=False))
    return planted


def with_exif_orientation(displayed: np.ndarray, orientation: int = 6) -> tuple[bytes, np.ndarray]:
    """JPEG bytes storing ``displayed`` the way a camera does for ``orientation`` 6 or 8,
    and the stored (un-rotated) pixels."""
    stored = np.rot90(displayed, 1 if orientation == 6 else -1)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(
        buf, "JPEG", quality=95, subsampling=0, exif=exif.tobytes()
    )
    return buf.getvalue(), stored


def png16(arr: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG of H×W (grey, type 0) or H×W×3 (RGB, type 2) uint16 values."""
    h, w = arr.shape[:2]
    big = arr.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\x00" + big[i].tobytes() for i in range(h))
    return png_bytes(w, h, 16, colour_type, zlib.compress(raw))


def plant_handled_files(folder: Path, cls: str, rng: np.random.Generator) -> list[Planted]:
    """Awkward but valid images of class ``cls`` that must be trained on, not skipped:
    16-bit grey and RGB PNGs, palette PNGs (with and without transparency), a CMYK JPEG,
    an EXIF-rotated JPEG, an RGBA PNG and an L-mode PNG."""
    planted: list[Planted] = []

    def keep(path: Path, *kinds: str) -> None:
        planted.append(Planted(path, frozenset(kinds), fatal=False))

    pixels = layout_pixels(cls, rng)
    grey16 = pixels[..., 0].astype(np.uint16) * 256 + 0x5A
    (folder / "grey16.png").write_bytes(png16(grey16, 0))
    keep(folder / "grey16.png", "sixteen_bit", "grayscale")
    (folder / "rgb16.png").write_bytes(png16(pixels.astype(np.uint16) * 256 + 0xA5, 2))
    keep(folder / "rgb16.png", "sixteen_bit")
    Image.fromarray(pixels).convert("P").save(folder / "palette.png")
    keep(folder / "palette.png", "palette")
    Image.fromarray(pixels).convert("P").save(folder / "palette_t.png", transparency=0)
    keep(folder / "palette_t.png", "palette", "alpha")
    Image.fromarray(pixels).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    keep(folder / "cmyk.jpg", "cmyk")
    data, _ = with_exif_orientation(pixels, 6)
    (folder / "exif6.jpg").write_bytes(data)
    keep(folder / "exif6.jpg", "exif_rotated")
    rgba = np.concatenate([pixels, np.full((SIZE, SIZE, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    keep(folder / "rgba.png", "alpha")
    Image.fromarray(pixels[..., 0], "L").save(folder / "grey.png")
    keep(folder / "grey.png", "grayscale")
    return planted


# ----------------------------------------------------------------------------- commands


@dataclass
class CliResult:
    """What ``visionkit ARGS`` returned and printed."""

    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """``visionkit ARGS`` in-process (``visionkit.cli.main``): exit code, stdout, stderr."""
    from visionkit.cli import main

    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


SUMMARY = re.compile(
    r"data: (?P<train>\d+) training and (?P<val>\d+) validation examples, (?P<classes>\d+) "
    r"classes(?:; skipped (?P<skipped>\d+) faulty)?"
)


def summary_counts(out: str) -> dict[str, int]:
    """The counts of a run's ``data: N training and M validation examples ...`` line:
    ``train``, ``val``, ``classes`` and ``skipped`` (0 when nothing was skipped)."""
    match = SUMMARY.search(out)
    assert match, out
    return {k: int(v or 0) for k, v in match.groupdict().items()}


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a ``visionkit`` subprocess: quiet TensorFlow, CPU only, the repo
    importable."""
    env = dict(os.environ)
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND="tensorflow",
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
    )
    env.update(extra)
    return env


def run_python(
    code: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    """Run ``python -c CODE ARGS`` (the code sees ``sys.argv[1:] == ARGS``) in the repo."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_args(data: Path, out: Path, name: str, **overrides: object) -> list[str]:
    """``key=value`` tokens of a tiny LeNet-5 run (32 px, seeded, no early stopping)."""
    settings: dict[str, object] = {
        "data": data,
        "model": "lenet5",
        "weights": "null",
        "imgsz": SIZE,
        "batch": 16,
        "epochs": 2,
        "lr": 0.01,
        "patience": 0,
        "verbose": 0,
        "out": out,
        "name": name,
    }
    settings.update(overrides)
    return [f"{k}={v}" for k, v in settings.items()]
