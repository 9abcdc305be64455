"""Boxes between an image's own pixel frame and the letterboxed square the detector sees.

The evaluation pipeline letterboxes every h×w image into a size×size input with
:func:`visionkit.data.augment.geometric.letterbox`: ``scale = min(size / h, size / w)``
(float32), the image is resized to ``new_h = round(h·scale)`` × ``new_w = round(w·scale)``
(``tf.round``: half to even) and placed at ``top = (size − new_h) // 2``,
``left = (size − new_w) // 2`` (the odd padding pixel goes to the bottom/right). Boxes
follow with the exact per-axis factors ``new_w / w`` and ``new_h / h``:

    x' = x · new_w / w + left        y' = y · new_h / h + top

:func:`letterbox_frame` reproduces that geometry in NumPy (same float32 arithmetic and
rounding), :func:`letterbox_boxes` is the forward map and :func:`unletterbox_boxes` its
exact inverse, which takes a detector's boxes back to original-image pixels.

Boxes are (N, 4) ``xyxy`` in pixel-edge coordinates: a box covering the whole image is
``[0, 0, W, H]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LetterboxFrame:
    """Where an ``height``×``width`` image lies inside its ``size``×``size`` letterbox:
    resized to ``new_height``×``new_width`` with its top-left corner at (``top``, ``left``)."""

    height: int
    width: int
    size: int
    new_height: int
    new_width: int
    top: int
    left: int

    @property
    def factors(self) -> np.ndarray:
        """(4,) float64 per-coordinate scale ``[sx, sy, sx, sy]`` (letterbox px per image px)."""
        sx, sy = self.new_width / self.width, self.new_height / self.height
        return np.array([sx, sy, sx, sy], np.float64)

    @property
    def offsets(self) -> np.ndarray:
        """(4,) float64 per-coordinate shift ``[left, top, left, top]`` in letterbox pixels."""
        return np.array([self.left, self.top, self.left, self.top], np.float64)


def letterbox_frame(image_hw: Sequence[int], size: int) -> LetterboxFrame:
    """The letterbox geometry of an image of ``image_hw`` = (height, width) into ``size``.

    The same numbers as ``geometric.letterbox_params`` (float32 scale, round half to even).
    Raises ValueError for an empty image or one so elongated that a side would be resized
    to zero pixels (the letterbox cannot hold it).
    """
    height, width, size = int(image_hw[0]), int(image_hw[1]), int(size)
    if height <= 0 or width <= 0 or size <= 0:
        raise ValueError(f"letterbox needs positive sizes, got image {height}×{width}, size {size}")
    hf, wf = np.float32(height), np.float32(width)
    scale = np.minimum(np.float32(size) / hf, np.float32(size) / wf)
    new_height, new_width = int(np.round(hf * scale)), int(np.round(wf * scale))
    if new_height < 1 or new_width < 1:
        raise ValueError(
            f"a {width}×{height} (W×H) image letterboxed into {size}×{size} would be "
            f"{new_width}×{new_height} pixels: too elongated for this input size"
        )
    return LetterboxFrame(
        height,
        width,
        size,
        new_height,
        new_width,
        (size - new_height) // 2,
        (size - new_width) // 2,
    )


def letterbox_boxes(boxes, image_hw: Sequence[int], size: int) -> np.ndarray:
    """Map (N, 4) xyxy boxes of an image of ``image_hw`` = (height, width) into its
    ``size``×``size`` letterbox; returns (N, 4) float64 (not clipped)."""
    frame = letterbox_frame(image_hw, size)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return boxes * frame.factors + frame.offsets


def unletterbox_boxes(
    boxes, image_hw: Sequence[int], size: int, *, clip: bool = True
) -> np.ndarray:
    """Map (N, 4) xyxy boxes of the ``size``×``size`` letterbox back to the original image
    of ``image_hw`` = (height, width): subtract the padding offsets, divide by the resize
    factors (the exact inverse of :func:`letterbox_boxes`). With ``clip`` the result is
    clipped to ``[0, W] × [0, H]``; returns (N, 4) float64."""
    frame = letterbox_frame(image_hw, size)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = (boxes - frame.offsets) / frame.factors
    if clip:
        limits = np.array([frame.width, frame.height, frame.width, frame.height], np.float64)
        out = np.clip(out, 0.0, limits)
    return out
