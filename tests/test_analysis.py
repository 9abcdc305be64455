"""visionkit.analysis against the lecture checks of SEED_CHECKS.md (§3 W1–W27, §5.2 C1–C55).

Each test cites its check ids. Matrices are typed in from SEED_CHECKS.md §3; expected values
are exact (EXACT/FIXED rows of §5.2). Keras is the independent reference for the NumPy
convolution and pooling.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from visionkit import analysis
from visionkit.analysis import (
    conv2d_reference,
    conv_macs,
    conv_output_size,
    conv_params,
    format_layer_table,
    layer_table,
    layer_table_totals,
    pool2d_reference,
    pool_output_size,
    receptive_field,
    same_padding,
)

# --------------------------------------------------------------------------- seed matrices

# W1 / C1: 5×5 binary image and 3×3 "X" kernel ([000]/[001]).
W1_IMAGE = np.array(
    [
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 1, 1, 0, 0],
    ]
)
W1_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])

# W2/W3 / C2/C3: 6×6 image, "Filter 1" (diagonal) and "Filter 2" (vertical line) ([004]).
W2_IMAGE = np.array(
    [
        [1, 0, 0, 0, 0, 1],
        [0, 1, 0, 0, 1, 0],
        [0, 0, 1, 1, 0, 0],
        [1, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, 0],
        [0, 0, 1, 0, 1, 0],
    ]
)
W2_FILTER1 = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
W3_FILTER2 = np.array([[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]])

# W4 / C4: 6 rows of "1 1 0 0 0 0 1 1" and the 1×2 kernel [1, −1] ([004]).
W4_IMAGE = np.tile([1, 1, 0, 0, 0, 0, 1, 1], (6, 1))
W4_KERNEL = np.array([[1, -1]])

# W6 / C50: unpadded 5×5 interiors of the 3-channel cs231n demo input ([000]/[001]).
W6_X = np.stack(
    [
        np.array(
            [
                [1, 1, 0, 1, 1],
                [1, 1, 0, 2, 1],
                [0, 1, 0, 2, 0],
                [0, 1, 1, 0, 2],
                [1, 2, 1, 1, 0],
            ]
        ),
        np.array(
            [
                [0, 2, 0, 2, 0],
                [1, 1, 2, 2, 2],
                [0, 2, 0, 2, 0],
                [0, 1, 1, 2, 0],
                [1, 0, 2, 2, 1],
            ]
        ),
        np.array(
            [
                [1, 1, 2, 2, 1],
                [1, 2, 2, 0, 2],
                [2, 1, 0, 1, 0],
                [1, 1, 2, 2, 1],
                [0, 0, 2, 2, 0],
            ]
        ),
    ],
    axis=-1,
)

# W9 / C9: the 6×6 image zero-padded to 8×8 and the vertical-edge kernel ([000]/[001]).
W9_IMAGE = np.array(
    [
        [3, 3, 4, 4, 7, 0],
        [9, 7, 6, 5, 8, 2],
        [6, 5, 5, 6, 9, 2],
        [7, 1, 3, 2, 7, 8],
        [0, 3, 7, 1, 8, 3],
        [4, 0, 4, 3, 2, 2],
    ]
)
W9_KERNEL = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]])

# W10 / C5, C6: 4×4 pooling input ([004]).
W10_INPUT = np.array([[0, 3, 1, 6], [2, 1, 0, 2], [-1, 1, 1, 1], [-1, 0, -1, 3]])

from seed_values import VGG16_SHAPES, VGG16_WEIGHTS  # noqa: E402  (W21 / C33, C34)

VGG16_ACTIVATIONS = [224 * 224 * 3] + [int(np.prod(s)) for s in VGG16_SHAPES]


def _row(df, name):
    rows = df[df["layer"] == name]
    assert len(rows) == 1, f"expected one row named {name!r}, got {len(rows)}"
    return rows.iloc[0]


# --------------------------------------------------------------------------- worked examples


def test_c1_w1_x_kernel():
    """C1/W1: 5×5 image ∗ X kernel, stride 1, valid."""
    expected = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    np.testing.assert_array_equal(conv2d_reference(W1_IMAGE, W1_KERNEL), expected)


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        # C2/W2: the seed OCR lost the minus sign of [3][3] (recomputed −1).
        (W2_FILTER1, [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]]),
        # C3/W3: the seed OCR lost the minus sign of [3][2] (recomputed −4).
        (W3_FILTER2, [[-1, -1, -1, -1], [-1, -1, -2, 1], [-1, -1, -2, 1], [-1, 0, -4, 3]]),
    ],
    ids=["C2-filter1", "C3-filter2"],
)
def test_c2_c3_w2_w3_filters(kernel, expected):
    out = conv2d_reference(W2_IMAGE, kernel)
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out, expected)


def test_c2_two_filters_give_two_maps():
    """W3: "2 images of 4 x 4 matrix is produced" — both filters in one Cout=2 kernel."""
    w = np.stack([W2_FILTER1, W3_FILTER2], axis=-1)[:, :, None, :]  # 3×3×1×2
    out = conv2d_reference(W2_IMAGE[:, :, None], w)
    assert out.shape == (4, 4, 2)
    np.testing.assert_array_equal(out[..., 0], conv2d_reference(W2_IMAGE, W2_FILTER1))
    np.testing.assert_array_equal(out[..., 1], conv2d_reference(W2_IMAGE, W3_FILTER2))


def test_w2_stride2_does_not_fit_but_keras_floors():
    """W2 at stride 2: (6 − 3)/2 + 1 = 2.5 is refused; Keras floors to the top-left 5×5."""
    with pytest.raises(ValueError, match=r"2\.50"):
        conv2d_reference(W2_IMAGE, W2_FILTER1, stride=2)
    expected = [[3, -3], [-3, 0]]
    np.testing.assert_array_equal(
        conv2d_reference(W2_IMAGE[:5, :5], W2_FILTER1, stride=2), expected
    )
    layer = keras.layers.Conv2D(1, 3, strides=2, use_bias=False)
    layer.build((None, 6, 6, 1))
    layer.set_weights([W2_FILTER1[:, :, None, None].astype("float32")])
    floored = layer(W2_IMAGE[None, :, :, None].astype("float32")).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(floored, expected)


def test_c4_w4_edge_kernel():
    """C4/W4: rows 1 1 0 0 0 0 1 1 ∗ [1, −1] → every row 0 1 0 0 0 −1 0, shape 6×7."""
    out = conv2d_reference(W4_IMAGE, W4_KERNEL)
    assert out.shape == (6, 7)
    np.testing.assert_array_equal(out, np.tile([0, 1, 0, 0, 0, -1, 0], (6, 1)))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("max", [[3, 6], [1, 3]]), ("avg", [[1.5, 2.25], [-0.25, 1]])],
    ids=["C5-max", "C6-avg"],
)
def test_c5_c6_w10_pooling(mode, expected):
    """C5/C6/W10: 2×2 stride-2 max and average pooling of the 4×4 input."""
    out = pool2d_reference(W10_INPUT, size=2, stride=2, mode=mode)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, expected)
    # Channels are pooled independently (W11: "over each activation map independently").
    stacked = pool2d_reference(np.stack([W10_INPUT, -W10_INPUT], axis=-1), mode=mode)
    np.testing.assert_array_equal(stacked[..., 0], expected)
    np.testing.assert_array_equal(stacked[..., 1], pool2d_reference(-W10_INPUT, mode=mode))


def test_c9_w9_same_padding_keeps_size():
    """C9/W9: P = (F − 1)/2 = 1; 6×6 → padded 8×8 → 6×6; the four seed values that reproduce."""
    p = same_padding(3)
    assert p == 1
    assert 6 + 2 * p == 8
    out = conv2d_reference(W9_IMAGE, W9_KERNEL, padding=p)
    assert out.shape == (6, 6)
    # Seed's partial output: −10 · 1 / · 3 0 (positions (0,0), (0,2), (1,1), (1,2)).
    assert (out[0, 0], out[0, 2], out[1, 1], out[1, 2]) == (-10, 1, 3, 0)
    # The recomputed first two rows of SEED_CHECKS.md W9.
    np.testing.assert_array_equal(out[:2], [[-10, 2, 1, -5, 7, 15], [-15, 3, 0, -9, 11, 24]])


@pytest.mark.parametrize("f", [1, 3, 5, 7])
def test_c9_same_padding_preserves_size(f):
    assert conv_output_size(13, f, stride=1, padding=same_padding(f)) == 13


def test_same_padding_rejects_even_filters():
    with pytest.raises(ValueError, match="odd"):
        same_padding(4)


# --------------------------------------------------------------------------- output sizes


@pytest.mark.parametrize(
    ("n", "f", "stride", "padding", "convention", "expected"),
    [
        (7, 3, 1, 0, "per_side", 5),  # C7/W7 stride 1
        (7, 3, 2, 0, "per_side", 3),  # C7/W7 stride 2
        (7, 3, 1, 1, "per_side", 7),  # C8 "Kernel =3X3, Stride =1, output =7 X 7 !!"
        (7, 3, 3, 1, "per_side", 3),  # C8 stride 3, 1-pixel border on each side
        (7, 3, 3, 2, "total", 3),  # C8 in [004]'s notation: p_h = 2 in total
        (7, 3, 1, 2, "total", 7),  # C8 in [004]'s notation, stride 1
        (32, 5, 1, 0, "per_side", 28),  # C10/W5
        (28, 5, 1, 0, "per_side", 24),  # C11/W5
        (227, 11, 4, 0, "per_side", 55),  # C28 AlexNet CONV1
        (224, 3, 1, 1, "per_side", 224),  # C38 VGG 3×3 / stride 1 / pad 1
        (5, 3, 1, 1, "per_side", 5),  # C18 figure A, first layer
        (5, 4, 1, 1, "per_side", 4),  # C18 figure B, first layer
        (5, 3, 2, 1, "per_side", 3),  # C50/W6 (5 + 2 − 3)/2 + 1
    ],
)
def test_c7_c8_conv_output_size(n, f, stride, padding, convention, expected):
    assert conv_output_size(n, f, stride, padding, convention=convention) == expected


def test_c7_stride3_does_not_fit_and_message_names_sizes():
    """C7/W7: "7x7 input with 3x3 filter and stride 3 doesn't work!" → (7 − 3)/3 + 1 = 2.33."""
    with pytest.raises(ValueError) as err:
        conv_output_size(7, 3, stride=3)
    msg = str(err.value)
    assert "2.33" in msg
    assert "7×7" in msg and "3×3" in msg and "stride 3" in msg
    assert "(7 + 2*0 - 3)/3 + 1" in msg


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((3, 5), {}, "larger than"),  # filter larger than the input
        ((7, 3), {"padding": 1, "stride": 4}, r"= 2\.50"),  # (7 + 2 − 3)/4 + 1
        ((7, 3), {"padding": 1, "convention": "total", "stride": 2}, r"3\.50"),
        ((0, 3), {}, "n must be >= 1"),
        ((7, 0), {}, "f must be >= 1"),
        ((7, 3), {"stride": 0}, "stride must be >= 1"),
        ((7, 3), {"padding": -1}, "padding must be >= 0"),
        ((7.0, 3), {}, "n must be an integer"),
        ((7, 3), {"convention": "both"}, "convention"),
        ((224, 11), {"stride": 4}, r"54\.25"),  # AlexNet at 224: Keras would floor to 54
    ],
)
def test_conv_output_size_rejects(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_output_size(*args, **kwargs)


@pytest.mark.parametrize(
    ("n", "f", "stride", "expected"),
    [(224, 2, 2, 112), (4, 2, 2, 2), (55, 3, 2, 27), (14, 2, 2, 7)],
    ids=["C13-W11", "C5-W10", "C29-alexnet-pool1", "vgg-last-pool"],
)
def test_c13_c29_pool_output_size(n, f, stride, expected):
    assert pool_output_size(n, f, stride) == expected


def test_pool_output_size_rejects_non_fitting_window():
    with pytest.raises(ValueError, match=r"pooling window.*stride 2"):
        pool_output_size(7, 2, 2)


# --------------------------------------------------------------------------- receptive fields


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ([(3, 1)] * 3, 7),  # C17: three 3×3/1 convs ~ one 7×7
        ([(3, 1)] * 2, 5),  # W15 derived: two 3×3 convs ~ 5×5
        ([(3, 1), (2, 1)], 4),  # C18 figure A
        ([(4, 1), (2, 2)], 5),  # C18 figure B
        ([(7, 1)], 7),  # C16: the single 7×7 conv it replaces
        ([(2, 2), (3, 1)], 6),  # stride multiplies later kernels: 2 + (3 − 1)·2
        ([], 1),
    ],
)
def test_c17_c18_receptive_field(layers, expected):
    assert receptive_field(layers) == expected


def test_c18_feature_map_sizes():
    """C18 derived: figure A 5×5 → 5×5 → 4×4; figure B 5×5 → 4×4 → 2×2."""
    a1 = conv_output_size(5, 3, 1, 1)
    assert (a1, conv_output_size(a1, 2, 1)) == (5, 4)
    b1 = conv_output_size(5, 4, 1, 1)
    assert (b1, conv_output_size(b1, 2, 2)) == (4, 2)


def test_receptive_field_rejects_bad_layers():
    with pytest.raises(ValueError, match="stride of layer 1"):
        receptive_field([(3, 1), (3, 0)])


# --------------------------------------------------------------------------- params and MACs


@pytest.mark.parametrize(
    ("f", "c_in", "c_out", "bias", "expected"),
    [
        (5, 3, 1, True, 76),  # C10/C15/W5
        (5, 3, 6, True, 456),  # C11
        (5, 6, 10, True, 1_510),  # C11
        (1, 64, 32, True, 2_080),  # C12/W13
        (11, 3, 96, False, 34_848),  # C30 AlexNet CONV1 weights
        (11, 3, 96, True, 34_944),  # C30 with the 96 biases
        (3, 3, 64, False, 1_728),  # C33 VGG first conv, weights only
        ((3, 3), 512, 512, False, 2_359_296),  # C33, kernel as (kh, kw)
        ((1, 2), 1, 1, False, 2),  # W4's 1×2 kernel
    ],
)
def test_c15_conv_params(f, c_in, c_out, bias, expected):
    assert conv_params(f, c_in, c_out, bias=bias) == expected


@pytest.mark.parametrize("c", [1, 3, 64])
def test_c16_small_filters(c):
    """C16/W16: one 7×7 conv C→C has 49C² weights, three 3×3 convs 27C²; same field (7)."""
    one = conv_params(7, c, c, bias=False)
    three = 3 * conv_params(3, c, c, bias=False)
    assert (one, three) == (49 * c * c, 27 * c * c)
    assert receptive_field([(7, 1)]) == receptive_field([(3, 1)] * 3) == 7
    if c == 64:
        assert (one, three) == (200_704, 110_592)


def test_c16_small_filters_in_keras():
    """C16 through layer_table: the same counts from real Conv2D layers (no bias)."""
    c = 64
    inp = keras.Input((16, 16, c))
    big = keras.layers.Conv2D(c, 7, padding="same", use_bias=False, name="big")(inp)
    x = inp
    for i in range(3):
        x = keras.layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"small{i}")(x)
    df = layer_table(keras.Model(inp, [big, x]))
    assert _row(df, "big")["params"] == 200_704
    assert sum(_row(df, f"small{i}")["params"] for i in range(3)) == 110_592


def test_c19_w17_macs_5x5_and_1x1_bottleneck():
    """C19/W17: 32·32·32·5·5·200 = 163,840,000 (≈163M); the 1×1-to-16 variant 16,384,000."""
    assert conv_macs(32, 32, 5, 200, 32) == 163_840_000
    assert conv_macs(32, 32, 1, 200, 16) + conv_macs(32, 32, 5, 16, 32) == 16_384_000


def test_c19_macs_in_keras():
    """C19 through layer_table: Conv2D(32, 5, 'same') on 32×32×200."""
    model = keras.Sequential(
        [keras.Input((32, 32, 200)), keras.layers.Conv2D(32, 5, padding="same", name="c")]
    )
    row = _row(layer_table(model), "c")
    assert row["macs"] == 163_840_000
    assert row["output_shape"] == (32, 32, 32)


def test_c20_w18_naive_inception_mac_arithmetic():
    """C20/W18 (arithmetic only): 1×1/128, 3×3/192, 5×5/96 on 28×28×256 → 854,196,224."""
    terms = [
        conv_macs(28, 28, 1, 256, 128),
        conv_macs(28, 28, 3, 256, 192),
        conv_macs(28, 28, 5, 256, 96),
    ]
    assert terms == [25_690_112, 346_816_512, 481_689_600]
    assert sum(terms) == 854_196_224
    assert 128 + 192 + 96 + 256 == 672


def test_c21_w19_bottleneck_inception_mac_arithmetic():
    """C21/W19 (FIXED): the listed terms sum to 271,351,808, not the seed's "358M"."""
    terms = [
        conv_macs(28, 28, 1, 256, 64),
        conv_macs(28, 28, 1, 256, 64),
        conv_macs(28, 28, 1, 256, 128),
        conv_macs(28, 28, 3, 64, 192),
        conv_macs(28, 28, 5, 64, 96),
        conv_macs(28, 28, 1, 256, 64),
    ]
    assert terms[0] == 12_845_056
    assert terms[3:5] == [86_704_128, 120_422_400]
    assert sum(terms) == 271_351_808
    assert sum(terms) != 358_000_000 and sum(terms) < 854_196_224


