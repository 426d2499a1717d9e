"""Grading throughput, its floor, its growth and the cost of the protections, for the README.

What it measures, on submissions built from the example TOMLs in ``tests/examples/submissions/``
(cycled, with distinct student ids, until there are ``--submissions`` of them):

1. Throughput, four rows on the same submissions, each command run from its course root:

   - stock ``nbgrader autograde --force`` (plain nbgrader: a course whose
     ``nbgrader_config.py`` sets only the root and the gradebook);
   - ``autograder grade --workers W --force`` (the local pool; protected: sandboxed kernels,
     integrity probes, memory read from outside);
   - ``autograder grade --scheduler local:W --force`` (a Dask LocalCluster; skip it with
     ``--no-cluster``; it needs the ``distributed`` package, which the test extra installs),
     on the same course right after the local pool;
   - the floor: the notebooks our grader executed (``autograded/<student>/<assignment>/``,
     those with graded cells), outputs cleared, executed by bare nbclient from their folder
     with ``allow_errors=True``, one after another, a fresh plain ``python3`` kernel each (no
     sandbox, no probes, no nbgrader), started and stopped promptly (ready as soon as it
     answers, killed after the last cell); the summed time divided by the machine's cores;
   - the limit (the older, looser row): the same with nbclient's defaults (IOPub silence
     at start, a graceful shutdown).

   Columns: seconds, s/submission, submissions/min, x faster than stock, x the floor's time
   and the other load. Beside them, the goals with "met"/"not met" computed from the figures:
   at least 4x stock's throughput on 2 cores with every protection on (every notebook run at
   the run's sandbox level, ``full`` as root) and every score equal to stock's, within 1.2x
   of the floor, the Dask run within 10% of the local pool. Two comparisons:

   - "graded notebooks only": every submission holds the quiz and the exercises (the two
     notebooks with graded cells). Every grader executes the same notebooks: apples to apples.
   - "full submission": every submission also holds the lesson, which has no graded cells.
     Stock nbgrader executes it; ``autograder grade`` does not (nothing to grade).

   Each grader gets a fresh course directory (released once with ``autograder.release``).
   The timings include start-up; ours also write their report and plots. Afterwards the
   local pool's and the Dask run's gradebooks are each compared with stock's, score by score.

2. Growth (``--growth 24,96,384``; default none): cohorts of those sizes graded with the local
   pool and on Dask, each in a fresh course: s/submission must stay flat (the largest cohort
   within 15% of the smallest). Stock nbgrader is not run for these (far too long).

3. What travels per Dask task: (Dask seconds - pool seconds) / submissions, the course bundle
   sent once per worker (``CourseBundle.of``), a task's payload (the student's staged files,
   and the pickled ``StudentTask``) and its pickled result.

4. ``autograder check`` of one student's two graded notebooks (the instructor's solutions
   typed into the released notebooks), ``--check-runs`` times from a fresh process each: wall
   time, and CPU time of the command with everything it started (fork server, kernels). The
   goal: under 3 s on an idle machine, with the verdicts grading gives (every test passed).

5. Cost of the protections: one notebook at a time, the protected execution
   (``ProtectedExecute``'s own timing from its run record, kernel start to shutdown, while
   ``autograder grade --workers 1`` grades single-notebook submissions of the instructor's
   solution) against executing the same instructor notebook bare with nbclient (fresh
   kernel each run, no sandbox, no probes, no nbgrader), median of ``--overhead-runs``.
   A second bare run starts and stops its kernel as ``ProtectedExecute`` does (no wait for
   IOPub silence, a kill at the end), which isolates the cost of the protections alone.

Run it from the repository root on an idle machine (about 15 minutes with the defaults on
2 cores, much longer with ``--growth``; the report's *other load* column shows how much CPU
other processes took meanwhile):

    .venv/bin/python tests/benchmarks/grading_throughput.py [--submissions 24] [--workers 2]
        [--repeat 1] [--overhead-runs 5] [--check-runs 5] [--growth 24,96,384]
        [--scheduler local:2 | --no-cluster] [--graded-only] [--keep]

A quick smoke run: ``--submissions 4 --overhead-runs 1 --growth 4,8``.

The report (Markdown) goes to stdout, progress to stderr. Exit code 1 when one of our runs
disagrees with stock nbgrader on a score, 2 when a grader fails (the end of its log is printed)
or a measurement cannot be made.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import pickle
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

from autograder.course import Course, tool_environment
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.gradebook import cell_scores
from autograder.grading.run import grade
from autograder.release import release
from autograder.sandbox import PromptKernelClient
from autograder.sandbox.policy import THREAD_VARS
from tests.benchmarks.cpu_time import CORES, CpuWatch, adopt_orphans, run_counted
from tests.examples import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = EXAMPLES / "submissions"
SOURCE = Course(REPO).source
BROKEN_STATUSES = ("ungradable", "kernel died", "timed out", "over memory")
LOG_TAIL = 30
BUSY_WARNING = 0.10  # other processes' share of the machine's CPU that makes figures doubtful

STOCK_CONFIG = """\
# Stock nbgrader: nothing but where the course and its gradebook are.
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
"""


class BenchmarkError(RuntimeError):
    """A grader failed or a measurement could not be made: the message says why."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- other load on the machine ------------------------------------------------------------------


# -- the assignment and the submissions ---------------------------------------------------------


def notebook_names() -> tuple[list[str], list[str]]:
    """(every notebook of the assignment, the ones with graded cells), by name, sorted."""
    every, graded = [], []
    for path in sorted(SOURCE.glob("*.ipynb")):
        every.append(path.stem)
        if has_graded_cells(nbformat.read(path, as_version=4)):
            graded.append(path.stem)
    return every, graded


def cohort(size: int) -> list[tuple[str, Example]]:
    """``size`` (student id, example) pairs, cycling through the examples in name order."""
    examples = load_examples(EXAMPLES)
    if not examples:
        raise BenchmarkError(f"No example submissions in {EXAMPLES}.")
    return [
        (f"s{number:02d}-{example.name}", example)
        for number, example in zip(range(1, size + 1), itertools.cycle(examples))
    ]


def submit(course: Course, students: list[tuple[str, Example]], notebooks: Sequence[str]) -> None:
    """Every student submits exactly ``notebooks``: the example's edits where it has them,
    its base notebooks (the instructor's or the release) unchanged elsewhere."""
    for student, example in students:
        write_submission(replace(example, name=student, notebooks=tuple(notebooks)), course)


