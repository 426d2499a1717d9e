"""The guide's worked example: a second assignment, ``numpy_memory_2`` (one exercise, written
with docs/writing-exercises.md), added to a copy of the course and taken through every command
an instructor and a student run: release (to an exchange), fetch, check, submit, collect,
grade, feedback, the Gradescope and PrairieLearn builds and their graders, Canvas and Moodle.

The course then has two assignments: a command that is not told which says so; a student who
submitted only the first is "missing" for the second, with no gradebook row; the second
assignment's notebook is refused by ``check`` for the first. Its example submissions
(``examples/``) get their golden scores and class-view causes, as the bundled ones do.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry

from autograder.course import Course, tool_environment
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.class_view import HOLDER
from tests.conftest import ASSIGNMENT, copy_course
from tests.examples import EXAMPLES as BUNDLED
from tests.platforms.test_end_to_end import grader_host_job, run_entry, unzip

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SECOND = "numpy_memory_2"
NOTEBOOK = "01_exercise_keep_the_top_scores"
EXAMPLES = {example.name: example for example in load_examples(HERE / "examples")}
ONLY_WEEK_1 = "only-week-1"  # submitted the first assignment, not the second
AUTOGRADER = [sys.executable, "-m", "autograder"]


@dataclass
class Flow:
    root: Path
    course: Course  # numpy_memory_2
    exchange: Path
    course_id: str
    home: Path  # the student's (the user running the test: nbgrader's student id)
    outputs: dict[str, subprocess.CompletedProcess]

    @property
    def student(self) -> str:
        import getpass

        return getpass.getuser()


def autograder(flow_root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AUTOGRADER, "--course-dir", str(flow_root), *args],
        capture_output=True,
        text=True,
        cwd=cwd or flow_root,
        timeout=900,
    )


def nbgrader_as_student(flow: Flow, *args: str) -> str:
    """nbgrader's student side, from the student's home, with no course configuration."""
    env = {**os.environ, "HOME": str(flow.home)}
    env.pop("JUPYTER_CONFIG_DIR", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            *args,
            f"--Exchange.root={flow.exchange}",
            f"--CourseDirectory.course_id={flow.course_id}",
        ],
        cwd=flow.home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def answer(path: Path, example: Example) -> None:
    """Type an example's answer cells into the student's fetched notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in example.cells:
            cell.source = example.cells[grade_id]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> Flow:
    """The course with both assignments, the second released to an exchange, fetched,
    checked and submitted by a student, collected, and graded with its examples."""
    base = tmp_path_factory.mktemp("two-assignments")
    root = copy_course(base / "course")
    shutil.copytree(HERE / "source" / SECOND, root / "source" / SECOND)
    course = Course(root, assignment=SECOND)
    exchange, home = base / "exchange", base / "home"
    home.mkdir()
    flow = Flow(root, course, exchange, f"course-{base.name}", home, {})
    out = flow.outputs
    out["release, not saying which"] = autograder(root, "release")
    out["hub exchange"] = autograder(root, "hub", "exchange", str(exchange))
    out["release"] = autograder(
        root, "release", SECOND, "--exchange", str(exchange), "--course-id", flow.course_id
    )
    assert out["release"].returncode == 0, out["release"].stderr
    # The student fetches it, checks a first try (a view), fixes it, checks again, submits.
    nbgrader_as_student(flow, "fetch_assignment", SECOND)
    fetched = home / SECOND / f"{NOTEBOOK}.ipynb"
    answer(fetched, EXAMPLES["fails-ex1-keeps-a-view"])
    out["check, a view"] = autograder(root, "check", cwd=home / SECOND)
    shutil.copy(fetched, base / "first-try.ipynb")
    answer(fetched, EXAMPLES["passes-ex1-partition"])
    out["check, fixed"] = autograder(root, "check", cwd=home / SECOND)
    nbgrader_as_student(flow, "submit", SECOND)
    out["collect"] = autograder(
        root, "collect", SECOND, "--exchange", str(exchange), "--course-id", flow.course_id
    )
    # The examples, and a student who only did the first assignment.
    for example in EXAMPLES.values():
        write_submission(example, course)
    first = next(e for e in load_examples(BUNDLED / "submissions") if e.name == "passes-all")
    write_submission(
        Example(ONLY_WEEK_1, first.description, notebooks=first.notebooks),
        Course(root, assignment=ASSIGNMENT),
    )
    out["student add"] = subprocess.run(  # the course's roster, as nbgrader keeps it
        [sys.executable, "-m", "nbgrader", "db", "student", "add", ONLY_WEEK_1],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_environment(),
    )
    assert out["student add"].returncode == 0, out["student add"].stderr
    out["grade, not saying which"] = autograder(root, "grade", "--quiet")
    out["grade"] = autograder(root, "grade", SECOND, "--quiet", "--cell-timeout", "20")
    assert out["grade"].returncode == 0, out["grade"].stdout + out["grade"].stderr
    return flow


