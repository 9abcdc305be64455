"""Reading images and masks from disk into the canonical arrays.

``read_image`` returns uint8 H×W×3 RGB whatever the file holds (grayscale, palette,
alpha, CMYK, 16-bit), with EXIF orientation applied, so every source and the tf.data
pipeline see the same pixels. ``read_mask`` returns an H×W array of class ids.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def read_image(path: str) -> np.ndarray:
    """Decode ``path`` to uint8 H×W×3 RGB, applying EXIF orientation."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.uint32)
            arr = (arr >> 8).astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8)
            return np.repeat(arr[..., None], 3, axis=-1)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_mask(path: str) -> np.ndarray:
    """Decode a class-id mask PNG to an H×W integer array (no colour conversion)."""
    with Image.open(path) as img:
        return np.asarray(img)