def new_course(root: Path, *, protected: bool) -> Course:
    """A released course in ``root``: this repository's config (protected) or a stock one."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "source", root / "source")
    course = Course(root)
    if protected:
        shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    else:
        config = STOCK_CONFIG.format(root=str(root), db_url=course.db_url)
        (root / "nbgrader_config.py").write_text(config)
    release(course)
    return course


# -- running the graders ------------------------------------------------------------------------


def run_command(command: list[str], cwd: Path, what: str) -> CpuWatch:
    """Run ``command`` from ``cwd``; its timing, or BenchmarkError with the end of its log."""
    with CpuWatch() as watch:
        done = subprocess.run(
            command, cwd=cwd, env=tool_environment(), capture_output=True, text=True, check=False
        )
    log = done.stdout + done.stderr
    if done.returncode != 0 or "[ERROR]" in log or "| ERROR]" in log:
        tail = "\n".join(log.strip().splitlines()[-LOG_TAIL:])
        raise BenchmarkError(
            f"{what} failed (exit code {done.returncode}): {' '.join(command)}\n"
            f"--- last {LOG_TAIL} lines of its log ---\n{tail}"
        )
    return watch


def run_ours(course: Course, workers: int, scheduler: str | None = None) -> CpuWatch:
    command = [sys.executable, "-m", "autograder", "--course-dir", str(course.root), "grade"]
    command += ["--workers", str(workers), "--force", "--quiet"]
    if scheduler:
        command += ["--scheduler", scheduler]
    return run_command(command, course.root, "autograder grade")


def run_stock(course: Course) -> CpuWatch:
    command = [sys.executable, "-m", "nbgrader", "autograde", course.assignment, "--force"]
    return run_command(command, course.root, "stock nbgrader autograde")


def our_flags(report_dir: Path) -> list[str]:
    """Students our grader flagged (a note for the lead); BenchmarkError when it could not
    grade a notebook at all (then the timing means nothing)."""
    report = json.loads((report_dir / "report.json").read_text())
    broken, flagged = [], []
    for student in report["students"]:
        for notebook in student["notebooks"]:
            where = f"{student['student']} / {notebook['notebook']}"
            if notebook["status"] in BROKEN_STATUSES:
                broken.append(f"{where}: {notebook['status']}: {notebook['reason']}")
            elif notebook["flags"]:
                details = list(dict.fromkeys(e.get("detail", "") for e in notebook["evidence"]))
                more = f" (+{len(details) - 1} other details)" if len(details) > 1 else ""
                flagged.append(
                    f"{where}: {', '.join(notebook['flags'])}, {len(notebook['evidence'])} "
                    f"pieces of evidence: {details[0][:300]}{more}"
                )
    if broken:
        raise BenchmarkError("autograder grade could not grade:\n  " + "\n  ".join(broken))
    return flagged


def unprotected(report_dir: Path) -> list[str]:
    """Notebooks our grader ran below every protection this machine allows: another level
    than the run's (``full`` as root), or a kernel not forked (started by exec: the same
    sandbox, but the slower start). Notebooks without graded cells are not executed: skipped.
    A version of the package that does not record ``kernel_start`` passes on that count."""
    report = json.loads((report_dir / "report.json").read_text())
    wanted = "full" if os.geteuid() == 0 else report["sandbox"]["level"]
    found = []
    for student in report["students"]:
        for notebook in student["notebooks"]:
            if not notebook["max_score"]:
                continue
            level, start = notebook.get("sandbox_level"), notebook.get("kernel_start", "")
            if level != wanted or start not in ("forked", ""):
                found.append(f"{student['student']} / {notebook['notebook']}: {level}, {start}")
    return found


# -- scores -------------------------------------------------------------------------------------

Scores = dict[str, dict[str, float]]  # student -> "notebook/grade_id" -> score


def read_scores(course: Course, students: list[str], notebooks: Sequence[str]) -> Scores:
    scores: Scores = {}
    for student in students:
        cells = cell_scores(course.db_url, course.assignment, student)
        if not cells:
            raise BenchmarkError(f"No grades recorded for {student} in {course.gradebook}.")
        scores[student] = {
            f"{c.notebook}/{c.cell}": c.score for c in cells if c.notebook in notebooks
        }
    return scores


def max_scores() -> dict[str, float]:
    """ "notebook/grade_id" -> points, from the instructor's notebooks."""
    points = {}
    for path in sorted(SOURCE.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                points[f"{path.stem}/{meta['grade_id']}"] = float(meta["points"])
    return points


def cell_list(keys: list[str], limit: int = 6) -> str:
    """'notebook/grade_id' keys as a short list of grade ids."""
    names = [key.split("/", 1)[1] for key in keys]
    more = f", +{len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def golden_misses(scores: Scores, students: list[tuple[str, Example]]) -> list[str]:
    """Per student, the cells whose score differs from the example's golden score."""
    examples, maxima = dict(students), max_scores()
    misses = []
    for student, cells in scores.items():
        wrong = []
        for key, score in cells.items():
            expected = examples[student].expected_score(key.split("/", 1)[1], maxima[key])
            if score != expected:
                wrong.append(f"{key.split('/', 1)[1]} {score:g} (golden {expected:g})")
        if wrong:
            misses.append(
                f"{student}: " + ", ".join(wrong[:6]) + (", ..." if len(wrong) > 6 else "")
            )
    return misses


def disagreements(ours: Scores, stock: Scores) -> tuple[int, list[str]]:
    """(cells scored differently, one line per student that has any)."""
    count, lines = 0, []
    for student in sorted(set(ours) | set(stock)):
        a, b = ours.get(student, {}), stock.get(student, {})
        keys = [key for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
        if keys:
            count += len(keys)
            mine = sum(a.get(key) or 0 for key in keys)
            theirs = sum(b.get(key) or 0 for key in keys)
            lines.append(
                f"{student}: {len(keys)} cells, autograder {mine:g} vs stock {theirs:g} points "
                f"on them ({cell_list(keys)})"
            )
    return count, lines


# -- 1. throughput ------------------------------------------------------------------------------

POOL, DASK, STOCK = "autograder (local pool)", "autograder (Dask)", "stock"
LIMIT_CELL_TIMEOUT = (
    60  # seconds per cell for the limit's bare runs (none of the examples nears it)
)


@dataclass
class Timing:
    """A measured time and the other load meanwhile (as CpuWatch gives them)."""

    seconds: float
    others: float


@dataclass
class Comparison:
    label: str
    notebooks: list[str]  # what every student submits
    graded: list[str]  # the notebooks with graded cells
    students: int
    ours: list[CpuWatch] = field(default_factory=list)
    stock: list[CpuWatch] = field(default_factory=list)
    cluster: list[CpuWatch] = field(default_factory=list)  # `--scheduler`, unless --no-cluster
    floor: list[Timing] = field(default_factory=list)  # bare kernels, prompt, serial / CORES
    limit: list[Timing] = field(default_factory=list)  # bare nbclient, serial, summed / CORES
    limit_notebooks: int = 0  # notebooks the limit executes (our grader's graded notebooks)
    protected: list[str] = field(default_factory=list)  # notebooks run below every protection
    cells_compared: int = 0
    disagreeing_cells: dict[str, int] = field(default_factory=dict)  # our grader -> cells
    disagreements: dict[str, list[str]] = field(default_factory=dict)  # one line per student
    golden_misses: dict[str, list[str]] = field(default_factory=dict)
    flagged: dict[str, list[str]] = field(default_factory=dict)  # our grader -> notebooks
    travel: Travel | None = None  # what a Dask task carries, when the Dask run was made


def compare_throughput(
    workdir: Path,
    label: str,
    notebooks: list[str],
    graded: list[str],
    students: list[tuple[str, Example]],
    args: argparse.Namespace,
) -> Comparison:
    """Grade the same submissions with every grader, ``args.repeat`` times each, and time
    the floor and the limit on the notebooks our grader executed."""
    result = Comparison(label, notebooks, graded, len(students))
    courses = {}
    for name, protected in (("stock", False), ("ours", True)):
        say(f"[{label}] setting up the {name} course ...")
        courses[name] = new_course(workdir / name, protected=protected)
        submit(courses[name], students, notebooks)
    ours, ids = courses["ours"], [student for student, _ in students]
    scores: dict[str, Scores] = {}
    for attempt in range(1, args.repeat + 1):
        say(f"[{label}] run {attempt}/{args.repeat}: stock nbgrader autograde ...")
        result.stock.append(run_stock(courses["stock"]))
        say(f"[{label}]   {result.stock[-1].seconds:.1f} s; autograder grade ...")
        result.ours.append(run_ours(ours, args.workers))
        say(f"[{label}]   {result.ours[-1].seconds:.1f} s")
        # Read now: the Dask run grades the same course and overwrites these.
        scores[POOL] = read_scores(ours, ids, graded)
        result.flagged[POOL] = our_flags(ours.report_dir)
        result.protected = unprotected(ours.report_dir)
        if args.scheduler:
            say(f"[{label}]   autograder grade --scheduler {args.scheduler} ...")
            result.cluster.append(run_ours(ours, args.workers, args.scheduler))
            say(f"[{label}]   {result.cluster[-1].seconds:.1f} s")
            scores[DASK] = read_scores(ours, ids, graded)
            result.flagged[DASK] = our_flags(ours.report_dir)
            result.travel = measure_travel(ours, ids)  # before the limit's runs write there
        say(f"[{label}]   the floor: bare kernels, prompt, on the autograded notebooks ...")
        floor, result.limit_notebooks = limit_timing(ours, ids, prompt=True)
        result.floor.append(floor)
        say(f"[{label}]   {floor.seconds * CORES:.1f} s serially, / {CORES} cores")
        say(f"[{label}]   the limit: bare nbclient on the autograded notebooks, serially ...")
        limit, result.limit_notebooks = limit_timing(ours, ids)
        result.limit.append(limit)
        say(f"[{label}]   {limit.seconds * CORES:.1f} s serially, / {CORES} cores")
    stock = read_scores(courses["stock"], ids, graded)
    result.cells_compared = sum(len(cells) for cells in stock.values())
    for grader, theirs in scores.items():
        result.disagreeing_cells[grader], result.disagreements[grader] = disagreements(
            theirs, stock
        )
    result.golden_misses = {
        grader: golden_misses(theirs, students)
        for grader, theirs in {**scores, STOCK: stock}.items()
    }
    return result


def one_blas_thread() -> dict[str, str]:
    """A bare kernel's environment: this one with BLAS and OpenMP on one thread, as in the
    graders' kernels. With its default (a thread per core) a serial bare run would already
    use every core in NumPy's calls, and dividing its time by the cores would count them
    twice. (stderr is silenced with it: the kernel's start-up warnings.)"""
    return {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}


def has_graded_cells(notebook: nbformat.NotebookNode) -> bool:
    return any(cell.metadata.get("nbgrader", {}).get("grade") for cell in notebook.cells)


def limit_timing(
    course: Course, students: list[str], *, prompt: bool = False
) -> tuple[Timing, int]:
    """The limit on this machine: every notebook with graded cells our grader wrote for
    ``students`` (``autograded/<student>/<assignment>``), outputs cleared, executed by bare
    nbclient from its folder (so the hidden tests import ``autograder.checks`` as they did),
    one after another, a fresh plain ``python3`` kernel each; the summed time / CORES.
    ``prompt``: the floor, each kernel started and stopped as ProtectedExecute does (ready
    without waiting for IOPub silence, killed after the last cell). Returns that and how
    many notebooks it executed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    spent, executed = 0.0, 0
    with CpuWatch() as watch:
        for student in students:
            folder = course.autograded / student / course.assignment
            for path in sorted(folder.glob("*.ipynb")):
                notebook = nbformat.read(path, as_version=4)
                if not has_graded_cells(notebook):
                    continue
                for cell in notebook.cells:
                    if cell.cell_type == "code":
                        cell.outputs, cell.execution_count = [], None
                client = NotebookClient(
                    notebook,
                    kernel_name="python3",
                    timeout=LIMIT_CELL_TIMEOUT,
                    allow_errors=True,
                    resources={"metadata": {"path": str(folder)}},
                    **(PROMPT if prompt else {}),
                )
                started = time.monotonic()
                try:
                    client.execute(stderr=subprocess.DEVNULL, env=one_blas_thread())
                except (CellTimeoutError, DeadKernelError) as error:
                    raise BenchmarkError(
                        f"Bare nbclient could not execute {path} to the end, so the limit "
                        f"cannot be measured: {type(error).__name__}: {error}"
                    ) from None
                spent += time.monotonic() - started
                executed += 1
    if not executed:
        raise BenchmarkError(
            f"No autograded notebook with graded cells under {course.autograded}: "
            "`autograder grade` wrote none, so there is nothing to time the limit on."
        )
    return Timing(spent / CORES, watch.others), executed


# -- 4. autograder check -------------------------------------------------------------------------


@dataclass
class CheckTiming:
    """``autograder check`` of one student's two graded notebooks, run ``runs`` times."""

    wall: list[float]  # seconds, each run from a fresh process
    cpu: list[float]  # CPU seconds of the command and everything it started
    others: float  # other processes' share of the machine meanwhile
    exit_codes: list[int]
    notebooks: int


def measure_check(workdir: Path, graded: list[str], runs: int) -> CheckTiming:
    """A student's folder with the released graded notebooks and the instructor's answers
    typed in (every visible test passes), checked ``runs`` times by ``autograder check``."""
    folder = workdir / "check-student"
    folder.mkdir(parents=True)
    for name in graded:
        write_solution_as_student(name, folder / f"{name}.ipynb")
    command = [sys.executable, "-m", "autograder", "check", *(f"{n}.ipynb" for n in graded)]
    wall, cpu, codes = [], [], []
    with CpuWatch() as watch:
        for _ in range(runs):
            done, seconds, used = run_counted(
                command, cwd=folder, env=tool_environment(), capture_output=True, text=True
            )
            wall.append(seconds)
            cpu.append(used)
            codes.append(done.returncode)
            if done.returncode != 0:
                raise BenchmarkError(
                    "autograder check of the instructor's answers did not pass every visible "
                    f"test (exit code {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
                )
    return CheckTiming(wall, cpu, watch.others, codes, len(graded))


def write_solution_as_student(notebook: str, path: Path) -> None:
    """The released notebook with the instructor's answer typed into each answer cell."""
    source = nbformat.read(SOURCE / f"{notebook}.ipynb", as_version=4)
    answers = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            kept = [line for line in cell.source.splitlines() if "### " not in line]
            answers[meta["grade_id"]] = "\n".join(kept)
    released = nbformat.read(REPO / "release" / "numpy_memory" / f"{notebook}.ipynb", as_version=4)
    for cell in released.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    nbformat.write(released, path)


def check_lines(check: CheckTiming | None) -> list[str]:
    if check is None:
        return []
    wall, cpu = statistics.median(check.wall), statistics.median(check.cpu)
    goal = Goal("`autograder check` wall time vs 3 s", wall / CHECK_GOAL, 1.0, False)
    rows = [
        [
            f"`autograder check` ({check.notebooks} graded notebooks, one student)",
            str(len(check.wall)),
            seconds_cell(check.wall),
            seconds_cell(check.cpu),
            f"**{'met' if goal.met else 'not met'}** (< {CHECK_GOAL:g} s: {wall:.2f} s)",
            f"{check.others:.0%}",
        ]
    ]
    headers = ["command", "runs", "wall s", "CPU s (with its kernels)", "goal", "other load"]
    return [
        "### A student's self-check",
        "",
        markdown_table(headers, rows),
        "",
        f"- Each run is a fresh `python -m autograder check` on the released notebooks with the "
        f"instructor's answers typed in (exit code 0: every visible test passed, as when "
        f"graded), median (range). CPU {cpu:.2f} s is the command, its fork server and its "
        "kernels together: a machine with one idle core needs about that long.",
        "",
    ]


# -- 3. what travels per Dask task--------------------------------------------------------------


@dataclass(frozen=True)
class Travel:
    """Bytes a Dask run moves (measured on the course after it, see measure_travel)."""

    bundle_files: int
    bundle_bytes: int  # the course bundle's files, sent once to every worker
    task_bytes: list[int]  # per student: the staged files a task carries
    task_pickled: list[int]  # per student: len(pickle.dumps(StudentTask))
    result_pickled: list[int]  # per student: len(pickle.dumps(StudentResult))


def measure_travel(course: Course, students: list[str]) -> Travel:
    """The bundle, each student's task and result, rebuilt from what the run left in the
    course (the staged submissions, run records, graded notebooks and gradebook). The
    task's overrides (limits and memory, a few hundred bytes) are left out."""
    from autograder.grading.gradebook import read_autograded
    from autograder.grading.task import CourseBundle, StudentResult, StudentTask, staged_files

    bundle = CourseBundle.of(course)
    report_dir = course.report_dir
    task_bytes, task_pickled, result_pickled = [], [], []
    for student in students:
        staged = staged_files(report_dir / "staged" / student / course.assignment)
        task_bytes.append(sum(len(data) for data in staged.values()))
        task_pickled.append(len(pickle.dumps(StudentTask(student, course.assignment, staged, {}))))
        runs = sorted((report_dir / "runs" / student).glob("*.json"))
        result = StudentResult(
            student,
            runs={path.stem: json.loads(path.read_text()) for path in runs},
            graded=staged_files(course.autograded / student / course.assignment),
            scores=read_autograded(course.db_url, course.assignment, student),
        )
        result_pickled.append(len(pickle.dumps(result)))
    sizes = [len(data) for data in bundle.files.values()]
    return Travel(len(sizes), sum(sizes), task_bytes, task_pickled, result_pickled)


# -- 2. growth -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrowthPoint:
    grader: str
    submissions: int
    seconds: float
    others: float

    @property
    def per_submission(self) -> float:
        return self.seconds / self.submissions


def measure_growth(
    workdir: Path, sizes: list[int], graded: list[str], args: argparse.Namespace
) -> list[GrowthPoint]:
    """Grade cohorts of ``sizes`` students (graded notebooks only), each in a fresh course,
    with the local pool and then (unless --no-cluster) on Dask."""
    points = []
    graders = [(f"`autograder grade --workers {args.workers}`", None)]
    if args.scheduler:
        graders.append((f"`autograder grade --scheduler {args.scheduler}`", args.scheduler))
    for size in sizes:
        say(f"[growth] {size} submissions: setting up a protected course ...")
        course = new_course(workdir / f"growth-{size}", protected=True)
        submit(course, cohort(size), graded)
        for name, scheduler in graders:
            say(f"[growth] {size} submissions: {name} ...")
            watch = run_ours(course, args.workers, scheduler)
            our_flags(course.report_dir)  # a notebook not graded: a BenchmarkError
            say(f"[growth]   {watch.seconds:.1f} s")
            points.append(GrowthPoint(name, size, watch.seconds, watch.others))
        if not args.keep:  # the largest cohorts take room
            shutil.rmtree(course.root, ignore_errors=True)
    return points


# -- 4. cost of the protections ---------------------------------------------------------------


@dataclass
class Overhead:
    notebook: str
    protected: list[float]  # ProtectedExecute's own timing, one notebook, kernel start to end
    graded_wall: float  # `autograder grade --workers 1` wall time / notebooks graded
    bare: list[float]  # nbclient alone on the instructor's notebook
    prompt: list[float]  # the same, kernel started and stopped as ProtectedExecute does
    others: float  # other processes' share of the machine meanwhile (see CpuWatch)

    @property
    def overhead(self) -> float:
        return statistics.median(self.protected) / statistics.median(self.bare) - 1

    @property
    def own_cost(self) -> float:
        """The protections alone: against a bare run with the same kernel start and stop."""
        return statistics.median(self.protected) / statistics.median(self.prompt) - 1


def protected_times(course: Course, notebook: str, runs: int) -> tuple[list[float], float]:
    """Grade ``runs`` single-notebook submissions of the instructor's solution, one worker."""
    students = [f"o{number:02d}-{notebook[:2]}" for number in range(1, runs + 1)]
    for student in students:
        write_submission(Example(name=student, description="", notebooks=(notebook,)), course)
    report_dir = course.report_dir
    started = time.monotonic()
    run = grade(
        course,
        workers=1,
        force=True,
        students=students,
        report_dir=report_dir,
        progress=False,
        plots=False,
    )
    wall = (time.monotonic() - started) / runs
    for student in [s.to_json() for s in run.students]:
        entry = next(n for n in student["notebooks"] if n["notebook"] == notebook)
        if entry["status"] != "graded" or entry["flags"] or entry["score"] != entry["max_score"]:
            raise BenchmarkError(
                f"The instructor's {notebook} was not graded cleanly for {student['student']}: "
                f"{entry['status']} ({entry['reason']}), flags {entry['flags']}, "
                f"{entry['score']}/{entry['max_score']}\n{entry['log']}"
            )
    return [entry_seconds(report_dir, s, notebook) for s in students], wall


def entry_seconds(report_dir: Path, student: str, notebook: str) -> float:
    """ProtectedExecute's own timing of one notebook, from its run record."""
    return float(
        json.loads((report_dir / "runs" / student / f"{notebook}.json").read_text())["seconds"]
    )


class PromptKernelManager(AsyncKernelManager):
    """A plain kernel (no sandbox, no probes) started and stopped as ProtectedExecute does."""

    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient)


# nbclient's options for a kernel started and stopped promptly (the floor's, and the overhead's)
PROMPT = {"kernel_manager_class": PromptKernelManager, "shutdown_kernel": "immediate"}


def bare_times(notebook: str, runs: int, timeout: int, *, prompt: bool = False) -> list[float]:
    """Execute the instructor's notebook with nbclient alone, each run in a fresh kernel;
    ``prompt``: with ProtectedExecute's kernel start (no IOPub silence) and stop (a kill)."""
    from nbclient import NotebookClient

    times = []
    for _ in range(runs):
        nb = nbformat.read(SOURCE / f"{notebook}.ipynb", as_version=4)
        with tempfile.TemporaryDirectory(prefix="bare-") as folder:
            client = NotebookClient(
                nb,
                kernel_name="python3",
                timeout=timeout,
                resources={"metadata": {"path": folder}},
                **(PROMPT if prompt else {}),
            )
            started = time.monotonic()
            client.execute(stderr=subprocess.DEVNULL, env=one_blas_thread())
            times.append(time.monotonic() - started)
    return times


def measure_overhead(workdir: Path, graded: list[str], runs: int) -> list[Overhead]:
    say("[overhead] setting up a protected course ...")
    course = new_course(workdir / "overhead", protected=True)
    results = []
    for notebook in graded:
        with CpuWatch() as watch:
            say(f"[overhead] {notebook}: protected, {runs} runs, one worker ...")
            protected, wall = protected_times(course, notebook, runs)
            say(f"[overhead] {notebook}: bare nbclient, {runs} runs ...")
            bare = bare_times(notebook, runs, 60)
            say(f"[overhead] {notebook}: bare nbclient, prompt start and stop, {runs} runs ...")
            prompt = bare_times(notebook, runs, 60, prompt=True)
        results.append(Overhead(notebook, protected, wall, bare, prompt, watch.others))
    return results


# -- goals --------------------------------------------------------------------------------------

STOCK_GOAL = 4.0  # at least this x stock nbgrader's throughput, on 2 cores, protections on
FLOOR_GOAL = 1.2  # our time at most this x the floor's
CHECK_GOAL = 3.0  # seconds `autograder check` may take for both graded notebooks, idle machine
DASK_GOAL = 1.10  # the Dask run's time at most this x the local pool's
GROWTH_GOAL = 1.15  # s/submission of the largest cohort at most this x the smallest's
GOAL_CORES = 2


@dataclass(frozen=True)
class Goal:
    goal: str
    figure: float  # a ratio
    target: float
    higher_is_better: bool
    note: str = ""

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.figure >= self.target
        return self.figure <= self.target

    def row(self) -> list[str]:
        bound = "≥" if self.higher_is_better else "≤"
        verdict = "**met**" if self.met else "**not met**"
        return [
            self.goal,
            f"{bound} {self.target:g}x",
            f"{self.figure:.2f}x",
            verdict + (f" ({self.note})" if self.note else ""),
        ]


def throughput_goals(
    stock: float, pool: float, floor: float, dask: float | None, cores: int
) -> list[Goal]:
    """The goals for one comparison, from its wall times in seconds (dask None: not run)."""
    elsewhere = "" if cores == GOAL_CORES else f"measured on {cores} cores, the goal is for 2"
    goals = [
        Goal("throughput vs stock `nbgrader autograde`", stock / pool, STOCK_GOAL, True, elsewhere),
        Goal("time vs the floor", pool / floor, FLOOR_GOAL, False),
    ]
    if dask is not None:
        goals.append(Goal("Dask run's time vs the local pool's", dask / pool, DASK_GOAL, False))
    return goals


def comparison_goals(comparison: Comparison) -> list[Goal]:
    def median(timings: Sequence[Timing | CpuWatch]) -> float:
        return statistics.median(t.seconds for t in timings)

    dask = median(comparison.cluster) if comparison.cluster else None
    return throughput_goals(
        median(comparison.stock), median(comparison.ours), median(comparison.floor), dask, CORES
    )


def growth_goals(points: list[GrowthPoint]) -> list[Goal]:
    """Per grader timed at two sizes or more: the largest cohort's s/submission against the
    smallest's."""
    goals = []
    for grader in dict.fromkeys(point.grader for point in points):
        mine = sorted((p for p in points if p.grader == grader), key=lambda p: p.submissions)
        if len(mine) > 1:
            smallest, largest = mine[0], mine[-1]
            goals.append(
                Goal(
                    f"{grader}: s/submission at {largest.submissions} vs at "
                    f"{smallest.submissions} submissions",
                    largest.per_submission / smallest.per_submission,
                    GROWTH_GOAL,
                    False,
                )
            )
    return goals


# -- the report ---------------------------------------------------------------------------------


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_lines(command: str) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = len(os.sched_getaffinity(0))
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("numpy", "nbgrader", "nbclient", "jupyter_client", "ipykernel")
    )
    import autograder

    package = Path(autograder.__file__).resolve().parents[1]  # PYTHONPATH may name another copy
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=package, capture_output=True, text=True
    ).stdout.strip()
    sandbox = (
        "root: each kernel under its own uid, no network, hidden course files"
        if os.geteuid() == 0
        else "not root: limits and namespaces where allowed"
    )
    return [
        f"- Command: `{command}`",
        f"- Machine: {cores} cores available ({cpu}), {memory:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {packages}",
        f"- Package measured: {package} at {commit or '?'}; sandbox: {sandbox}",
    ]


