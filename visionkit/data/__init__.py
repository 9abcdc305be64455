"""Datasets in every common format, the dataset doctor, and tf.data pipelines.

Light names (no TensorFlow import): ``load_dataset``, ``load_splits``, ``detect_format``,
``stratified_split``, ``check_dataset``, ``format_report``, ``Dataset``, ``Example``,
``Fault``, ``DataError``. ``build_pipeline`` and ``show_examples`` import TensorFlow /
matplotlib on first use.
"""

from __future__ import annotations

from typing import Any

from visionkit.data.doctor import DatasetFaultError, DoctorReport, check_dataset, format_report
from visionkit.data.errors import DataError
from visionkit.data.loader import available_splits, detect_format, load_dataset, load_splits
from visionkit.data.split import stratified_split
from visionkit.data.types import Dataset, Example, Fault

_LAZY = {
    "build_pipeline": "visionkit.data.pipeline",
    "AugmentConfig": "visionkit.data.augment",
    "show_examples": "visionkit.data.show",
}

__all__ = [
    "AugmentConfig",
    "DataError",
    "Dataset",
    "DatasetFaultError",
    "DoctorReport",
    "Example",
    "Fault",
    "available_splits",
    "build_pipeline",
    "check_dataset",
    "detect_format",
    "format_report",
    "load_dataset",
    "load_splits",
    "show_examples",
    "stratified_split",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'visionkit.data' has no attribute {name!r}")
