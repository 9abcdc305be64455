"""Sliding-window inference: dense predictions at an image's native resolution with a model
of fixed input size.

The image is cut into overlapping tiles of the model's input size (``tile_positions``: a
regular stride of ``window * (1 - overlap)`` pixels, rounded down, and the last tile
aligned to the image edge, so no padding is needed when the image is at least as large as
the window). An image smaller than the window in a dimension is padded there by
reflection and the result cropped back. Tiles go through the model in batches and their
outputs are blended with a smooth 2-D weight (a Hann window floored at ``MIN_WEIGHT``, so
every pixel has weight) normalised by the sum of the weights: seams between tiles, where
a model sees less context, count less than tile centres.

A per-pixel (translation-equivariant) model gives the same probabilities by sliding
windows as on the whole image, up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MIN_WEIGHT = 1e-3


def tile_positions(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of the tiles of size ``window`` along an axis of ``length`` pixels.

    Neighbouring tiles overlap by at least ``overlap * window`` pixels (the stride is
    ``floor(window * (1 - overlap))``, at least 1); the last tile ends at ``length``. One
    tile at 0 when ``length <= window`` (the caller pads). ``overlap`` is in [0, 1).
    """
    length, window = int(length), int(window)
    if window < 1 or length < 1:
        raise ValueError(f"length and window must be >= 1, got {length} and {window}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if length <= window:
        return [0]
    stride = max(1, int(np.floor(window * (1.0 - float(overlap)) + 1e-9)))
    positions = list(range(0, length - window + 1, stride))
    if positions[-1] != length - window:
        positions.append(length - window)
    return positions


def blend_window(height: int, width: int) -> np.ndarray:
    """The (height, width) float32 blending weight: an outer product of Hann windows sampled
    at pixel centres, floored at ``MIN_WEIGHT`` (never 0), peak ~1 at the centre."""

    def hann(n: int) -> np.ndarray:
        t = (np.arange(n, dtype=np.float64) + 0.5) / n
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * t)

    return np.maximum(np.outer(hann(height), hann(width)), MIN_WEIGHT).astype(np.float32)


def sliding_window_predict(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    window: tuple[int, int],
    overlap: float,
    num_outputs: int,
    batch: int = 8,
) -> np.ndarray:
    """Per-pixel outputs of ``forward`` over ``image`` at its native resolution.

    Args:
      forward: takes float32 (B, h, w, 3) images with values in [0, 255] and returns
        (B, h, w, C) probabilities (a NumPy array or a tensor with ``.numpy()``).
      image: (H, W, 3) uint8 or float image, values in [0, 255].
      window: the model's input size (h, w).
      overlap: overlap fraction of neighbouring tiles, in [0, 1).
      num_outputs: C, the channels ``forward`` returns.
      batch: tiles per ``forward`` call.

    Returns:
      float32 (H, W, C): the weighted mean of the tile outputs covering each pixel.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, channels), got shape {image.shape}")
    win_h, win_w = int(window[0]), int(window[1])
    height, width = image.shape[:2]
    pad_h, pad_w = max(0, win_h - height), max(0, win_w - width)
    padded = image.astype(np.float32)
    if pad_h or pad_w:
        padded = np.pad(padded, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    full_h, full_w = padded.shape[:2]
    corners = [
        (y, x)
        for y in tile_positions(full_h, win_h, overlap)
        for x in tile_positions(full_w, win_w, overlap)
    ]
    weight = blend_window(win_h, win_w)
    total = np.zeros((full_h, full_w, int(num_outputs)), np.float32)
    weights = np.zeros((full_h, full_w, 1), np.float32)
    for start in range(0, len(corners), max(1, int(batch))):
        chunk = corners[start : start + max(1, int(batch))]
        tiles = np.stack([padded[y : y + win_h, x : x + win_w] for y, x in chunk])
        outputs = forward(tiles)
        outputs = np.asarray(outputs.numpy() if hasattr(outputs, "numpy") else outputs)
        expected = (len(chunk), win_h, win_w, int(num_outputs))
        if outputs.shape != expected:
            raise ValueError(f"forward returned shape {outputs.shape}, expected {expected}")
        for (y, x), out in zip(chunk, outputs, strict=True):
            total[y : y + win_h, x : x + win_w] += out * weight[..., None]
            weights[y : y + win_h, x : x + win_w, 0] += weight
    return (total / weights)[:height, :width]
