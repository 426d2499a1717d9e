"""Where a submission's CPU goes: kernel start, execution, protections, nbgrader's steps, the rest.

CPU time, which another job on the machine changes far less than wall time. On
``--submissions`` students of the example cohort (graded notebooks only), after one warm-up
student:

1. One grading worker in this process (``autograde_student``, what a pool worker runs),
   measured from inside:

   - *kernel start*: the kernel process's CPU (with its children) when it is ready, plus
     the fork server's own CPU shared out over the kernels it forked;
   - *notebook execution*: the kernel's CPU from ready to its last cell, less the probes;
   - *probes, in the kernel*: the kernel's CPU while it answered the integrity probes;
   - *the grader's side of the run*: this process's CPU in ``ProtectedExecute`` (nbclient,
     the probes' messages, the static read, memory read after every cell, the run record);
   - *nbgrader's steps*: this process's other CPU in ``autograde_student`` (sanitizing,
     the gradebook, writing the graded notebook), with the costliest steps named.

2. The same students graded by ``autograder grade --workers 1 --force`` as a command: the
   CPU of it and everything it started, per submission. *The rest* is that minus the parts
   above: the command's start-up and its worker's, staging, the report and the plots.

Run it from the repository root: ``.venv/bin/python tests/benchmarks/submission_cpu.py
[--submissions 8]``. Markdown to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # after PYTHONPATH: the package measured may be another copy

from autograder.course import Course, tool_environment  # noqa: E402
from autograder.grading import workers  # noqa: E402
from autograder.pipeline.protected_execute import ProtectedExecute  # noqa: E402
from tests.benchmarks.cpu_time import CpuWatch, adopt_orphans, run_counted  # noqa: E402
from tests.benchmarks.grading_throughput import (  # noqa: E402
    cohort,
    new_course,
    notebook_names,
    say,
    submit,
)


def kernel_cpu(pid: int | None) -> float:
    """CPU seconds of the kernel process so far, with the children it reaped."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class Parts:
    """CPU seconds, summed over the measured students."""

    kernel_start: float = 0.0
    execution: float = 0.0
    probes: float = 0.0
    grader_run: float = 0.0
    worker: float = 0.0  # all of autograde_student in this process
    server: float = 0.0  # the fork servers' own CPU, its imports included, shared out per kernel
    kernels: int = 0
    all_kernels: int = 0  # the warm-up's included
    steps: Counter[str] = field(default_factory=Counter)


