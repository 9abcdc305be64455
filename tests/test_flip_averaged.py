"""Test-time flip averaging (``visionkit.predict.flip_averaged``): every flip is undone
before averaging, square inputs use the 8 symmetries and others the 4 flips, or only the
symmetries named (``tta=hflip``)."""

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


@pytest.mark.parametrize(
    "symmetries,passes,factor",
    [(("hflip",), 2, "mean"), (("vflip",), 2, "ramp"), (("hflip", "vflip"), 4, "mean")],
    ids=["hflip", "vflip", "both-flips"],
)
def test_named_symmetries_alone_are_averaged(symmetries, passes, factor):
    """Left-right flips average a left-to-right ramp away; up-down flips leave it as it is."""
    width = 6
    ramp = tf.constant(np.arange(width, dtype="float32").reshape(1, 1, width, 1))
    calls = []

    def forward(x):
        calls.append(tuple(x.shape))
        return x * ramp

    images = np.random.default_rng(2).random((1, width, width, 1)).astype("float32") + 0.5
    averaged = flip_averaged(forward, symmetries)(images).numpy()
    assert len(calls) == passes
    expected = images * (width - 1) / 2 if factor == "mean" else forward(images).numpy()
    np.testing.assert_allclose(averaged, expected, rtol=1e-5)


def test_transpose_alone_averages_the_ramp_with_its_transpose():
    width = 5
    ramp = np.arange(width, dtype="float32").reshape(1, 1, width, 1)
    images = np.ones((1, width, width, 1), "float32")
    averaged = flip_averaged(lambda x: x * ramp, ("transpose",))(images).numpy()
    np.testing.assert_allclose(averaged, (ramp + ramp.transpose(0, 2, 1, 3)) / 2 * images)


def test_unknown_symmetry_is_refused():
    with pytest.raises(ValueError, match="rot45"):
        flip_averaged(tf.identity, ("hflip", "rot45"))


@pytest.mark.parametrize(
    "value,symmetries",
    [
        (False, ()),
        (None, ()),
        (True, ("hflip", "vflip", "transpose")),
        ("hflip", ("hflip",)),
        (" hflip, transpose ", ("hflip", "transpose")),
    ],
)
def test_tta_setting_names_the_symmetries(value, symmetries):
    from visionkit.tasks.segment import tta_symmetries

    assert tta_symmetries(value) == symmetries


@pytest.mark.parametrize("value", ["hflipp", "", "hflip,rot90"])
def test_a_wrong_tta_setting_says_what_to_write(value):
    from visionkit.config import ConfigError
    from visionkit.tasks.segment import tta_symmetries

    with pytest.raises(ConfigError, match=r"tta=.*hflip, vflip, transpose \(e\.g\. tta=hflip\)"):
        tta_symmetries(value)
