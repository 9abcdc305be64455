"""Task workflows (train, val, predict) wiring data → models → train → evaluate → predict."""

from visionkit.tasks.registry import get_task

__all__ = ["get_task"]
