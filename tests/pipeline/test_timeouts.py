"""A student's cell costs at most its time limit, whatever it does.

Cells that ignore the interrupt, sit in a long C call, read stdin, wait on a thread, or
are each slow enough that the notebook's or the student's time runs out: each ends within
its limit plus the grace period, as "timed out", with the grades before it kept, through
``autograder grade`` and through plain ``nbgrader autograde`` alike. Short limits (a 4 s
cell) keep it quick; the margins allow for a loaded machine.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from traitlets import TraitError
from traitlets.config import Config

from autograder import defaults, limits
from autograder.cli import main
from autograder.course import Course
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.gradebook import cell_scores
from autograder.grading.run import grade
from autograder.pipeline.protected_execute import ProtectedExecute
from autograder.sandbox import SandboxedKernelManager

from ..conftest import ASSIGNMENT
from .nbgrader_autograde import grade_with_nbgrader

EXAMPLES = load_examples(Path(__file__).parent / "timeouts")
QUIZ, EXERCISES = "02_quiz_what_del_frees", "04_exercises_free_and_budget_memory"
# Beyond limit + grace: noticing the kill (nbclient looks every second), kernel start-up and
# a machine shared with other jobs.
MARGIN = 4.0


@dataclass(frozen=True)
class Limits:
    cell: int
    notebook: int
    student: int
    grace: float = 8.0  # the traceback of an interrupted wait in threading.py, under load

    def options(self) -> dict[str, float]:
        return {
            "timeout": self.cell,
            "notebook_timeout": self.notebook,
            "student_timeout": self.student,
            "interrupt_grace": self.grace,
        }


# One grading run per group: the cell limit binds in the first (the notebook and student
# limits are far off), the notebook and student limits in the second (cells sleep 2.5 s).
CELL_LIMIT = Limits(cell=4, notebook=60, student=120)
LONGER_LIMITS = Limits(cell=10, notebook=12, student=15)


@dataclass(frozen=True)
class Expect:
    limits: Limits
    ended_by: str | None  # the limit that stopped the notebook; None: it went on to the end
    cell: str | None = None  # the cell that ran over the cell limit
    kept: tuple[str, ...] = ()  # tests that keep full marks whatever the timing
    lost: tuple[str, ...] = ()  # tests that are never run


GRADERS = ("autograder", "nbgrader")
EX1 = ("ex1_size_test", "ex1_freed_test")
EX7 = ("ex7_values_test", "ex7_freed_test")
EXPECT = {
    "ignores-interrupts-in-ex5": Expect(CELL_LIMIT, "cell", "ex5_stats", lost=EX7),
    "long-c-call-in-ex5": Expect(CELL_LIMIT, "cell", "ex5_stats", lost=EX7),
    "blocks-reading-in-ex5": Expect(CELL_LIMIT, None, "ex5_stats", kept=EX7),
    "joins-sleeping-thread-in-ex6": Expect(CELL_LIMIT, None, "ex6_rescale"),
    "slow-cells-hit-notebook-limit": Expect(LONGER_LIMITS, "notebook", kept=EX1, lost=EX7),
    "slow-notebooks-hit-student-limit": Expect(LONGER_LIMITS, "student", lost=EX7),
}


# -- what a grading left behind, read the same way for both graders ---------------------------


@dataclass
class Graded:
    runs: dict[str, dict]  # notebook -> ProtectedExecute's run record
    scores: dict[str, tuple[float, float]]  # grade_id -> (score, max_score)
    messages: dict[str, str]  # grade_id -> what the student sees


def _graded(course: Course, runs_dir: Path, example: Example) -> Graded:
    runs = {
        path.stem: json.loads(path.read_text())
        for path in sorted((runs_dir / example.name).glob("*.json"))
    }
    scores = {
        c.cell: (c.score, c.max_score)
        for c in cell_scores(course.db_url, course.assignment, example.name)
        if c.notebook in example.notebooks
    }
    messages = {  # what the executor's record says the student reads
        cell["grade_id"]: cell["message"]
        for run in runs.values()
        for cell in run["cells"]
        if cell["verdict"]
    }
    return Graded(runs, scores, messages)


def _grade(course: Course, grader: str, limits_: Limits, examples: list[Example]) -> dict:
    """Grade ``examples`` under ``limits_`` in a fresh released course with ``grader``."""
    if grader == "nbgrader":
        grade_with_nbgrader(course, examples)
        runs_dir = course.report_dir / "runs"
    else:
        for example in examples:
            write_submission(example, course)
        run = grade(
            course,
            workers=2,
            cell_timeout=limits_.cell,
            notebook_timeout=limits_.notebook,
            student_timeout=limits_.student,
            interrupt_grace=limits_.grace,
            progress=False,
            plots=False,
        )
        report = json.loads(run.report_path.read_text())
        assert report["limits"]["cell"] == limits_.cell
        assert run.seconds < report["worst_case_seconds"]
        runs_dir = run.report_dir / "runs"
    return {example.name: _graded(course, runs_dir, example) for example in examples}


@pytest.fixture(scope="module")
def graded_by(tmp_path_factory, released_course) -> dict[str, dict[str, Graded]]:
    """{grader: {example: what it left}}: for each group of limits, both graders at once (in
    courses of their own, as two instructors would). Their kernels mostly wait for a limit,
    so waiting side by side takes the time of the longer. (All four at once ran the second
    group's 15 s students beside the first group's spinning cells: on 2 busy cores a run
    then outlasted the worst case it announced.)"""
    results: dict[str, dict[str, Graded]] = {grader: {} for grader in GRADERS}
    for limits_ in (CELL_LIMIT, LONGER_LIMITS):
        examples = [e for e in EXAMPLES if EXPECT[e.name].limits == limits_]
        options = tuple(
            f"--ProtectedExecute.{name}={value}" for name, value in limits_.options().items()
        )
        courses = {
            grader: released_course(tmp_path_factory.mktemp(grader), extra_config=options)
            for grader in GRADERS
        }
        with ThreadPoolExecutor(
            len(GRADERS)
        ) as pool:  # grade() forks its workers from a server of their own: threads are safe
            done = {g: pool.submit(_grade, c, g, limits_, examples) for g, c in courses.items()}
            for grader, future in done.items():
                results[grader] |= future.result()
    return results


def _cell_seconds(run: dict, grade_id: str) -> float:
    return next(c["seconds"] for c in run["cells"] if c["grade_id"] == grade_id)


@pytest.mark.slow
@pytest.mark.parametrize("grader", GRADERS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_every_limit_holds_and_earlier_grades_stay(graded_by, grader, example):
    outcome, expect = graded_by[grader][example.name], EXPECT[example.name]
    cell, notebook, student, grace = (
        expect.limits.cell,
        expect.limits.notebook,
        expect.limits.student,
        expect.limits.grace,
    )
    stopped = [run for run in outcome.runs.values() if run["ended_by"] is not None]
    exercises = outcome.runs[EXERCISES]
    assert exercises["status"] == "timed out", exercises["reason"]
    assert [run["ended_by"] for run in stopped] == ([expect.ended_by] if expect.ended_by else [])
    assert any(example.reason in run["reason"] for run in outcome.runs.values())
    if expect.cell:  # ran to the cell limit, and not much past it plus the grace
        assert cell - 0.5 < _cell_seconds(exercises, expect.cell) < cell + grace + MARGIN
    for run in outcome.runs.values():
        assert run["seconds"] < notebook + grace + MARGIN
        assert "probe-no-reply" not in run["flags"]  # nothing was sent to a kernel that hung
    total = sum(run["seconds"] for run in outcome.runs.values())
    assert total < student + grace + MARGIN
    if expect.ended_by == "notebook":
        assert exercises["seconds"] > notebook - 0.5
    if expect.ended_by == "student":
        assert total > student - 1.0
    _check_scores(example, expect, outcome)


def _check_scores(example: Example, expect: Expect, outcome: Graded) -> None:
    if example.expected:  # timing cannot move these: every test has its golden score
        for grade_id, (score, max_score) in outcome.scores.items():
            assert score == example.expected_score(grade_id, max_score), (
                f"{grade_id}: {outcome.messages.get(grade_id)}"
            )
    for grade_id in expect.kept:
        score, max_score = outcome.scores[grade_id]
        assert score == max_score > 0, outcome.messages.get(grade_id)
    for grade_id in expect.lost:
        assert outcome.scores[grade_id][0] == 0
        message = outcome.messages[grade_id]
        assert message.startswith("NotRun: This test was not run: the notebook stopped"), message
    if expect.ended_by:  # every test after the stop says where and why
        not_run = [m for m in outcome.messages.values() if m.startswith("NotRun")]
        assert not_run and all(("limit" in m and "cell" in m) for m in not_run), not_run


# -- the protected execution itself, on small notebooks ----------------------------------------

SPIN = """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    pass
"""
CHILD = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"],
                         start_new_session=True)
print(child.pid)
"""


