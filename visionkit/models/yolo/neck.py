"""PAN-FPN neck in the YOLOv8 layout: FPN top-down path (Lin et al. 2017, *Feature
Pyramid Networks for Object Detection*, CVPR) followed by the PANet bottom-up path (Liu et
al. 2018, *Path Aggregation Network for Instance Segmentation*, CVPR), as arranged in
Ultralytics YOLOv8 (Jocher et al. 2023; layout only, our own code).

Top-down: upsample P5 ×2 (nearest) ‖ P4 → C2f → N4; upsample N4 ×2 ‖ P3 → C2f → out P3.
Bottom-up: conv 3×3/2 (out P3) ‖ N4 → C2f → out P4; conv 3×3/2 (out P4) ‖ P5 → C2f → out P5.
C2f blocks here have no residual shortcut. Base widths 256/512/1024 at strides 8/16/32
and 3 bottlenecks per C2f, scaled by ``width``/``depth`` like the backbone. Every layer name
starts with ``det_neck_``.
"""

from __future__ import annotations

from keras import layers

from visionkit.models.yolo.csp import c2f, conv, scale_depth, scale_width

PREFIX = "det_neck"
BASE_WIDTHS = (256, 512, 1024)


def pan_fpn(
    features: dict,
    *,
    width: float = 0.25,
    depth: float = 0.33,
    max_channels: int = 1024,
    name: str = PREFIX,
) -> list:
    """Fuse ``features["P3"], ["P4"], ["P5"]`` into three maps at strides 8, 16, 32.

    Input maps may have any channel counts (pretrained backbones). Returns
    ``[P3, P4, P5]`` with ``scale_width(256|512|1024, width, max_channels)`` channels.
    """
    c3, c4, c5 = (scale_width(c, width, max_channels) for c in BASE_WIDTHS)
    n = scale_depth(3, depth)
    p3, p4, p5 = features["P3"], features["P4"], features["P5"]

    up5 = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up5")(p5)
    x = layers.Concatenate(name=f"{name}_cat4")([up5, p4])
    n4 = c2f(x, c4, n, shortcut=False, name=f"{name}_td4")

    up4 = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up4")(n4)
    x = layers.Concatenate(name=f"{name}_cat3")([up4, p3])
    out3 = c2f(x, c3, n, shortcut=False, name=f"{name}_out3")

    x = conv(out3, c3, 3, 2, name=f"{name}_down3")
    x = layers.Concatenate(name=f"{name}_cat_bu4")([x, n4])
    out4 = c2f(x, c4, n, shortcut=False, name=f"{name}_out4")

    x = conv(out4, c4, 3, 2, name=f"{name}_down4")
    x = layers.Concatenate(name=f"{name}_cat_bu5")([x, p5])
    out5 = c2f(x, c5, n, shortcut=False, name=f"{name}_out5")
    return [out3, out4, out5]
