"""The classic zoo: exact published parameter counts, the seeds' per-layer checks, and one
harness over every registered model (build, output shape, a training step, .keras round trip).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from seed_values import VGG16_SHAPES, VGG16_WEIGHTS

from visionkit.analysis import layer_table
from visionkit.models import ModelError, create_model, list_models, model_info
from visionkit.models.layers import inception_bottleneck, inception_naive

# name -> (all parameters incl. BatchNorm moving statistics, trainable parameters),
# at the default input size and number of classes.
EXACT_COUNTS = {
    "mlp_cifar": (1_347_010, 1_347_010),  # seed C22
    "lenet5": (61_706, 61_706),  # seeds' "61K"
    "alexnet": (62_378_344, 62_378_344),  # seeds' "62M", single tower
    "vgg11": (132_863_336, 132_863_336),
    "vgg13": (133_047_848, 133_047_848),
    "vgg16": (138_357_544, 138_357_544),  # seed C35 (Keras VGG16)
    "vgg19": (143_667_240, 143_667_240),
    "googlenet": (6_998_552, 6_998_552),  # documented; seeds say 4-5M (C39)
    "nin": (2_015_398, 2_015_398),  # documented
    "resnet18": (11_699_112, 11_689_512),  # torchvision trainable counts
    "resnet34": (21_814_696, 21_797_672),
    "resnet50": (25_610_152, 25_557_032),
    "resnet101": (44_654_504, 44_549_160),
    "resnet152": (60_344_232, 60_192_808),
    "resnet20": (271_098, 269_722),  # "about 0.27M"
    "resnet32": (466_426, 464_154),
    "resnet44": (661_754, 658_586),
    "resnet56": (857_082, 853_018),  # "about 0.85M"
    "resnet110": (1_736_058, 1_727_962),
}


def trainable_count(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


@pytest.mark.parametrize("name", sorted(EXACT_COUNTS))
def test_exact_parameter_counts(name):
    model = create_model(name)
    total, trainable = EXACT_COUNTS[name]
    assert model.count_params() == total
    assert trainable_count(model) == trainable
    info = model_info(name)
    assert info.params == total  # what `visionkit models` prints
    assert model.input_shape[1:] == info.input_shape
    assert model.output_shape == (None, info.num_classes)


def test_every_model_has_a_documented_count_or_is_plain():
    # Plain nets share the counts of their residual twins minus the projections.
    undocumented = set(list_models(task="classify")) - set(EXACT_COUNTS)
    assert undocumented == {"plain18", "plain20", "plain34", "plain56"}
    for name in list_models():  # every task's models are documented the same way
        info = model_info(name)
        doc = info.builder.__doc__ or ""
        assert info.paper and "Input:" in doc, name


def test_plain_nets_match_residual_twins_except_shortcuts():
    # Option-A shortcuts have no parameters, so plain20/56 equal resnet20/56 exactly.
    assert create_model("plain20").count_params() == EXACT_COUNTS["resnet20"][0]
    assert create_model("plain56").count_params() == EXACT_COUNTS["resnet56"][0]
    for name in ("plain20", "plain56", "plain18", "plain34"):
        assert model_info(name).params == create_model(name).count_params()
    # ImageNet plain nets lack the three 1×1 projection shortcuts (conv + BN) of stages 2-4.
    projections = sum(c * 2 * c + 4 * 2 * c for c in (64, 128, 256))
    assert create_model("plain18").count_params() == EXACT_COUNTS["resnet18"][0] - projections
    model = create_model("plain34")
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]


def test_alexnet_first_layers_match_the_seed():
    model = create_model("alexnet")
    conv1, pool1 = model.get_layer("conv1"), model.get_layer("pool1")
    assert conv1.output.shape[1:] == (55, 55, 96)  # C28
    assert pool1.output.shape[1:] == (27, 27, 96)  # C29
    assert conv1.kernel.shape == (11, 11, 3, 96) and conv1.strides == (4, 4)
    assert conv1.count_params() == 34_848 + 96  # C30
    assert pool1.count_params() == 0 and pool1.pool_size == (3, 3) and pool1.strides == (2, 2)
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [0.5, 0.5]  # C32
    with_lrn = create_model("alexnet", lrn=True)
    assert with_lrn.count_params() == EXACT_COUNTS["alexnet"][0]  # LRN has no parameters


# C33 (weights only, no biases) and C34 (output shapes) for VGG-16 at 224×224×3.
VGG16_CONV_WEIGHTS, VGG16_FC_WEIGHTS = VGG16_WEIGHTS[:13], VGG16_WEIGHTS[13:]


@pytest.fixture(scope="module")
def vgg16_table():
    model = create_model("vgg16", include_preprocessing=False)
    table = layer_table(model)
    keras.backend.clear_session()
    return table


def test_vgg16_per_layer_weights_match_the_seed_table(vgg16_table):
    convs = vgg16_table[vgg16_table["type"] == "Conv2D"]
    dense = vgg16_table[vgg16_table["type"] == "Dense"]
    biases = [int(shape[-1]) for shape in convs["output_shape"]]
    assert [p - b for p, b in zip(convs["params"], biases, strict=True)] == VGG16_CONV_WEIGHTS
    fc_biases = [int(shape[-1]) for shape in dense["output_shape"]]
    assert [p - b for p, b in zip(dense["params"], fc_biases, strict=True)] == VGG16_FC_WEIGHTS
    weights_only = sum(VGG16_CONV_WEIGHTS) + sum(VGG16_FC_WEIGHTS)
    assert weights_only == 138_344_128
    assert int(vgg16_table["params"].sum()) == 138_357_544  # C35


def test_vgg16_output_shapes_match_the_seed_table(vgg16_table):
    rows = vgg16_table[vgg16_table["type"].isin(["Conv2D", "MaxPooling2D", "Dense"])]
    assert [tuple(shape) for shape in rows["output_shape"]] == VGG16_SHAPES  # C34
    pools = vgg16_table[vgg16_table["type"] == "MaxPooling2D"]
    assert (pools["params"] == 0).all()  # C53


def test_vgg16_activation_memory_is_the_recomputed_total(vgg16_table):
    # C37 (FIXED): the seed's per-layer rows sum to 15,237,608 values, not its "24M".
    assert int(vgg16_table["activations"].sum()) == 15_237_608
    assert vgg16_table.iloc[0]["activations"] == 224 * 224 * 3


def test_vgg16_conv_config_and_conv_only_params():
    model = create_model("vgg16", include_top=False)
    assert model.count_params() == 14_714_688  # C36
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(convs) == 13 and len(pools) == 5  # C38
    assert all(
        c.kernel_size == (3, 3) and c.strides == (1, 1) and c.padding == "same" for c in convs
    )
    assert all(p.pool_size == (2, 2) and p.strides == (2, 2) for p in pools)
    top = create_model("vgg16")
    assert [layer.units for layer in top.layers if isinstance(layer, keras.layers.Dense)] == [
        4096,
        4096,
        1000,
    ]


def _module_table(build):
    inputs = keras.Input((28, 28, 256))
    model = keras.Model(inputs, build(inputs))
    return model, layer_table(model)


def test_naive_inception_module_costs_854m_macs():
    model, table = _module_table(lambda x: inception_naive(x, 128, 192, 96, name="naive"))
    assert model.output_shape == (None, 28, 28, 672)  # C20
    assert int(table["macs"].sum()) == 854_196_224
    by_name = dict(zip(table["layer"], table["macs"], strict=True))
    assert by_name["naive_1x1"] == 25_690_112
    assert by_name["naive_3x3"] == 346_816_512
    assert by_name["naive_5x5"] == 481_689_600
    assert by_name["naive_pool"] == 0


def test_bottleneck_inception_module_costs_271m_macs():
    model, table = _module_table(
        lambda x: inception_bottleneck(x, 128, 64, 192, 64, 96, 64, name="bottleneck")
    )
    assert model.output_shape == (None, 28, 28, 480)  # C21
    # FIXED: the listed terms sum to 271,351,808, not the slide's "358M".
    assert int(table["macs"].sum()) == 271_351_808
    assert int(table["macs"].sum()) < 854_196_224


def test_googlenet_structure():
    model = create_model("googlenet")
    concats = [layer for layer in model.layers if layer.name.endswith("_concat")]
    assert len(concats) == 9
    # 22 layers with parameters on the deepest path: 3 stem convs + 9 modules × 2 + 1 FC (C40).
    assert 3 + 2 * len(concats) + 1 == 22
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {c.kernel_size for c in convs} == {(7, 7), (1, 1), (3, 3), (5, 5)}
    assert model.get_layer("inception_5b_concat").output.shape[1:] == (7, 7, 1024)
    with_aux = create_model("googlenet", aux_heads=True)
    assert len(with_aux.outputs) == 3
    bn = create_model("googlenet", batch_norm=True)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in bn.layers)


def test_lenet5_layout():
    model = create_model("lenet5")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)]
    assert [c.kernel_size for c in convs] == [(5, 5), (5, 5)] and all(
        c.strides == (1, 1) for c in convs
    )
    assert [p.pool_size for p in pools] == [(2, 2), (2, 2)] and all(
        p.strides == (2, 2) for p in pools
    )  # C27
    assert model.get_layer("s4").output.shape[1:] == (5, 5, 16)
    assert all(c.activation.__name__ == "tanh" for c in convs)
    modern = create_model("lenet5", activation="relu", pooling="max")
    assert modern.count_params() == 61_706
    assert any(isinstance(layer, keras.layers.MaxPooling2D) for layer in modern.layers)


def test_resnet_follows_the_paper_design():
    # C41: 7×7/2 stem with 64 filters, BN after every conv, no conv bias, GAP, one FC, no dropout.
    model = create_model("resnet18")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (7, 7) and stem.strides == (2, 2) and stem.filters == 64
    assert len(convs) == len(bns) == 20 and not any(c.use_bias for c in convs)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]) == 1
    strides = {
        f"stage{i}_out": model.get_layer(f"stage{i}_out").output.shape[1] for i in range(1, 5)
    }
    assert strides == {"stage1_out": 56, "stage2_out": 28, "stage3_out": 14, "stage4_out": 7}
    # C42: the depths of the degradation experiment.
    assert (
        len([c for c in create_model("resnet56").layers if isinstance(c, keras.layers.Conv2D)])
        == 55
    )


def test_create_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="Did you mean resnet18"):
        create_model("resnet81")
    with pytest.raises(ModelError, match="at least 67"):
        create_model("alexnet", input_shape=(32, 32, 3))
    with pytest.raises(ModelError, match="no published ImageNet weights"):
        create_model("lenet5", weights="imagenet")
    with pytest.raises(FileNotFoundError, match="not found"):
        create_model("lenet5", weights=str(tmp_path / "missing.weights.h5"))


def test_weights_path_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    source = create_model("lenet5", num_classes=4)
    source.save_weights(tmp_path / "w.weights.h5")
    source.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    for path in ("w.weights.h5", "m.keras"):
        copy = create_model("lenet5", num_classes=4, weights=str(tmp_path / path))
        np.testing.assert_array_equal(copy(x), source(x))
    with pytest.raises(ModelError, match="do not fit"):
        create_model("lenet5", num_classes=7, weights=str(tmp_path / "m.keras"))


# ---------------------------------------------------------------- every registered model


def descent_step_lowers_loss(model, grads, loss, before: float) -> bool:
    """Take one gradient step, backtracking its length (Armijo) until the loss drops.

    Deep nets at initialisation (plain56 above all: the paper's degradation problem) can be
    so sharp that any fixed learning rate overshoots; a correct gradient still gives a
    descent direction, so some step along it must lower the loss. Wrong or zero gradients
    never do.
    """
    start = [w.numpy() for w in model.trainable_weights]
    norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads)))
    step = 0.1 / max(norm, 1e-12)
    for _ in range(30):
        for w, w0, g in zip(model.trainable_weights, start, grads, strict=True):
            w.assign(w0 - step * np.asarray(g))
        if loss() < before:
            return True
        step /= 2
    return False


def _small_input(name: str) -> tuple[int, int, int]:
    info = model_info(name)
    side = max(32, info.min_input_size)
    return (side, side, info.input_shape[-1])


@pytest.mark.parametrize("name", list_models(task="classify"))
def test_every_model_builds_trains_and_round_trips(name, tmp_path):
    keras.utils.set_random_seed(0)
    shape = _small_input(name)
    model = create_model(name, num_classes=3, input_shape=shape)
    assert model.output_shape == (None, 3)

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, *shape)).astype("float32")
    y = np.array([0, 1, 2, 1])
    for layer in model.layers:  # dropout masks would make the two losses incomparable
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss_tensor = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss_tensor, model.trainable_weights)
    before = float(loss_tensor)
    assert all(g is not None for g in grads), "every trainable weight gets a gradient"
    assert descent_step_lowers_loss(
        model, grads, lambda: float(loss_fn(y, model(x, training=True))), before
    )

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