def per_minute(count: int, seconds: float) -> str:
    return f"{count * 60 / seconds:.1f}"


def seconds_cell(values: list[float]) -> str:
    """Median, with the range when there is more than one value."""
    median = f"{statistics.median(values):.2f}"
    return median if len(values) == 1 else f"{median} ({min(values):.2f}-{max(values):.2f})"


def throughput_rows(
    comparison: Comparison, workers: int, scheduler: str | None = None
) -> list[list[str]]:
    stock = statistics.median(w.seconds for w in comparison.stock)
    floor = statistics.median(t.seconds for t in comparison.floor)
    notebooks = comparison.students * len(comparison.notebooks)
    graded = comparison.students * len(comparison.graded)
    graders: list[tuple[str, Sequence[Timing | CpuWatch], int]] = [
        ("stock `nbgrader autograde`", comparison.stock, notebooks),
        (f"`autograder grade --workers {workers}`", comparison.ours, graded),
    ]
    if comparison.cluster:
        graders.append((f"`autograder grade --scheduler {scheduler}`", comparison.cluster, graded))
    graders.append(
        (f"**the floor**: bare kernels, prompt, serial, / {CORES} cores", comparison.floor, graded)
    )
    graders.append((f"the limit: bare nbclient, serial, / {CORES} cores", comparison.limit, graded))
    rows = []
    for name, runs, executed in graders:
        seconds = statistics.median(w.seconds for w in runs)
        if runs is comparison.limit or runs is comparison.floor:
            executed = comparison.limit_notebooks
        rows.append(
            [
                comparison.label,
                name,
                str(comparison.students),
                f"{notebooks} ({executed})",
                seconds_cell([w.seconds for w in runs]),
                f"{seconds / comparison.students:.2f}",
                per_minute(comparison.students, seconds),
                f"**{stock / seconds:.2f}x**" if runs is not comparison.stock else "1.00x",
                f"{seconds / floor:.2f}x",
                f"{max(w.others for w in runs):.0%}",
            ]
        )
    return rows


