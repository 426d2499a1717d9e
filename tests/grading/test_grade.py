"""End to end through `autograder grade`: every example, hostile and broken submission,
graded in parallel into the gradebook and the report."""

import csv
import json
import re
import shutil
import signal
import subprocess
import sys

import pytest

from autograder.demo.examples import Example, load_examples
from autograder.grading.gradebook import cell_scores
from autograder.grading.run import grade
from tests.examples import EXAMPLES as EXAMPLES_ROOT
from tests.examples import in_shared_run

from ..conftest import HUGE, ODD, OLD, REPO
from . import stopped_run

pytestmark = pytest.mark.slow

EXAMPLES = load_examples(EXAMPLES_ROOT / "submissions")
# The hostile examples this run grades: as root, run A of tests/sandbox/test_hostile_runs.py
# grades and checks the others (tests/examples/__init__.py).
HOSTILE = [
    e
    for e in load_examples(EXAMPLES_ROOT / "hostile")
    if in_shared_run(e, EXAMPLES_ROOT / "hostile")
]
BROKEN = load_examples(EXAMPLES_ROOT / "broken")
QUIZ, EXERCISES = "02_quiz_what_del_frees", "04_exercises_free_and_budget_memory"


@pytest.fixture(scope="module")
def graded(graded_examples):
    """Every bundled example, hostile and broken submission, graded once for the session
    (tests/conftest.py: the class view and its browser test read the same run)."""
    return graded_examples


def _notebook(report: dict, name: str) -> dict:
    return next(n for n in report["notebooks"] if n["notebook"] == name)


def _check_golden(example: Example, report: dict) -> None:
    for notebook in report["notebooks"]:
        if example.notebooks and notebook["notebook"] not in example.notebooks:
            continue
        for cell in notebook["cells"]:
            expected = example.expected_score(cell["grade_id"], cell["max_score"])
            assert cell["score"] == expected, (
                f"{cell['grade_id']}: {cell['status']} {cell['message']}"
            )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_every_example_gets_its_golden_scores_and_is_never_flagged(graded, example):
    _, _, reports = graded
    report = reports[example.name]
    _check_golden(example, report)
    for notebook in report["notebooks"]:
        assert notebook["flags"] == [], notebook["evidence"]
        if not example.notebooks or notebook["notebook"] in example.notebooks:
            assert notebook["status"] == "graded", notebook["reason"]


@pytest.mark.parametrize("example", HOSTILE, ids=lambda e: e.name)
def test_hostile_submissions_are_caught_and_gain_nothing(graded, example):
    _, _, reports = graded
    report = reports[example.name]
    _check_golden(example, report)
    submitted = [
        n
        for n in report["notebooks"]
        if not example.notebooks or n["notebook"] in example.notebooks
    ]
    statuses = {n["status"] for n in submitted}
    assert example.status in statuses
    flags = {flag for n in submitted for flag in n["flags"]}
    assert set(example.flags) <= flags, [n["evidence"] for n in submitted]
    for notebook in submitted:
        if notebook["flags"]:
            assert all(e["detail"] for e in notebook["evidence"])  # evidence for the instructor


@pytest.mark.parametrize("example", BROKEN, ids=lambda e: e.name)
def test_broken_submissions_get_a_status_and_lose_nothing_else(graded, example):
    # Every broken example breaks the exercises notebook; what else it submitted is graded as usual.
    _, _, reports = graded
    report = reports[example.name]
    _check_golden(example, report)
    exercises = _notebook(report, EXERCISES)
    assert exercises["status"] == example.status
    assert example.reason in exercises["reason"]
    if example.status == "ungradable":
        assert all(
            c["score"] == 0 and c["message"].startswith("not graded") for c in exercises["cells"]
        )


def test_extra_files_are_reported(graded):
    _, _, reports = graded
    notes = reports["graded-with-extra-files"]["notes"]
    assert any("scratch.py" in note for note in notes) and any("Copy1" in note for note in notes)


def test_generated_bad_inputs(graded):
    _, _, reports = graded
    huge = _notebook(reports[HUGE], EXERCISES)
    assert huge["status"] == "ungradable" and "over the 20,971,520-byte limit" in huge["reason"]
    assert _notebook(reports[HUGE], QUIZ)["score"] == 8
    assert _notebook(reports[OLD], QUIZ)["score"] == 8
    assert any("nbformat 3: upgraded" in note for note in reports[OLD]["notes"])
    assert _notebook(reports[ODD], QUIZ)["score"] == 8


def test_a_dying_kernel_keeps_the_earlier_grades(graded):
    course, _, reports = graded
    notebook = _notebook(reports["kernel-died-in-ex5"], EXERCISES)
    assert notebook["status"] == "kernel died"
    scores = {c["grade_id"]: c["score"] for c in notebook["cells"]}
    assert sum(scores[f"ex{n}_{t}"] for n, t in [(1, "size_test"), (1, "freed_test")]) == 3
    assert scores["ex7_freed_test"] == 0
    assert (
        course.autograded / "kernel-died-in-ex5" / course.assignment / f"{EXERCISES}.ipynb"
    ).is_file()