def test_c25_locally_connected_params():
    """C25/W23: 200×200 image, 40K hidden units each on a 10×10 patch → 4,000,000 weights."""
    units = 40_000
    assert units == 200 * 200
    assert units * conv_params(10, 1, 1, bias=False) == 4_000_000


# --------------------------------------------------------------------------- references vs Keras


@pytest.mark.parametrize(
    ("size", "kernel", "c_in", "c_out", "stride", "padding"),
    [
        (9, 3, 3, 4, 1, "same"),
        (9, 5, 2, 3, 1, "same"),
        (9, 3, 3, 4, 2, 1),
        (9, 3, 3, 4, 2, 0),
        (11, 5, 4, 2, 2, 2),
        (8, (1, 3), 3, 5, 1, 0),  # non-square kernel
        (8, 1, 6, 2, 1, 0),  # 1×1 conv (W13)
    ],
)
def test_conv2d_reference_matches_keras(size, kernel, c_in, c_out, stride, padding):
    rng = np.random.default_rng(1234)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.normal(size=(2, size, size, c_in)).astype("float32")
    w = rng.normal(size=(kh, kw, c_in, c_out)).astype("float32")
    b = rng.normal(size=(c_out,)).astype("float32")
    conv = keras.layers.Conv2D(
        c_out, (kh, kw), strides=stride, padding="same" if padding == "same" else "valid"
    )
    inp = keras.Input((size, size, c_in))
    pad = 0 if padding == "same" else padding
    y = keras.layers.ZeroPadding2D(pad)(inp) if pad else inp
    model = keras.Model(inp, conv(y))
    conv.set_weights([w, b])
    expected = model(x).numpy()
    ref_pad = (kh // 2, kw // 2) if padding == "same" else padding
    for i in range(len(x)):
        got = conv2d_reference(x[i], w, b, stride=stride, padding=ref_pad)
        assert got.dtype == np.float64
        assert got.shape == expected[i].shape
        np.testing.assert_allclose(got, expected[i], atol=1e-5, rtol=1e-5)


def test_c50_w6_multichannel_stride2_pad1_matches_keras():
    """C50/W6: 5×5×3 input, pad 1, stride 2, two random 3×3×3 filters, biases 1 and 0 → 3×3×2."""
    rng = np.random.default_rng(50)
    w = rng.integers(-1, 2, size=(3, 3, 3, 2)).astype("float32")
    b = np.array([1.0, 0.0], dtype="float32")
    got = conv2d_reference(W6_X, w, b, stride=2, padding=1)
    assert got.shape == (3, 3, 2)
    inp = keras.Input((5, 5, 3))
    conv = keras.layers.Conv2D(2, 3, strides=2)
    model = keras.Model(inp, conv(keras.layers.ZeroPadding2D(1)(inp)))
    conv.set_weights([w, b])
    expected = model(W6_X[None].astype("float32")).numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Each output value is the sum over all three input channels plus the bias (W6 concepts).
    xp = np.pad(W6_X, ((1, 1), (1, 1), (0, 0)))
    assert got[1, 2, 0] == pytest.approx(float((xp[2:5, 4:7, :] * w[..., 0]).sum() + 1.0))


def test_conv2d_reference_rejects_mismatches():
    with pytest.raises(ValueError, match="full depth"):
        conv2d_reference(np.zeros((5, 5, 3)), np.zeros((3, 3, 2, 1)))
    with pytest.raises(ValueError, match="one per filter"):
        conv2d_reference(np.zeros((5, 5, 3)), np.zeros((3, 3, 3, 2)), b=[1.0])
    with pytest.raises(ValueError, match=r"2\.33"):
        conv2d_reference(np.zeros((7, 7, 1)), np.zeros((3, 3, 1, 1)), stride=3)


@pytest.mark.parametrize(
    ("size", "stride", "mode"),
    [(2, 2, "max"), (2, 2, "avg"), (3, 2, "max"), (3, 2, "avg"), (3, 1, "max")],
)
def test_pool2d_reference_matches_keras(size, stride, mode):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 11 if size == 3 else 10, 10 if size == 2 else 11, 4))
    layer_cls = keras.layers.MaxPooling2D if mode == "max" else keras.layers.AveragePooling2D
    expected = layer_cls(pool_size=size, strides=stride)(x.astype("float32")).numpy()[0]
    got = pool2d_reference(x[0], size=size, stride=stride, mode=mode)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_pool2d_reference_rejects_bad_mode_and_fit():
    with pytest.raises(ValueError, match="mode"):
        pool2d_reference(W10_INPUT, mode="median")
    with pytest.raises(ValueError, match="does not fit"):
        pool2d_reference(np.zeros((5, 5)), size=2, stride=2)