def throughput_table(
    comparisons: list[Comparison], workers: int, scheduler: str | None = None
) -> str:
    headers = ["submissions", "grader", "students", "notebooks (executed)", "wall s"]
    headers += ["s/submission", "submissions/min", "x faster than stock", "x the floor's time"]
    headers += ["other load"]
    rows = [
        row for comparison in comparisons for row in throughput_rows(comparison, workers, scheduler)
    ]
    return markdown_table(headers, rows)


def goals_table(comparisons: list[Comparison]) -> str:
    rows = [
        [comparison.label, *goal.row()]
        for comparison in comparisons
        for goal in comparison_goals(comparison)
    ]
    for comparison in comparisons:
        rows += [[comparison.label, *row] for row in condition_rows(comparison)]
    return markdown_table(["submissions", "goal", "target", "measured", "verdict"], rows)


def condition_rows(comparison: Comparison) -> list[list[str]]:
    """The goals' conditions: every protection on, every score equal to stock's."""

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    below = comparison.protected
    rows = [
        [
            "every protection on (every notebook at the sandbox's full level as root, its "
            "kernel forked, probes and memory reads on)",
            "0 notebooks below",
            f"{len(below)} below" + (f": {below[0]}" if below else ""),
            verdict(not below),
        ]
    ]
    for grader, cells in comparison.disagreeing_cells.items():
        rows.append(
            [
                f"{grader}: every score equal to stock's",
                "0 cells differ",
                f"{cells} of {comparison.cells_compared} differ",
                verdict(cells == 0),
            ]
        )
    return rows


