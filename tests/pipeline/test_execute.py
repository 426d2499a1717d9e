"""ProtectedExecute on small notebooks, outside nbgrader's converters: how a kernel ends."""

from __future__ import annotations

from pathlib import Path

import nbformat
from traitlets.config import Config

from autograder.pipeline.protected_execute import ProtectedExecute

from ..conftest import execute_protected

ATEXIT_CELL = (
    "import atexit, pathlib\n"
    "atexit.register(lambda: pathlib.Path('written-at-exit.txt').write_text('too late'))"
)


def run_protected(cells: list[str], work: Path, **traits) -> dict:
    """Execute ``cells`` in ``work`` with ProtectedExecute; its run record."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return execute_protected(nb, work, **traits)


# A kernel with a uid of its own works in a copy of its folder, which is gone with it; with
# limits only it works in the folder itself, where the test can see what an exit handler wrote.
IN_PLACE = Config({"SandboxedKernelManager": {"sandbox_choice": "limits-only"}})


def test_student_code_gets_no_say_after_the_last_cell(work):
    """The kernel is killed once the last cell has answered: no exit handler of the
    student's runs (and no second of idle core is spent on an orderly exit)."""
    assert ProtectedExecute().shutdown_kernel == "immediate"
    record = run_protected([ATEXIT_CELL, "print('last cell')"], work, config=IN_PLACE)
    assert record["status"] == "graded"
    assert not (work / "written-at-exit.txt").exists()


def test_a_graceful_shutdown_would_let_it_run(work):
    """The control for the test above: nbclient's default shutdown runs the handler."""
    run_protected([ATEXIT_CELL], work, shutdown_kernel="graceful", config=IN_PLACE)
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


def run_budget_test(stats: str, work: Path, *, seen: bool = True) -> tuple[dict, list]:
    """The set-up, ``stats`` (in exercise 5's cell), and its graded test (96 MB of blocks, an
    8 MiB budget). ``seen=False`` makes ``stats`` a cell the static read trusts, as if it hid
    its technique from it: only what the grader measures from outside is left."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (SETUP, stats, BUDGET_TEST)]
    nb.cells[1].metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "ex5_stats",
        "solution": seen,
        "locked": not seen,
    }
    nb.cells[2].metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "ex5_budget_test",
        "points": 1,
        "solution": False,
        "locked": True,
    }
    return execute_protected(nb, work), nb.cells[2].outputs


def test_memory_the_tracer_misses_is_seen_from_outside(work):
    """np.memmap holds all 96 MB where tracemalloc does not look: assert_peak_below passes
    in the kernel, the kernel's peak resident memory read from outside gives it away."""
    record, outputs = run_budget_test(MEMMAP_STATS, work, seen=False)
    over = [e for e in record["evidence"] if e["flag"] == "rss-over-budget"]
    assert over and over[0]["cell"] == "ex5_budget_test", record["evidence"]
    cell = record["cells"][2]
    assert cell["rss_peak_bytes"] - cell["rss_start_bytes"] > 90 * 10**6
    assert outputs[0]["ename"] == "IntegrityError"  # the test is distrusted: it scores 0


def test_a_technique_the_exercise_does_not_accept_fails_its_test_and_teaches(work):
    """np.memmap, read in the student's own cell: not accepted, so its exercise's test scores
    0 with what to do instead. It is not a flag, and what RSS showed is no evidence then."""
    record, outputs = run_budget_test(MEMMAP_STATS, work)
    assert record["status"] == "graded" and record["flags"] == [] and record["evidence"] == []
    assert [o["flag"] for o in record["observations"]] == ["untraced-memory"]
    error = next(o for o in outputs if o["output_type"] == "error")
    assert error["ename"] == "NotAccepted"
    text = " ".join(error["evalue"].split())
    assert "in ex5_stats: uses numpy.memmap" in text and "keep only running totals" in text
    assert "your other exercises are not affected" in text
    assert all(len(line) <= 80 for line in f"NotAccepted: {error['evalue']}".splitlines())
    assert record["cells"][2]["verdict"] == "failed"


FRAGMENTS_THEN_FREES = [
    "import numpy as np\nfrom autograder import checks\nchecks.start_tracing()",
    # Two million Python floats, dropped: glibc keeps the freed heap block and carves the
    # next large array out of it, so freeing that array gives no memory back to the OS.
    "junk = np.arange(2_000_000, dtype=float).tolist()\ndel junk",
    'grid = np.ones(8_000_000)\nchecks.track(grid, "grid")',
    "grid = None",
    'checks.assert_freed("grid", expected_nbytes=64_000_000)',
]


def graded(nb_cells: list[str], index: int) -> nbformat.NotebookNode:
    """Cell ``index`` is the graded test; the set-up and tracking cells are the instructor's."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in nb_cells]
    for number, locked in ((0, "setup"), (2, "track")):
        nb.cells[number].metadata["nbgrader"] = {
            "grade": False,
            "grade_id": locked,
            "solution": False,
            "locked": True,
        }
    nb.cells[index].metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "freed_test",
        "points": 1,
        "solution": False,
        "locked": True,
    }
    return nb


def test_resident_memory_that_stays_after_an_honest_free_flags_nothing(work):
    """Heap reuse keeps a freed array resident exactly as a hidden copy would: the grader
    records what it saw for the instructor, and neither flags nor distrusts the result."""
    nb = graded(FRAGMENTS_THEN_FREES, 4)
    record = execute_protected(nb, work)
    assert record["status"] == "graded" and record["evidence"] == [] and record["flags"] == []
    assert not any(output.get("output_type") == "error" for output in nb.cells[4].outputs)
    # Where the plot marks the array: tracked in cell 3, checked freed by the test in cell 5.
    assert record["tracked"] == [{"label": "grid", "created_cell": 3, "freed_cell": 5}]
    cells = record["cells"]
    fell = cells[2]["rss_bytes"] - min(cells[3]["rss_bytes"], cells[4]["rss_bytes"])
    if fell < 32 * 10**6:  # the allocator kept it: seen, and only recorded
        assert [o["flag"] for o in record["observations"]] == ["rss-not-freed"]
    else:
        assert record["observations"] == []


def test_resident_memory_stays_an_observation_beside_a_flag(work):
    """Beside other evidence (a static flag), what RSS showed stays an observation for the
    instructor (a flag must not depend on the allocator), and the student reads what to
    change, not figures."""
    cells = [*FRAGMENTS_THEN_FREES]
    cells[3] = "grid = None\nimport os\nos._exit  # named, never called: a static flag"
    nb = graded(cells, 4)
    record = execute_protected(nb, work)
    assert record["status"] == "flagged" and "exits-kernel" in record["flags"]
    assert "rss-not-freed" not in record["flags"]
    assert {o["flag"] for o in record["observations"]} <= {"rss-not-freed"}
    distrusted = nb.cells[4].outputs[0]
    assert distrusted["ename"] == "IntegrityError"
    assert "in cell 4, the notebook kills or stops the kernel" in distrusted["evalue"]
    assert "Remove that code" in distrusted["evalue"]
    assert not any(ch.isdigit() for ch in distrusted["evalue"].split("cell 4")[1])  # no figures
