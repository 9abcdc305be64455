"""Box- and mask-aware augmentation in TF ops, and its configuration.

:class:`AugmentConfig` holds every knob with a probability and a magnitude; the defaults
depend on the task (:meth:`AugmentConfig.for_task`). Modules:

* :mod:`.geometric` — flip, resize, letterbox, place/crop, scale jitter, RandomResizedCrop,
  random crop, rotation: image, boxes and mask together;
* :mod:`.colour` — colour jitter and RandAugment (image only);
* :mod:`.mosaic` — 4-image Mosaic for detection;
* :mod:`.mix` — MixUp/CutMix for classification batches, MixUp for detection.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields, replace

from visionkit.data.types import TASKS


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation settings. A probability of 0 switches a step off.

    Geometric (every task):
      flip_prob: horizontal flip probability.
      scale: (lo, hi) scale-jitter factor range (detect, segment): the image is resized
        by its letterbox (or plain) scale × U(lo, hi) and put at a random position.
      crop_prob, crop_area, crop_ratio: random crop (detect/segment: before scale jitter;
        classify: ``crop_prob > 0`` turns on RandomResizedCrop with area fraction
        ``crop_area`` and aspect ``crop_ratio``, Szegedy et al. 2015).
      rotate_prob, rotate_degrees: rotation by U(−deg, deg) (image fill 0, mask 255).
      rot90_prob (classify, segment; square sizes): rotation by 90°, 180° or 270°,
        lossless (no resampling, no fill); with the flip, all 8 symmetries of the square,
        for data with no "up" (microscopy, aerial images).
      elastic_prob, elastic_sigma, elastic_grid (segment): the U-Net paper's elastic
        deformation, a ``grid`` × ``grid`` lattice of Gaussian displacements (std
        ``sigma`` pixels) interpolated bicubically.
      min_box_area_frac, min_box_side: a box survives a crop when at least this fraction
        of its area stays in frame and both sides are ≥ this many pixels.
      pad_value: image fill for letterbox, placement and Mosaic padding (YOLO grey 114).
    Photometric:
      colour_prob, brightness, contrast, saturation, hue: colour jitter (factors
        U(1 − m, 1 + m); hue shift U(−hue, hue) of the colour wheel).
      randaugment_ops, randaugment_magnitude: RandAugment N and M (classify; 0 ops = off).
    Mixing:
      mosaic_prob, mosaic_scale: Mosaic (detect); zoom range of the final crop.
      mixup_prob, mixup_alpha: MixUp (classify: per sample in a batch; detect: blend two
        examples, α large ≈ 0.5 blends).
      cutmix_prob, cutmix_alpha: CutMix (classify).
    """

    flip_prob: float = 0.5
    scale: tuple[float, float] = (0.5, 1.5)
    crop_prob: float = 0.0
    crop_area: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (0.5, 2.0)
    rotate_prob: float = 0.0
    rotate_degrees: float = 0.0
    rot90_prob: float = 0.0
    elastic_prob: float = 0.0
    elastic_sigma: float = 10.0
    elastic_grid: int = 3
    min_box_area_frac: float = 0.25
    min_box_side: float = 2.0
    pad_value: float = 114.0
    colour_prob: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.015
    randaugment_ops: int = 0
    randaugment_magnitude: float = 9.0
    mosaic_prob: float = 0.0
    mosaic_scale: tuple[float, float] = (0.5, 1.5)
    mixup_prob: float = 0.0
    mixup_alpha: float = 0.2
    cutmix_prob: float = 0.0
    cutmix_alpha: float = 1.0

    @classmethod
    def for_task(cls, task: str, **overrides) -> AugmentConfig:
        """The defaults for ``task`` (classify, detect, segment), with ``overrides``."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        base = cls(**_TASK_DEFAULTS[task])
        return base.replace(**overrides) if overrides else base

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (every probability and magnitude 0)."""
        return cls(
            flip_prob=0.0,
            scale=(1.0, 1.0),
            colour_prob=0.0,
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            hue=0.0,
        )

    @classmethod
    def from_dict(cls, values: dict, task: str = "classify") -> AugmentConfig:
        """Task defaults overridden by ``values``; unknown keys raise a ValueError that
        names the closest valid key."""
        valid = [f.name for f in fields(cls)]
        for key in values:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown augmentation key {key!r}{hint} (valid keys: {', '.join(valid)})"
                )
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls.for_task(task, **clean)

    def replace(self, **changes) -> AugmentConfig:
        """A copy with ``changes`` (keys checked as in :meth:`from_dict`)."""
        valid = {f.name for f in fields(self)}
        bad = [k for k in changes if k not in valid]
        if bad:
            close = difflib.get_close_matches(bad[0], list(valid), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown augmentation key {bad[0]!r}{hint}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


_TASK_DEFAULTS: dict[str, dict] = {
    # ImageNet-style transfer learning: RandomResizedCrop + flip + mild colour jitter.
    "classify": dict(
        crop_prob=1.0,
        crop_area=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        scale=(1.0, 1.0),
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
        hue=0.0,
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
    ),
    # YOLO-style: Mosaic always, scale jitter + letterbox, flip, HSV-like jitter.
    "detect": dict(
        mosaic_prob=1.0,
        mosaic_scale=(0.5, 1.5),
        scale=(0.5, 1.5),
        crop_prob=0.0,
        crop_area=(0.3, 1.0),
        crop_ratio=(0.5, 2.0),
        mixup_alpha=32.0,
    ),
    # U-Net/DeepLab-style: flip, scale and crop, small rotations, colour jitter.
    "segment": dict(
        scale=(0.75, 1.25),
        rotate_prob=0.3,
        rotate_degrees=15.0,
        pad_value=0.0,
    ),
}

__all__ = ["AugmentConfig"]
