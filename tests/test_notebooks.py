"""The notebooks in notebooks/: stored without outputs, and each runs top to bottom within 60 s.

Kernel: the native `python3` kernel of ipykernel, built for *this* interpreter (sys.executable) with an empty
kernel search path, so an installed kernelspec pointing at another Python is never picked and nothing is
written to the user's Jupyter directories.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_reward_dynamics", "02_training_envelope", "03_generalization_and_scaling", "04_value_diversity",
            "05_new_objectives", "06_variants"]
CELL_TIMEOUT_S = 60
NOTEBOOK_LIMIT_S = 60  # each notebook runs on CPU in <= 60 s


def test_every_notebook_is_present():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} has execution_count {cell.execution_count}"
    assert notebook.metadata.kernelspec.name == "python3"
    # A narrative cell per step, saying which equation or statement of the paper it shows.
    narrative = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    assert len(narrative) >= 2
    for text in narrative:
        assert re.search(r"Eq\.|Theorem|Lemma|§|Fig\.|Table", text), f"{path.name}: narrative cites nothing: {text[:60]!r}"


def _kernel_manager():
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    assert manager.kernel_spec.argv[0] == sys.executable, manager.kernel_spec.argv
    return manager


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, km=_kernel_manager(), timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError with the cell and traceback on any failure
    elapsed = time.perf_counter() - started
    assert elapsed <= NOTEBOOK_LIMIT_S, f"{path.name} took {elapsed:.1f} s"
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
