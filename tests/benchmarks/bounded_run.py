"""A bounded grading run: the worst case is known before it starts, and holds.

Grades ``--students`` submissions with ``autograder grade`` (the instructor's solution, each
under its own student id), of which ``--hostile`` replace exercise 5 with a loop that ignores
SIGINT and SIGTERM (``tests/pipeline/timeouts/ignores-interrupts-in-ex5.toml``). Short limits keep it
to a couple of minutes. It prints the bound ``autograder grade`` computed before the run, then
each student's time, status and which limit ended their notebooks, then the bound against the
run's wall time, and the longest student against the per-student worst case.

Run it from the repository root:

    .venv/bin/python tests/benchmarks/bounded_run.py [--students 10] [--hostile 3]
        [--workers 2] [--cell 10] [--notebook 30] [--student 60] [--grace 5] [--keep]

Exit code 1 if the run took longer than its bound, or a hostile student was not stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from autograder.course import Course
from autograder.demo.examples import load_examples, write_submission
from autograder.grading.run import grade
from autograder.grading.table import format_table, points
from autograder.limits import NOTEBOOK_OVERHEAD, RUN_OVERHEAD, duration
from autograder.release import release
from tests.examples import EXAMPLES

REPO = Path(__file__).resolve().parents[2]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--hostile", type=int, default=3, help="how many send the loop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cell", type=int, default=10, help="seconds per cell")
    parser.add_argument("--notebook", type=int, default=30, help="seconds per notebook")
    parser.add_argument("--student", type=int, default=60, help="seconds per student")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to answer an interrupt")
    parser.add_argument("--keep", action="store_true", help="keep the course folder")
    return parser.parse_args()


def _submit(course: Course, students: int, hostile: int) -> None:
    """The instructor's solution under every id; the hostile ones spread among the rest."""
    honest = next(e for e in load_examples(EXAMPLES / "submissions") if e.name == "passes-all")
    spins = next(
        e
        for e in load_examples(REPO / "tests" / "pipeline" / "timeouts")
        if e.name.startswith("ignores")
    )
    every = max(1, students // max(1, hostile))
    made = 0
    for index in range(students):
        bad = made < hostile and index % every == every - 1
        made += bad
        base = spins if bad else honest
        name = f"{index + 1:02d}-{'spins' if bad else 'honest'}"
        write_submission(dataclasses.replace(base, name=name, notebooks=()), course)


def _rows(run) -> list[list[str]]:
    rows = []
    for student in [s.to_json() for s in run.students]:
        graded = [n for n in student["notebooks"] if n["cells"]]
        rows.append(
            [
                student["student"],
                f"{student['seconds']:.1f} s",
                ", ".join(sorted({n["status"] for n in graded})),
                ", ".join(n["ended_by"] for n in graded if n["ended_by"]) or "-",
                f"{points(student['score'])}/{points(student['max_score'])}",
            ]
        )
    return rows


def main() -> int:
    args = _arguments()
    folder = Path(tempfile.mkdtemp(prefix="bounded-run-"))
    try:
        shutil.copytree(REPO / "source", folder / "source")
        shutil.copy2(REPO / "nbgrader_config.py", folder)
        course = Course(folder)
        release(course)
        _submit(course, args.students, args.hostile)
        print(
            f"{args.students} students ({args.hostile} send a loop that ignores the interrupt), "
            f"{args.workers} workers.",
            flush=True,
        )
        started = time.monotonic()
        run = grade(
            course,
            workers=args.workers,
            cell_timeout=args.cell,
            notebook_timeout=args.notebook,
            student_timeout=args.student,
            interrupt_grace=args.grace,
            plots=False,
            announce=lambda line: print(line, flush=True),
        )
        wall = time.monotonic() - started
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return _report(run, wall, args)


def _report(run, wall: float, args: argparse.Namespace) -> int:
    print()
    print(format_table(["student", "ran", "status", "ended by", "score"], _rows(run)))
    per_student = run.limits.student_worst_case(2)
    longest = max([s.to_json() for s in run.students], key=lambda s: s["seconds"])
    print(
        f"\nBound, computed before the run: {run.worst_case_seconds:.0f} s "
        f"({duration(run.worst_case_seconds)}). Wall time: {wall:.1f} s "
        f"({wall / run.worst_case_seconds:.0%} of the bound)."
    )
    print(
        f"Longest student: {longest['student']}, {longest['seconds']:.1f} s of notebooks, "
        f"against a worst case of {per_student:.0f} s a student "
        f"(limits: {args.cell} s a cell, {args.notebook} s a notebook, {args.student} s a "
        f"student, {args.grace:g} s grace)."
    )
    # What the bound allows for time outside the notebooks' own runs, against what it took.
    rounds = math.ceil(len(run.students) / args.workers)
    allowance = RUN_OVERHEAD + rounds * 2 * NOTEBOOK_OVERHEAD
    outside = wall - sum(s["seconds"] for s in [s.to_json() for s in run.students]) / args.workers
    print(
        f"Outside the notebooks' own runs (start-up, nbgrader's steps around each notebook): "
        f"about {outside:.0f} s, against {allowance:.0f} s the bound allows for it."
    )
    stopped = all(
        any(n["ended_by"] == "cell" for n in s["notebooks"])
        for s in [s.to_json() for s in run.students]
        if s["student"].endswith("spins")
    )
    if not stopped:
        print("A hostile student was not stopped by the cell limit.", file=sys.stderr)
    return 0 if wall <= run.worst_case_seconds and stopped else 1


if __name__ == "__main__":
    sys.exit(main())
