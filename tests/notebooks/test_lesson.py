"""Every lesson runs top to bottom in a fresh kernel, and measures what its text claims.

Only what is deterministic is asserted: NumPy's traced bytes, shares_memory, owndata, buffer
addresses, computed values. What RSS does depends on the allocator's history, so the lessons
print it and explain both outcomes, and these tests do not look at it.
"""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from ..conftest import REPO

SOURCE = REPO / "source" / "numpy_memory"
LESSON = SOURCE / "01_lesson_free_large_arrays.ipynb"
LESSON_2 = SOURCE / "03_lesson_views_temporaries_and_budgets.ipynb"
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
        "cycle": [held_cycle, held_after_looking, collected_cycle, freed_cycle],
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


def printed_by(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    cell = next(c for c in notebook.cells if c.id == cell_id)
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_lesson_the_cycle_waits_for_the_collector_that_the_demo_runs(lesson):
    """The text: only the collector frees a cycle, and `gc.collect()` does. So nothing in the
    demo may run the collector before it: not even holders_of, which names the cycle."""
    notebook, facts = lesson
    held, after_looking, collected, freed = facts["cycle"]
    assert held == after_looking == MB8 and freed == 0
    assert collected > 0  # the demo's gc.collect() is what freed it
    printed = printed_by(notebook, "holder-cycle")
    assert "a reference cycle" in printed and "`gc.collect()` runs it now" in printed
    assert "still held after holders_of: 7.63 MiB (8,000,000 bytes)" in printed
    assert f"after gc.collect(): 0 bytes (the collector freed {collected} objects)" in printed


def test_lesson_any_route_that_drops_the_last_reference_frees(lesson):
    _, facts = lesson
    assert facts["freed_by_rebinding"] == 0 and facts["freed_by_return"] == 0


def test_lesson_xdel_deletes_every_name_of_the_object_but_not_views(lesson):
    _, facts = lesson
    assert facts["still_defined"] == {"first": False, "second": False, "part": True}


def test_lesson_zeros_are_traced_in_full(lesson):
    _, facts = lesson
    assert facts["zeros_traced"] == [64 * 2**20, 64 * 2**20]  # fresh or recycled


@pytest.fixture(scope="module")
def lesson_2(tmp_path_factory):
    facts = """{
        "added_by": added_by,
        "freed_at_zero": freed_at_zero, "held_by_cycle": held_by_cycle, "freed_by_gc": freed_by_gc,
        "held_after_looking": held_after_looking, "found": found,
        "rescale": [rescale.net_bytes, rescale.peak_bytes],
        "standardize_peak": standardize.peak_bytes,
        "peaks": {"rebound": rebound.peak_bytes, "augmented": augmented.peak_bytes,
                  "out=": with_out.peak_bytes, "with_std": with_std.peak_bytes,
                  "with_dot": with_dot.peak_bytes},
        "moved": moved,
        "budget": BUDGET, "at_once_peak": at_once.peak_bytes, "by_blocks_peak": by_blocks.peak_bytes,
        "welford_peak": welford.peak_bytes,
        "means": [mean_at_once, mean_blocks], "stds": [std_at_once, std_blocks],
        "far": [exact_std, std_sums, std_welford],
        "measured_size": measured_size,
        "image": [held_float64, held_both, held_uint8],
        "memmap_traced": [numpy_mapped - numpy_start, numpy_touched - numpy_start],
        "memmap_nbytes": mapped_nbytes,
    }"""
    return run_lesson(LESSON_2, facts, tmp_path_factory.mktemp("lesson_2"))


def test_lesson_2_runs_top_to_bottom(lesson_2):
    notebook, _ = lesson_2
    assert_clean(notebook)


def test_lesson_2_views_add_nothing_and_copies_add_their_size(lesson_2):
    added = lesson_2[1]["added_by"]
    for view in ("a[100:600_000]", "a[::2]", "a.reshape(1000, 1000)", "grid.T", "grid.ravel()"):
        assert added[view] == 0, view
    assert added["a[positions]"] == MB8 // 2  # fancy indexing copies
    assert added["a[a > 500_000]"] == 499_999 * 8  # so does a boolean mask
    assert added["grid.T.ravel()"] == added["grid.T.reshape(-1)"] == MB8  # transposed: a copy
    assert added["a.astype(np.float64)"] == added["np.array(a)"] == MB8
    assert added["a.astype(np.float64, copy=False)"] == added["np.asarray(a)"] == 0
    assert added["a.astype(np.float32, copy=False)"] == MB8 // 2


def test_lesson_2_count_zero_frees_and_a_cycle_waits_for_gc(lesson_2):
    notebook, facts = lesson_2
    assert facts["freed_at_zero"] == MB8
    assert facts["held_by_cycle"] == MB8 and facts["freed_by_gc"] == 0
    # "the 8,000,000 bytes stay until the collector runs": holders_of, which names the cycle,
    # does not run it; the demo's gc.collect() finds the cycle and frees it.
    assert facts["held_after_looking"] == MB8 and facts["found"] > 0
    printed = printed_by(notebook, "cycle")
    assert "a reference cycle" in printed
    assert "held after holders_of:   7.63 MiB (8,000,000 bytes)" in printed
    assert (
        f"held after gc.collect(): 0 bytes | the collector freed {facts['found']} objects"
        in printed
    )


def test_lesson_2_temporaries_peak_while_net_is_zero(lesson_2):
    facts = lesson_2[1]
    net, peak = facts["rescale"]
    # The peak counts every domain from the block's start: other allocations freed meanwhile
    # can lower it by a few hundred bytes, hence the small margin.
    margin = 64 * 1024
    assert net == 0 and peak >= MB8 - margin  # at least one array-sized buffer beside the old a
    assert facts["standardize_peak"] >= 2 * MB8 - margin  # std's own temporary comes on top


def test_lesson_2_in_place_work_stays_within_the_exercise_allowance(lesson_2):
    facts = lesson_2[1]
    allowance = 0.05 * MB8  # exercise 6: max_peak_fraction=0.05
    peaks, moved = facts["peaks"], facts["moved"]
    assert peaks["augmented"] < allowance and peaks["out="] < allowance
    assert peaks["with_dot"] < allowance
    assert peaks["rebound"] >= MB8 - 64 * 1024 and peaks["with_std"] >= MB8 - 64 * 1024
    assert moved == {"rebound": True, "augmented": False, "out=": False}


def test_lesson_2_blocks_stay_under_the_budget(lesson_2):
    facts = lesson_2[1]
    assert facts["by_blocks_peak"] < facts["budget"] < facts["at_once_peak"]
    assert facts["welford_peak"] < facts["budget"]
    assert facts["means"][0] == pytest.approx(facts["means"][1], rel=1e-9)
    assert facts["stds"][0] == pytest.approx(facts["stds"][1], rel=1e-9)
    exact, by_sums, by_welford = facts["far"]
    assert abs(by_welford - exact) / exact < 1e-9  # Welford stays accurate far from zero
    assert abs(by_sums - exact) / exact > 1e-4  # the sum of squares loses digits there


def test_lesson_2_dtype_sizes_and_the_uint8_saving(lesson_2):
    facts = lesson_2[1]
    assert facts["measured_size"] == {
        "float64": MB8,
        "float32": MB8 // 2,
        "int64": MB8,
        "int32": MB8 // 2,
        "uint8": MB8 // 8,
        "bool": MB8 // 8,
    }
    float64, both, uint8 = facts["image"]
    assert (float64, both, uint8) == (MB8, MB8 + MB8 // 8, MB8 // 8)  # 1/8, once freed


def test_lesson_2_memmap_is_invisible_to_the_tracer(lesson_2):
    notebook, facts = lesson_2
    assert facts["memmap_traced"] == [0, 0] and facts["memmap_nbytes"] == 64 * 2**20
    text = "".join(o.get("text", "") for o in outputs_of(notebook) if o.output_type == "stream")
    assert "[  0 255   0  44 255]" in text  # astype(np.uint8) wrapped 256, 300 and -1