def test_c48_w24_backprop_product():
    """C48/W24: f = x·y at (4, −3) → f = −12, ∂f/∂x = −3, ∂f/∂y = 4."""
    x = tf.Variable(4.0)
    y = tf.Variable(-3.0)
    with tf.GradientTape() as tape:
        f = x * y
    dx, dy = tape.gradient(f, [x, y])
    assert float(f) == -12.0
    assert (float(dx), float(dy)) == (-3.0, 4.0)


# --------------------------------------------------------------------------- layer_table


def test_c10_single_5x5_filter():
    """C10/W5: Conv2D(1, 5×5) on 32×32×3 → 76 params, 28×28×1."""
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(1, 5, name="conv")])
    row = _row(layer_table(model), "conv")
    assert row["params"] == row["trainable_params"] == 76
    assert row["output_shape"] == (28, 28, 1)
    assert row["activations"] == 28 * 28
    assert row["macs"] == 28 * 28 * 5 * 5 * 3


def test_c11_convnet_chain():
    """C11/W5: 32×32×3 → 6@5×5×3 → 28×28×6 → 10@5×5×6 → 24×24×10 (456 and 1,510 params)."""
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(6, 5, activation="relu", name="c1"),
            keras.layers.Conv2D(10, 5, activation="relu", name="c2"),
        ]
    )
    df = layer_table(model)
    assert list(df["output_shape"]) == [(32, 32, 3), (28, 28, 6), (24, 24, 10)]
    assert list(df["params"]) == [0, 456, 1_510]


