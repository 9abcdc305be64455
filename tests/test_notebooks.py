"""The tutorial notebooks: each runs top to bottom (small mode), and the committed files
are clean (no outputs, no execution counts) and match ``notebooks/_build_notebooks.py``.

The kernel is this interpreter (``sys.executable -m ipykernel_launcher``), whatever kernel
specs the machine has installed: no ``ipykernel install`` is needed. Each notebook runs
with ``VISIONKIT_NOTEBOOK_SMALL=1`` (a few images and epochs) in its own ``tmp_path``.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell
KERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def _executed(path: Path, workdir: Path):
    """Run the notebook at ``path`` in ``workdir`` with a kernel on this interpreter."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ThisInterpreter(AsyncKernelManager):
        """A kernel manager whose kernel is always ``sys.executable``: a user's or the
        system's ``python3`` kernel spec (another interpreter) cannot be picked instead."""

        @property
        def kernel_spec(self) -> KernelSpec:
            return KernelSpec(
                argv=list(KERNEL_ARGV), display_name="visionkit tests", language="python"
            )

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        kernel_name="python3",
        kernel_manager_class=ThisInterpreter,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONKIT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("VISIONKIT_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("VISIONKIT_DATA", raising=False)  # the embedded data, as on a user's machine
    notebook = _executed(path, tmp_path)  # nbclient raises CellExecutionError on a failing cell
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors
    ran = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert ran and all(cell.get("execution_count") for cell in ran)
    assert sorted(os.listdir(tmp_path)) == ["work"], "files written beside the notebook"


def test_notebooks_are_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    assert [p.name for p in NOTEBOOKS] == [
        "00_cnn_foundations.ipynb",
        "01_transfer_learning.ipynb",
        "02_detection.ipynb",
        "03_segmentation.ipynb",
        "04_export_and_tflite.ipynb",
    ]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", path.name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: cell {cell.id} has outputs"
                assert cell.execution_count is None, f"{path.name}: cell {cell.id} was executed"
            assert not cell.get("attachments"), f"{path.name}: cell {cell.id} has attachments"


def test_notebooks_match_their_source():
    """The ``.ipynb`` files are generated: edit ``notebooks/_build_notebooks.py`` and run it."""
    pytest.importorskip("nbformat")
    builder = runpy.run_path(str(NOTEBOOK_DIR / "_build_notebooks.py"))  # no __pycache__
    assert sorted(builder["NOTEBOOKS"]) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        assert path.read_text(encoding="utf-8") == builder["render"](path.name), (
            f"{path.name} differs from notebooks/_build_notebooks.py; run "
            "`python notebooks/_build_notebooks.py` (and edit the notebook there, not in Jupyter)"
        )
