"""Metrics, reports and plots for every task."""

from visionkit.evaluate.classification import classification_metrics, format_classification_report

__all__ = ["classification_metrics", "format_classification_report"]
