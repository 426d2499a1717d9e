"""Every notebook runs: the lesson top to bottom in a fresh kernel, without an error."""

import nbformat
from nbclient import NotebookClient

from .conftest import REPO

LESSON = REPO / "source" / "numpy_memory" / "01_lesson_free_large_arrays.ipynb"


def test_lesson_runs_top_to_bottom_and_measures_its_claims(tmp_path):
    notebook = nbformat.read(LESSON, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "8,000,000" in text and "7.63 MiB" in text  # the measured size, exact and in MiB
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        "the visual breakdown plot is missing"
    )
