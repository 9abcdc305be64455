"""Image reading and inspection: every image kind, EXIF orientations, broken and huge files."""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionkit.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    inspect_image,
    read_image,
    read_mask,
)

RNG = np.random.default_rng(0)


def blocks(h: int = 48, w: int = 64, block: int = 16, seed: int = 0) -> np.ndarray:
    """A uint8 H×W×3 pattern of flat blocks: survives JPEG within a small tolerance."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (h // block, w // block, 3), dtype=np.uint8)
    return np.kron(grid, np.ones((block, block, 1), dtype=np.uint8))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A minimal PNG file: signature, IHDR, one IDAT (already compressed) and IEND."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png16(arr: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG of ``arr`` (H×W or H×W×C uint16), rows with filter byte 0."""
    h, w = arr.shape[:2]
    big = arr.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\x00" + big[i].tobytes() for i in range(h))
    return png_bytes(w, h, 16, colour_type, zlib.compress(raw))


def save(img: Image.Image, path: Path, **kw) -> str:
    img.save(path, **kw)
    return str(path)


def kinds(path: str, **kw) -> set[str]:
    return {f.kind for f in inspect_image(path, decode=True, **kw).faults}


# --- image kinds -------------------------------------------------------------------------


def test_plain_rgb_png_is_exact_and_clean(tmp_path):
    base = blocks()
    path = save(Image.fromarray(base), tmp_path / "rgb.png")
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out, base)
    info = inspect_image(path, decode=True)
    assert (info.width, info.height, info.mode, info.format) == (64, 48, "RGB", "PNG")
    assert info.faults == [] and info.readable


def test_grayscale_l(tmp_path):
    grey = blocks()[..., 0]
    path = save(Image.fromarray(grey, "L"), tmp_path / "grey.png")
    out = read_image(path)
    assert out.shape == (48, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)
    info = inspect_image(path)
    assert info.grayscale and not info.alpha and {f.kind for f in info.faults} == {"grayscale"}
    assert all(not f.fatal for f in info.faults)


def test_palette_without_transparency(tmp_path):
    pal = Image.fromarray(blocks()).convert("P")
    path = save(pal, tmp_path / "pal.png")
    np.testing.assert_array_equal(read_image(path), np.asarray(pal.convert("RGB")))
    assert kinds(path) == {"palette"}


def test_palette_with_transparency_drops_alpha_without_warnings(tmp_path):
    pal = Image.fromarray(blocks()).convert("P")
    pal.info["transparency"] = 0
    path = save(pal, tmp_path / "pal_t.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_image(path)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGBA"))[..., :3])
    assert kinds(path) == {"palette", "alpha"}


def test_rgba_drops_alpha_not_composited(tmp_path):
    rgb = blocks()
    alpha = np.zeros((48, 64, 1), np.uint8)  # fully transparent: compositing would give black
    path = save(Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA"), tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(path), rgb)
    assert kinds(path) == {"alpha"}


def test_la_grey_with_alpha(tmp_path):
    grey = blocks()[..., 1]
    la = np.stack([grey, np.full_like(grey, 128)], -1)
    path = save(Image.fromarray(la, "LA"), tmp_path / "la.png")
    out = read_image(path)
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, -1))
    assert kinds(path) == {"grayscale", "alpha"}


def test_cmyk_jpeg_converted_to_rgb(tmp_path):
    base = blocks()
    path = save(Image.fromarray(base).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = read_image(path)
    assert out.shape == base.shape
    assert np.abs(out.astype(int) - base).max() <= 12
    assert kinds(path) == {"cmyk"}


def test_sixteen_bit_grayscale_written_by_pil(tmp_path):
    values = np.array([[0, 255, 256, 1000], [40000, 65280, 65535, 511]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I;16")  # what Pillow 13 gives for 16-bit grey PNG
    out = read_image(path)
    expected = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, -1))
    assert kinds(path) == {"grayscale", "sixteen_bit"}


def test_sixteen_bit_low_values_are_still_scaled(tmp_path):
    """No guessing from the data range: 16-bit values below 256 become 0."""
    values = np.full((4, 4), 200, dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "g16_low.png")
    assert read_image(path).max() == 0


def test_sixteen_bit_rgb_png_raw_bytes(tmp_path):
    values = RNG.integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png16(values, colour_type=2))
    assert Image.open(path).mode == "RGB"  # Pillow keeps the high byte (raw mode RGB;16B)
    np.testing.assert_array_equal(read_image(str(path)), (values >> 8).astype(np.uint8))
    info = inspect_image(str(path), decode=True)
    assert info.sixteen_bit and not info.grayscale
    assert {f.kind for f in info.faults} == {"sixteen_bit"}


def test_sixteen_bit_grey_alpha_png_raw_bytes(tmp_path):
    grey = RNG.integers(0, 65536, (3, 4)).astype(np.uint16)
    la = np.stack([grey, np.full_like(grey, 65535)], -1)
    path = tmp_path / "la16.png"
    path.write_bytes(png16(la, colour_type=4))
    np.testing.assert_array_equal(
        read_image(str(path)), np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, -1)
    )
    assert kinds(str(path)) == {"grayscale", "alpha", "sixteen_bit"}


# --- EXIF orientation --------------------------------------------------------------------