class Instruments:
    """Wraps ProtectedExecute's methods and nbconvert's preprocessors to time them."""

    def __init__(self) -> None:
        self.parts = Parts()
        self.on = False

    def install(self) -> None:
        import nbconvert.preprocessors.base as base

        instruments = self

        run_cells, probe, preprocess = (
            ProtectedExecute._run_cells,
            ProtectedExecute._probe,
            ProtectedExecute.preprocess,
        )
        call = base.Preprocessor.__call__

        @functools.wraps(run_cells)
        def timed_run_cells(self: Any, *args: Any, **kwargs: Any) -> Any:
            pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
            ready = kernel_cpu(pid)
            probes_before = instruments.parts.probes
            try:
                return run_cells(self, *args, **kwargs)
            finally:
                instruments.parts.all_kernels += 1
                if instruments.on:
                    probes = instruments.parts.probes - probes_before
                    instruments.parts.kernel_start += ready
                    instruments.parts.execution += kernel_cpu(pid) - ready - probes
                    instruments.parts.kernels += 1

        @functools.wraps(probe)
        def timed_probe(self: Any, *args: Any, **kwargs: Any) -> Any:
            pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
            before = kernel_cpu(pid)
            try:
                return probe(self, *args, **kwargs)
            finally:
                if instruments.on:
                    instruments.parts.probes += kernel_cpu(pid) - before

        @functools.wraps(preprocess)
        def timed_preprocess(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return preprocess(self, *args, **kwargs)
            finally:
                if instruments.on:
                    instruments.parts.grader_run += time.process_time() - started

        @functools.wraps(call)
        def timed_call(self: Any, nb: Any, resources: Any) -> Any:
            started = time.process_time()
            try:
                return call(self, nb, resources)
            finally:
                if instruments.on and not isinstance(self, ProtectedExecute):
                    instruments.parts.steps[type(self).__name__] += time.process_time() - started

        ProtectedExecute._run_cells = timed_run_cells  # type: ignore[method-assign]
        ProtectedExecute._probe = timed_probe  # type: ignore[method-assign]
        ProtectedExecute.preprocess = timed_preprocess  # type: ignore[method-assign]
        base.Preprocessor.__call__ = timed_call  # type: ignore[method-assign]


def server_cpu() -> float:
    """The fork servers' own CPU (not their kernels'), where there are any."""
    try:
        from autograder.sandbox import forked
    except ImportError:  # a version without the fork server
        return 0.0
    total = 0.0
    for server in [*forked._servers.values(), *getattr(forked, "_retired", [])]:
        try:
            times = psutil.Process(server.process.pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def in_worker(course: Course, students: list[str]) -> Parts:
    """Grade ``students`` (after one warm-up) the way a pool worker does, in this process."""
    instruments = Instruments()
    instruments.install()
    report_dir = course.report_dir
    overrides = workers.overrides_for(course, report_dir, None, {})
    overrides["CourseDirectory"]["submitted_directory"] = "submitted"
    workers.decide_protection(course, overrides, None)
    warm_up, *measured = students
    workers.autograde_student(str(course.root), course.assignment, warm_up, overrides)
    instruments.on = True
    for student in measured:
        started = time.process_time()
        log = workers.autograde_student(str(course.root), course.assignment, student, overrides)
        instruments.parts.worker += time.process_time() - started
        if log:
            raise RuntimeError(f"{student} was not graded:\n{log}")
    instruments.on = False
    parts = instruments.parts
    parts.server = server_cpu() * parts.kernels / max(parts.all_kernels, 1)
    return parts


def whole_command(course: Course, students: int) -> tuple[float, float]:
    """CPU seconds per submission of ``autograder grade --workers 1 --force`` with
    everything it started, and the other processes' share of the machine meanwhile."""
    command = [sys.executable, "-m", "autograder", "--course-dir", str(course.root), "grade"]
    command += ["--workers", "1", "--force", "--quiet"]
    with CpuWatch() as watch:
        done, _, cpu = run_counted(
            command, cwd=course.root, env=tool_environment(), capture_output=True
        )
    if done.returncode != 0:
        raise RuntimeError(done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:])
    others = watch.others
    return cpu / students, others


def table(parts: Parts, students: int, command_cpu: float) -> list[str]:
    share = parts.server / max(parts.kernels, 1)  # the server's imports, shared out
    start = (parts.kernel_start + parts.server) / students
    rows = [
        ("kernel start (kernel process until ready; the fork server's share)", start),
        (
            "notebook execution (the kernel, ready to last cell, less the probes)",
            parts.execution / students,
        ),
        ("protections in the kernel: the integrity probes", parts.probes / students),
        (
            "the grader's side of the run: ProtectedExecute (nbclient, probes' messages, "
            "static read, memory read after each cell, run record)",
            parts.grader_run / students,
        ),
        (
            "nbgrader's steps (sanitizing, gradebook, writing the graded notebook)",
            (parts.worker - parts.grader_run) / students,
        ),
    ]
    measured = sum(value for _, value in rows)
    rows.append(
        (
            "the rest: the command's and the worker's start-up, staging, the report and "
            "the plots (by difference with the whole command)",
            command_cpu - measured,
        )
    )
    lines = ["| where | CPU s per submission | share |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value:.2f} | {value / command_cpu:.0%} |" for name, value in rows]
    lines.append(f"| **whole `autograder grade --workers 1`** | **{command_cpu:.2f}** | 100% |")
    top = ", ".join(f"{name} {cpu / students:.3f}" for name, cpu in parts.steps.most_common(6))
    return [
        *lines,
        "",
        f"- Kernels measured: {parts.kernels} ({parts.kernels / students:g} per submission); "
        f"the fork server's own CPU (its imports included): {share:.3f} s per kernel.",
        f"- nbgrader's costliest steps, CPU s per submission: {top}.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=8, help="measured students (8)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary course")
    args = parser.parse_args(argv)
    adopt_orphans()  # the command's workers come from a fork server that outlives it
    _every, graded = notebook_names()
    workdir = Path(tempfile.mkdtemp(prefix="submission-cpu-", dir="/var/tmp"))
    load = os.getloadavg()[0]
    try:
        course = new_course(workdir / "course", protected=True)
        students = cohort(args.submissions + 1)
        submit(course, students, graded)
        say(f"[cpu] one worker in this process, {args.submissions} students after a warm-up ...")
        parts = in_worker(course, [name for name, _ in students])
        say("[cpu] the whole command on the same students ...")
        command_cpu, others = whole_command(course, len(students))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    import autograder

    print("## Where a submission's CPU goes")
    print()
    print(
        f"- `{Path(sys.argv[0]).name} --submissions {args.submissions}`; package at "
        f"{Path(autograder.__file__).parent}; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; other processes used {others:.0%} of the machine "
        "during the whole command"
    )
    print()
    print("\n".join(table(parts, args.submissions, command_cpu)))
    print()
    print(json.dumps({"parts": parts.__dict__ | {"steps": dict(parts.steps)}}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
