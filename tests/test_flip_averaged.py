"""Test-time flip averaging (``visionkit.predict.flip_averaged``): every flip is undone
before averaging, square inputs use the 8 symmetries and others the 4 flips."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from visionkit.predict import flip_averaged


@pytest.mark.parametrize("shape", [(2, 6, 6, 3), (2, 5, 7, 3)], ids=["square", "oblong"])
def test_identity_comes_back_unchanged(shape):
    images = np.random.default_rng(0).random(shape).astype("float32")
    np.testing.assert_allclose(flip_averaged(tf.identity)(images).numpy(), images, atol=1e-6)


@pytest.mark.parametrize(
    "shape,passes", [((1, 6, 6, 1), 8), ((1, 5, 7, 1), 4)], ids=["square", "oblong"]
)
def test_position_dependent_output_is_averaged_over_the_symmetries(shape, passes):
    """A forward that multiplies by a left-to-right ramp 0..W-1: averaged over the flips
    (and, when square, the transposes that turn it into a top-to-bottom ramp), every
    pixel's factor is (W-1)/2."""
    width = shape[2]
    ramp = tf.constant(np.arange(width, dtype="float32").reshape(1, 1, width, 1))
    calls = []

    def forward(x):
        calls.append(tuple(x.shape))
        return x * ramp

    images = np.random.default_rng(1).random(shape).astype("float32") + 0.5
    averaged = flip_averaged(forward)(images).numpy()
    assert len(calls) == passes
    np.testing.assert_allclose(averaged, images * (width - 1) / 2, rtol=1e-5)
    assert not np.allclose(forward(images).numpy(), averaged)  # the plain output differs
