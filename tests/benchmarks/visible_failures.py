"""How many wrong solutions a student sees fail before submitting.

Each wrong solution (``tests/grading/alternatives/fails-*`` and the bundled ``fails-*``
examples) is put into the notebook a student has: the released notebook (visible tests
only), with the instructor's solution in every other exercise. nbgrader's own Validate
(``nbgrader.validator.Validator``, what the JupyterLab button runs) then executes it. A
wrong solution is *seen* when a visible test of an exercise it loses points in fails.
Prints one line per solution and the share seen, for the memory exercises and for the
quiz (whose answers a visible test cannot check without giving them away).

    .venv/bin/python tests/benchmarks/visible_failures.py [--tool check] [--code DIR] [--workers 2]

``--tool check``: ``autograder check`` instead of Validate: the same visible tests, run the
way grading runs them (static read included, so it also fails a technique the exercise does
not accept, such as np.memmap, which no test inside the kernel can see).

``--code DIR``: another checkout (``git archive REV | tar -x -C DIR``) whose notebooks
(``release/``, ``source/``) and checks (its ``autograder`` package, put first on the
kernels' path) are measured, with this checkout's examples: the figure before a change.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from autograder.demo import EXAMPLE_FOLDERS  # noqa: E402
from autograder.demo.examples import Example, load_examples  # noqa: E402

ASSIGNMENT = "numpy_memory"
ALTERNATIVES = REPO / "tests" / "grading" / "alternatives"
_SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def students_notebook(code: Path, notebook: str, edits: dict[str, str]) -> nbformat.NotebookNode:
    """The released notebook, with the instructor's solutions (markers removed) in the
    cells the example does not edit, and the example's own cells where it does."""
    released = nbformat.read(code / "release" / ASSIGNMENT / f"{notebook}.ipynb", as_version=4)
    source = nbformat.read(code / "source" / ASSIGNMENT / f"{notebook}.ipynb", as_version=4)
    solutions = {
        _grade_id(cell): cell.source
        for cell in source.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    for cell in released.cells:
        name = _grade_id(cell)
        if name in edits:
            cell.source = edits[name]
        elif name in solutions:
            lines = solutions[name].splitlines()
            cell.source = "\n".join(line for line in lines if line.strip() not in _SOLUTION_MARKERS)
    return released


def failed_tests(code: Path, example: Example, tool: str = "validate") -> list[str]:
    """The grade_ids of the visible tests that nbgrader's Validate (or ``autograder check``)
    reports as failed."""
    from nbgrader.validator import Validator
    from traitlets.config import Config

    from autograder.student.check import check_notebook

    failed: list[str] = []
    notebooks = example.notebooks or tuple(
        path.stem for path in sorted((code / "release" / ASSIGNMENT).glob("*.ipynb"))
    )
    for notebook in notebooks:
        nb = students_notebook(code, notebook, example.cells)
        sources = {cell.source.strip(): _grade_id(cell) for cell in nb.cells if _grade_id(cell)}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{notebook}.ipynb"
            nbformat.write(nb, path)
            if tool == "check":
                checked = check_notebook(path)
                failed += [m.split(":")[0] for r in checked.exercises for m in r.messages]
                continue
            # Stock Validate, with patience for a loaded machine: nbgrader's Execute gives up
            # after 4 s without output (Execute.iopub_timeout), as a student's idle one would not.
            config = Config({"Execute": {"iopub_timeout": 60, "timeout": 300}})
            results = Validator(config=config, ignore_checksums=True).validate(str(path))
        failed += [sources.get(cell["source"], "?") for cell in results.get("failed", [])]
    return failed


def _exercise(grade_id: str) -> str:
    prefix = grade_id.split("_", 1)[0]
    return "quiz" if prefix.startswith("q") and prefix[1:].isdigit() else prefix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=REPO)
    parser.add_argument("--tool", choices=("validate", "check"), default="validate")
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    code = options.code.resolve()
    if code != REPO and options.tool == "check":
        parser.error("--tool check runs this checkout's grader: measure another with Validate")
    if code != REPO:  # the kernels import that checkout's checks
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(code), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    examples = [
        example
        for folder in (ALTERNATIVES, EXAMPLE_FOLDERS[0])
        for example in load_examples(folder)
        if example.name.startswith("fails-")
    ]
    with ProcessPoolExecutor(options.workers) as pool:
        count = len(examples)
        results = list(pool.map(failed_tests, [code] * count, examples, [options.tool] * count))
    seen = {"exercises": [0, 0], "quiz": [0, 0]}
    print(f"Visible tests run by {options.tool}, on the notebooks and checks of {code}")
    print(f"{'wrong solution':<48} {'loses points in':<16} visible tests that fail")
    for example, failed in zip(examples, results, strict=True):
        losing = {_exercise(cell) for cell in example.expected}
        caught = [cell for cell in failed if _exercise(cell) in losing]
        group = seen["quiz" if losing == {"quiz"} else "exercises"]
        group[0] += bool(caught)
        group[1] += 1
        print(f"{example.name:<48} {', '.join(sorted(losing)):<16} {', '.join(caught) or '-'}")
    print()
    for group, (hits, total) in seen.items():
        share = f"{hits / total:.0%}" if total else "-"
        print(f"{group}: {hits} of {total} wrong solutions fail a visible test ({share})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
