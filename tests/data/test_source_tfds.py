"""The TFDS source: the mocked path end to end, and a fast offline failure (never downloads)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from visionkit.data.errors import DataError
from visionkit.data.loader import load_dataset

tfds = pytest.importorskip("tensorflow_datasets")


def test_mock_mnist_through_the_source():
    with tfds.testing.mock_data(num_examples=6):
        ds = load_dataset("tfds:mnist", split="train")
    assert ds.format == "tfds" and ds.task == "classify" and len(ds) == 6
    assert ds.class_names == [str(i) for i in range(10)]
    image = ds.examples[0].image
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    assert all(0 <= e.label < 10 for e in ds.examples)


def test_offline_missing_data_fails_fast_with_a_clear_message(tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError, match=r"tfds:mnist: prepared data .* never downloads"):
        load_dataset("tfds:mnist", data_dir=str(tmp_path))
    assert time.monotonic() - start < 10.0


def test_unknown_name_is_a_data_error():
    with pytest.raises(DataError, match="no such TFDS dataset"):
        load_dataset("tfds:no_such_dataset_here")
    with pytest.raises(DataError, match="expected tfds:NAME"):
        load_dataset("tfds:../etc")