# Short limits for small notebooks: these run no tracemalloc, so an interrupt is answered in
# well under a second.
LIMIT, GRACE = 3, 3.0


def run_notebook(cells: list[str], work: Path, graded=(), **traits) -> tuple[dict, list]:
    """Run ``cells`` with ProtectedExecute (the cells at ``graded`` are tests); the run
    record and the cells' outputs."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    for index in graded:
        nb.cells[index].metadata["nbgrader"] = {
            "grade": True,
            "grade_id": f"test{index}",
            "points": 1,
            "solution": False,
            "locked": True,
        }
    who = {"student": traits.pop("student", work.name), "notebook": traits.pop("notebook", "n")}
    traits = {"timeout": LIMIT, "interrupt_grace": GRACE, **traits}
    execute = ProtectedExecute(evidence_dir=str(work.parent / "runs"), **traits)
    resources = {"metadata": {"path": str(work)}, "nbgrader": who}
    execute.preprocess(nb, resources)
    return resources["autograder"].to_json(), [cell.outputs for cell in nb.cells]


def _errors(outputs: list) -> list[str]:
    return [o["ename"] for o in outputs if o["output_type"] == "error"]


def test_a_cell_that_ignores_the_interrupt_is_killed_with_what_it_started(work):
    record, outputs = run_notebook(
        ["x = 1", "assert x == 1", CHILD, SPIN, "assert x"], work, (1, 4)
    )
    assert record["status"] == "timed out" and record["ended_by"] == "cell", record["reason"]
    assert LIMIT - 0.5 < record["cells"][3]["seconds"] < LIMIT + GRACE + MARGIN
    assert _errors(outputs[1]) == []  # the test before keeps its pass
    assert _errors(outputs[3]) == ["CellTimeoutError"]
    assert _errors(outputs[4]) == ["NotRun"] and "stopped at cell 4" in outputs[4][0]["evalue"]
    child = int(next(o["text"] for o in outputs[2] if o["output_type"] == "stream"))
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_reading_stdin_cannot_hang(work):
    reads = (
        "import os, sys\n"
        "try:\n    input()\nexcept Exception as error:\n    print(type(error).__name__)\n"
        "print(repr(sys.stdin.read()), repr(os.read(0, 1)))"
    )
    # A stdin that never ends, with the interrupt ignored: the kill still comes in time.
    blocked = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    blocked += "r, w = os.pipe()\nos.dup2(r, 0)\nsys.stdin.read()"
    record, outputs = run_notebook([reads, "x = 1", blocked, "assert x"], work, (3,))
    said = "".join(o.get("text", "") for o in outputs[0])
    assert said == "StdinNotImplementedError\n'' b''\n", outputs[0]
    assert record["cells"][0]["seconds"] < 3
    assert record["status"] == "timed out" and record["ended_by"] == "cell"
    assert record["cells"][2]["seconds"] < LIMIT + GRACE + MARGIN
    assert _errors(outputs[3]) == ["NotRun"]


@pytest.mark.slow
def test_a_kernel_that_dies_while_interrupted_is_kernel_died(work):
    dies = (
        "import os, signal\nsignal.signal(signal.SIGINT, lambda *_: os._exit(3))\nwhile True: pass"
    )
    record, outputs = run_notebook(["x = 1", dies, "assert x"], work, (2,))
    assert record["status"] == "kernel died" and record["ended_by"] is None
    assert "as it was interrupted" in record["reason"]
    assert record["cells"][1]["seconds"] < LIMIT + GRACE + MARGIN
    assert _errors(outputs[2]) == ["NotRun"] and "the kernel died" in outputs[2][0]["evalue"]


@pytest.mark.slow
def test_a_probe_the_kernel_does_not_answer_stops_the_notebook(work):
    """Nothing is sent after a request the kernel did not answer: here the probe itself
    hangs (a pre-run hook spins on it), so the test cell after it is never sent."""
    hook = (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "def _hang(info):\n"
        "    while '_kernel_probe' in (info.raw_cell or ''):\n        pass\n"
        "get_ipython().events.register('pre_run_cell', _hang)"
    )
    record, outputs = run_notebook(["x = 1", hook, "assert x"], work, (2,), probe_timeout=2.0)
    assert record["status"] == "timed out" and record["ended_by"] == "probe", record["reason"]
    assert "before cell 3" in record["reason"]
    assert record["seconds"] < 2 + 2 + MARGIN  # start-up, the probe's 2 s, a margin
    assert _errors(outputs[2]) == ["NotRun"]
    assert "probe-no-reply" not in record["flags"]


@pytest.mark.slow
def test_the_notebook_limit_stops_the_running_cell(work):
    slow = "import time\ntime.sleep(2)"
    record, outputs = run_notebook(
        ["x = 1", "assert x", slow, slow, slow, slow, "assert x"], work, (1, 6), notebook_timeout=6
    )
    assert record["status"] == "timed out" and record["ended_by"] == "notebook"
    assert 6 - 0.5 < record["seconds"] < 6 + GRACE + MARGIN
    assert _errors(outputs[1]) == [] and _errors(outputs[6]) == ["NotRun"]
    assert "6 s limit of the notebook" in outputs[6][0]["evalue"]


@pytest.mark.slow
def test_the_student_limit_spans_notebooks(work):
    limits_ = {"student": "spans", "timeout": 5, "student_timeout": 7, "notebook_timeout": 30}
    first, _ = run_notebook(["import time; time.sleep(2)", "assert 1"], work, (1,), **limits_)
    second, out2 = run_notebook(
        ["import time; time.sleep(30)", "assert 1"], work, (1,), notebook="m", **limits_
    )
    third, out3 = run_notebook(["x = 1", "assert 1"], work, (1,), notebook="o", **limits_)
    assert first["status"] == "graded" and first["ended_by"] is None
    assert second["ended_by"] == "student" and second["limits"]["student_left"] < 7 - 2
    assert first["seconds"] + second["seconds"] < 7 + GRACE + MARGIN
    assert _errors(out2[0]) == ["KeyboardInterrupt", "CellTimeoutError"]
    assert third["ended_by"] == "student" and third["seconds"] < 0.5  # no kernel started
    assert _errors(out3[1]) == ["NotRun"] and "was not started" in out3[1][0]["evalue"]


def test_the_cpu_rlimit_is_a_last_line_behind_the_limits(work):
    read = "import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU)[0])"
    record, outputs = run_notebook([read], work, notebook_timeout=20, interrupt_grace=3.0)
    expected = (20 + 3 + defaults.CPU_MARGIN) * limits.cores()  # every core busy, all along
    assert int(outputs[0][0]["text"]) == expected == record["limits"]["cpu_rlimit"]


# Threads doing NumPy work that releases the GIL keep every core busy, and keep going after
# the cell that started them is interrupted.
SPIN_THREADS = """
import threading
import time
import numpy as np
block = np.ones(2_000_000)
result = np.empty_like(block)
def spin():
    while True:
        np.sqrt(block, out=result)