def test_c12_one_by_one_conv():
    """C12/W13: Conv2D(32, 1×1) on 56×56×64 → 56×56×32, 2,080 params."""
    model = keras.Sequential([keras.Input((56, 56, 64)), keras.layers.Conv2D(32, 1, name="p")])
    row = _row(layer_table(model), "p")
    assert (row["output_shape"], row["params"]) == ((56, 56, 32), 2_080)


@pytest.mark.parametrize(
    ("make_layer", "input_shape", "output_shape"),
    [
        (
            lambda: keras.layers.MaxPooling2D(2, name="pool"),
            (224, 224, 64),
            (112, 112, 64),
        ),  # C13/W11
        (
            lambda: keras.layers.AveragePooling2D(2, name="pool"),
            (224, 224, 64),
            (112, 112, 64),
        ),  # C53
        (lambda: keras.layers.GlobalAveragePooling2D(name="pool"), (7, 9, 48), (48,)),  # C14/W14
        (lambda: keras.layers.GlobalMaxPooling2D(name="pool"), (7, 9, 48), (48,)),  # C53
    ],
    ids=["C13-max", "C53-avg", "C14-gap", "C53-gmp"],
)
def test_c13_c14_c53_pooling_has_no_params(make_layer, input_shape, output_shape):
    model = keras.Sequential([keras.Input(input_shape), make_layer()])
    row = _row(layer_table(model), "pool")
    assert row["params"] == row["trainable_params"] == 0
    assert row["macs"] == 0
    assert row["output_shape"] == output_shape
    assert row["activations"] == int(np.prod(output_shape))


