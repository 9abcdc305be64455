"""visionkit.backbones: every registered backbone, taps, preprocessing, weights, offline ImageNet."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

EXPECTED = sorted(
    [
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        *(f"efficientnet_b{i}" for i in range(8)),
        *(f"efficientnet_v2_{v}" for v in ("b0", "b1", "b2", "b3", "s", "m", "l")),
        *(f"efficientnet_lite{i}" for i in range(5)),
        "resnet50",
        "resnet101",
        "resnet152",
        "resnet50_v2",
        "resnet101_v2",
        "resnet152_v2",
        "vgg16",
        "vgg19",
        "inception_v3",
        "densenet121",
        "densenet169",
        "densenet201",
        *(f"convnext_{v}" for v in ("tiny", "small", "base", "large", "xlarge")),
        "xception",
        # the classic zoo
        "resnet18",
        "resnet34",
        "vgg11",
        "vgg13",
        "alexnet",
        "googlenet",
        "zoo_resnet50",
        "zoo_resnet101",
        "zoo_resnet152",
        "zoo_vgg16",
        "zoo_vgg19",
    ]
)
STRIDES = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}
VALID_PADDING = {"inception_v3", "xception", "alexnet"}  # maps smaller than input / stride
SIZE = 64
PREPROCESSING_LAYERS = {"Rescaling", "Normalization", "ReverseChannels"}


def _size(name: str) -> int:
    return 96 if name in VALID_PADDING else SIZE


def _expected_preprocessing(mode: str, x: np.ndarray) -> np.ndarray:
    from keras.applications import imagenet_utils

    if mode in ("tf", "caffe", "torch"):
        return imagenet_utils.preprocess_input(x.copy(), mode=mode)
    if mode == "tf128":
        return x / 128.0 - 1.0
    if mode == "unit":
        return x / 255.0
    if mode == "lite":
        return (x - 127.0) / 128.0
    raise AssertionError(f"no reference for preprocessing mode {mode!r}")


def _preprocessed_tensor(model):
    """The tensor the first network layer sees: the input of the first non-preprocessing op."""
    for op in model.operations:
        kind = type(op).__name__
        if kind == "InputLayer" or kind in PREPROCESSING_LAYERS:
            continue
        return op.input
    raise AssertionError("no network layer")


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    import keras

    keras.backend.clear_session()


def test_import_is_light():
    code = (
        "import sys, visionkit.backbones as b; "
        "assert b.create_backbone and b.list_backbones; "
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_list_backbones_exact_names():
    from visionkit.backbones import list_backbones

    assert list_backbones() == EXPECTED
    assert list_backbones(family="resnet") == ["resnet101", "resnet152", "resnet50"]


@pytest.mark.parametrize("name", EXPECTED)
def test_backbone(name):
    import keras

    from visionkit.backbones import backbone_info, block_layers, create_backbone
    from visionkit.backbones.taps import layer_strides

    info = backbone_info(name)
    assert info.paper and info.preprocessing and info.family
    assert len(info.input_size) == 3 and info.input_size[2] == 3
    size = _size(name)
    model = create_backbone(name, input_shape=(size, size, 3))
    assert model.name == name

    # Outputs: a dict keyed by level, P3-P5 always, P2 where the network has it.
    assert isinstance(model.output, dict)
    assert list(model.output) == list(info.levels)
    assert {"P3", "P4", "P5"} <= set(info.levels)

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(2, size, size, 3)).astype("float32")
    features = {k: keras.ops.convert_to_numpy(v) for k, v in model(x).items()}
    for level, fmap in features.items():
        stride = STRIDES[level]
        assert fmap.shape[0] == 2
        assert fmap.dtype == np.float32
        assert np.isfinite(fmap).all(), level
        height, width = fmap.shape[1:3]
        if name in VALID_PADDING:
            assert size / stride / 2 - 1 <= height <= math.ceil(size / stride), (level, height)
        else:
            assert (height, width) == (math.ceil(size / stride),) * 2, (level, fmap.shape)

    # Every pinned tap sits at its level's stride (auto and ":input" taps: by the shapes above).
    strides = layer_strides(model)
    for level, spec in info.taps.items():
        if spec is not None and ":" not in spec:
            assert strides[spec] == STRIDES[level], (level, spec, strides.get(spec))

    # Preprocessing inside: what the first network layer sees, for 0, 255 and random pixels.
    seen = keras.Model(model.input, _preprocessed_tensor(model))
    probe = np.concatenate([np.zeros_like(x[:1]), np.full_like(x[:1], 255.0), x[:1]])
    got = keras.ops.convert_to_numpy(seen(probe))
    np.testing.assert_allclose(
        got, _expected_preprocessing(info.preprocess_mode, probe), rtol=1e-5, atol=1e-4
    )

    # Blocks: every block owns layers; the last block owns the deepest tap.
    blocks = block_layers(model)
    assert list(blocks) == list(info.blocks)
    assert all(blocks.values()), [b for b, layers in blocks.items() if not layers]
    assert len(blocks) >= 4


def test_feature_layers_and_find_taps_agree_on_named_families():
    from visionkit.backbones import backbone_info, feature_layers, find_taps

    for name in ("resnet50", "efficientnet_b0", "vgg16", "efficientnet_v2_b0"):
        full = backbone_info(name).builder(input_shape=(64, 64, 3), weights=None)
        assert find_taps(full) == feature_layers(name), name
    full = backbone_info("inception_v3").builder(input_shape=(96, 96, 3), weights=None)
    auto = find_taps(full)
    assert {k: auto[k] for k in ("P3", "P4", "P5")} == {
        "P3": "mixed2",
        "P4": "mixed7",
        "P5": "mixed10",
    }


def test_inception_v3_valid_padding_levels_at_299():
    from visionkit.backbones import create_backbone, layer_strides

    model = create_backbone("inception_v3")
    sizes = {k: v.shape[1] for k, v in model.output.items()}
    assert sizes == {"P2": 71, "P3": 35, "P4": 17, "P5": 8}
    strides = layer_strides(model)
    assert [strides[n] for n in ("mixed2", "mixed7", "mixed10")] == [8, 16, 32]


def test_layer_strides_on_a_small_functional_model():
    import keras

    from visionkit.backbones import find_taps, layer_strides

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(4, 3, padding="valid", name="c2")(x)  # 16 → 14: still stride 4
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c3")(x)
    y = keras.layers.Activation("relu", name="c3_out")(y)
    z = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c4")(y)
    model = keras.Model(inputs, z)
    strides = layer_strides(model)
    assert [strides[n] for n in ("c1", "p1", "c2", "c3", "c3_out", "c4")] == [2, 4, 4, 8, 8, 16]
    assert find_taps(model) == {"P2": "c2", "P3": "c3_out", "P4": "c4"}


def _roundtrip_keras(tmp_path, name, size=64):
    import keras

    from visionkit.backbones import create_backbone

    model = create_backbone(name, input_shape=(size, size, 3))
    x = np.random.default_rng(1).integers(0, 256, (1, size, size, 3)).astype("float32")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    before, after = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert list(after) == list(before)
    for level in before:
        np.testing.assert_allclose(after[level], before[level], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["resnet50", "efficientnet_b0", "mobilenet_v3_small", "convnext_tiny"]
)
def test_keras_file_roundtrip_in_safe_mode(tmp_path, name):
    _roundtrip_keras(tmp_path, name)


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_weights_from_path(tmp_path, name):
    from visionkit.backbones import create_backbone

    source = create_backbone(name, input_shape=(64, 64, 3))
    x = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3)).astype("float32")
    expected = source.predict(x, verbose=0)
    h5 = tmp_path / f"{name}.weights.h5"
    source.save_weights(h5)
    whole = tmp_path / f"{name}.keras"
    source.save(whole)
    for path in (h5, whole):
        copy = create_backbone(name, input_shape=(64, 64, 3), weights=str(path), trainable=False)
        assert not copy.trainable
        got = copy.predict(x, verbose=0)
        for level in expected:
            np.testing.assert_allclose(got[level], expected[level], rtol=1e-5, atol=1e-5)


def test_weights_path_errors(tmp_path):
    from visionkit.backbones import WeightsNotFoundError, create_backbone
    from visionkit.models import ModelError

    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_backbone("vgg11", input_shape=(64, 64, 3), weights=str(tmp_path / "none.weights.h5"))
    other = tmp_path / "vgg13.weights.h5"
    create_backbone("vgg13", input_shape=(64, 64, 3)).save_weights(other)
    with pytest.raises(ModelError, match="do not fit"):
        create_backbone("vgg11", input_shape=(64, 64, 3), weights=str(other))


def test_imagenet_offline_fails_fast_naming_the_file(tmp_path, monkeypatch):
    from visionkit.backbones import WeightsNotFoundError, create_backbone, weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(weights, "network_available", lambda url, timeout=2.0: False)
    fname = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as err:
        create_backbone("mobilenet_v2", input_shape=(96, 96, 3), weights="imagenet")
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert fname in message
    assert str(tmp_path / "keras_home" / "models") in message
    assert "https://storage.googleapis.com/" in message
    assert isinstance(err.value, FileNotFoundError)


def test_imagenet_uses_the_cached_file_without_network(tmp_path, monkeypatch):
    """A file in $KERAS_HOME/models under Keras' name is loaded; the network is never probed."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from visionkit.backbones import create_backbone, weights

    probes = []
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(weights, "network_available", lambda url, timeout=2.0: probes.append(url))
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(96, 96, 3)
    )
    cache = tmp_path / "models"
    cache.mkdir()
    fname = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    import h5py

    with h5py.File(cache / fname, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    model = create_backbone("mobilenet_v2", input_shape=(96, 96, 3), weights="imagenet")
    assert probes == []
    x = np.random.default_rng(3).integers(0, 256, (1, 96, 96, 3)).astype("float32")
    expected = reference.predict(x / 127.5 - 1.0, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0)["P5"], expected, rtol=1e-4, atol=1e-4)


