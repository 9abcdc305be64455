"""Each data source on tiny synthetic datasets written to tmp_path: exact values and faults."""

from __future__ import annotations

import gzip
import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

from visionkit.data.errors import DataError
from visionkit.data.loader import detect_format, load_dataset, load_splits
from visionkit.data.sources import coco, csv_table, folder, idx, masks, voc, yolo
from visionkit.data.sources.masks import apply_mask_value_map


def write_image(path, size=(40, 30), exif_orientation=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, (10, 20, 30))
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(path, exif=exif)
    else:
        img.save(path)
    return path


def kinds(dataset):
    return sorted((os.path.basename(f.file), f.where, f.kind) for f in dataset.faults)


# ----------------------------------------------------------------------------- folder


def test_folder_split_layout_with_aliases_and_faults(tmp_path):
    for split in ("training_set", "test_set"):
        write_image(tmp_path / split / "dogs" / "a.JPG")
        write_image(tmp_path / split / "cats" / "b.png")
        write_image(tmp_path / split / "cats" / "c.jpeg")
    (tmp_path / "training_set" / "cats" / "notes.txt").write_text("x")
    (tmp_path / "training_set" / "cats" / ".DS_Store").write_text("x")
    assert folder.available_splits(tmp_path) == ["test", "train"]
    ds = load_dataset(tmp_path, split="train")
    assert ds.format == "folder" and ds.split == "train"
    assert ds.class_names == ["cats", "dogs"]
    assert [(os.path.basename(e.image_path), e.label) for e in ds.examples] == [
        ("b.png", 0),
        ("c.jpeg", 0),
        ("a.JPG", 1),
    ]
    assert kinds(ds) == [("notes.txt", None, "not_an_image")]
    assert len(load_dataset(tmp_path)) == 6
    with pytest.raises(DataError, match="no split 'val'"):
        load_dataset(tmp_path, split="val")


def test_folder_without_classes_is_an_error(tmp_path):
    write_image(tmp_path / "a.png")
    with pytest.raises(DataError, match="no class subfolders"):
        folder.load_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        folder.load_folder(tmp_path / "missing")


# ----------------------------------------------------------------------------- CSV


def test_csv_classification_paths_beside_or_in_images(tmp_path):
    write_image(tmp_path / "x.png")
    write_image(tmp_path / "images" / "y.png")
    (tmp_path / "labels.csv").write_text(
        "Path,Label\nx.png,cat\ny.png,dog\nmissing.png,dog\n,cat\n"
    )
    ds = csv_table.load_csv(tmp_path / "labels.csv")
    assert ds.task == "classify" and ds.class_names == ["cat", "dog"]
    assert [(os.path.basename(e.image_path), e.label) for e in ds.examples] == [
        ("x.png", 0),
        ("y.png", 1),
    ]
    assert kinds(ds) == [("labels.csv", "4", "missing_image"), ("labels.csv", "5", "empty_path")]


