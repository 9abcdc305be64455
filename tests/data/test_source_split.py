"""stratified_split and load_splits: seeded, stratified, deterministic."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from visionkit.data.split import stratified_split
from visionkit.data.types import Dataset, Example


def _classify(labels):
    return Dataset(
        "classify",
        ["a", "b", "c"],
        [Example(image_path=f"{i}.png", label=y) for i, y in enumerate(labels)],
    )


def test_classification_split_is_stratified_and_deterministic():
    ds = _classify([0] * 50 + [1] * 30 + [2] * 20)
    train, val = stratified_split(ds, 0.2, seed=3)
    assert (len(train), len(val)) == (80, 20)
    assert Counter(e.label for e in val.examples) == {0: 10, 1: 6, 2: 4}
    assert train.split == "train" and val.split == "val" and val.class_names == ds.class_names
    again = stratified_split(ds, 0.2, seed=3)[1]
    assert [e.image_path for e in again.examples] == [e.image_path for e in val.examples]
    other = stratified_split(ds, 0.2, seed=4)[1]
    assert [e.image_path for e in other.examples] != [e.image_path for e in val.examples]
    assert {e.image_path for e in train.examples}.isdisjoint(e.image_path for e in val.examples)


def test_small_classes_keep_an_example_in_train():
    ds = _classify([0] * 10 + [1, 1] + [2])
    for seed in range(10):
        train, _ = stratified_split(ds, 0.5, seed)
        assert {e.label for e in train.examples} == {0, 1, 2}


def test_detection_strata_and_class_rescue():
    def ex(i, classes):
        return Example(
            image_path=f"{i}.jpg",
            boxes=np.zeros((len(classes), 4), np.float32),
            box_classes=np.asarray(classes, np.int32),
        )

    examples = [ex(i, [0]) for i in range(8)] + [ex(8, [0, 1]), ex(9, [0, 1]), ex(10, [])]
    ds = Dataset("detect", ["common", "rare"], examples)
    for seed in range(10):
        train, val = stratified_split(ds, 0.3, seed)
        assert len(train) + len(val) == 11
        assert any(1 in e.box_classes for e in train.examples)


def test_bad_fraction_and_tiny_dataset():
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(_classify([0, 1]), 1.0)
    with pytest.raises(ValueError, match="cannot be split"):
        stratified_split(_classify([0]), 0.2)


def test_training_on_one_split_carves_validation_from_it(tmp_path):
    """``split=train`` without ``val``: validation comes out of the train split, and the
    data's own val split stays unseen (it is the held-out test set of a benchmark)."""
    from PIL import Image

    from visionkit.cfg import resolve
    from visionkit.data.prepare import prepare_data

    for split, count in (("train", 10), ("val", 4)):
        for cls in ("a", "b"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(folder / f"{i}.png")
    config = resolve({"task": "classify", "data": str(tmp_path), "val_fraction": 0.2})
    own = prepare_data(config, task="classify", progress=False)
    assert all("/val/" in e.image_path for e in own.val.examples)  # the data's own split
    carved = prepare_data({**config, "split": "train"}, task="classify", progress=False)
    paths = [e.image_path for e in carved.train.examples + carved.val.examples]
    assert len(carved.val) == 4 and len(carved.train) == 16
    assert all("/train/" in p for p in paths)