def growth_lines(points: list[GrowthPoint]) -> list[str]:
    if not points:
        return []
    rows = []
    for grader in dict.fromkeys(point.grader for point in points):
        mine = sorted((p for p in points if p.grader == grader), key=lambda p: p.submissions)
        rows += [
            [
                grader,
                str(point.submissions),
                f"{point.seconds:.1f}",
                f"{point.per_submission:.2f}",
                f"{point.per_submission / mine[0].per_submission:.2f}x",
                f"{point.others:.0%}",
            ]
            for point in mine
        ]
    headers = ["grader", "submissions", "wall s", "s/submission", "vs the smallest", "other load"]
    goals = [goal.row() for goal in growth_goals(points)]
    return [
        "### Growth: s/submission as the cohort grows (must stay flat)",
        "",
        markdown_table(headers, rows),
        "",
        markdown_table(["goal", "target", "measured", "verdict"], goals) if goals else "",
        "",
        "- Each cohort is graded in a fresh course (graded notebooks only, the examples "
        "cycled), one run each, start-up included. Stock `nbgrader autograde` is not run here: "
        "it grades one submission after another, so its s/submission cannot improve with the "
        "size and the larger cohorts would take far too long (its speed is in the throughput "
        "table).",
        "",
    ]


def kib(count: float) -> str:
    return f"{count / 1024:.1f} KiB"


