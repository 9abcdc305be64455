"""Training recipes: which stages a run has, and each stage's optimizer.

Pretrained backbone (``freeze=auto``): stage ``head`` trains the new head with the backbone
frozen at ``lr``; stage ``finetune`` unfreezes the top ``unfreeze`` blocks (BatchNorm kept
frozen) at ``finetune_lr``. Each stage warms up linearly and decays with a cosine.
From scratch: one ``train`` stage with everything trainable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from visionkit.config import ConfigError
from visionkit.train.schedules import WarmupCosine


@dataclass(frozen=True)
class Stage:
    """One ``fit`` call: epochs [start, end), peak learning rate and what trains."""

    name: str
    start: int
    end: int
    lr: float
    trainable: str  # "all" | "head" | "top:N" | "from:N"

    @property
    def epochs(self) -> int:
        return self.end - self.start


def plan_stages(config: dict[str, Any], *, pretrained: bool) -> list[Stage]:
    """The stages of a run from ``epochs``, ``head_epochs``, ``freeze`` and ``unfreeze``."""
    epochs, freeze = int(config["epochs"]), config["freeze"]
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    lr, finetune_lr = float(config["lr"]), float(config["finetune_lr"])
    if isinstance(freeze, int) and not isinstance(freeze, bool):
        return [Stage("train", 0, epochs, lr, f"from:{freeze}")]
    if freeze == "none" or (freeze == "auto" and not pretrained):
        return [Stage("train", 0, epochs, lr, "all")]
    if freeze == "backbone":
        return [Stage("head", 0, epochs, lr, "head")]
    if freeze != "auto":
        raise ConfigError(
            f"freeze must be auto, none, backbone or a number of blocks, got {freeze!r}"
        )
    head = min(int(config["head_epochs"]), epochs)
    stages = [Stage("head", 0, head, lr, "head")] if head else []
    if epochs > head:
        stages.append(
            Stage("finetune", head, epochs, finetune_lr, f"top:{int(config['unfreeze'])}")
        )
    return stages


def make_optimizer(
    config: dict[str, Any], stage: Stage, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """AdamW, Adam or SGD (momentum 0.9, Nesterov) with a warmup-cosine schedule over the stage."""
    steps = max(1, stage.epochs * steps_per_epoch)
    warmup = min(int(config["warmup_epochs"]) * steps_per_epoch, steps // 2)
    schedule = WarmupCosine(stage.lr, total_steps=steps, warmup_steps=warmup)
    name, decay = config["optimizer"], float(config["weight_decay"])
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=decay)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=schedule)
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=schedule, momentum=0.9, nesterov=True, weight_decay=decay or None
        )
    raise ConfigError(f"optimizer must be adamw, adam or sgd, got {name!r}")
