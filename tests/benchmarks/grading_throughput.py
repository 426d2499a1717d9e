"""Grading throughput and the cost of the protections, for the README.

What it measures, on submissions built from the example TOMLs in ``autograder/demo/submissions/``
(cycled, with distinct student ids, until there are ``--submissions`` of them):

1. Throughput: ``autograder grade --workers W --force`` (parallel, protected: sandboxed
   kernels, integrity probes, memory read from outside) against stock ``nbgrader autograde
   --force`` (plain nbgrader: a course whose ``nbgrader_config.py`` sets only the root and
   the gradebook) on the same submissions, both run as commands from the course root.
   Two comparisons:

   - "graded notebooks only": every submission holds the quiz and the exercises (the two
     notebooks with graded cells). Both graders execute the same notebooks: apples to apples.
   - "full submission": every submission also holds the lesson, which has no graded cells.
     Stock nbgrader executes it; ``autograder grade`` does not (nothing to grade).

   Each grader gets a fresh course directory (released once with ``autograder.release``).
   Both commands' timings include their start-up; ours also writes its report and plots.
   Afterwards both gradebooks are compared score by score.

2. Cost of the protections: one notebook at a time, the protected execution
   (``ProtectedExecute``'s own timing from its run record, kernel start to shutdown, while
   ``autograder grade --workers 1`` grades single-notebook submissions of the instructor's
   solution) against executing the same instructor notebook bare with nbclient (fresh
   kernel each run, no sandbox, no probes, no nbgrader), median of ``--overhead-runs``.
   A second bare run starts and stops its kernel as ``ProtectedExecute`` does (no wait for
   IOPub silence, a kill at the end), which isolates the cost of the protections alone.

Run it from the repository root on an idle machine (about 10 minutes with the defaults on
2 cores; the report's *other load* column shows how much CPU other processes took meanwhile):

    .venv/bin/python tests/benchmarks/grading_throughput.py [--submissions 24] [--workers 2]
        [--repeat 1] [--overhead-runs 5] [--keep] [--scheduler local:2]

With ``--scheduler``, ``autograder grade --scheduler S`` grades the same course after the local
pool (a third row; the score agreement is then the Dask run's).

The report (Markdown) goes to stdout, progress to stderr. Exit code 1 when the two graders
disagree on a score, 2 when a grader fails (the end of its log is printed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
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
from autograder.demo import EXAMPLES
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.gradebook import cell_scores
from autograder.grading.run import grade
from autograder.release import release
from autograder.sandbox import PromptKernelClient

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = EXAMPLES / "submissions"
SOURCE = Course(REPO).source
BROKEN_STATUSES = ("ungradable", "kernel died", "timed out", "over memory")
LOG_TAIL = 30
CORES = len(os.sched_getaffinity(0))
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


def busy_cpu_seconds() -> float:
    """CPU time every process on this machine has used since boot (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of every descendant it has waited for."""
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


class CpuWatch:
    """Wall time of a block, and how much of the machine other processes used meanwhile
    (another job on the machine makes every figure here slower and less fair)."""

    seconds: float = 0.0
    others: float = 0.0  # other processes' CPU time / (cores x wall time)

    def __enter__(self) -> CpuWatch:
        self._started = time.monotonic()
        self._busy, self._own = busy_cpu_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._started
        busy = busy_cpu_seconds() - self._busy
        own = own_cpu_seconds() - self._own
        self.others = max(0.0, busy - own) / (CORES * self.seconds)


# -- the assignment and the submissions ---------------------------------------------------------


def notebook_names() -> tuple[list[str], list[str]]:
    """(every notebook of the assignment, the ones with graded cells), by name, sorted."""
    every, graded = [], []
    for path in sorted(SOURCE.glob("*.ipynb")):
        every.append(path.stem)
        cells = nbformat.read(path, as_version=4).cells
        if any(cell.metadata.get("nbgrader", {}).get("grade") for cell in cells):
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


@dataclass
class Comparison:
    label: str
    notebooks: list[str]  # what every student submits
    graded: list[str]  # the notebooks with graded cells
    students: int
    ours: list[CpuWatch] = field(default_factory=list)
    stock: list[CpuWatch] = field(default_factory=list)
    cluster: list[CpuWatch] = field(default_factory=list)  # `--scheduler`, when asked for
    cells_compared: int = 0
    disagreeing_cells: int = 0
    disagreements: list[str] = field(default_factory=list)  # one line per student
    golden_misses: dict[str, list[str]] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)


def compare_throughput(
    workdir: Path,
    label: str,
    notebooks: list[str],
    graded: list[str],
    students: list[tuple[str, Example]],
    args: argparse.Namespace,
) -> Comparison:
    """Grade the same submissions with both graders, ``args.repeat`` times each."""
    result = Comparison(label, notebooks, graded, len(students))
    courses = {}
    for name, protected in (("stock", False), ("ours", True)):
        say(f"[{label}] setting up the {name} course ...")
        courses[name] = new_course(workdir / name, protected=protected)
        submit(courses[name], students, notebooks)
    for attempt in range(1, args.repeat + 1):
        say(f"[{label}] run {attempt}/{args.repeat}: stock nbgrader autograde ...")
        result.stock.append(run_stock(courses["stock"]))
        say(f"[{label}]   {result.stock[-1].seconds:.1f} s; autograder grade ...")
        result.ours.append(run_ours(courses["ours"], args.workers))
        say(f"[{label}]   {result.ours[-1].seconds:.1f} s")
        if args.scheduler:  # the same course again: its gradebook then holds this run's scores
            say(f"[{label}]   autograder grade --scheduler {args.scheduler} ...")
            result.cluster.append(run_ours(courses["ours"], args.workers, args.scheduler))
            say(f"[{label}]   {result.cluster[-1].seconds:.1f} s")
    result.flagged = our_flags(courses["ours"].root / "grading-report")
    ids = [student for student, _ in students]
    ours = read_scores(courses["ours"], ids, graded)
    stock = read_scores(courses["stock"], ids, graded)
    result.cells_compared = sum(len(cells) for cells in stock.values())
    result.disagreeing_cells, result.disagreements = disagreements(ours, stock)
    result.golden_misses = {
        "autograder": golden_misses(ours, students),
        "stock": golden_misses(stock, students),
    }
    return result


# -- 2. cost of the protections -----------------------------------------------------------------


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
    report_dir = course.root / "grading-report"
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


def bare_times(notebook: str, runs: int, timeout: int, *, prompt: bool = False) -> list[float]:
    """Execute the instructor's notebook with nbclient alone, each run in a fresh kernel;
    ``prompt``: with ProtectedExecute's kernel start (no IOPub silence) and stop (a kill)."""
    from nbclient import NotebookClient

    how = {"kernel_manager_class": PromptKernelManager, "shutdown_kernel": "immediate"}
    times = []
    for _ in range(runs):
        nb = nbformat.read(SOURCE / f"{notebook}.ipynb", as_version=4)
        with tempfile.TemporaryDirectory(prefix="bare-") as folder:
            client = NotebookClient(
                nb,
                kernel_name="python3",
                timeout=timeout,
                resources={"metadata": {"path": folder}},
                **(how if prompt else {}),
            )
            started = time.monotonic()
            client.execute(stderr=subprocess.DEVNULL)  # the kernel's start-up warnings
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
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
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
        f"- Repository: {commit or '?'}; sandbox: {sandbox}",
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
    notebooks = comparison.students * len(comparison.notebooks)
    graded = comparison.students * len(comparison.graded)
    rows = []
    graders = [
        ("stock `nbgrader autograde`", comparison.stock, notebooks),
        (f"`autograder grade --workers {workers}`", comparison.ours, graded),
    ]
    if comparison.cluster:
        graders.append((f"`autograder grade --scheduler {scheduler}`", comparison.cluster, graded))
    for name, runs, executed in graders:
        seconds = statistics.median(w.seconds for w in runs)
        rows.append(
            [
                comparison.label,
                name,
                str(comparison.students),
                f"{notebooks} ({executed})",
                seconds_cell([w.seconds for w in runs]),
                per_minute(comparison.students, seconds),
                per_minute(notebooks, seconds),
                f"**{stock / seconds:.2f}x**" if runs is not comparison.stock else "1.00x",
                f"{max(w.others for w in runs):.0%}",
            ]
        )
    return rows


def throughput_table(
    comparisons: list[Comparison], workers: int, scheduler: str | None = None
) -> str:
    headers = ["submissions", "grader", "students", "notebooks (executed)", "wall s"]
    headers += ["submissions/min", "notebooks/min", "throughput vs stock", "other load"]
    rows = [
        row for comparison in comparisons for row in throughput_rows(comparison, workers, scheduler)
    ]
    return markdown_table(headers, rows)


def cluster_lines(comparisons: list[Comparison], scheduler: str | None) -> list[str]:
    """The Dask run's wall time against the local pool's, on the same submissions."""
    lines = []
    for comparison in comparisons:
        if comparison.cluster:
            pool = statistics.median(w.seconds for w in comparison.ours)
            dask = statistics.median(w.seconds for w in comparison.cluster)
            lines.append(
                f"- {comparison.label}: `--scheduler {scheduler}` took {dask / pool:.2f}x the "
                f"local pool's time ({dask - pool:+.1f} s; it adds Dask's start-up, the course "
                "sent to each worker and one task per student, and grades the largest first)."
            )
    return lines


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
        lines.append(
            f"- {comparison.label}: {comparison.students} students, {comparison.cells_compared} "
            f"graded cells compared: **{comparison.disagreeing_cells} cells scored differently** "
            f"by the two graders ({len(comparison.disagreements)} students); students off their "
            f"example's golden scores: {golden}; notebooks flagged by `autograder grade`: "
            f"{len(comparison.flagged)}"
        )
        lines += listed(comparison.disagreements, "differ: ")
        for grader, misses in comparison.golden_misses.items():
            lines += listed(misses, f"{grader} off golden: ")
        lines += listed(comparison.flagged, "flagged: ")
    return lines


def load_warning(comparisons: list[Comparison], overheads: list[Overhead]) -> list[str]:
    worst = max(
        [w.others for c in comparisons for w in (*c.stock, *c.ours)] + [o.others for o in overheads]
    )
    if worst < BUSY_WARNING:
        return []
    return [
        f"- **Warning: other processes used up to {worst:.0%} of the machine's CPU during "
        "these measurements (column *other load*): the figures are slower and less fair than "
        "on an idle machine. Re-run when it is idle.**"
    ]


def report(
    args: argparse.Namespace,
    command: str,
    comparisons: list[Comparison],
    overheads: list[Overhead],
    loads: tuple[float, float],
) -> str:
    how = f"median of {args.repeat} runs" if args.repeat > 1 else "one run"
    return "\n".join(
        [
            "## Grading throughput and the cost of the protections",
            "",
            *machine_lines(command),
            f"- Load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f}",
            *load_warning(comparisons, overheads),
            "",
            f"### Throughput ({how} each, the same submissions for both graders)",
            "",
            throughput_table(comparisons, args.workers, args.scheduler),
            "",
            *cluster_lines(comparisons, args.scheduler),
            "- *graded notebooks only* (apples to apples): every submission holds the quiz and "
            "the exercises, and both graders execute both.",
            "- *full submission*: every submission also holds the lesson, which has no graded "
            "cells: stock nbgrader executes it, `autograder grade` does not.",
            "- Wall time of each command run from its course root, start-up included; "
            "`autograder grade` also writes its report, per-student JSON and memory plots. "
            "Notebooks/min counts submitted notebooks.",
            "- *other load*: CPU time other processes on the machine used during the run, as a "
            "share of all its cores (from /proc/stat, minus this benchmark's own processes).",
            "",
            "### Score agreement on the graded notebooks",
            "",
            *agreement_lines(comparisons),
            "",
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
    )


# -- main ---------------------------------------------------------------------------------------


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
        "--scheduler",
        help="also time `autograder grade --scheduler S` (e.g. local:2) on the same course; "
        "the score agreement is then that run's (needs the [cluster] extra)",
    )
    args = parser.parse_args(argv)
    if min(args.submissions, args.workers, args.repeat, args.overhead_runs) < 1:
        parser.error("every count must be at least 1")
    return args


def stop(signum: int, frame: object) -> None:
    raise SystemExit(f"grading_throughput: stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop)  # so that the temporary folders are removed
    command = (
        f"python {Path(__file__).resolve().relative_to(REPO)} --submissions {args.submissions} "
        f"--workers {args.workers} --repeat {args.repeat} --overhead-runs {args.overhead_runs}"
        + (f" --scheduler {args.scheduler}" if args.scheduler else "")
    )
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    every, graded = notebook_names()
    students = cohort(args.submissions)
    workdir = Path(tempfile.mkdtemp(prefix="grading-throughput-"))
    try:
        comparisons = [
            compare_throughput(workdir / name, label, notebooks, graded, students, args)
            for name, label, notebooks in (
                ("graded", "graded notebooks only", graded),
                ("full", "full submission", every),
            )
        ]
        overheads = measure_overhead(workdir, graded, args.overhead_runs)
    except BenchmarkError as error:
        print(f"grading_throughput: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            say(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    loads = (load_before, os.getloadavg()[0])
    print(report(args, command, comparisons, overheads, loads))
    print(f"\nTotal run time of this script: {time.monotonic() - started:.0f} s")
    return 1 if any(c.disagreements for c in comparisons) else 0


if __name__ == "__main__":
    sys.exit(main())
