"""Metrics, reports and plots for every task."""

from visionkit.evaluate.classification import classification_metrics, format_classification_report
from visionkit.evaluate.detection import (
    DetectionResult,
    coco_stats,
    detection_confusion_matrix,
    evaluate_detections,
    format_detection_report,
)

__all__ = [
    "DetectionResult",
    "classification_metrics",
    "coco_stats",
    "detection_confusion_matrix",
    "evaluate_detections",
    "format_classification_report",
    "format_detection_report",
]
