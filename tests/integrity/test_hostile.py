"""The hostile examples: the static read and the inspection flag each one, its cheat really
works when nothing but the probe watches, and the probe flags exactly what it lists.

The kernel runs drive the real executor (:class:`ProtectedExecute`, through
``tests.conftest.execute_protected``) on each example's cells as they would run if nbgrader
restored nothing; the executor probes the kernel at start and before every test cell.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.demo.examples import load_examples
from autograder.grading import worker_forks
from autograder.integrity.evidence import FLAGS
from autograder.notebook_cells import grade_id, is_test
from tests.conftest import execute_protected
from tests.integrity.corpus import (
    BY_NAME,
    EXERCISES,
    HOSTILE,
    HOSTILE_EXAMPLES,
    LESSONS,
    PROBE_FLAGS,
    QUIZ,
    Hostile,
    instructor,
    mini_notebook,
    static_evidence,
)

KERNELS_AT_ONCE = 2  # the machine has two cores
# nbgrader's Execute.on_cell_executed: the traceback of an error it copies from the reply.
_HIDDEN_ERROR = "ERROR: An error occurred while showtraceback was disabled"


@dataclass
class Run:
    """A notebook run by ProtectedExecute: its run record and the executed notebook."""

    record: dict
    nb: nbformat.NotebookNode

    def outputs(self) -> dict[str, list]:
        """grade_id (or "cell N") -> the outputs of that code cell."""
        return {
            grade_id(cell) or f"cell {index + 1}": cell.outputs
            for index, cell in enumerate(self.nb.cells)
            if cell.cell_type == "code"
        }

    def errors(self, cell: str) -> list[str]:
        return [o.ename for o in self.outputs()[cell] if o.output_type == "error"]

    def passed_by_itself(self, cell: str) -> bool:
        """The test cell passed as its outputs show it (nbgrader's rule: no error output,
        nothing on stderr), leaving aside what the executor adds itself: the IntegrityError
        of a distrusted pass, and nbgrader's copy of an error the kernel did not display
        (a custom exception handler hides it from the outputs, not from the reply)."""
        return not any(
            (o.output_type == "error" and not _added_by_the_executor(o))
            or (o.output_type == "stream" and o.name == "stderr")
            for o in self.outputs()[cell]
        )

    def tests(self) -> list[str]:
        return [grade_id(cell) for cell in self.nb.cells if is_test(cell)]  # type: ignore[misc]

    def probe_evidence(self) -> list[dict[str, str]]:
        return [item for item in self.record["evidence"] if item["flag"] in PROBE_FLAGS]


def _added_by_the_executor(output: nbformat.NotebookNode) -> bool:
    return output.ename == "IntegrityError" or output.traceback == [_HIDDEN_ERROR]


def _run(work: Path, student: str, name: str, nb: nbformat.NotebookNode) -> Run:
    work.mkdir(parents=True)
    return Run(execute_protected(nb, work, student=student, notebook=name), nb)


def run_all(notebooks: dict[str, nbformat.NotebookNode], folder: Path) -> dict[str, Run]:
    """Execute every notebook with ProtectedExecute, each in a kernel and folder of its own
    (in worker processes: the executor's event loops stay out of pytest's process; forked
    from the fork server the grading workers come from, which imported nbgrader's API once)."""
    with ProcessPoolExecutor(KERNELS_AT_ONCE, mp_context=worker_forks.context()) as pool:
        futures = {
            name: pool.submit(_run, folder / f"n{index}" / "work", f"student{index}", name, nb)
            for index, (name, nb) in enumerate(notebooks.items())
        }
        return {name: future.result() for name, future in futures.items()}


# --------------------------------------------------------------------------------------
# The corpus, and what the grading process sees before anything runs
# --------------------------------------------------------------------------------------


def test_hostile_corpus_is_complete_and_well_formed() -> None:
    assert len(HOSTILE_EXAMPLES) >= 12
    for example in HOSTILE_EXAMPLES:
        assert example.name.startswith("cheat-")
        assert example.status in {"flagged", "kernel died"}
        assert example.flags and set(example.flags) <= set(FLAGS), example.name
        assert example.targets(example.notebooks[0]), (
            f"{example.name} names no test it must not pass"
        )
        for notebook in example.notebooks:
            ids = {grade_id(cell) for cell in instructor(notebook).cells}
            assert {*example.cells, *example.locked_cells, *example.deleted_cells} <= ids, (
                example.name
            )
    # The standard loader reads them too (it ignores the two extra keys).
    loaded = {example.name: example for example in load_examples(HOSTILE)}
    assert loaded.keys() == BY_NAME.keys()
    assert all(loaded[name].flags == BY_NAME[name].flags for name in loaded)


@pytest.mark.parametrize("example", HOSTILE_EXAMPLES, ids=lambda example: example.name)
def test_hostile_example_static_flags(example: Hostile) -> None:
    """The static read and the inspection find every flag the example lists, except the probe's."""
    found = {
        evidence.flag
        for notebook in example.notebooks
        for evidence in static_evidence(example, notebook)
    }
    assert found == set(example.flags) - PROBE_FLAGS


# --------------------------------------------------------------------------------------
# In a kernel, under the real executor
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every hostile example's cells, and the honest notebooks, each in its own kernel."""
    jobs = {
        example.name: mini_notebook(example, example.notebooks[0]) for example in HOSTILE_EXAMPLES
    }
    jobs["honest exercises"] = instructor(EXERCISES)
    jobs["honest quiz"] = instructor(QUIZ)
    return run_all(jobs, tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("example", HOSTILE_EXAMPLES, ids=lambda example: example.name)
def test_hostile_example_cheat_works_and_probe_flags(
    example: Hostile, kernel_runs: dict[str, Run]
) -> None:
    """(a) Without nbgrader's restore the cheat makes its target tests pass by themselves;
    the probe adds exactly the listed probe flags, and never at kernel start."""
    run = kernel_runs[example.name]
    if example.status == "kernel died":
        assert run.record["status"] == "kernel died", run.record["reason"]
        died = [cell for cell in run.outputs() if "KernelDied" in run.errors(cell)]
        assert died and died[0] in example.cells, died
        survivors = [cell for cell in run.tests() if "NotRun" not in run.errors(cell)]
        assert survivors and all(run.passed_by_itself(cell) for cell in survivors)
    else:
        assert run.record["status"] != "kernel died", run.record["reason"]
        targets = example.targets(example.notebooks[0]) & set(run.tests())
        assert targets, "the mini notebook runs none of the example's target tests"
        for cell in targets:
            assert run.passed_by_itself(cell), (
                f"the cheat does not gain {cell}: {run.outputs()[cell]}"
            )
    probe = run.probe_evidence()
    assert {item["flag"] for item in probe} == set(example.flags) & PROBE_FLAGS, probe
    assert all(item["cell"] != "start" for item in probe)


def test_probe_is_silent_on_honest_notebooks(kernel_runs: dict[str, Run]) -> None:
    """(b) The same executor, in kernels running only the instructor's solutions: no evidence."""
    for name in ("honest exercises", "honest quiz"):
        run = kernel_runs[name]
        assert run.record["status"] == "graded", run.record["reason"]
        assert run.record["evidence"] == [], run.record["evidence"]
        tests = run.tests()
        assert tests and all(run.passed_by_itself(cell) and not run.errors(cell) for cell in tests)


@pytest.mark.slow
def test_probe_is_silent_on_the_lessons(tmp_path: Path) -> None:
    """(b), wider: the lessons (matplotlib, a real uncaught error, np.memmap), each in a kernel
    with the probe. Every example submission (wrong answers, tracebacks, Out.clear(),
    %xdel...) is graded with the probe before each of its tests, hidden ones included, by
    tests/conftest.py's shared run, and tests/grading/test_grade.py asserts that none of
    them is flagged: running them again here would check nothing more.

    A lesson has no test cell, and the probe runs before test cells only: each gets one at
    its end, so that the probe looks at the kernel after all of the lesson's code ran."""
    lessons = {}
    for name in LESSONS:
        nb = instructor(name)
        last = nbformat.v4.new_code_cell("pass")
        last.metadata["nbgrader"] = {"grade": True, "grade_id": "after_the_lesson", "points": 0}
        nb.cells.append(last)
        lessons[name] = nb
    for name, run in run_all(lessons, tmp_path).items():
        assert run.record["status"] != "kernel died", name
        assert run.record["cells"][-1]["ran"], (name, run.record["reason"])
        assert run.probe_evidence() == [], (name, run.probe_evidence())
