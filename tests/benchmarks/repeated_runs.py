"""What a grading run costs before its students: several small runs in one process.

A run of one or two students (a platform's job, a re-run after a fix, most of the test suite's
runs) pays for its workers' start-up in full. The workers are forked from multiprocessing's
fork server, which imports nbgrader's API once per process
(:data:`autograder.grading.worker_forks.PRELOAD`); ``--spawn`` starts them as they were
started before, each a fresh interpreter that imports everything itself, for the ratio.

Grades the same ``--students`` quiz-only students (2 by default) ``--runs`` times on
``--workers`` workers, in this process, and prints each run's wall time and the CPU every
process on the machine used meanwhile (``/proc/stat``: the workers are not this process's
children, so its own rusage would miss them). With ``--command``, each run is a fresh
``python -m autograder grade --force`` instead, as an instructor or a platform's job runs it
(it starts its workers' fork server before its own imports; ``--spawn`` does not apply).
Run it on an idle machine, from the repository root:
``.venv/bin/python tests/benchmarks/repeated_runs.py [--spawn | --command]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from autograder.grading import workers  # noqa: E402
from autograder.grading.run import grade  # noqa: E402
from tests.benchmarks.cpu_time import busy_cpu_seconds  # noqa: E402
from tests.benchmarks.grading_throughput import (  # noqa: E402
    cohort,
    new_course,
    submit,
)

QUIZ = "02_quiz_what_del_frees"


def _spawned_slot() -> ProcessPoolExecutor:
    """A worker as the pool made them before the fork server: spawned, importing everything."""
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=workers._worker_start,
        initargs=(dict(os.environ),),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--spawn", action="store_true", help="spawn each worker (the old way)")
    parser.add_argument("--command", action="store_true", help="each run a fresh command")
    args = parser.parse_args()
    if args.spawn:
        workers._worker_slot = _spawned_slot
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        course = new_course(root / "course", protected=True)
        quiz_takers = [(s, e) for s, e in cohort(40) if e.name.startswith("fails-quiz")]
        students = quiz_takers[: args.students]
        submit(course, students, [QUIZ])
        how = "spawned" if args.spawn else "forked from the fork server"
        what = "`autograder grade` command" if args.command else f"run (workers {how})"
        print(f"| {what} | wall s | machine CPU s | scores |")
        print("| --- | --- | --- | --- |")
        for number in range(1, args.runs + 1):
            cpu, started = busy_cpu_seconds(), time.monotonic()
            if args.command:
                scores = _command(course.root, args.workers, root / f"report-{number}")
            else:
                run = grade(
                    course,
                    workers=args.workers,
                    force=True,
                    students=[student for student, _ in students],
                    progress=False,
                    plots=False,
                    report_dir=root / f"report-{number}",
                )
                scores = ", ".join(f"{s.score:g}" for s in run.students)
            wall, used = time.monotonic() - started, busy_cpu_seconds() - cpu
            print(f"| {number} | {wall:.2f} | {used:.2f} | {scores} |", flush=True)


def _command(course: Path, workers: int, report: Path) -> str:
    """One `autograder grade --force` as a command (with its plots); the scores it reported."""
    command = [sys.executable, "-m", "autograder", "--course-dir", str(course), "grade"]
    options = ["--force", "--quiet", "--workers", str(workers), "--report", str(report)]
    done = subprocess.run([*command, *options], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"autograder grade failed ({done.returncode}):\n{done.stderr[-2000:]}")
    students = json.loads((report / "report.json").read_text())["students"]
    return ", ".join(f"{student['score']:g}" for student in students)


if __name__ == "__main__":
    main()