def test_c14_gap_is_the_mean_of_each_map():
    """C14/W14: h×w×d → d values, each the average of its h·w map."""
    x = np.random.default_rng(14).normal(size=(5, 6, 3))
    gap = keras.layers.GlobalAveragePooling2D()(x[None].astype("float32")).numpy()[0]
    np.testing.assert_allclose(gap, x.mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(
        pool2d_reference(x, size=(5, 6), stride=1, mode="avg")[0, 0], gap, atol=1e-6
    )


def _mlp(units, input_dim):
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(u, activation="relu", name=f"fc{i}") for i, u in enumerate(units)]
    return keras.Sequential(layers)


def test_c22_w20_mlp_params():
    """C22/W20: 3072-400-100-700-10 then a parameter-free softmax → 1,347,010."""
    model = _mlp([400, 100, 700, 10], 3072)
    model.add(keras.layers.Softmax(name="softmax"))
    df = layer_table(model)
    assert list(df["params"]) == [0, 1_229_200, 40_100, 70_700, 7_010, 0]
    assert layer_table_totals(df)["params"] == 1_347_010 == model.count_params()
    assert _row(df, "fc0")["macs"] == 3072 * 400


def test_c23_single_neuron():
    """C23: one neuron on 32·32·3 = 3072 inputs → 3,072 + 1 = 3,073 parameters."""
    df = layer_table(_mlp([1], 32 * 32 * 3))
    assert _row(df, "fc0")["params"] == 3_073


