"""BatchNormalization statistics far from their initial values, for tests of folding."""

from __future__ import annotations

import keras
import numpy as np


def random_statistics(model: keras.Model, seed: int = 0) -> keras.Model:
    """Set every BatchNormalization's moving statistics and affine terms to seeded values
    far from the identity, so that folding them has work to do; returns ``model``."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, shape))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, shape))
    return model
