"""Semantic segmentation models: U-Net (from scratch and on pretrained encoders) and
DeepLabV3+. Importing this package registers them in ``visionkit.models`` (task "segment").

Every model takes uint8-range images (preprocessing inside) and returns per-pixel class
probabilities, float32 even under mixed precision: softmax (B, H, W, C) for
``num_classes >= 2`` (binary tasks default to the 2-class softmax), sigmoid (B, H, W, 1)
for ``num_classes=1``. Decoder and head layers are named ``seg_*``.
"""

from visionkit.models.segmentation import deeplab, unet  # noqa: F401
from visionkit.models.segmentation.common import SEG_PREFIX
from visionkit.models.segmentation.unet import unet_output_size

__all__ = ["SEG_PREFIX", "unet_output_size"]