def test_c24_w22_mlp_16x16_letters():
    """C24/W22: 256 inputs, 100 hidden, 26 outputs → 25,600 + 100 + 2,600 + 26 = 28,326."""
    df = layer_table(_mlp([100, 26], 16 * 16))
    assert list(df["params"]) == [0, 25_600 + 100, 2_600 + 26]
    assert layer_table_totals(df)["params"] == 28_326


def test_c28_c29_c30_alexnet_first_layers():
    """C28–C30: AlexNet CONV1 96@11×11/4 on 227×227×3 → 55, 34,944 params; POOL1 3×3/2 → 27, 0."""
    model = keras.Sequential(
        [
            keras.Input((227, 227, 3)),
            keras.layers.Conv2D(96, 11, strides=4, name="conv1"),
            keras.layers.MaxPooling2D(3, strides=2, name="pool1"),
        ]
    )
    df = layer_table(model)
    conv, pool = _row(df, "conv1"), _row(df, "pool1")
    assert conv["output_shape"] == (55, 55, 96)
    assert conv["params"] == 34_944 and conv["params"] - 96 == 34_848
    assert pool["output_shape"] == (27, 27, 96) and pool["params"] == 0


# --------------------------------------------------------------------------- VGG-16


@pytest.fixture(scope="module")
def vgg16():
    """VGG-16 (weights=None, include_top=True, 224×224×3): model and layer table, built once."""
    keras.backend.clear_session()
    model = keras.applications.VGG16(weights=None, include_top=True)
    yield model, layer_table(model)
    del model
    keras.backend.clear_session()


def test_c33_vgg16_weight_counts(vgg16):
    """C33/W21: weights only (params − biases) of the 13 conv + 3 FC layers; 3×3 kernels."""
    _, df = vgg16
    learned = df[df["type"].isin(["Conv2D", "Dense"])]
    c_out = [shape[-1] for shape in learned["output_shape"]]
    assert list(learned["params"] - np.array(c_out)) == VGG16_WEIGHTS
    convs = learned[learned["type"] == "Conv2D"]
    c_in = [3, *[shape[-1] for shape in convs["output_shape"]][:-1]]
    assert [
        conv_params(3, ci, co, bias=False) for ci, co in zip(c_in, c_out, strict=False)
    ] == VGG16_WEIGHTS[:13]


def test_c34_vgg16_output_shapes(vgg16):
    """C34/W21: 224²×64 → 112²×64 → … → 7²×512 → 4096 → 4096 → 1000."""
    _, df = vgg16
    rows = df[df["type"].isin(["Conv2D", "MaxPooling2D", "Dense"])]
    assert list(rows["output_shape"]) == VGG16_SHAPES
    assert _row(df, "flatten")["output_shape"] == (7 * 7 * 512,)


def test_c35_vgg16_total_params(vgg16):
    """C35: 138,357,544 with biases (= Keras VGG16), 138,344,128 weights only ("138M")."""
    model, df = vgg16
    totals = layer_table_totals(df)
    assert totals["params"] == totals["trainable_params"] == 138_357_544 == model.count_params()
    learned = df[df["type"].isin(["Conv2D", "Dense"])]
    biases = sum(shape[-1] for shape in learned["output_shape"])
    assert biases == 13_416
    assert totals["params"] - biases == 138_344_128 == sum(VGG16_WEIGHTS)


def test_c36_vgg16_conv_part_params():
    """C36: VGG-16 include_top=False → 14,714,688 params (14,710,464 weights)."""
    keras.backend.clear_session()
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    df = layer_table(model)
    keras.backend.clear_session()
    assert layer_table_totals(df)["params"] == 14_714_688
    convs = df[df["type"] == "Conv2D"]
    assert int((convs["params"] - [s[-1] for s in convs["output_shape"]]).sum()) == 14_710_464


def test_c37_vgg16_activations(vgg16):
    """C37/W21 (FIXED): the per-layer memory column sums to 15,237,608, not the seed's "24M"."""
    _, df = vgg16
    assert layer_table_totals(df)["activations"] == 15_237_608 == sum(VGG16_ACTIVATIONS)
    assert int(df["activations"].sum()) == 15_237_608
    first = df.iloc[0]
    assert (first["type"], first["activations"]) == ("InputLayer", 150_528)
    assert _row(df, "flatten")["activations"] == 0
    counted = df[df["activations"] > 0]
    assert list(counted["activations"]) == VGG16_ACTIVATIONS
    assert round(15_237_608 * 4 / 1e6) == 61  # ≈61 MB fp32, not the seed's 96 MB


