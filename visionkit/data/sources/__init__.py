"""Data sources: each reads one annotation format into a canonical ``Dataset``.

Every source module exposes ``load(path, *, task=None, split=None, **options) -> Dataset``
(also under a descriptive name such as ``load_coco``) and, where the format has splits,
``available_splits(path) -> list[str]``. Modules are imported on first use so that
``import visionkit.data.sources`` stays light (TensorFlow only ever loads in ``tfds``).

=========  ==============================================  ========================
format     module                                          tasks
=========  ==============================================  ========================
folder     :mod:`.folder` (class subfolders)                classify
csv        :mod:`.csv_table` (pandas)                       classify, detect
coco       :mod:`.coco` (instances JSON)                    detect, segment
voc        :mod:`.voc` (Pascal VOC XML)                     detect
yolo       :mod:`.yolo` (Ultralytics txt + data.yaml)       detect, segment
masks      :mod:`.masks` (images + class-id PNG masks)      segment
idx        :mod:`.idx` (MNIST-style IDX, in memory)         classify
tfds       :mod:`.tfds` (``tfds:NAME``, in memory)          classify
tfrecord   :mod:`.tfrecord` (``export-tfrecord`` shards)    classify, detect, segment
=========  ==============================================  ========================
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {
    "folder": "folder",
    "csv": "csv_table",
    "coco": "coco",
    "voc": "voc",
    "yolo": "yolo",
    "masks": "masks",
    "idx": "idx",
    "tfds": "tfds",
    "tfrecord": "tfrecord",
}

FORMATS = tuple(MODULES)

TASKS_BY_FORMAT = {
    "folder": ("classify",),
    "csv": ("classify", "detect"),
    "coco": ("detect", "segment"),
    "voc": ("detect",),
    "yolo": ("detect", "segment"),
    "masks": ("segment",),
    "idx": ("classify",),
    "tfds": ("classify",),
    "tfrecord": ("classify", "detect", "segment"),
}


def get_source(fmt: str) -> ModuleType:
    """The source module for format name ``fmt`` (ValueError for unknown names)."""
    if fmt not in MODULES:
        raise ValueError(f"unknown data format {fmt!r}; choose one of {list(FORMATS)}")
    return importlib.import_module(f"{__name__}.{MODULES[fmt]}")


__all__ = ["FORMATS", "MODULES", "TASKS_BY_FORMAT", "get_source"]
