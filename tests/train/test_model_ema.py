"""ModelEMA: the ramped moving average of YOLOv5/v8, checked against a NumPy replay."""

from __future__ import annotations

import math

import keras
import numpy as np

from visionkit.train.callbacks import ModelEMA


class _Record(keras.callbacks.Callback):
    """Snapshots the raw weights after every batch (before EMA runs, it is placed first)."""

    def __init__(self):
        super().__init__()
        self.snapshots: list[list[np.ndarray]] = []

    def on_train_begin(self, logs=None):
        self.snapshots.append([w.numpy().copy() for w in self.model.weights])

    def on_train_batch_end(self, batch, logs=None):
        self.snapshots.append([w.numpy().copy() for w in self.model.weights])


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def test_ema_matches_a_numpy_replay_and_stays_in_the_model():
    model = _model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 3))
    record, ema = _Record(), ModelEMA(decay=0.9, tau=3.0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[record, ema], shuffle=False)
    # replay: shadow starts at the initial weights; step t uses decay · (1 − exp(−t/τ))
    shadow = [w.copy() for w in record.snapshots[0]]
    for t, raw in enumerate(record.snapshots[1:], start=1):
        d = 0.9 * (1 - math.exp(-t / 3.0))
        shadow = [d * s + (1 - d) * r for s, r in zip(shadow, raw, strict=True)]
    assert ema.updates == 8
    for w, expected in zip(model.weights, shadow, strict=True):  # BN statistics included
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-6)
    raw_last = record.snapshots[-1]
    assert any(
        np.abs(w.numpy() - r).max() > 1e-4 for w, r in zip(model.weights, raw_last, strict=True)
    )


def test_validation_sees_the_average_and_training_the_raw_weights():
    model = _model()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 4)), rng.normal(size=(16, 3))
    seen: dict[str, list] = {"begin": [], "end": []}

    class Peek(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen["begin"].append(self.model.weights[0].numpy().copy())

        def on_epoch_end(self, epoch, logs=None):
            seen["end"].append(self.model.weights[0].numpy().copy())

    ema = ModelEMA(decay=0.5, tau=1.0)
    model.fit(
        x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y), callbacks=[ema, Peek()]
    )
    # epoch 2 begins from the raw weights at the end of epoch 1, not from their average
    assert not np.allclose(seen["begin"][1], seen["end"][0])
    np.testing.assert_allclose(model.weights[0].numpy(), seen["end"][-1])
    # a second stage carries the step count on
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[ema])
    assert ema.updates == 12


def test_steps_per_execution_advances_the_average_by_every_optimizer_step():
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 3))
    record, ema = _Record(), ModelEMA(decay=0.9, tau=3.0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[record, ema], shuffle=False)
    assert len(record.snapshots) == 1 + 4  # Keras calls batch callbacks once per 2 steps
    assert ema.updates == 8  # but the ramp counts all 8 optimizer steps
    # replay: the two steps of each call are folded into one decay, applied to the weights
    # after the second
    shadow = [w.copy() for w in record.snapshots[0]]
    for k, raw in enumerate(record.snapshots[1:]):
        keep = math.prod(0.9 * (1 - math.exp(-t / 3.0)) for t in (2 * k + 1, 2 * k + 2))
        shadow = [keep * s + (1 - keep) * r for s, r in zip(shadow, raw, strict=True)]
    for w, expected in zip(model.weights, shadow, strict=True):
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-6)