def sizes_cell(values: list[int]) -> str:
    """Median (range) in KiB."""
    return f"{kib(statistics.median(values))} ({kib(min(values))}-{kib(max(values))})"


def travel_lines(comparisons: list[Comparison], workers: int) -> list[str]:
    """Per comparison with a Dask run: its extra seconds per task over the local pool, and
    the bytes that travel."""
    rows = []
    for comparison in comparisons:
        if comparison.cluster and comparison.travel:
            pool = statistics.median(w.seconds for w in comparison.ours)
            dask = statistics.median(w.seconds for w in comparison.cluster)
            travel = comparison.travel
            rows.append(
                [
                    comparison.label,
                    f"({dask:.1f} - {pool:.1f}) / {comparison.students} = "
                    f"**{(dask - pool) / comparison.students:+.2f}**",
                    f"{kib(travel.bundle_bytes)} ({travel.bundle_files} files) x {workers}",
                    sizes_cell(travel.task_bytes),
                    sizes_cell(travel.task_pickled),
                    sizes_cell(travel.result_pickled),
                ]
            )
    if not rows:
        return []
    headers = ["submissions", "Dask's extra s per task: (Dask s - pool s) / submissions"]
    headers += ["course bundle, once per worker", "task payload: staged files, median (range)"]
    headers += ["pickled task", "pickled result"]
    return [
        "### What travels per task (Dask)",
        "",
        markdown_table(headers, rows),
        "",
        "- The extra time is the whole run's difference spread over the tasks: Dask's start-up, "
        "the bundle sent to each worker and one round trip per student.",
        "- *course bundle*: `CourseBundle.of(course)`, its files' bytes (config, source and "
        "release notebooks, the gradebook without students). *task payload*: the student's "
        "staged files (`staged_files`); *pickled task*: `len(pickle.dumps(StudentTask))` "
        "without the run's overrides (a few hundred bytes); *pickled result*: a "
        "`StudentResult` rebuilt from what the run wrote (run records, graded notebooks, scores).",
        "",
    ]