# How a camera stores the displayed image for each EXIF orientation (EXIF 2.3, tag 0x0112),
# written independently of Pillow's exif_transpose.
STORED = {
    1: lambda d: d,
    2: lambda d: d[:, ::-1],
    3: lambda d: np.rot90(d, 2),
    4: lambda d: d[::-1],
    5: lambda d: d.transpose(1, 0, 2),
    6: lambda d: np.rot90(d, 1),
    7: lambda d: np.rot90(d, 2).transpose(1, 0, 2),
    8: lambda d: np.rot90(d, -1),
}


def _display(stored: np.ndarray, orientation: int) -> np.ndarray:
    """The displayed image whose stored form is ``stored`` (each STORED map's inverse)."""
    inverse = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
    return STORED[inverse[orientation]](stored)


def with_orientation(displayed: np.ndarray, orientation: int, path: Path, **kw) -> str:
    img = Image.fromarray(np.ascontiguousarray(STORED[orientation](displayed)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes(), **kw)
    return str(path)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_exact(tmp_path, orientation):
    displayed = blocks(48, 80, 16, seed=orientation)
    path = with_orientation(displayed, orientation, tmp_path / f"o{orientation}.png")
    np.testing.assert_array_equal(read_image(path), displayed)
    info = inspect_image(path, decode=True)
    assert (info.width, info.height) == (80, 48)
    assert info.orientation == orientation
    assert info.exif_rotated == (orientation != 1)
    assert {f.kind for f in info.faults} == ({"exif_rotated"} if orientation != 1 else set())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path, orientation):
    displayed = blocks(48, 80, 16, seed=orientation)
    path = with_orientation(
        displayed, orientation, tmp_path / f"o{orientation}.jpg", quality=95, subsampling=0
    )
    out = read_image(path)
    assert out.shape == displayed.shape
    err = np.abs(out.astype(int) - displayed).mean()
    assert err < 3
    # Every other orientation's reading of the same stored pixels is far off.
    stored = STORED[orientation](displayed)
    for other in set(range(1, 9)) - {orientation}:
        wrong = _display(stored, other)
        if wrong.shape == out.shape and not np.array_equal(wrong, displayed):
            assert np.abs(out.astype(int) - wrong).mean() > 10 * err + 10
    header_only = inspect_image(path)  # JPEG EXIF is in the header: no decode needed
    assert (header_only.width, header_only.height, header_only.orientation) == (80, 48, orientation)


# --- broken files -----------------------------------------------------------------------


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90
    )
    return buf.getvalue()


def assert_read_error(path: str, kind: str) -> None:
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert err.value.kind == kind and path in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_jpeg(tmp_path, keep):
    data = jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    assert inspect_image(str(path)).readable  # the header alone looks fine
    info = inspect_image(str(path), decode=True)
    assert [(f.kind, f.fatal) for f in info.faults] == [("truncated", True)]
    assert_read_error(str(path), "truncated")


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert kinds(str(path)) == {"truncated"}
    assert_read_error(str(path), "truncated")


def test_corrupt_png_data_is_unreadable(tmp_path):
    path = tmp_path / "corrupt.png"
    path.write_bytes(png_bytes(8, 8, 8, 2, b"this is not zlib data" * 3))
    assert kinds(str(path)) == {"unreadable"}
    assert_read_error(str(path), "unreadable")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert kinds(str(path)) == {"empty_file"}
    assert_read_error(str(path), "empty_file")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("<html>404 not found</html>\n")
    assert kinds(str(path)) == {"not_an_image"}
    assert_read_error(str(path), "not_an_image")


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.png")
    assert kinds(path) == {"missing_file"}
    assert_read_error(path, "missing_file")


# --- decompression bombs -----------------------------------------------------------------


@pytest.mark.parametrize("side", [20000, 9000])  # above Pillow's own guard; above ours only
def test_huge_header_is_refused_quickly(tmp_path, side):
    path = tmp_path / f"bomb{side}.png"
    path.write_bytes(png_bytes(side, side, 8, 2, zlib.compress(b"\x00" * 64)))
    assert side * side > DEFAULT_MAX_PIXELS
    start = time.perf_counter()
    info = inspect_image(str(path), decode=True)
    assert [(f.kind, f.fatal) for f in info.faults] == [("too_large", True)]
    assert_read_error(str(path), "too_large")
    with pytest.raises(ImageReadError):
        read_mask(str(path))
    assert time.perf_counter() - start < 2.0


def test_pillow_bomb_warning_as_error_becomes_fault(tmp_path):
    """Between Pillow's warning threshold (~89 MP) and ours (disabled here)."""
    path = tmp_path / "bomb100mp.png"
    path.write_bytes(png_bytes(10000, 10000, 8, 2, zlib.compress(b"\x00" * 64)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert kinds(str(path), max_pixels=None) == {"too_large"}


def test_max_pixels_is_configurable(tmp_path):
    path = save(Image.fromarray(blocks()), tmp_path / "small.png")
    assert kinds(path, max_pixels=100) == {"too_large"}
    with pytest.raises(ImageReadError, match="too_large"):
        read_image(path, max_pixels=100)
    assert read_image(path, max_pixels=None).shape == (48, 64, 3)


# --- masks ------------------------------------------------------------------------------


def test_read_mask_keeps_class_ids(tmp_path):
    ids = RNG.integers(0, 5, (6, 9)).astype(np.uint8)
    pal = Image.fromarray(ids, "P")
    pal.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    np.testing.assert_array_equal(read_mask(save(pal, tmp_path / "m_p.png")), ids)
    np.testing.assert_array_equal(
        read_mask(save(Image.fromarray(ids, "L"), tmp_path / "m_l.png")), ids
    )
