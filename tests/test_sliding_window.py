"""Sliding-window inference: tile placement, blending, padding of small images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from visionkit.sliding_window import blend_window, sliding_window_predict, tile_positions


def pixelwise(images: np.ndarray) -> np.ndarray:
    """A per-pixel 'model' (translation-equivariant): softmax of a fixed 1x1 map, (B,h,w,3)."""
    weights = np.array([[0.02, -0.01, 0.0], [-0.01, 0.03, 0.01], [0.005, 0.0, -0.02]], np.float32)
    logits = np.einsum("bhwc,ck->bhwk", np.asarray(images, np.float32) - 128.0, weights)
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(
    ("length", "window", "overlap"),
    [
        (100, 32, 0.25),
        (64, 32, 0.5),
        (33, 32, 0.0),
        (1000, 256, 0.25),
        (97, 10, 0.9),
        (32, 32, 0.3),
    ],
)
def test_tile_positions_cover_with_the_requested_overlap(length, window, overlap):
    positions = tile_positions(length, window, overlap)
    assert positions[0] == 0 and positions[-1] + window == length
    assert positions == sorted(set(positions))
    covered = np.zeros(length, bool)
    for p in positions:
        covered[p : p + window] = True
    assert covered.all()
    for a, b in itertools.pairwise(positions):
        assert a + window - b >= int(overlap * window)  # neighbours overlap at least as asked


def test_tile_positions_edges():
    assert tile_positions(20, 32, 0.25) == [0]  # smaller than the window: one (padded) tile
    assert tile_positions(100, 32, 0.25) == [0, 24, 48, 68]  # last tile aligned to the edge
    with pytest.raises(ValueError):
        tile_positions(100, 32, 1.0)


def test_blend_window_is_smooth_and_never_zero():
    w = blend_window(16, 24)
    assert w.shape == (16, 24) and w.min() > 0
    assert w[8, 12] > 0.9 and w[0, 0] < 0.05


@pytest.mark.parametrize(
    ("shape", "window"),
    [((70, 90), (32, 32)), ((50, 130), (24, 40)), ((20, 25), (32, 32)), ((20, 100), (32, 32))],
    ids=["square", "non-square window", "smaller than window", "smaller in one dimension"],
)
def test_per_pixel_model_gives_the_whole_image_result(shape, window):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    calls = []

    def forward(tiles):
        calls.append(tiles.shape)
        assert tiles.dtype == np.float32 and tiles.shape[1:3] == window
        return pixelwise(tiles)

    probs = sliding_window_predict(forward, image, window, 0.25, 3, batch=4)
    assert probs.shape == (*shape, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, pixelwise(image[None])[0], atol=1e-5)
    assert all(c[0] <= 4 for c in calls)  # batched


def test_forward_with_wrong_output_shape_is_an_error():
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="expected"):
        sliding_window_predict(lambda t: pixelwise(t)[:, ::2, ::2], image, (32, 32), 0.25, 3)