def test_c38_vgg16_configuration(vgg16):
    """C38: 3×3 convs, stride 1, pad 1 ('same'); five 2×2/2 max-pools; FC 4096, 4096, 1000."""
    model, _ = vgg16
    convs = [lay for lay in model.layers if isinstance(lay, keras.layers.Conv2D)]
    assert len(convs) == 13
    assert {(c.kernel_size, c.strides, c.padding) for c in convs} == {((3, 3), (1, 1), "same")}
    pools = [lay for lay in model.layers if isinstance(lay, keras.layers.MaxPooling2D)]
    assert [(p.pool_size, p.strides) for p in pools] == [((2, 2), (2, 2))] * 5
    assert [lay.units for lay in model.layers if isinstance(lay, keras.layers.Dense)] == [
        4096,
        4096,
        1000,
    ]
    # Pad 1 per side is exactly 'same' for a 3×3 kernel at stride 1.
    assert same_padding(3) == 1


def test_vgg16_macs_and_format(vgg16):
    """MACs of conv1_1 = 224·224·64·3·3·3 = 86,704,128 (= W19's 28·28·192·3·3·64 by chance);
    the text table has thousands separators and a TOTAL line."""
    _, df = vgg16
    assert _row(df, "block1_conv1")["macs"] == conv_macs(224, 224, 3, 3, 64) == 86_704_128
    assert _row(df, "fc1")["macs"] == 102_760_448
    text = format_layer_table(df)
    lines = text.splitlines()
    assert lines[0].split() == [
        "layer",
        "type",
        "output_shape",
        "params",
        "trainable_params",
        "macs",
        "activations",
    ]
    assert "224×224×64" in text
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "138,357,544" in total and "15,237,608" in total
    assert len(df) == 23  # the totals live outside the DataFrame


# --------------------------------------------------------------------------- layer_table: Keras


def test_input_layer_row_functional_and_sequential():
    """Keras 3.15 lists InputLayer in a Functional model's .layers but hides it in a
    Sequential's; layer_table gives both an input row that counts its values."""
    inp = keras.Input((8, 8, 3), name="img")
    functional = keras.Model(inp, keras.layers.Conv2D(2, 3, name="c")(inp))
    sequential = keras.Sequential(
        [keras.Input((8, 8, 3), name="img2"), keras.layers.Conv2D(2, 3, name="c")]
    )
    assert [type(lay).__name__ for lay in functional.layers] == ["InputLayer", "Conv2D"]
    assert [type(lay).__name__ for lay in sequential.layers] == ["Conv2D"]
    for model, name in ((functional, "img"), (sequential, "img2")):
        df = layer_table(model)
        assert list(df["layer"]) == [name, "c"]
        assert list(df["type"]) == ["InputLayer", "Conv2D"]
        assert list(df["activations"]) == [8 * 8 * 3, 6 * 6 * 2]
        assert list(df["output_shape"]) == [(8, 8, 3), (6, 6, 2)]


def test_passthrough_layers_count_no_activations():
    model = keras.Sequential(
        [
            keras.Input((4, 4, 2)),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.SpatialDropout2D(0.5, name="sdrop"),
            keras.layers.GaussianNoise(0.1, name="noise"),
            keras.layers.Reshape((8, 4), name="reshape"),
            keras.layers.Permute((2, 1), name="permute"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(3, name="dense"),
        ]
    )
    df = layer_table(model).set_index("layer")
    for name in ("drop", "sdrop", "noise", "reshape", "permute", "flatten"):
        assert df.loc[name, "activations"] == 0, name
    assert df.loc["relu", "activations"] == 32  # a real new tensor
    assert df.loc["reshape", "output_shape"] == (8, 4)
    assert df.loc["dense", "macs"] == 32 * 3


def test_macs_of_conv_variants():
    """Depthwise, separable (= depthwise + pointwise), transposed, grouped, Conv1D/3D, and
    Dense on a sequence (in·units times the leading dims)."""
    inp = keras.Input((10, 10, 4))
    dw = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inp)
    sep = keras.layers.SeparableConv2D(6, 3, name="sep")(inp)
    tr = keras.layers.Conv2DTranspose(5, 3, strides=2, name="tr")(inp)
    grp = keras.layers.Conv2D(8, 3, groups=2, name="grp")(inp)
    seq = keras.layers.Reshape((100, 4))(inp)
    c1 = keras.layers.Conv1D(3, 5, name="c1")(seq)
    dn = keras.layers.Dense(7, name="dn")(seq)
    vol = keras.layers.Reshape((5, 5, 4, 4))(keras.layers.Reshape((400,))(inp))
    c3 = keras.layers.Conv3D(2, 3, name="c3")(vol)
    bn = keras.layers.BatchNormalization(name="bn")(inp)
    model = keras.Model(inp, [dw, sep, tr, grp, c1, dn, c3, bn])
    df = layer_table(model).set_index("layer")
    assert df.loc["dw", "macs"] == 8 * 8 * 3 * 3 * 4 * 2
    assert df.loc["sep", "macs"] == 8 * 8 * 3 * 3 * 4 + 8 * 8 * 4 * 6
    assert df.loc["tr", "output_shape"] == (21, 21, 5)
    assert df.loc["tr", "macs"] == 10 * 10 * 4 * 3 * 3 * 5
    assert df.loc["grp", "macs"] == 8 * 8 * 8 * 3 * 3 * 4 // 2
    assert df.loc["c1", "macs"] == 96 * 5 * 4 * 3
    assert df.loc["dn", "macs"] == 100 * 4 * 7
    assert df.loc["c3", "macs"] == 3 * 3 * 2 * 2 * 27 * 4
    # BatchNorm: 4 trainable (gamma, beta) pairs + 4·2 moving statistics, 0 MACs.
    assert (df.loc["bn", "params"], df.loc["bn", "trainable_params"], df.loc["bn", "macs"]) == (
        16,
        8,
        0,
    )