def overhead_table(results: list[Overhead]) -> str:
    rows = [
        [
            result.notebook,
            seconds_cell(result.bare),
            seconds_cell(result.prompt),
            seconds_cell(result.protected),
            f"**{result.overhead:+.0%}**",
            f"{result.own_cost:+.0%}",
            f"{result.graded_wall:.2f}",
            f"{result.others:.0%}",
        ]
        for result in results
    ]
    bare, prompt, protected = (
        sum(statistics.median(getattr(r, kind)) for r in results)
        for kind in ("bare", "prompt", "protected")
    )
    rows.append(
        [
            "both graded notebooks (sum: one submission)",
            f"{bare:.2f}",
            f"{prompt:.2f}",
            f"{protected:.2f}",
            f"**{protected / bare - 1:+.0%}**",
            f"{protected / prompt - 1:+.0%}",
            f"{sum(r.graded_wall for r in results):.2f}",
            f"{max(r.others for r in results):.0%}",
        ]
    )
    headers = ["notebook", "bare nbclient, s", "bare, prompt start/stop, s"]
    headers += ["protected execution, s", "overhead vs bare", "vs prompt start/stop"]
    headers += ["whole `autograder grade --workers 1`, s per notebook", "other load"]
    return markdown_table(headers, rows)


def listed(items: list[str], prefix: str, limit: int = 25) -> list[str]:
    """Markdown sub-items, at most ``limit`` of them."""
    lines = [f"  - {prefix}{item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  - ... and {len(items) - limit} more")
    return lines


def agreement_lines(comparisons: list[Comparison]) -> list[str]:
    lines = []
    for comparison in comparisons:
        golden = ", ".join(f"{k} {len(v)}" for k, v in comparison.golden_misses.items())
        against = "; ".join(
            f"{grader}: **{comparison.disagreeing_cells[grader]} cells scored differently** "
            f"({len(differing)} students), {len(comparison.flagged.get(grader, []))} notebooks flagged"
            for grader, differing in comparison.disagreements.items()
        )
        lines.append(
            f"- {comparison.label}: {comparison.students} students, {comparison.cells_compared} "
            f"graded cells compared with stock nbgrader's scores. {against}. Students off their "
            f"example's golden scores: {golden}"
        )
        for grader, differences in comparison.disagreements.items():
            lines += listed(differences, f"{grader} differs: ")
        for grader, misses in comparison.golden_misses.items():
            lines += listed(misses, f"{grader} off golden: ")
        for grader, flagged in comparison.flagged.items():
            lines += listed(flagged, f"{grader} flagged: ")
    return lines


def load_warning(
    comparisons: list[Comparison], overheads: list[Overhead], growth: list[GrowthPoint]
) -> list[str]:
    loads = [o.others for o in overheads] + [p.others for p in growth]
    for c in comparisons:
        loads += [w.others for w in c.stock + c.ours + c.cluster] + [t.others for t in c.limit]
        loads += [t.others for t in c.floor]
    worst = max(loads)
    if worst < BUSY_WARNING:
        return []
    return [
        f"- **Warning: other processes used up to {worst:.0%} of the machine's CPU during "
        "these measurements (column *other load*): the figures are slower and less fair than "
        "on an idle machine. Re-run when it is idle.**"
    ]


def throughput_lines(args: argparse.Namespace, comparisons: list[Comparison]) -> list[str]:
    how = f"median of {args.repeat} runs" if args.repeat > 1 else "one run"
    return [
        f"### Throughput ({how} each, the same submissions for every grader)",
        "",
        throughput_table(comparisons, args.workers, args.scheduler),
        "",
        goals_table(comparisons),
        "",
        "- *graded notebooks only* (apples to apples): every submission holds the quiz and "
        "the exercises, and every grader executes both. The goals are meant for this one.",
        "- *full submission*: every submission also holds the lesson, which has no graded "
        "cells: stock nbgrader executes it, `autograder grade` does not.",
        "- Wall time of each command run from its course root, start-up included; "
        "`autograder grade` also writes its report, per-student JSON and memory plots. "
        "The Dask run grades the same course as the local pool, right after it.",
        f"- *the floor*: the notebooks `autograder grade` wrote for these students (those with "
        "graded cells, outputs cleared) executed by bare nbclient from their folders with "
        "`allow_errors=True`, one after another, a fresh plain `python3` kernel each (no "
        "sandbox, no probes, no nbgrader), started and stopped promptly (ready as soon as it "
        "answers, killed after its last cell); the summed time divided by the machine's "
        f"{CORES} cores: what perfect parallel grading with bare kernels would take. The goal "
        "is measured against it.",
        f"- *the limit* (the older row): the same notebooks (those with "
        "graded cells, outputs cleared) executed by bare nbclient from their folders with "
        "`allow_errors=True`, one after another, a fresh plain `python3` kernel each (no "
        "sandbox, no probes, no nbgrader); the summed time divided by the machine's "
        f"{CORES} cores: what perfect parallel grading with no protections would take.",
        "- *other load*: CPU time other processes on the machine used during the run, as a "
        "share of all its cores (from /proc/stat, minus this benchmark's own processes).",
        "",
    ]


