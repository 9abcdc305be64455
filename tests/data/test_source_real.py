"""The sources on the real datasets in ../shared/data (skipped when absent): known facts.

Header reads only (no full decodes), so these stay fast.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from visionkit.data.loader import detect_format, load_dataset, load_splits
from visionkit.data.sources._common import image_size

pytestmark = pytest.mark.shared


def _boxes_by_image(ds):
    return {e.image_path: e.boxes[np.lexsort(e.boxes.T[::-1])] for e in ds.examples}


def test_raccoon_csv_and_voc_agree(shared):
    root = shared("data", "raccoon")
    csv = load_dataset(root / "raccoon_labels.csv")
    voc = load_dataset(root, format="voc")
    for ds in (csv, voc):
        assert (len(ds), sum(len(e.boxes) for e in ds.examples)) == (200, 217)
        assert ds.class_names == ["raccoon"] and ds.faults == []
    for e in csv.examples:
        w, h = image_size(e.image_path)
        assert (
            (e.boxes[:, :2] >= 0).all()
            and (e.boxes[:, 2] <= w).all()
            and (e.boxes[:, 3] <= h).all()
        )
    # The CSV was made from the XMLs: identical numbers, no 1-pixel convention shift.
    a, b = _boxes_by_image(csv), _boxes_by_image(voc)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_raccoon_folder_reads_as_voc_with_a_note(shared, capsys):
    root = shared("data", "raccoon")
    assert detect_format(root) == "voc"
    assert "fits several formats ['csv', 'voc']" in capsys.readouterr().err
    assert detect_format(root / "raccoon_labels.csv") == "csv"
    assert detect_format(root / "annotations") == "voc"


def test_coco128_yolo_splits(shared):
    root = shared("data", "coco128")
    assert detect_format(root, task="detect") == "yolo"
    assert detect_format(root, task="segment") == "masks"
    splits = load_splits(root, format="yolo")
    assert sorted(splits) == ["train", "val"]
    train, val = splits["train"], splits["val"]
    assert (len(train), len(val)) == (128, 128)
    assert val.num_classes == 80
    # val: 898 boxes over 73 classes, no faults.
    assert sum(len(e.boxes) for e in val.examples) == 898 and val.faults == []
    assert len({int(c) for e in val.examples for c in e.box_classes}) == 73
    # train: 941 label lines, but two label files (656, 659: 3 + 9 boxes) have no image and
    # two images (250, 508) have no label file; 929 boxes belong to the 128 images.
    orphans = {f.file.rsplit("/", 1)[-1]: f.detail for f in train.faults}
    assert sorted(orphans) == ["000000000656.txt", "000000000659.txt"]
    assert {f.kind for f in train.faults} == {"label_without_image"}
    loaded = sum(len(e.boxes) for e in train.examples)
    assert loaded == 929 and loaded + 3 + 9 == 941
    assert len({int(c) for e in train.examples for c in e.box_classes}) == 71


def test_coco128_masks_and_instance_polygons(shared):
    root = shared("data", "coco128")
    val = load_dataset(root, format="masks", split="val")
    assert len(val) == 100 and val.class_names[0] == "unlabeled"
    assert Counter(f.kind for f in val.faults) == {"missing_mask": 28}
    assert val.mask_value_map[17] == val.class_names.index("cat")
    seg = load_dataset(
        root,
        format="yolo",
        task="segment",
        split="val",
        labels_dir="instance_labels",
        names=root / "masks.yaml",
    )
    assert len(seg) == 128 and seg.faults == [] and seg.class_names == val.class_names


def test_membrane_pairs(shared):
    root = shared("data", "membrane")
    assert detect_format(root) == "masks"
    ds = load_dataset(root)
    assert len(ds) == 30 and ds.faults == []
    assert ds.class_names == ["background", "foreground"] and ds.mask_value_map == {0: 0, 255: 1}


def test_mnist_idx(shared):
    root = shared("data", "mnist")
    assert detect_format(root) == "idx"
    ds = load_dataset(root)
    assert len(ds) == 10_000 and ds.split == "test"
    counts = np.bincount([e.label for e in ds.examples])
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.examples[0].image.shape == (28, 28, 3)


def test_cats_dogs_folder_splits(shared):
    root = shared("data", "cats_dogs")
    assert detect_format(root) == "folder"
    splits = load_splits(root)
    assert sorted(splits) == ["test", "train", "val"]
    assert splits["train"].class_names == ["cats", "dogs"]
    assert len(splits["test"]) == 300
    assert Counter(e.label for e in splits["train"].examples) == {0: 120, 1: 120}
    assert Counter(e.label for e in splits["val"].examples) == {0: 30, 1: 30}
    assert len(load_dataset(root, split="train")) == 300


def test_flowers_folder(shared):
    ds = load_dataset(shared("data", "flowers"))
    assert ds.class_names == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    assert np.bincount([e.label for e in ds.examples]).tolist() == [764, 1052, 784, 733, 984]