def test_gradebook_and_report_files_are_complete(graded):
    course, run, reports = graded
    for student in reports:
        assert len(cell_scores(course.db_url, course.assignment, student)) == 22, student
    report = json.loads(run.report_path.read_text())
    assert report["version"] == 1 and len(report["students"]) == len(reports)
    cell = _notebook(reports["fails-ex2-view-keeps-base"], EXERCISES)["cells"]
    freed = next(c for c in cell if c["grade_id"] == "ex2_freed_test")
    assert freed["status"] == "failed" and "view `first_1000`" in freed["message"]
    with (run.report_dir / "totals.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {row["student"] for row in rows} == set(reports)
    assert next(r for r in rows if r["student"] == "passes-all")["score"] == "29.0"
    memory = _notebook(reports["passes-all"], EXERCISES)["memory_after_each_cell"]
    assert len(memory) > 20 and all(point["rss_bytes"] > 0 for point in memory)
    assert (run.report_dir / "memory" / "passes-all.png").stat().st_size > 1000


# A measured size in a check's message ("313.43 KiB (320,954 bytes)"): a leak's includes the
# Python objects the calls left, whose sizes differ by a few bytes between two kernels.
_SIZE = re.compile(r"-?\d[\d,.]* (?:GiB|MiB|KiB|bytes)(?:\s+\(-?[\d,]+ bytes\))?")


def _comparable(report: dict) -> dict:
    """A student's report without what depends on timing or memory layout."""
    report = json.loads(json.dumps(report))
    report.pop("seconds", None)
    for notebook in report["notebooks"]:
        # limits: the student's time left when a notebook started depends on the ones before
        # observations: whether resident memory fell depends on the allocator's history
        for key in (
            "seconds",
            "limits",
            "memory_after_each_cell",
            "sandbox",
            "sandbox_level",  # what the machine the notebook ran on allows
            "log",
            "observations",
        ):
            notebook.pop(key, None)
        notebook["evidence"] = sorted({(e["flag"], e["cell"]) for e in notebook["evidence"]})
        for cell in notebook["cells"]:
            if cell["status"] == "distrusted":  # the message quotes memory figures of the run
                cell["message"] = cell["message"].split(":", 1)[0]
            # Line breaks move with the figures' widths.
            cell["message"] = " ".join(_SIZE.sub("<size>", cell["message"]).split())
    return report


def test_one_worker_gives_the_same_results_and_a_rerun_resumes(graded, tmp_path):
    course, _, reports = graded
    subset = [
        "passes-all",
        "fails-ex3-del-leaves-output-cache",
        "kernel-died-in-ex5",
        *(e.name for e in HOSTILE[:2]),
    ]
    again = grade(
        course,
        workers=1,
        force=True,
        students=subset,
        report_dir=tmp_path / "one",
        cell_timeout=5,
        progress=False,
        plots=False,
    )
    for student in again.students:
        one, two = _comparable(student.to_json()), _comparable(reports[student.student])
        for a, b in zip(one.pop("notebooks"), two.pop("notebooks"), strict=True):
            assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        assert one == two
    resumed = grade(
        course, workers=1, students=subset, report_dir=tmp_path / "one", progress=False, plots=False
    )
    assert sorted(resumed.skipped) == sorted(subset)


def test_command_line_exit_codes(graded, tmp_path):
    course, _, _ = graded
    command = [sys.executable, "-m", "autograder", "--course-dir"]
    ok = subprocess.run(
        [
            *command,
            str(course.root),
            "grade",
            "--student",
            "blank",
            "--quiet",
            "--report",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "blank" in ok.stdout and "0/29" in ok.stdout
    empty = tmp_path / "empty"
    shutil.copytree(REPO / "source", empty / "source")
    shutil.copy2(REPO / "nbgrader_config.py", empty)
    failed = subprocess.run([*command, str(empty), "grade"], capture_output=True, text=True)
    assert failed.returncode == 2 and "release the assignment first" in failed.stderr
    unknown = subprocess.run(
        [*command, str(course.root), "grade", "--student", "nobody"], capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "No submission of numpy_memory for: nobody" in unknown.stderr


def test_every_bundled_example_gets_the_same_points_on_each_platform(graded):
    """Gradescope's and PrairieLearn's results, built from each bundled example's report,
    give it the points `autograder grade` gave (the adapters themselves run end to end in
    tests/platforms, on fewer examples: each run there grades a submission again)."""
    from autograder.platforms.gradescope import gradescope_results
    from autograder.platforms.prairielearn import prairielearn_results
    from autograder.platforms.single_submission import SubmissionResult
    from autograder.platforms.uploads import Intake

    _, _, reports = graded
    for example in EXAMPLES + HOSTILE + BROKEN:
        report = reports[example.name]
        result = SubmissionResult(Intake(), report)
        gradescope = gradescope_results(result)
        assert gradescope["score"] == report["score"], example.name
        graded_tests = [test for test in gradescope["tests"] if "max_score" in test]  # not checks
        assert sum(test["score"] for test in graded_tests) == report["score"], example.name
        prairielearn = prairielearn_results(result)
        if prairielearn["gradable"]:
            points = sum(test["points"] for test in prairielearn["tests"])
            assert points == report["score"], example.name
            assert prairielearn["score"] == pytest.approx(points / report["max_score"])
        else:  # a graded notebook missing or unreadable: says why, and the attempt does not count
            assert any(n["status"] == "ungradable" for n in report["notebooks"] if n["cells"])
            assert prairielearn["format_errors"], example.name


def test_a_student_the_grader_failed_on_never_shows_an_earlier_runs_results(
    graded, tmp_path, monkeypatch
):
    course, run, _ = graded
    report_dir = tmp_path / "report"
    shutil.copytree(run.report_dir / "runs" / "passes-all", report_dir / "runs" / "passes-all")

    def workers_that_fail(course, students, workers, overrides, on_done):
        for student in students:  # as a worker that crashed before grading anything
            on_done(student, "RuntimeError: the worker could not open the gradebook")

    monkeypatch.setattr("autograder.grading.run.grade_in_pool", workers_that_fail)
    again = grade(
        course, students=["passes-all"], report_dir=report_dir, progress=False, plots=False
    )
    (student,) = again.students
    assert student.score == 0
    for notebook in student.notebooks:
        if notebook.max_score:
            assert notebook.status == "ungradable"
            assert "the grader failed on this notebook" in notebook.reason
            assert "could not open the gradebook" in notebook.reason
            assert all(c.score == 0 and c.status == "not run" for c in notebook.cells)


# Five on two workers, each a kernel asleep for 2 s: when the first is recorded, some are
# still waiting. (What each example scores is the shared run's to show.)
STOPPED = stopped_run.sleepers("passes-quiz-stopped", 5)


def test_ctrl_c_stops_the_run_cleanly_and_the_next_run_grades_the_rest(graded, tmp_path):
    """Ctrl-C, as a terminal sends it (SIGINT to the run's whole process group), once one
    student is recorded: the run says what it kept and what to do, exits with 130 within
    seconds, and leaves no process (no worker, no kernel, nothing of the sandbox's uids);
    the same command, without --force, grades only the rest, once each."""
    course, _, _ = graded
    copy = stopped_run.copy_course(course, tmp_path / "course", STOPPED)
    options = ["--workers", "2", "--force", "--cell-timeout", "5"]  # the progress bar too
    run = stopped_run.Run(copy, tmp_path / "r", stopped_run.own_sandbox(copy), options)
    process = run.start()
    run.wait_until_recorded(process, 1)
    stopped = run.stop(process, signal.SIGINT)
    stopped_run.check_stopped_cleanly(run, stopped, len(STOPPED), signal.SIGINT)
    assert "without --force" in stopped.output.splitlines()[-1]
    resumed = grade(
        copy, workers=2, report_dir=run.report, cell_timeout=5, progress=False, plots=False
    )
    examples = {example.name: example for example in STOPPED}
    rest = stopped.recorded_after
    stopped_run.check_only_the_rest_graded(copy, resumed, rest, list(examples), examples)


def test_a_kernel_that_does_not_start_costs_the_student_nothing(graded, tmp_path):
    """Every kernel hangs as it starts: each notebook is killed at the start-up limit and
    reported, and the student is not recorded, so the next run grades them again."""
    course, _, _ = graded
    copy = stopped_run.copy_course(course, tmp_path / "course", ["passes-all"])
    hang = "--IPKernelApp.exec_lines=['import time; time.sleep(600)']"
    with (copy.root / "nbgrader_config.py").open("a") as config:
        config.write(
            f"\nc.ProtectedExecute.extra_arguments = [*c.ProtectedExecute.extra_arguments, {hang!r}]\n"
        )
    run = grade(copy, workers=1, startup_timeout=3, progress=False, plots=False)
    (student,) = run.students
    for notebook in (n for n in student.notebooks if n.max_score > 0):
        assert notebook.status == "ungradable" and notebook.ended_by == "startup", notebook
        assert notebook.reason.startswith("kernel did not start: it did not answer within 3 s"), (
            notebook.reason
        )
        assert notebook.seconds is not None and notebook.seconds < 3 + 5
        assert all(
            c.score == 0 and c.message.startswith("not graded: kernel did not start")
            for c in notebook.cells
        )
    assert student.score == 0
    assert not run.student_path("passes-all").exists()  # not recorded: graded again next time
