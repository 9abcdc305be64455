"""Fixtures of the reliability suite: one clean layout dataset and one small trained run,
built once per session and shared read-only (tests copy them before changing anything)."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest
from faultkit import SIZE, TALLY, write_layout_folder


@pytest.fixture(scope="session")
def layout_data(tmp_path_factory) -> Path:
    """``flat/left/top`` × 24 clean 32×32 PNGs."""
    return write_layout_folder(tmp_path_factory.mktemp("layout") / "data", per_class=24)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, layout_data) -> Path:
    """A finished 3-class LeNet-5 run folder (3 epochs on ``layout_data``, no augmentation)."""
    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    out = tmp_path_factory.mktemp("trained")
    config = resolve(
        {
            "data": str(layout_data),
            "model": "lenet5",
            "weights": None,
            "imgsz": SIZE,
            "batch": 8,
            "epochs": 3,
            "lr": 0.01,
            "augment": False,  # flips and rotations would mix the layout classes
            "patience": 0,
            "verbose": 0,
            "out": str(out),
            "name": "run",
        }
    )
    result = train(get_task("classify"), config)
    keras.backend.clear_session()
    assert result.metrics["accuracy"] >= 0.9, result.metrics  # the suite's tests need a model
    return result.run.dir


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what the reliability tests that ran injected and what survived."""
    if TALLY.sections:
        terminalreporter.section("fault injection tally")
        for line in TALLY.lines():
            terminalreporter.write_line(line)