def test_damaged_cached_file_is_reported_offline(tmp_path, monkeypatch):
    from visionkit.backbones import WeightsNotFoundError, create_backbone, weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(weights, "network_available", lambda url, timeout=2.0: False)
    (tmp_path / "models").mkdir()
    bad = tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    bad.write_bytes(b"not weights")
    with pytest.raises(WeightsNotFoundError, match="damaged"):
        create_backbone("resnet50", input_shape=(64, 64, 3), weights="imagenet")


def test_network_probe_times_out_quickly():
    from visionkit.backbones.weights import network_available

    start = time.monotonic()
    assert network_available("https://192.0.2.1/x.h5", timeout=0.5) is False  # TEST-NET-1
    assert time.monotonic() - start < 3


def test_classic_backbones_refuse_imagenet_and_bad_shapes():
    from visionkit.backbones import create_backbone
    from visionkit.models import ModelError

    with pytest.raises(ModelError, match="no published ImageNet weights"):
        create_backbone("resnet18", input_shape=(64, 64, 3), weights="imagenet")
    with pytest.raises(ModelError, match="at least 75"):
        create_backbone("inception_v3", input_shape=(64, 64, 3))
    with pytest.raises(ModelError, match="RGB"):
        create_backbone("resnet50", input_shape=(64, 64, 1))
    with pytest.raises(ModelError, match="Did you mean"):
        create_backbone("resnet5O")


def test_block_layers_orders_blocks_from_input_to_output():
    from visionkit.backbones import backbone_info, block_layers, create_backbone

    model = create_backbone("resnet50", input_shape=(64, 64, 3))
    blocks = block_layers(model)
    names = list(blocks)
    assert names[0] == "conv1" and names[-1] == "conv5_block3"
    assert "rgb_to_bgr" in blocks["conv1"] and "pool1_pool" in blocks["conv1"]
    assert "conv5_block3_out" in blocks["conv5_block3"]
    assert backbone_info("resnet50").blocks[-3:] == ("conv5_block1", "conv5_block2", "conv5_block3")
    inception = block_layers(create_backbone("inception_v3", input_shape=(96, 96, 3)))
    assert inception["mixed10"][-1] == "mixed10" and inception["mixed0"][-1] == "mixed0"
