"""ProtectedExecute on small notebooks, outside nbgrader's converters: how a kernel ends."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.execute import ProtectedExecute

ATEXIT_CELL = (
    "import atexit, pathlib\n"
    "atexit.register(lambda: pathlib.Path('written-at-exit.txt').write_text('too late'))"
)


def run_protected(cells: list[str], work: Path, **traits) -> dict:
    """Execute ``cells`` in ``work`` with ProtectedExecute; its run record."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    execute = ProtectedExecute(evidence_dir=str(work.parent / "runs"), timeout=60, **traits)
    resources = {"metadata": {"path": str(work)}, "nbgrader": {"student": "s", "notebook": "n"}}
    execute.preprocess(nb, resources)
    return resources["autograder"]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_student_code_gets_no_say_after_the_last_cell(work):
    """The kernel is killed once the last cell has answered: no exit handler of the
    student's runs (and no second of idle core is spent on an orderly exit)."""
    assert ProtectedExecute().shutdown_kernel == "immediate"
    record = run_protected([ATEXIT_CELL, "print('last cell')"], work)
    assert record["status"] == "graded"
    assert not (work / "written-at-exit.txt").exists()


def test_a_graceful_shutdown_would_let_it_run(work):
    """The control for the test above: nbclient's default shutdown runs the handler."""
    run_protected([ATEXIT_CELL], work, shutdown_kernel="graceful")
    assert (work / "written-at-exit.txt").read_text() == "too late"


# -- untraced memory, seen from outside --------------------------------------------------------

SETUP = "import numpy as np\nfrom autograder import checks\nchecks.start_tracing()"
MEMMAP_STATS = """
import tempfile

def block_stats(read_block, n_blocks):
    first = read_block(0)
    everything = np.memmap(tempfile.TemporaryFile(), dtype=first.dtype, mode="w+",
                           shape=(n_blocks * first.size,))
    for i in range(n_blocks):
        everything[i * first.size:(i + 1) * first.size] = read_block(i)
    total = float(everything.sum())
    del everything
    return total
"""
BLOCK_STATS = """
def block_stats(read_block, n_blocks):
    total = 0.0
    for i in range(n_blocks):
        total += float(read_block(i).sum())
    return total
"""
BUDGET_TEST = """
def _reader(i):
    return np.random.default_rng(i).normal(size=200_000)

checks.assert_peak_below(block_stats, _reader, 60, budget_bytes=8 * 2**20)
"""


def run_budget_test(stats: str, work: Path) -> tuple[dict, list]:
    """The set-up, ``stats``, and a graded test of it (96 MB of blocks, an 8 MiB budget)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (SETUP, stats, BUDGET_TEST)]
    nb.cells[2].metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "budget_test",
        "points": 1,
        "solution": False,
        "locked": True,
    }
    execute = ProtectedExecute(evidence_dir=str(work.parent / "runs"), timeout=60)
    resources = {"metadata": {"path": str(work)}, "nbgrader": {"student": "s", "notebook": "n"}}
    execute.preprocess(nb, resources)
    return resources["autograder"], nb.cells[2].outputs


def test_memory_the_tracer_misses_is_seen_from_outside(work):
    """np.memmap holds all 96 MB where tracemalloc does not look: assert_peak_below passes
    in the kernel, the kernel's peak resident memory read from outside gives it away."""
    record, outputs = run_budget_test(MEMMAP_STATS, work)
    over = [e for e in record["evidence"] if e["flag"] == "rss-over-budget"]
    assert over and over[0]["cell"] == "budget_test", record["evidence"]
    cell = record["cells"][2]
    assert cell["rss_peak_bytes"] - cell["rss_start_bytes"] > 90 * 10**6
    assert outputs[0]["ename"] == "IntegrityError"  # the test is distrusted: it scores 0


def test_an_honest_budget_stays_unflagged(work):
    record, outputs = run_budget_test(BLOCK_STATS, work)
    assert record["evidence"] == []
    cell = record["cells"][2]
    assert 0 <= cell["rss_peak_bytes"] - cell["rss_start_bytes"] < 8 * 2**20
    assert not any(output.get("output_type") == "error" for output in outputs)
