"""Learning-rate schedules: linear warmup then cosine decay (Goyal et al. 2017; Loshchilov &
Hutter 2017, SGDR without restarts), as a serialisable Keras schedule counted in steps."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="visionkit")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """``peak · step/warmup`` for the first ``warmup_steps``, then cosine from ``peak`` down
    to ``peak · final_fraction`` at ``total_steps`` (constant after)."""

    def __init__(
        self, peak: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.01
    ):
        self.peak = float(peak)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(1, self.warmup_steps))
        warmup = self.peak * ops.minimum(1.0, (step + 1.0) / warm)
        span = float(max(1, self.total_steps - self.warmup_steps))
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        floor = self.peak * self.final_fraction
        cosine = floor + 0.5 * (self.peak - floor) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self) -> dict:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_fraction": self.final_fraction,
        }