def test_a_course_of_two_assignments_asks_which(flow):
    for step in ("release, not saying which", "grade, not saying which"):
        done = flow.outputs[step]
        assert done.returncode == 2, step
        assert "This course has 2 assignments (numpy_memory, numpy_memory_2): say which" in (
            done.stderr
        )
        command = step.split(",")[0]  # the example names the command that was typed
        assert f"e.g. `autograder {command} numpy_memory_2`" in done.stderr, done.stderr
    assert not (flow.root / "release" / ASSIGNMENT).exists()  # nothing was released for it


def test_release_and_collect_work_on_the_named_assignment(flow):
    released = flow.outputs["release"].stdout
    assert f"release/{SECOND}/{NOTEBOOK}.ipynb" in released
    assert f"Released {SECOND} to {flow.exchange}/{flow.course_id}/outbound." in released
    assert "warning" not in flow.outputs["release"].stderr  # the guide's notebook says it all
    assert not (flow.root / "release" / ASSIGNMENT).exists()  # the other one was not touched
    collected = flow.outputs["collect"].stdout
    assert f"{flow.student}: submitted" in collected
    assert f"grade them with `autograder grade {SECOND}`" in collected
    assert (flow.course.submitted / flow.student / SECOND / f"{NOTEBOOK}.ipynb").is_file()


def test_the_students_check_reads_the_second_assignment_from_its_notebook(flow):
    first = flow.outputs["check, a view"]
    assert first.returncode == 1, first.stdout + first.stderr
    out = first.stdout
    assert f"{NOTEBOOK}.ipynb ({SECOND}: {NOTEBOOK})" in out
    assert "Exercise 1: keep the top 100 scores, free the rest (3 points): failed" in out
    assert "view `top_100`" in out
    assert "Visible tests: 0 of 1 passed (0 of 3 points if the hidden tests agree)." in out
    assert (
        "Exercise 1: that top_100 holds the 100 largest scores, and that the array you freed "
        "is the exercise's own 8,000,000-byte one." in out
    )
    fixed = flow.outputs["check, fixed"]
    assert fixed.returncode == 0, fixed.stdout
    assert "Visible tests: 1 of 1 passed (3 of 3 points" in fixed.stdout
    # The same notebook, checked for the first assignment: exit 2, and a sentence.
    other = autograder(
        flow.root,
        "check",
        "--assignment",
        ASSIGNMENT,
        str(flow.home / SECOND / f"{NOTEBOOK}.ipynb"),
    )
    assert other.returncode == 2
    assert (
        f"not a notebook of {ASSIGNMENT}: it was released for the assignment {SECOND} ({NOTEBOOK})"
        in other.stdout
    )


def test_grading_follows_the_examples_and_leaves_the_missing_student_out(flow):
    out = flow.outputs["grade"].stdout
    assert f"{SECOND}: {len(EXAMPLES) + 1} students in" in out
    assert (
        f"Missing (no submission of {SECOND}; not graded, no gradebook row): {ONLY_WEEK_1}" in out
    )
    report = json.loads((flow.course.report_dir / "report.json").read_text())
    assert report["assignment"] == SECOND and report["missing"] == [ONLY_WEEK_1]
    assert flow.course.report_dir == flow.root / "grading-report" / SECOND
    students = {s["student"]: s for s in report["students"]}
    assert set(students) == {*EXAMPLES, flow.student}
    for name, example in EXAMPLES.items():
        (notebook,) = [n for n in students[name]["notebooks"] if n["cells"]]
        assert notebook["status"] == "graded" and not notebook["flags"], name
        for cell in notebook["cells"]:
            expected = example.expected_score(cell["grade_id"], cell["max_score"])
            assert cell["score"] == expected, (name, cell)
    assert students[flow.student]["score"] == 3  # the fixed answer the student submitted
    with Gradebook(flow.course.db_url) as gradebook:
        with pytest.raises(MissingEntry):
            gradebook.find_submission(SECOND, ONLY_WEEK_1)
        assert gradebook.find_submission(SECOND, flow.student).score == 3


def test_the_class_view_of_the_second_assignment(flow):
    view = json.loads((flow.course.report_dir / "report.json").read_text())["class"]
    (row,) = view["exercises"]
    assert (row["key"], row["title"], row["points"]) == (
        "ex1",
        "Exercise 1: keep the top 100 scores, free the rest",
        3.0,
    )
    assert (row["students"], row["full_marks"]) == (len(EXAMPLES) + 1, 3)
    causes = {c["cause"]: (c["kind"], c["students"]) for c in row["causes"]}
    assert causes == {"a view": (HOLDER, 1), "not attempted": ("other", 1)}
    assert (flow.course.report_dir / "class.html").is_file()


def test_feedback_pages_are_the_second_assignments(flow):
    assert autograder(flow.root, "feedback").returncode == 2  # two assignments: which?
    done = autograder(flow.root, "feedback", SECOND)
    assert done.returncode == 0, done.stderr
    pages = flow.course.report_dir / "feedback"
    assert sorted(p.stem for p in pages.glob("*.html")) == sorted({*EXAMPLES, flow.student})
    page = (pages / "fails-ex1-keeps-a-view.html").read_text()
    assert "Exercise 1: keep the top 100 scores, free the rest" in page
    assert "np.random.default_rng(21).random(1_000_000))[-100:]" not in page  # hidden test


