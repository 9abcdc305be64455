"""Detections drawn on an image: a coloured rectangle per box and a ``class score`` label.

Used by ``visionkit detect predict`` and usable from notebooks::

    from visionkit.draw import draw_boxes
    annotated = draw_boxes(image, boxes, classes, scores, class_names)

Line width and font size follow the image size, so labels stay legible from 64 px
thumbnails to 4000 px photos; every class keeps one colour of a fixed 20-colour palette.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# 20 well-separated RGB colours (Tableau 10 and its light companions, reordered so that
# consecutive class ids differ strongly); class k uses PALETTE[k % 20].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (127, 127, 127),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (219, 219, 141),
    (158, 218, 229),
    (199, 199, 199),
)


def class_colour(class_id: int) -> tuple[int, int, int]:
    """The RGB colour of class ``class_id`` (the palette repeats after 20 classes)."""
    return PALETTE[int(class_id) % len(PALETTE)]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, ValueError, OSError, ImportError):
        return ImageFont.load_default()


def draw_boxes(
    image: np.ndarray,
    boxes,
    classes,
    scores,
    class_names: Sequence[str],
    *,
    line_width: int | None = None,
    font_size: int | None = None,
) -> np.ndarray:
    """Draw detections on a copy of ``image`` and return it.

    Args:
        image: uint8 (H, W, 3) RGB (or (H, W) grey, drawn on as RGB); not modified.
        boxes: (N, 4) ``xyxy`` in the image's pixel-edge coordinates (``[0, 0, W, H]`` is
            the whole image); each rectangle is drawn inside its box.
        classes: (N,) class ids, indices into ``class_names`` (ids beyond it are shown
            as numbers).
        scores: (N,) scores in [0, 1], shown with two decimals.
        class_names: the model's class names.
        line_width: rectangle width in pixels (default ``max(1, round(max(H, W) / 320))``).
        font_size: label height in pixels (default ``max(10, round(max(H, W) / 45))``).

    Returns:
        uint8 (H, W, 3) RGB: the image with one rectangle per box and a filled label
        ``"name 0.87"`` in the class colour above the box (inside it when the box touches
        the top edge), kept within the image.
    """
    from PIL import Image, ImageDraw

    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    canvas = Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), "RGB")
    width, height = canvas.size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if not len(boxes) == len(classes) == len(scores):
        raise ValueError(
            f"boxes, classes and scores differ in length: {len(boxes)}, {len(classes)}, {len(scores)}"
        )
    longest = max(height, width)
    line_width = line_width or max(1, round(longest / 320))
    font = _font(font_size or max(10, round(longest / 45)))
    draw = ImageDraw.Draw(canvas)
    for (x1, y1, x2, y2), class_id, score in zip(boxes, classes, scores, strict=True):
        colour = class_colour(int(class_id))
        # pixel-edge box [x1, x2) → the inclusive pixel rectangle PIL draws, inside the box
        left, top = round(float(x1)), round(float(y1))
        right = max(left, round(float(x2)) - 1)
        bottom = max(top, round(float(y2)) - 1)
        draw.rectangle((left, top, right, bottom), outline=colour, width=line_width)
        class_id = int(class_id)
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        text = f"{name} {float(score):.2f}"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), text, font=font)
        pad = max(1, line_width // 2)
        label_w, label_h = tx1 - tx0 + 2 * pad, ty1 - ty0 + 2 * pad
        lx = min(max(left, 0), max(width - label_w, 0))
        ly = top - label_h if top - label_h >= 0 else top  # above the box, else inside it
        ly = min(ly, max(height - label_h, 0))
        draw.rectangle((lx, ly, lx + label_w - 1, ly + label_h - 1), fill=colour)
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
        draw.text((lx + pad - tx0, ly + pad - ty0), text, fill=ink, font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()
