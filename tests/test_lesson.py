"""The lesson runs top to bottom in a fresh kernel, and measures what its text claims.

Only what is deterministic is asserted: NumPy's traced bytes, shares_memory, owndata, buffer
addresses, computed values. What RSS does depends on the allocator's history, so the lessons
print it and explain both outcomes, and these tests do not look at it.
"""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO

SOURCE = REPO / "source" / "numpy_memory"
LESSON = SOURCE / "01_lesson_free_large_arrays.ipynb"
MB8 = 8_000_000  # the lessons' standard array: 1,000,000 float64 values


def run_lesson(path, facts: str, tmp_path) -> tuple[nbformat.NotebookNode, dict]:
    """Execute the notebook, then one more cell that prints ``facts`` (a dict expression over
    the lesson's variables) as JSON. Returns the executed notebook and the facts."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell(f"import json\nprint('FACTS ' + json.dumps({facts}))")
    )
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    last = "".join(o.get("text", "") for o in notebook.cells.pop().outputs)
    assert last.startswith("FACTS "), last
    return notebook, json.loads(last.removeprefix("FACTS "))


def outputs_of(notebook: nbformat.NotebookNode) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def assert_clean(notebook: nbformat.NotebookNode) -> None:
    """No stderr anywhere; an error only in a cell tagged to raise one, and there always."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            assert errors, f"{cell.id} is tagged raises-exception but raised nothing"
        else:
            assert not errors, (cell.id, errors)
    stderr = [o for o in outputs_of(notebook) if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, stderr


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    facts = """{
        "held": {"name": held_name, "view": held_view, "container": held_container,
                 "cache": held_cache, "traceback": held_traceback, "closure": held_closure,
                 "default": held_default, "attribute": held_attribute,
                 "generator": held_generator, "lru_cache": held_lru, "cycle": held_cycle,
                 "memoryview": held_c},
        "freed": {"name": freed_name, "view": freed_view, "container": freed_container,
                  "cache": freed_cache, "traceback": freed_traceback, "closure": freed_closure,
                  "default": freed_default, "attribute": freed_attribute,
                  "generator": freed_generator, "lru_cache": freed_lru, "cycle": freed_cycle,
                  "memoryview": freed_c},
        "held_after_sys": held_after_sys,
        "freed_by_rebinding": freed_by_rebinding, "freed_by_return": freed_by_return,
        "still_defined": still_defined,
        "zeros_traced": [numpy_zeros - numpy_before, numpy_zeros_recycled - numpy_start],
    }"""
    return run_lesson(LESSON, facts, tmp_path_factory.mktemp("lesson"))


def test_lesson_runs_top_to_bottom_and_measures_its_claims(lesson):
    notebook, _ = lesson
    assert_clean(notebook)
    outputs = outputs_of(notebook)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "8,000,000" in text and "7.63 MiB" in text  # the measured size, exact and in MiB
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        "the visual breakdown plot is missing"
    )


def test_lesson_every_holder_keeps_the_array_until_its_fix(lesson):
    _, facts = lesson
    assert facts["held"] == dict.fromkeys(facts["held"], MB8)
    assert facts["freed"] == {**dict.fromkeys(facts["freed"], 0), "view": 80}  # the 80-byte copy


def test_lesson_the_real_traceback_outlives_sys_last(lesson):
    notebook, facts = lesson
    raised = next(c for c in notebook.cells if c.id == "trap-traceback-raise")
    assert [o.ename for o in raised.outputs if o.output_type == "error"] == ["ValueError"]
    # IPython's InteractiveTB still holds the frames once sys.last_* are cleared...
    assert facts["held_after_sys"] == MB8
    # ...and forget_last_error() with gc.collect() frees them.
    assert facts["freed"]["traceback"] == 0


def test_lesson_any_route_that_drops_the_last_reference_frees(lesson):
    _, facts = lesson
    assert facts["freed_by_rebinding"] == 0 and facts["freed_by_return"] == 0


def test_lesson_xdel_deletes_every_name_of_the_object_but_not_views(lesson):
    _, facts = lesson
    assert facts["still_defined"] == {"first": False, "second": False, "part": True}


def test_lesson_zeros_are_traced_in_full(lesson):
    _, facts = lesson
    assert facts["zeros_traced"] == [64 * 2**20, 64 * 2**20]  # fresh or recycled
