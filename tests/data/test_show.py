"""``show_examples`` writes a PNG grid of the expected pixel size for every task."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_pipeline import dataset

from visionkit.data.show import grid_shape, show_examples


@pytest.mark.parametrize("task", ["classify", "detect", "segment"])
def test_show_writes_png(tmp_path, task):
    out = tmp_path / "sub" / f"{task}.png"
    fig = show_examples(dataset(task, n=5), n=5, imgsz=32, seed=0, out=str(out), dpi=50)
    rows, cols = grid_shape(5)
    assert (rows, cols) == (2, 3)
    with Image.open(out) as img:
        assert img.size == (cols * 100, rows * 100)
        arr = np.asarray(img.convert("RGB"))
    assert arr.std() > 0
    assert fig.axes and not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]
