"""Shared pytest fixtures: the ../shared data folder (skipped when absent), seeds, TF quietness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("VISIONKIT_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path} (the read-only ../shared folder beside the project); not present here"
        )
    return path


@pytest.fixture
def shared():
    """Return the ``shared_path`` helper: ``shared("data", "raccoon")``."""
    return shared_path