def test_gradescope_builds_and_grades_the_second_assignment(flow, tmp_path):
    built = autograder(flow.root, "gradescope", "build", SECOND, "--out", str(tmp_path / "g.zip"))
    assert built.returncode == 0, built.stderr
    assert "Total points: 3 (set the Gradescope assignment's total to this)." in built.stdout
    assert "1 visible checks" in built.stdout and "2 graded tests" in built.stdout
    root = tmp_path / "autograder"
    unzip(tmp_path / "g.zip", root / "source")
    shutil.copytree(flow.course.submitted / "fails-ex1-keeps-a-view" / SECOND, root / "submission")
    run_entry(root / "source" / "run_autograder", root)
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 1
    check = next(t for t in results["tests"] if "max_score" not in t)
    assert check["name"] == "Exercise 1: keep the top 100 scores, free the rest: visible tests"
    assert "view `top_100`" in check["output"]
    assert "hidden tests also check that top_100 holds the 100 largest scores" in check["output"]


def test_prairielearn_builds_its_own_folder_and_grades(flow, tmp_path):
    built = autograder(
        flow.root,
        "prairielearn",
        "build",
        SECOND,
        "--out",
        str(tmp_path / "q"),
        "--image",
        "me/g:1",
    )
    assert built.returncode == 0, built.stderr
    info = json.loads((tmp_path / "q" / "info.json").read_text())
    grader = f"{SECOND}_grader"
    assert info["externalGradingOptions"]["serverFilesCourse"] == [f"{grader}/"]
    assert (
        info["externalGradingOptions"]["entrypoint"]
        == f"/grade/serverFilesCourse/{grader}/run_grader"
    )
    root = grader_host_job(tmp_path / "q", "second")
    try:
        shutil.copytree(flow.course.submitted / "passes-all" / SECOND, root / "student")
        run_entry(root / "serverFilesCourse" / grader / "run_grader", root)
        results = json.loads((root / "results" / "results.json").read_text())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert results["gradable"] and results["score"] == 1.0
    assert {t["name"] for t in results["tests"]} >= {f"{NOTEBOOK}: ex1_freed_test"}


def test_canvas_and_moodle_files_of_the_second_assignment(flow, tmp_path):
    roster = tmp_path / "roster.csv"
    names = sorted({*EXAMPLES, flow.student, ONLY_WEEK_1})
    with roster.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"])
        writer.writerow(["    Points Possible", "", "", "", ""])
        writer.writerows([f"S {i}", str(i), "", name, "A"] for i, name in enumerate(names))
    unnamed = autograder(flow.root, "lms", "canvas", "--roster", str(roster), "--to", "x.csv")
    assert unnamed.returncode == 2
    assert "e.g. `autograder lms canvas numpy_memory_2`" in unnamed.stderr, unnamed.stderr
    canvas = autograder(
        flow.root, "lms", "canvas", SECOND, "--roster", str(roster), "--to", str(tmp_path / "c.csv")
    )
    assert canvas.returncode == 0, canvas.stdout + canvas.stderr
    with (tmp_path / "c.csv").open() as file:
        rows = list(csv.reader(file))
    assert rows[0][-1] == SECOND and rows[1][-1] == "3"
    assert {row[3]: float(row[5]) for row in rows[2:]} == {
        "blank": 0,
        "fails-ex1-keeps-a-view": 1,
        "passes-all": 3,
        "passes-ex1-partition": 3,
        flow.student: 3,
    }
    assert f"{ONLY_WEEK_1}: no submission" in canvas.stdout  # left out: Canvas keeps its grade
    # Asked, the missing student gets a 0.
    asked = autograder(
        flow.root, "lms", "moodle", SECOND, "--to", str(tmp_path / "m.csv"), "--missing", "0"
    )
    assert asked.returncode == 0, asked.stdout
    with (tmp_path / "m.csv").open() as file:
        moodle = {row[0]: row[1] for row in list(csv.reader(file))[1:]}
    assert float(moodle[ONLY_WEEK_1]) == 0 and float(moodle["passes-all"]) == 3


def test_the_main_job_checks_the_examples_of_the_second_assignment(flow, tmp_path):
    """The guide's last step: `autograder demo ASSIGNMENT --examples DIR` grades the new
    assignment's examples against their golden results (exit 0 when every one holds)."""
    done = autograder(
        flow.root,
        "demo",
        SECOND,
        "--examples",
        str(HERE / "examples"),
        "--workspace",
        str(tmp_path / "demo"),
        "--workers",
        "2",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert set(EXAMPLES) <= set(rows)
    assert all(rows[name].rstrip().endswith("ok") for name in EXAMPLES)
    assert rows["fails-ex1-keeps-a-view"].split()[1:3] == ["1", "1/3"]