def test_csv_detection_boxes_grouped_and_line_faults(tmp_path):
    data = tmp_path / "data"
    write_image(data / "images" / "a.jpg", (100, 80))
    write_image(data / "images" / "b.jpg", (50, 50))
    write_image(tmp_path / "secret.jpg", (50, 50))  # outside the dataset root
    rows = [
        "filename,width,height,class,xmin,ymin,xmax,ymax",
        "a.jpg,100,80,raccoon,10,20,30,40",  # line 2
        "a.jpg,100,80,dog,0,0,100,80",  # line 3
        "b.jpg,50,50,dog,1,2,3,x",  # line 4: not a number
        "b.jpg,50,50,dog,40,5,20,10",  # line 5: degenerate
        "b.jpg,50,50,dog,10,10,70,20",  # line 6: outside the image
        "b.jpg,50,50,dog,5,5,50.5,50",  # line 7: within 1 px: clipped
        "../secret.jpg,50,50,dog,1,1,2,2",  # line 8: escapes the root
    ]
    (data / "boxes.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(data / "boxes.csv")
    assert ds.task == "detect" and ds.class_names == ["dog", "raccoon"]
    a, b = ds.examples
    np.testing.assert_array_equal(
        a.boxes, np.array([[10, 20, 30, 40], [0, 0, 100, 80]], np.float32)
    )
    np.testing.assert_array_equal(a.box_classes, [1, 0])
    np.testing.assert_array_equal(b.boxes, [[5, 5, 50, 50]])
    assert a.boxes.dtype == np.float32 and a.box_classes.dtype == np.int32
    assert kinds(ds) == [
        ("boxes.csv", "4", "not_a_number"),
        ("boxes.csv", "5", "degenerate_box"),
        ("boxes.csv", "6", "box_outside_image"),
        ("boxes.csv", "8", "path_escapes_root"),
    ]


def test_csv_missing_column_names_expected_and_found(tmp_path):
    (tmp_path / "t.csv").write_text("filename,class,xmin,ymin,xmax\na.jpg,c,1,2,3\n")
    with pytest.raises(DataError, match=r"t\.csv.*missing column.*'width'.*found"):
        load_dataset(tmp_path / "t.csv")


# ----------------------------------------------------------------------------- COCO


def _coco_doc():
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 20, "height": 10},
            {"id": 2, "file_name": "b.png", "width": 20, "height": 10},
            {"id": 3, "file_name": "../outside.png", "width": 20, "height": 10},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 18,
                "bbox": [2, 1, 4, 3],
                "iscrowd": 0,
                "area": 12,
                "segmentation": [[2, 1, 6, 1, 6, 4, 2, 4]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": [10, 0, 5, 5],
                "iscrowd": 1,
                "area": 25,
                "segmentation": {"size": [10, 20], "counts": [100, 5, 5, 5, 85]},
            },
            {"id": 3, "image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1]},
            {"id": 4, "image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1]},
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [0, 0, 0, 4]},
        ],
    }


def test_coco_detection_categories_crowd_and_faults(tmp_path):
    write_image(tmp_path / "images" / "a.png", (20, 10))
    write_image(tmp_path / "images" / "b.png", (20, 10))
    write_image(tmp_path.parent / "outside.png", (20, 10))
    ann = tmp_path / "annotations" / "instances.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(_coco_doc()))
    ds = load_dataset(ann)
    assert ds.format == "coco" and ds.class_names == ["car", "dog"]  # by category id: 3, 18
    a, b = ds.examples
    np.testing.assert_array_equal(a.boxes, [[2, 1, 6, 4]])
    np.testing.assert_array_equal(a.box_classes, [1])
    assert b.boxes.shape == (0, 4) and b.box_classes.shape == (0,)
    assert kinds(ds) == [
        ("instances.json", "annotations[2]", "unknown_category"),
        ("instances.json", "annotations[3]", "unknown_image"),
        ("instances.json", "annotations[4]", "degenerate_box"),
        ("instances.json", "images[2]", "path_escapes_root"),
    ]


def test_coco_segmentation_polygon_and_rle(tmp_path):
    write_image(tmp_path / "a.png", (20, 10))
    write_image(tmp_path / "b.png", (20, 10))
    doc = _coco_doc()
    doc["images"] = doc["images"][:2]
    doc["annotations"] = doc["annotations"][:2]
    from pycocotools import mask as mask_utils

    square = np.zeros((10, 20), np.uint8, order="F")
    square[6:9, 15:19] = 1
    compressed = mask_utils.encode(square)
    compressed["counts"] = compressed["counts"].decode("ascii")
    doc["annotations"].append(
        {"id": 9, "image_id": 2, "category_id": 18, "segmentation": compressed, "area": 12}
    )
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    ds = coco.load_coco(tmp_path / "coco.json", task="segment")
    assert ds.class_names == ["background", "car", "dog"]
    mask_a, mask_b = ds.examples[0].mask, ds.examples[1].mask
    assert mask_a.shape == (10, 20) and mask_a.dtype == np.uint8
    # Uncompressed RLE (column-major): 100 zeros = columns 0-9, then rows 0-4 of columns 10, 11.
    expected = np.zeros((10, 20), np.uint8)
    expected[0:5, 10:12] = 1
    expected[mask_a == 2] = 2
    np.testing.assert_array_equal(mask_a, expected)
    assert (mask_a == 2).sum() == 12  # the 4x3 polygon, pycocotools' rasterisation
    np.testing.assert_array_equal(mask_b, square * 2)


