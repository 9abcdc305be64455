"""Fine-tuning really freezes: BatchNorm statistics, frozen weights and block boundaries."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionkit.models import create_model
from visionkit.train.freeze import block_of, freeze_backbone, model_blocks, param_counts, unfreeze


@pytest.fixture
def model():
    keras.utils.set_random_seed(0)
    net = create_model("resnet20", num_classes=3, input_shape=(16, 16, 3))
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    yield net
    keras.backend.clear_session()


def _data(n: int = 32):
    rng = np.random.default_rng(0)
    # Inputs far from the BN layers' initial statistics, so any update of them would show.
    return rng.uniform(0, 255, (n, 16, 16, 3)).astype("float32"), rng.integers(0, 3, n)


def _snapshot(model):
    return {w.path: w.numpy().copy() for w in model.weights}


def test_blocks_follow_the_architecture(model):
    names = [name for name, _ in model_blocks(model)]
    assert names == [f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    first_block_layers = [layer.name for layer in model_blocks(model)[0][1]]
    assert "stem_conv" in first_block_layers  # the stem joins the first block
    assert block_of("block_1_expand") == "block_1"
    assert block_of("block_10_expand") == "block_10"
    assert block_of("conv5_block3_1_conv") == "conv5_block3"
    assert block_of("stage2_out") is None  # joins the block before it


def test_freeze_backbone_leaves_only_the_head(model, capsys):
    counts = freeze_backbone(model)
    assert counts.trainable == 64 * 3 + 3
    assert counts.total == model.count_params()
    assert "trainable params: 195" in capsys.readouterr().out
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]


def test_unfreeze_top_blocks_keeps_batchnorm_frozen_through_fit(model):
    freeze_backbone(model, verbose=False)
    counts = unfreeze(model, blocks=2, verbose=False)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {
        "stage3_block2_1_conv",
        "stage3_block2_2_conv",
        "stage3_block3_1_conv",
        "stage3_block3_2_conv",
        "predictions",
    }
    assert counts.trainable == 4 * (3 * 3 * 64 * 64) + 64 * 3 + 3

    before = _snapshot(model)
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    after = _snapshot(model)
    trainable_paths = {w.path for w in model.trainable_weights}
    for path, value in before.items():
        if path in trainable_paths:
            assert not np.array_equal(value, after[path]), f"{path} should have been trained"
        else:
            # Frozen weights and every BatchNorm statistic: bit-identical after fit().
            np.testing.assert_array_equal(value, after[path], err_msg=path)
    assert any("moving_mean" in p for p in before)


def test_train_bn_true_lets_statistics_move(model):
    unfreeze(model, blocks=1, train_bn=True, verbose=False)
    bn = model.get_layer("stage3_block3_1_bn")
    moving_mean = bn.moving_mean.numpy().copy()
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(moving_mean, bn.moving_mean.numpy())


def test_from_layer_and_fraction_respect_block_boundaries(model):
    unfreeze(model, from_layer="stage3_block3_2_conv", verbose=False)
    opened = {w.path.split("/")[0] for w in model.trainable_weights}
    # The whole block holding that layer opens, not just the layers after it.
    assert {"stage3_block3_1_conv", "stage3_block3_2_conv"} <= opened
    assert "stage3_block2_2_conv" not in opened

    unfreeze(model, fraction=0.34, verbose=False)  # ceil(0.34 × 9) = 4 blocks
    opened = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "stage2_block3_1_conv" in opened and "stage2_block2_2_conv" not in opened

    unfreeze(model, blocks=-1, verbose=False)
    bn_weights = [w for w in model.trainable_weights if "_bn/" in w.path]
    assert not bn_weights
    assert param_counts(model).trainable == sum(
        int(np.prod(w.shape)) for w in model.weights if "_bn/" not in w.path
    )


def test_unfreeze_argument_errors(model):
    with pytest.raises(ValueError, match="exactly one"):
        unfreeze(model, blocks=1, fraction=0.5)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        unfreeze(model, from_layer="nope")
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        unfreeze(model, fraction=1.5)


def test_recompile_keeps_loss_and_takes_a_new_optimizer(model):
    unfreeze(model, blocks=1, optimizer=keras.optimizers.Adam(1e-5), verbose=False)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)
    x, y = _data(8)
    assert np.isfinite(model.evaluate(x, y, verbose=0))