def test_nested_model_rows_are_dotted_and_concrete():
    """A base built with None spatial dims, used as a layer: its layers appear with dotted
    names and the shapes of the outer call; its own InputLayer counts no activations."""
    b_in = keras.Input((None, None, 3), name="b_in")
    b_out = keras.layers.Conv2D(4, 3, padding="same", name="conv")(b_in)
    b_out = keras.layers.MaxPooling2D(name="pool")(b_out)
    base = keras.Model(b_in, b_out, name="base")
    inp = keras.Input((16, 16, 3), name="img")
    x = base(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(2, name="head")(x)
    df = layer_table(keras.Model(inp, out))
    assert list(df["layer"]) == ["img", "base.b_in", "base.conv", "base.pool", "gap", "head"]
    rows = df.set_index("layer")
    assert rows.loc["base.conv", "output_shape"] == (16, 16, 4)
    assert rows.loc["base.conv", "macs"] == 16 * 16 * 4 * 3 * 3 * 3
    assert rows.loc["base.pool", "activations"] == 8 * 8 * 4
    assert rows.loc["base.b_in", "activations"] == 0
    assert rows.loc["base.b_in", "output_shape"] == (16, 16, 3)
    assert rows.loc["img", "activations"] == 16 * 16 * 3
    assert layer_table_totals(df)["params"] == base.count_params() + 4 * 2 + 2


def test_nested_sequential_inside_sequential():
    base = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv")], name="base"
    )
    model = keras.Sequential(
        [base, keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="head")]
    )
    df = layer_table(model)
    assert list(df["type"]) == ["InputLayer", "InputLayer", "Conv2D", "Flatten", "Dense"]
    assert list(df["layer"])[2:] == ["base.conv", "flat", "head"]
    assert list(df["activations"]) == [192, 0, 72, 0, 2]


def test_shared_layer_and_multiple_outputs():
    """A layer called twice sums its calls; a multi-output layer lists every output shape."""

    class Split(keras.layers.Layer):
        def call(self, x):
            return x[..., :2], x[..., 2:]

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], 2), (*input_shape[:-1], input_shape[-1] - 2)

    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    shared = keras.layers.Dense(3, name="shared")
    p, q = Split(name="split")(keras.layers.Concatenate(name="cat")([shared(a), shared(b)]))
    df = layer_table(keras.Model([a, b], [p, q])).set_index("layer")
    assert df.loc["shared", "params"] == 15
    assert df.loc["shared", "macs"] == 2 * 4 * 3
    assert df.loc["shared", "activations"] == 2 * 3
    assert df.loc["split", "output_shape"] == ((2,), (4,))
    assert df.loc["split", "activations"] == 6
    assert "2, 4" in format_layer_table(df.reset_index())


def test_trainable_params_follow_freezing():
    model = _mlp([5, 2], 4)
    model.layers[0].trainable = False
    df = layer_table(model)
    assert list(df["params"]) == [0, 25, 12]
    assert list(df["trainable_params"]) == [0, 0, 12]


def test_layer_table_rejects_unbuilt_model():
    with pytest.raises(ValueError, match="not built"):
        layer_table(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(TypeError, match=r"keras\.Model"):
        layer_table(keras.layers.Dense(2))


def test_import_stays_light():
    """``import visionkit.analysis`` must not import TensorFlow or Keras."""
    code = (
        "import sys, visionkit.analysis; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


def test_unknown_dims_give_na_not_wrong_numbers():
    """A model with a None spatial input size cannot count activations or conv MACs."""
    inp = keras.Input((None, None, 3), name="img")
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    out = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    df = layer_table(keras.Model(inp, out)).set_index("layer")
    assert df.loc["conv", "output_shape"] == (None, None, 4)
    assert df.loc["conv", "params"] == 112
    assert pd.isna(df.loc["conv", "macs"]) and pd.isna(df.loc["img", "activations"])
    assert df.loc["head", "macs"] == 8 and df.loc["gap", "activations"] == 4
    text = format_layer_table(df.reset_index())
    assert "?×?×4" in text


def test_fallback_without_graph_trace_gives_same_table(monkeypatch):
    """If the symbolic re-trace fails, the shapes Keras recorded at build time are used."""
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(4, 3, name="c"),
            keras.layers.MaxPooling2D(2, name="p"),
            keras.layers.Flatten(name="f"),
            keras.layers.Dense(3, name="d"),
        ]
    )
    traced = layer_table(model)

    def broken(*args, **kwargs):
        raise RuntimeError("no graph")

    monkeypatch.setattr(analysis, "_trace", broken)
    pd.testing.assert_frame_equal(layer_table(model), traced)
    assert list(traced["macs"]) == [0, 10 * 10 * 4 * 27, 0, 0, 100 * 3]