def test_coco_unparseable_json_is_an_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        coco.load_coco(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- VOC


VOC_XML = """<annotation><filename>{name}</filename><size><width>40</width><height>30</height></size>
{objects}</annotation>"""
VOC_OBJ = "<object><name>{cls}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"


def _voc(tmp_path, name, objects, xml_name=None):
    xml = VOC_XML.format(
        name=name, objects="".join(VOC_OBJ.format(cls=c, d=d, b=b) for c, d, b in objects)
    )
    (tmp_path / "annotations").mkdir(exist_ok=True)
    (tmp_path / "annotations" / (xml_name or name.split(".")[0] + ".xml")).write_text(xml)


def test_voc_boxes_classes_and_object_faults(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", (40, 30))
    write_image(tmp_path / "images" / "b.jpg", (40, 30))
    _voc(tmp_path, "a.jpg", [("zebra", 1, (1, 2, 10, 20)), ("ant", 0, (5, 5, 40, 30))])
    _voc(
        tmp_path,
        "b.jpg",
        [("ant", 0, (1, 1, "q", 3)), ("ant", 0, (1, 1, 50, 3)), ("ant", 0, (2, 3, 4, 5))],
    )
    (tmp_path / "annotations" / "c.xml").write_text("<annotation><filename>")
    _voc(tmp_path, "../../etc/passwd", [], xml_name="escape.xml")
    ds = voc.load_voc(tmp_path)
    assert ds.class_names == ["ant", "zebra"]
    a, b = ds.examples
    np.testing.assert_array_equal(a.boxes, [[1, 2, 10, 20], [5, 5, 40, 30]])  # difficult kept
    np.testing.assert_array_equal(a.box_classes, [1, 0])
    np.testing.assert_array_equal(b.boxes, [[2, 3, 4, 5]])
    assert kinds(ds) == [
        ("b.xml", "object 0", "bad_bndbox"),
        ("b.xml", "object 1", "box_outside_image"),
        ("c.xml", None, "unparseable_xml"),
        ("escape.xml", None, "path_escapes_root"),
    ]
    assert voc.load_voc(tmp_path, classes=["zebra"]).examples[0].box_classes.tolist() == [0]


# ----------------------------------------------------------------------------- YOLO


def _yolo_tree(tmp_path, names="[cat, dog]"):
    write_image(tmp_path / "images" / "train" / "a.jpg", (100, 50))
    write_image(tmp_path / "images" / "train" / "b.jpg", (100, 50))
    write_image(tmp_path / "images" / "val" / "c.jpg", (100, 50), exif_orientation=6)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.4\n"  # line 1 ok
        "1 0.1 0.2 0.3\n"  # line 2 wrong field count
        "5 0.5 0.5 0.1 0.1\n"  # line 3 class out of range
        "1 0.5 1.2 0.1 0.1\n"  # line 4 coordinate outside [0, 1]
        "\n"
        "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n"  # line 6 polygon: box from its extent
    )
    (tmp_path / "labels" / "val" / "c.txt").write_text("1 0.5 0.5 1 1\n")
    (tmp_path / "labels" / "val" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text(
        f"path: .\ntrain: images/train\nval: images/val\nnames: {names}\n"
    )


def test_yolo_boxes_exif_size_and_line_faults(tmp_path):
    _yolo_tree(tmp_path)
    assert detect_format(tmp_path) == "yolo" and yolo.available_splits(tmp_path) == ["train", "val"]
    train = load_dataset(tmp_path, split="train")
    assert train.class_names == ["cat", "dog"]
    a, b = train.examples
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [10, 5, 30, 15]], atol=1e-4)
    np.testing.assert_array_equal(a.box_classes, [0, 1])
    assert b.boxes.shape == (0, 4)  # no label file: an image without objects
    assert kinds(train) == [
        ("a.txt", "2", "wrong_field_count"),
        ("a.txt", "3", "class_out_of_range"),
        ("a.txt", "4", "coordinate_out_of_range"),
    ]
    val = load_dataset(tmp_path / "data.yaml", split="val")
    # EXIF orientation 6 rotates the stored 100x50 image to 50x100.
    np.testing.assert_allclose(val.examples[0].boxes, [[0, 0, 50, 100]])
    assert kinds(val) == [("orphan.txt", None, "label_without_image")]