threads = [threading.Thread(target=spin, daemon=True) for _ in range(4)]
for thread in threads:
    thread.start()
while True:  # not thread.join(): the interrupt may reach another thread, and join never wakes
    time.sleep(0.1)
"""


@pytest.mark.slow
def test_threads_on_every_core_end_timed_out_not_killed_by_the_cpu_rlimit(work, monkeypatch):
    """With a CPU rlimit of the notebook limit plus the grace plus the margin (here 1 s, so
    that the test is short), threads on two cores would use it up before the notebook's
    limit, and SIGXCPU would end the kernel as "kernel died". Derived from the cores, the
    rlimit is past what the wall-clock limits let any number of threads use."""
    monkeypatch.setattr(limits, "CPU_MARGIN", 1)
    cells = [
        "x = 1",
        "assert x",
        SPIN_THREADS,
        "for _ in range(300):\n    time.sleep(0.1)",
        "assert x",
    ]
    record, outputs = run_notebook(
        cells, work, (1, 4), timeout=6, notebook_timeout=8, interrupt_grace=2.0
    )
    assert record["limits"]["cpu_rlimit"] == (8 + 2 + 1) * limits.cores()
    assert record["status"] == "timed out", record["reason"]
    assert record["ended_by"] == "notebook", record["reason"]
    assert _errors(outputs[1]) == []  # the test before keeps its pass
    assert _errors(outputs[2]) == ["KeyboardInterrupt", "CellTimeoutError"]
    assert _errors(outputs[4]) == ["NotRun"]


# A kernel that hangs as it starts: IPython runs exec_lines before it answers any request.
HANGS_AT_START = "--IPKernelApp.exec_lines=['import time; time.sleep(600)  # {}']"


def test_a_kernel_that_does_not_start_is_killed_and_the_student_goes_on(work):
    token = uuid.uuid4().hex
    hangs = [*defaults.KERNEL_ARGUMENTS, HANGS_AT_START.format(token)]
    who = {"student": "starts", "timeout": 20}
    first, _ = run_notebook(["x = 1", "assert x"], work, (1,), notebook="a", **who)
    second, outputs = run_notebook(
        ["x = 1", "assert x"],
        work,
        (1,),
        notebook="b",
        startup_timeout=3,
        extra_arguments=hangs,
        **who,
    )
    third, _ = run_notebook(["x = 1", "assert x"], work, (1,), notebook="c", **who)
    assert first["status"] == third["status"] == "graded"  # before and after: graded
    assert second["status"] == "ungradable" and second["ended_by"] == "startup"
    assert second["reason"].startswith("kernel did not start: ")
    assert "3 s a kernel has to start" in second["reason"]
    assert 3 - 0.5 < second["seconds"] < 3 + MARGIN
    assert second["limits"]["startup"] == 3
    assert _errors(outputs[1]) == ["NotRun"] and "did not start" in outputs[1][0]["evalue"]
    assert not [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if token in " ".join(p.info["cmdline"] or [])
    ]


# -- one place for the defaults, and limits that cannot hold -----------------------------------


def test_the_defaults_live_in_one_place(repo):
    execute = ProtectedExecute()
    assert (execute.timeout, execute.notebook_timeout, execute.student_timeout) == (
        defaults.CELL_TIMEOUT,
        defaults.NOTEBOOK_TIMEOUT,
        defaults.STUDENT_TIMEOUT,
    )
    assert execute.interrupt_grace == defaults.INTERRUPT_GRACE
    source = (repo / "nbgrader_config.py").read_text()
    for name in ("CELL_TIMEOUT", "NOTEBOOK_TIMEOUT", "STUDENT_TIMEOUT", "INTERRUPT_GRACE"):
        assert f"defaults.{name}" in source
    assert "memory_bytes" not in source  # the sandbox's own default is defaults.MEMORY_BYTES
    assert SandboxedKernelManager().memory_bytes == defaults.MEMORY_BYTES
    assert SandboxedKernelManager().cpu_seconds == limits.TimeLimits().cpu_seconds
    assert limits.TimeLimits().cpu_seconds > defaults.NOTEBOOK_TIMEOUT + defaults.INTERRUPT_GRACE


@pytest.mark.parametrize(
    "bad",
    [
        {"cell": 0},
        {"cell": -5},
        {"notebook": 0},
        {"notebook": 10**9},
        {"student": -1},
        {"student": 10**9},
        {"interrupt_grace": 0},
        {"cell": float("nan")},
        {"notebook": "600"},
        {"startup": 0},
    ],
)
def test_limits_that_cannot_hold_are_refused(bad):
    with pytest.raises(limits.LimitError, match=r"limit|grace"):
        limits.TimeLimits(**bad)


def test_the_preprocessor_refuses_them_too():
    for trait, value in [("timeout", 0), ("notebook_timeout", -1), ("student_timeout", 10**9)]:
        with pytest.raises(TraitError, match=rf"ProtectedExecute\.{trait}"):
            ProtectedExecute(**{trait: value})
    config = Config()
    config.ProtectedExecute.interrupt_grace = -2.0
    with pytest.raises(TraitError, match="more than 0"):
        ProtectedExecute(config=config)


@pytest.mark.parametrize(
    "flag, value, says",
    [
        ("--cell-timeout", "0", "more than 0 seconds"),
        ("--cell-timeout", "-5", "more than 0 seconds"),
        ("--notebook-timeout", "99999999", "CPU rlimit allows"),
        ("--student-timeout", "0", "more than 0 seconds"),
        ("--student-timeout", "ten", "not a whole number"),
    ],
)
def test_the_command_line_says_what_is_wrong(flag, value, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--course-dir", str(tmp_path), "grade", flag, value])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "usage:" in error and flag in error and says in error


def test_grade_refuses_them_before_anything_runs(tmp_path, capsys):
    course = Course(tmp_path, assignment=ASSIGNMENT)  # no gradebook, no submissions: limits first
    with pytest.raises(limits.LimitError, match="more than 0"):
        grade(course, cell_timeout=0)
    with pytest.raises(limits.LimitError, match="CPU rlimit"):
        grade(course, notebook_timeout=defaults.MAX_CPU_SECONDS)
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.ProtectedExecute.timeout = 0\n"
    )
    with pytest.raises(limits.LimitError, match=r"ProtectedExecute\.timeout"):
        grade(course)
    code = main(["--course-dir", str(tmp_path), "grade", ASSIGNMENT, "--quiet"])
    assert code == 2 and "ProtectedExecute.timeout" in capsys.readouterr().err


def test_the_worst_case_is_known_before_the_run():
    time_limits = limits.TimeLimits(cell=60, notebook=600, student=1200, interrupt_grace=5)
    # Two notebooks: the student's limit binds (1200 + 5 < 2 x 605), plus nbgrader's steps.
    per_student = 1205 + 2 * defaults.NOTEBOOK_OVERHEAD
    assert time_limits.student_worst_case(2) == per_student
    assert time_limits.run_worst_case(10, 4, 2) == 3 * per_student + defaults.RUN_OVERHEAD
    assert time_limits.run_worst_case(3, 8, 2) == per_student + defaults.RUN_OVERHEAD
    # One notebook: its own limit binds.
    assert time_limits.student_worst_case(1) == 605 + defaults.NOTEBOOK_OVERHEAD
    assert limits.duration(3665) == "1 h 01 min" and limits.duration(75) == "1 min 15 s"


def test_a_student_clock_spans_their_notebooks_and_restarts_with_a_new_grading():
    clock = limits.student_clock("clock-test", "a")
    clock.used = 100.0
    assert limits.student_clock("clock-test", "b") is clock  # the next notebook: same clock
    assert limits.student_clock("clock-test", "a").used == 0  # "a" again: graded anew
    pinned = limits.start_student("clock-test")
    limits.student_clock("clock-test", "a").used = 50.0
    assert limits.student_clock("clock-test", "a") is pinned  # a retry shares the time
    assert pinned.remaining(60) == 10
