"""Callbacks of a visionkit run: atomic best-checkpoint keeping, the data pipeline's epoch,
and a history log that records the stage and the learning rate of every epoch."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import keras
import numpy as np

from visionkit.io import atomic_path

HIGHER_IS_BETTER = ("f1", "map50", "map50_95", "miou", "dice")


class EpochMetrics(keras.callbacks.Callback):
    """Adds a task's validation metrics (``val_`` + name) to the epoch's logs, computed by
    ``compute(model) -> dict`` on the weights that get checkpointed (after EMA swapping);
    place it before HistoryLog, BestCheckpoint and EarlyStopping."""

    def __init__(self, compute):
        super().__init__()
        self.compute = compute

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not validated(logs):
            return
        for name, value in self.compute(self.model).items():
            logs[f"val_{name}"] = float(value)


def validated(logs) -> bool:
    """Whether this epoch ran validation (``val_every`` > 1 skips it on most epochs)."""
    return any(key.startswith("val_") for key in logs or {})


def waits_for_validation(monitor: str, logs) -> bool:
    """A validation metric is monitored and this epoch did not validate."""
    return monitor.startswith("val_") and not validated(logs)


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping that waits quietly through epochs without validation, so
    ``patience`` counts validations."""

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not waits_for_validation(self.monitor, logs):
            super().on_epoch_end(epoch, logs)


class ModelEMA(keras.callbacks.Callback):
    """An exponential moving average of every float weight (trainable ones and BatchNorm
    statistics), with the warm-up ramp of YOLOv5/YOLOv8's ModelEMA:

        decay_t = decay · (1 − exp(−t / tau)),   t = optimizer steps so far,

    so early updates are barely averaged and a short fine-tune is not pulled back to its
    initial weights (Keras' optimizer EMA uses a fixed momentum: with 0.999 and a few hundred
    steps the average is mostly the starting point). Validation, the epoch-end callbacks
    after this one (metrics, checkpoints) and the end of training see the average; training
    steps use the raw weights. Pass one instance to every stage: the step count carries on.

    With ``steps_per_execution`` N > 1, Keras calls batch callbacks once per N optimizer
    steps; the average then advances by the N steps at once, ``decay_eff = Π decay_t`` over
    them, applied to the weights after the last (exact when N = 1; the usual "EMA every N
    steps" otherwise). Steps are counted from the optimizer, so the ramp is unchanged.
    """

    def __init__(self, decay: float = 0.9999, tau: float = 2000.0):
        super().__init__()
        self.decay, self.tau = float(decay), float(tau)
        self.updates = 0
        self._shadow: list | None = None
        self._weights: list = []
        self._swapped = False
        self._update_fn = None
        self._seen_iterations = 0

    def _float_weights(self) -> list:
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def on_train_begin(self, logs=None) -> None:
        import tensorflow as tf

        self._weights = self._float_weights()
        self._shadow = [tf.Variable(tf.identity(w), trainable=False) for w in self._weights]
        self._swapped = False
        self._seen_iterations = self._iterations()

        @tf.function
        def update(decay):
            for avg, w in zip(self._shadow, self._weights, strict=True):
                avg.assign(decay * avg + (1.0 - decay) * tf.cast(w, avg.dtype))

        self._update_fn = update

    def _iterations(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        return int(optimizer.iterations.numpy()) if optimizer is not None else 0

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        now = self._iterations()
        steps = max(1, now - self._seen_iterations)  # > 1 with steps_per_execution > 1
        self._seen_iterations = now
        keep = 1.0
        for _ in range(steps):
            self.updates += 1
            keep *= self.decay * (1.0 - math.exp(-self.updates / self.tau))
        self._update_fn(np.float32(keep))

    def _swap(self) -> None:
        import tensorflow as tf

        for avg, w in zip(self._shadow, self._weights, strict=True):
            current = tf.identity(w)
            w.assign(tf.identity(avg))
            avg.assign(current)
        self._swapped = not self._swapped

    def on_test_begin(self, logs=None) -> None:
        # stays swapped until the next epoch begins: the epoch-end callbacks see the average
        if self._shadow is not None and not self._swapped:
            self._swap()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if self._shadow is not None and self._swapped:
            self._swap()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self._shadow is not None and not self._swapped:
            self._swap()

    def on_train_end(self, logs=None) -> None:
        """Leave the average in the model (what gets saved and shipped)."""
        if self._shadow is not None and not self._swapped:
            self._swap()
        self._shadow, self._weights, self._swapped = None, [], False


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model to ``path`` whenever ``monitor`` improves; written atomically, so an
    interruption or a full disk keeps the previous best. Remembers the best value across
    stages (pass the same instance to every ``fit``)."""

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = "val_loss",
        mode: str = "auto",
        best: float | None = None,
    ):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.mode = (
            ("max" if "acc" in monitor or monitor.endswith(HIGHER_IS_BETTER) else "min")
            if mode == "auto"
            else mode
        )
        self.best = best if best is not None else (-math.inf if self.mode == "max" else math.inf)
        self.best_epoch: int | None = None

    def improved(self, value: float) -> bool:
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if waits_for_validation(self.monitor, logs):
            return  # an epoch without validation (val_every > 1)
        if self.monitor not in logs:
            from visionkit.config import ConfigError

            raise ConfigError(
                f"monitor={self.monitor} is not a metric of this run; choose one of {', '.join(sorted(logs))}"
            )
        value = logs[self.monitor]
        if not np.isfinite(value) or not self.improved(float(value)):
            return
        self.best, self.best_epoch = float(value), epoch
        try:
            with atomic_path(self.path) as tmp:
                self.model.save(tmp)
        except OSError as err:
            raise OSError(
                f"could not write the checkpoint {self.path} ({err.strerror or err}); the previous "
                "checkpoint is intact. Free disk space and rerun with resume=true."
            ) from err


class DataEpoch(keras.callbacks.Callback):
    """Tell the tf.data pipeline which epoch starts, so augmentation is reproducible per
    epoch and a resumed run sees exactly the data of an uninterrupted one."""

    def __init__(self, controls) -> None:
        super().__init__()
        self.controls = controls

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.controls.set_epoch(epoch)


class HistoryLog(keras.callbacks.Callback):
    """Append one row per epoch to ``history.csv``: epoch, stage, lr, then the logs.

    Appends (and keeps the header of the first stage), so two-stage runs and resumed runs
    write one continuous file; rows of epochs that are redone after a resume replace the
    old ones.
    """

    def __init__(self, path: str | os.PathLike, stage: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.stage = stage

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        row = {"epoch": epoch, "stage": self.stage, "lr": _current_lr(self.model)}
        row.update({k: float(v) for k, v in (logs or {}).items() if k not in ("learning_rate",)})
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["epoch"]) < epoch]
        rows.append(row)
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def _current_lr(model) -> float:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return float("nan")
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