def overhead_lines(args: argparse.Namespace, overheads: list[Overhead]) -> list[str]:
    return [
        f"### Cost of the protections (one notebook at a time, median of {args.overhead_runs})",
        "",
        overhead_table(overheads),
        "",
        "- *bare nbclient*: `nbclient.NotebookClient(nb, kernel_name='python3')` on the "
        "instructor's notebook (solutions and hidden tests), a fresh kernel each run: the "
        "notebook with no grader at all.",
        "- *bare, prompt start/stop*: the same, but the kernel is started and stopped as "
        "`ProtectedExecute` does (ready without waiting for 0.2 s of IOPub silence, killed "
        "after the last cell instead of a graceful shutdown): *vs prompt start/stop* is "
        "the cost of the protections alone.",
        "- *protected execution*: `ProtectedExecute`'s own timing of the same notebook, kernel "
        "start to shutdown (sandboxed kernel, static scan, a probe before every test cell, "
        "memory read after every cell), from its run records while `autograder grade "
        "--workers 1` graded single-notebook submissions of the instructor's solution.",
        "- *whole `autograder grade`*: that command's wall time per notebook: adds "
        "nbgrader's own steps (sanitizing, gradebook) and one worker's start-up.",
        "- Times in seconds: median (range).",
    ]


@dataclass
class Results:
    comparisons: list[Comparison]
    overheads: list[Overhead]
    growth: list[GrowthPoint]
    check: CheckTiming | None = None


def report(
    args: argparse.Namespace, command: str, results: Results, loads: tuple[float, float]
) -> str:
    return "\n".join(
        [
            "## Grading throughput and the cost of the protections",
            "",
            *machine_lines(command),
            f"- Load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f}",
            *load_warning(results.comparisons, results.overheads, results.growth),
            "",
            *throughput_lines(args, results.comparisons),
            *check_lines(results.check),
            *growth_lines(results.growth),
            *travel_lines(results.comparisons, args.workers),
            "### Score agreement on the graded notebooks",
            "",
            *agreement_lines(results.comparisons),
            "",
            *overhead_lines(args, results.overheads),
        ]
    )


# -- main ---------------------------------------------------------------------------------------


def cohort_sizes(text: str) -> list[int]:
    """``--growth 24,96,384``: the cohort sizes, ascending."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write the cohort sizes as whole numbers separated by commas, e.g. 24,96,384"
        ) from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every cohort size must be at least 1")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=24, help="students (default 24)")
    parser.add_argument("--workers", type=int, default=2, help="our grader's workers (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per grader (default 1)")
    parser.add_argument(
        "--overhead-runs", type=int, default=5, help="runs per notebook for the overhead (5)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary course folders")
    parser.add_argument(
        "--check-runs", type=int, default=5, help="runs of `autograder check` (5; 0: none)"
    )
    parser.add_argument(
        "--graded-only",
        action="store_true",
        help="only the graded notebooks' comparison (not the full submission's, whose stock "
        "run also executes the lesson and takes the longest)",
    )
    parser.add_argument(
        "--scheduler",
        help="the Dask scheduler of the Dask rows (default local:WORKERS, a LocalCluster)",
    )
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip the Dask runs (and their goal)"
    )
    parser.add_argument(
        "--growth",
        type=cohort_sizes,
        default=[],
        help="also grade cohorts of these sizes, e.g. 24,96,384 (default: none)",
    )
    args = parser.parse_args(argv)
    if min(args.submissions, args.workers, args.repeat, args.overhead_runs) < 1:
        parser.error("every count must be at least 1")
    if args.check_runs < 0:
        parser.error("--check-runs must be 0 or more")
    if args.no_cluster:
        args.scheduler = None
    else:
        args.scheduler = args.scheduler or f"local:{args.workers}"
        if importlib.util.find_spec("distributed") is None:
            parser.error(
                "the Dask rows need the `distributed` package: install the test extra "
                "(.venv/bin/pip install -e '.[test]') or pass --no-cluster"
            )
    return args


def stop(signum: int, frame: object) -> None:
    raise SystemExit(f"grading_throughput: stopped by signal {signum}")


def command_line(args: argparse.Namespace) -> str:
    command = (
        f"python {Path(__file__).resolve().relative_to(REPO)} --submissions {args.submissions} "
        f"--workers {args.workers} --repeat {args.repeat} --overhead-runs {args.overhead_runs}"
    )
    command += f" --check-runs {args.check_runs}"
    command += f" --scheduler {args.scheduler}" if args.scheduler else " --no-cluster"
    if args.graded_only:
        command += " --graded-only"
    if args.growth:
        command += " --growth " + ",".join(str(size) for size in args.growth)
    return command


def measure(args: argparse.Namespace, workdir: Path) -> Results:
    every, graded = notebook_names()
    students = cohort(args.submissions)
    kinds = [("graded", "graded notebooks only", graded), ("full", "full submission", every)]
    comparisons = [
        compare_throughput(workdir / name, label, notebooks, graded, students, args)
        for name, label, notebooks in kinds[: 1 if args.graded_only else 2]
    ]
    say(f"[check] autograder check of one student's graded notebooks, {args.check_runs} runs ...")
    check = measure_check(workdir, graded, args.check_runs) if args.check_runs else None
    growth = measure_growth(workdir, args.growth, graded, args)
    overheads = measure_overhead(workdir, graded, args.overhead_runs)
    return Results(comparisons, overheads, growth, check)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop)  # so that the temporary folders are removed
    adopt_orphans()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="grading-throughput-"))
    try:
        results = measure(args, workdir)
    except BenchmarkError as error:
        print(f"grading_throughput: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            say(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    loads = (load_before, os.getloadavg()[0])
    print(report(args, command_line(args), results, loads))
    print(f"\nTotal run time of this script: {time.monotonic() - started:.0f} s")
    disagreeing = any(any(c.disagreements.values()) for c in results.comparisons)
    return 1 if disagreeing else 0


if __name__ == "__main__":
    sys.exit(main())