def test_yolo_dict_names_with_gaps_and_segment_masks(tmp_path):
    _yolo_tree(tmp_path, names="{0: unlabeled, 3: cat, 7: dog}")
    (tmp_path / "labels" / "train" / "a.txt").write_text(
        "7 0.0 0.0 0.5 0.0 0.5 1.0 0.0 1.0\n3 0.2 0.2 0.4 0.2 0.4 0.6 0.2 0.6\n0 0.1 0.1 0.2 0.2\n"
    )
    det = yolo.load_yolo(tmp_path, split="train")
    assert det.class_names == ["unlabeled", "cat", "dog"]
    np.testing.assert_array_equal(det.examples[0].box_classes, [2, 1, 0])
    seg = yolo.load_yolo(tmp_path, split="train", task="segment")
    assert seg.class_names == ["unlabeled", "cat", "dog"]  # first name is the background
    mask = seg.examples[0].mask
    assert mask.shape == (50, 100) and set(np.unique(mask)) == {0, 1, 2}
    assert mask[25, 10] == 2 and mask[20, 30] == 1 and mask[25, 80] == 0  # small polygon on top
    assert kinds(seg)[0] == ("a.txt", "3", "box_without_polygon")


def test_yolo_refuses_split_paths_outside_root(tmp_path):
    _yolo_tree(tmp_path / "d")
    (tmp_path / "d" / "data.yaml").write_text(
        "train: ../elsewhere\nval: images/val\nnames: [a, b]\n"
    )
    ds = yolo.load_yolo(tmp_path / "d")
    assert ("data.yaml", None, "path_escapes_root") in kinds(ds)
    assert [os.path.basename(e.image_path) for e in ds.examples] == ["c.jpg"]
    (tmp_path / "d" / "data.yaml").write_text("names: [a\n")
    with pytest.raises(DataError, match=r"data\.yaml: not valid YAML"):
        yolo.load_yolo(tmp_path / "d")


# ----------------------------------------------------------------------------- masks


