"""Ctrl-C in the middle of a grading run, on the local pool and on a Dask LocalCluster.

Grades ``--students`` bundled example submissions with ``autograder grade`` started as a
terminal starts it (a process group of its own, SIGINT's default disposition), sends SIGINT
to that process group once ``--after`` students are recorded, and prints what the command
printed, how long it took to exit, how long until no process of the run was left (its
workers, its kernels, anything of its sandbox's uids), and what the same command, run again,
did: how many students it kept and how many it graded, and the gradebook's submissions per
student.

Run it from the repository root (a few minutes):

    .venv/bin/python tests/benchmarks/ctrl_c.py [--students 8] [--after 1] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the tests' helpers

from autograder.course import Course  # noqa: E402
from autograder.demo import EXAMPLES  # noqa: E402
from autograder.demo.examples import load_examples, write_submission  # noqa: E402
from autograder.release import release  # noqa: E402
from tests.conftest import copy_course  # noqa: E402
from tests.grading import stopped_run  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--after", type=int, default=1, help="students recorded before Ctrl-C")
    parser.add_argument("--keep", action="store_true", help="keep the course folders")
    return parser.parse_args()


def _stop_and_resume(course: Course, where: list[str], after: int, folder: Path) -> None:
    students = sorted(p.name for p in course.submitted.iterdir())
    options = [*where, "--cell-timeout", "5", "--quiet"]
    run = stopped_run.Run(course, folder / "report", stopped_run.own_sandbox(course), options)
    process = run.start()
    started = time.monotonic()
    run.wait_until_recorded(process, after)
    stopped = run.stop(process, signal.SIGINT)  # once a kernel runs
    kernels = sum("ipykernel" in p for p in stopped.running_before)
    print(
        f"\n`autograder grade {' '.join(options)}`, {len(students)} students; Ctrl-C "
        f"{time.monotonic() - started - stopped.seconds_to_none_left:.0f} s in, "
        f"{len(stopped.recorded_before)} recorded, {len(stopped.running_before)} processes "
        f"of the run running ({kernels} kernels)."
    )
    print(f"It printed:\n  {stopped.output.rstrip().splitlines()[-1]}")
    print(
        f"Exit status {stopped.returncode}, {stopped.seconds_to_exit:.1f} s after Ctrl-C; "
        f"no process of the run left after {stopped.seconds_to_none_left:.1f} s; "
        f"left: {stopped.left or 'none'}."
    )
    command = [sys.executable, "-m", "autograder", "--course-dir", str(course.root), "grade"]
    again = subprocess.run(
        [*command, "--report", str(run.report), *options],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    counts = stopped_run.submissions(course)
    print(
        f"The same command again: exit status {again.returncode}; "
        f"{again.stdout.strip().splitlines()[-1]}"
    )
    print(
        f"Recorded by the stopped run: {len(stopped.recorded_after)}; submissions per student "
        f"in the gradebook: {sorted(set(counts.get(s, 0) for s in students))} "
        f"({len(counts)} students)."
    )


def main() -> int:
    arguments = _arguments()
    folder = Path(tempfile.mkdtemp(prefix="autograder-ctrl-c-"))
    try:
        course = Course(copy_course(folder / "course"))
        release(course)
        for example in load_examples(EXAMPLES / "submissions")[: arguments.students]:
            write_submission(example, course)
        for name, where in (("pool", ["--workers", "2"]), ("cluster", ["--scheduler", "local:2"])):
            copy = stopped_run.copy_course(
                course, folder / name / "course", sorted(p.name for p in course.submitted.iterdir())
            )
            _stop_and_resume(copy, where, arguments.after, folder / name)
    finally:
        if arguments.keep:
            print(f"\nKept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