def _mask(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def test_masks_binary_pairs_value_map_and_faults(tmp_path):
    for i in range(3):
        write_image(tmp_path / "image" / f"{i}.png", (8, 6))
    _mask(tmp_path / "label" / "0.png", np.full((6, 8), 255))
    _mask(tmp_path / "label" / "1.png", np.zeros((6, 8)))
    _mask(tmp_path / "label" / "9.png", np.zeros((6, 8)))
    _mask(tmp_path / "label" / "2.png", np.zeros((5, 8)))
    assert detect_format(tmp_path) == "masks"
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["background", "foreground"] and ds.mask_value_map == {0: 0, 255: 1}
    assert [os.path.basename(e.mask_path) for e in ds.examples] == ["0.png", "1.png"]
    assert kinds(ds) == [("2.png", None, "size_mismatch"), ("9.png", None, "missing_image")]
    from visionkit.data.images import read_mask

    mapped = apply_mask_value_map(read_mask(ds.examples[0].mask_path), ds.mask_value_map)
    assert mapped.dtype == np.uint8 and set(np.unique(mapped)) == {1}


def test_masks_yaml_splits_and_panoptic_ids(tmp_path):
    for split in ("train2017", "val2017"):
        write_image(tmp_path / "images" / split / "a.jpg", (4, 2))
        write_image(tmp_path / "images" / split / "b.jpg", (4, 2))
        _mask(tmp_path / "masks" / split / "a.png", [[0, 1, 17, 17], [0, 0, 1, 1]])
    (tmp_path / "masks.yaml").write_text(
        "train: {images: images/train2017, masks: masks/train2017}\n"
        "val: {images: images/val2017, masks: masks/val2017}\n"
        "classes: {0: unlabeled, 1: person, 17: cat}\n"
    )
    assert masks.available_splits(tmp_path) == ["train", "val"]
    assert masks.available_splits(tmp_path / "masks.yaml") == ["train", "val"]  # the file itself
    splits = load_splits(tmp_path, format="masks")
    assert sorted(splits) == ["train", "val"]
    val = splits["val"]
    assert val.class_names == ["unlabeled", "person", "cat"]
    assert val.mask_value_map == {0: 0, 1: 1, 17: 2}
    assert kinds(val) == [("b.jpg", None, "missing_mask")]
    from visionkit.data.images import read_mask

    np.testing.assert_array_equal(
        apply_mask_value_map(read_mask(val.examples[0].mask_path), val.mask_value_map),
        [[0, 1, 2, 2], [0, 0, 1, 1]],
    )


# ----------------------------------------------------------------------------- IDX


def _idx(path, array, gz):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_idx_gzip_and_raw(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    _idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.array([2, 0, 2]), gz=False)
    assert detect_format(tmp_path) == "idx" and idx.available_splits(tmp_path) == ["train"]
    ds = load_dataset(tmp_path)
    assert ds.split == "train" and ds.class_names == ["0", "1", "2"]
    assert [e.label for e in ds.examples] == [2, 0, 2]
    img = ds.examples[1].image
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 2], images[1])
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1]))
    with pytest.raises(DataError, match="truncated"):
        load_dataset(tmp_path)


# ----------------------------------------------------------------------------- loader


def test_detect_format_by_shape_and_ambiguity(tmp_path):
    write_image(tmp_path / "flowers" / "rose" / "a.jpg")
    assert detect_format(tmp_path / "flowers") == "folder"
    assert detect_format("tfds:mnist") == "tfds"
    (tmp_path / "x.json").write_text("{}")
    assert detect_format(tmp_path / "x.json") == "coco"
    both = tmp_path / "both"
    write_image(both / "images" / "a.jpg")
    (both / "labels.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n")
    (both / "annotations").mkdir()
    (both / "annotations" / "a.xml").write_text("<annotation/>")
    assert detect_format(both) == "voc"  # the documented preference, with a note on stderr
    with pytest.raises(DataError, match="does not exist"):
        detect_format(tmp_path / "nope")


def test_symlinks_out_of_the_tree_are_refused(tmp_path):
    outside = write_image(tmp_path / "outside" / "secret.png")
    root = tmp_path / "data"
    write_image(root / "cats" / "a.png")
    (root / "cats" / "link.png").symlink_to(outside)
    ds = folder.load_folder(root)
    assert [os.path.basename(e.image_path) for e in ds.examples] == ["a.png"]
    assert kinds(ds) == [("link.png", None, "path_escapes_root")]
    (root / "list.csv").write_text("path,label\ncats/a.png,cat\ncats/link.png,cat\n")
    ds = csv_table.load_csv(root / "list.csv")
    assert len(ds) == 1 and kinds(ds) == [("list.csv", "3", "path_escapes_root")]


def test_csv_blank_lines_keep_line_numbers(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "l.csv").write_text("path,label\na.png,x\n\nmissing.png,x\n")
    ds = csv_table.load_csv(tmp_path / "l.csv")
    assert kinds(ds) == [("l.csv", "4", "missing_image")]
