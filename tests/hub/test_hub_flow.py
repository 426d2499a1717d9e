"""The whole course on a shared hub, with real Unix users and nbgrader's own commands.

A hub admin's exchange (1777) and student configuration; an instructor user releases, two
student users fetch, fill in answers (one solved, one with wrong quiz answers, submitted twice,
the second time after the due date), validate and submit, each as themselves; the instructor
collects, grades with ``autograder grade`` and returns feedback, which each student fetches.
The answers and the scores they must earn come from the bundled examples
(``tests/examples/submissions``): passes-all and fails-quiz-thinks-del-always-frees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import parse_utc

from autograder.course import Course
from autograder.demo.examples import Example, load_examples, write_submission
from tests.conftest import ASSIGNMENT, REPO, copy_course
from tests.examples import EXAMPLES
from tests.hub.unix_users import (
    VENV_BIN,
    Runner,
    UnixUser,
    users_in_a_folder,
    why_unavailable,
)

UNAVAILABLE = why_unavailable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"hub flow with real users: {UNAVAILABLE}"),
]

SOLVED, WRONG = "passes-all", "fails-quiz-thinks-del-always-frees"
GRADED_NOTEBOOKS = ("02_quiz_what_del_frees", "04_exercises_free_and_budget_memory")
SUBMITTED_AS = re.compile(r"Submitted as: \S+ \S+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC)")


@dataclass(frozen=True)
class Hub:
    base: Path
    runner: Runner
    instructor: UnixUser
    solved: UnixUser  # the student who submits the solution
    wrong: UnixUser  # the student with wrong quiz answers, who submits twice
    course: Path  # the instructor's course directory (private: 0700)
    exchange: Path
    student_etc: Path  # the hub admin's student configuration (a Jupyter config folder)
    course_id: str

    def student_env(self) -> dict[str, str]:
        return {"JUPYTER_CONFIG_PATH": str(self.student_etc)}

    def exchange_options(self) -> list[str]:
        return ["--exchange", str(self.exchange), "--course-id", self.course_id]


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    with users_in_a_folder("agh", ("i", "s1", "s2")) as (base, token, users):
        instructor = users[0]
        course = copy_course(instructor.home / "course")
        shutil.chown(course, instructor.name, instructor.name)
        for path in course.rglob("*"):
            shutil.chown(path, instructor.name, instructor.name)
        course.chmod(0o700)  # README: the course directory is the instructor's alone
        course_id = f"numpy-memory-{token}"
        exchange, student_etc = base / "exchange", base / "etc-jupyter"
        # The hub admin's two steps, as root.
        for step in (
            ["hub", "exchange", str(exchange)],
            [
                "hub",
                "student-config",
                "--to",
                str(student_etc),
                "--course-id",
                course_id,
                "--exchange",
                str(exchange),
            ],
        ):
            subprocess.run([str(VENV_BIN / "autograder"), *step], check=True, capture_output=True)
        yield Hub(
            base, Runner(base / "stash"), instructor, users[1], users[2], course, exchange,
            student_etc, course_id,
        )  # fmt: skip


def _without_markers(source: str) -> str:
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    return "\n".join(line for line in source.splitlines() if line.strip() not in markers)


def answers(names: list[str], scratch: Path) -> dict[str, str]:
    """grade_id -> the answer cell's source in the bundled examples ``names`` (later ones win)."""
    examples = {example.name: example for example in load_examples(EXAMPLES / "submissions")}
    found: dict[str, str] = {}
    for name in names:
        folder = write_submission(examples[name], Course(REPO, workspace=scratch / name))
        for path in sorted(folder.glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("solution"):
                    found[meta["grade_id"]] = _without_markers(cell.source)
    return found


def fill_in(folder: Path, answers: dict[str, str], owner: UnixUser) -> None:
    """Write ``answers`` into every answer cell of the fetched notebooks in ``folder``."""
    for path in sorted(folder.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                assert meta["grade_id"] in answers, f"no answer for {meta['grade_id']}"
                cell.source = answers[meta["grade_id"]]
        nbformat.write(notebook, path)
        shutil.chown(path, owner.name, owner.name)


def submit(hub: Hub, student: UnixUser) -> str:
    """``nbgrader submit`` as ``student``; returns the timestamp nbgrader gave the submission."""
    output = hub.runner.ok(student, ["nbgrader", "submit", ASSIGNMENT], env=hub.student_env())
    found = SUBMITTED_AS.search(output)
    assert found, output
    return found.group(1)


def validate(hub: Hub, student: UnixUser, notebooks: tuple[str, ...]) -> str:
    paths = [f"{ASSIGNMENT}/{name}.ipynb" for name in notebooks]
    return hub.runner.ok(student, ["nbgrader", "validate", *paths], env=hub.student_env())


def verdict(validated: str) -> str:
    """nbgrader validate's verdict lines, without the kernels' log lines."""
    lines = [line for line in validated.splitlines() if "Success!" in line or "FAILED" in line]
    assert lines, validated
    return " / ".join(lines)


# Run as the other student, with the submission's name known: each operation on the folder and
# on each of its files, and whether the system allowed it.
ATTACK = """
import json, os, shutil, sys
inbound, name = sys.argv[1], sys.argv[2]
folder = os.path.join(inbound, name)
out = {}
def attempt(what, action):
    try:
        action()
        out[what] = "allowed"
    except OSError as error:
        out[what] = type(error).__name__
def write(path):
    with open(path, "w") as file:
        file.write("changed")
def replace_with_own(path):
    own = os.path.join(inbound, "own-" + os.path.basename(path))
    write(own)
    os.replace(own, path)
attempt("folder: list", lambda: os.listdir(folder))
attempt("folder: add a file", lambda: write(os.path.join(folder, "added.txt")))
attempt("folder: chmod 777", lambda: os.chmod(folder, 0o777))
for file in sys.argv[3:]:
    path = os.path.join(folder, file)
    attempt(f"{file}: read", lambda: open(path).read())
    attempt(f"{file}: overwrite", lambda: write(path))
    attempt(f"{file}: replace", lambda: replace_with_own(path))
    attempt(f"{file}: delete", lambda: os.remove(path))
attempt("folder: rename", lambda: os.rename(folder, folder + "-moved"))
attempt("folder: delete", lambda: shutil.rmtree(folder))
print(json.dumps(out))
"""


def forge(hub: Hub, victim: UnixUser, forger: UnixUser, stamp: str) -> str:
    """As ``forger``, put a newer submission under ``victim``'s name into inbound/; its name."""
    inbound = hub.exchange / hub.course_id / "inbound"
    name = f"{victim.name}+{ASSIGNMENT}+{stamp}+forgedforged"
    script = (
        "import os, shutil, sys; target = sys.argv[1]; "
        "shutil.copytree(sys.argv[2], target); "
        "open(os.path.join(target, 'timestamp.txt'), 'w').write(sys.argv[3])"
    )
    own = forger.home / ASSIGNMENT
    hub.runner.ok(forger, ["python", "-c", script, str(inbound / name), str(own), stamp])
    return name


class Steps:
    """Prints each step's outcome with the time it ended (shown with ``pytest -s``)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def done(self, outcome: str) -> None:
        print(f"{time.monotonic() - self.start:6.1f} s  {outcome}", flush=True)


def expected_scores(example: Example, report: dict) -> dict[str, tuple[float, float]]:
    """grade_id -> (score got, score the example's golden results say) for one student."""
    return {
        cell["grade_id"]: (
            cell["score"],
            example.expected_score(cell["grade_id"], cell["max_score"]),
        )
        for notebook in report["notebooks"]
        for cell in notebook["cells"]
    }


def test_a_bad_exchange_is_refused_with_its_fix(hub: Hub) -> None:
    # An exchange the hub admin left 0755 (root's): refused, with the fix, before anything runs.
    bad = hub.base / "exchange-0755"
    bad.mkdir(mode=0o755, exist_ok=True)
    release = ["autograder", "release", "--exchange", str(bad), "--course-id", hub.course_id]
    done = hub.runner.run(hub.instructor, release, cwd=hub.course)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"The exchange folder {bad} has mode 0755" in done.stderr
    assert f"autograder hub exchange {bad}" in done.stderr
    assert list(bad.iterdir()) == []


def test_release_submit_collect_grade_and_return_feedback(hub: Hub, tmp_path: Path) -> None:
    runner, instructor, steps = hub.runner, hub.instructor, Steps()
    outbound = hub.exchange / hub.course_id / "outbound" / ASSIGNMENT

    # 0. A student fetching before anything is released: nbgrader names what it looked for.
    fetched = hub.runner.run(
        hub.solved, ["nbgrader", "fetch_assignment", ASSIGNMENT], env=hub.student_env()
    )
    output = fetched.stdout + fetched.stderr
    assert fetched.returncode != 0, output
    assert (
        f"Assignment not found at: {hub.exchange}/{hub.course_id}/outbound/{ASSIGNMENT}" in output
    )
    assert not (hub.solved.home / ASSIGNMENT).exists()
    steps.done("fetching before the release: refused, 'Assignment not found at: <outbound path>'")

    # 1. The instructor releases: release/ regenerated, then copied to the exchange.
    output = runner.ok(
        instructor, ["autograder", "release", *hub.exchange_options()], cwd=hub.course
    )
    assert f"Released {ASSIGNMENT} to {hub.exchange}/{hub.course_id}/outbound" in output
    released = sorted(p.name for p in outbound.glob("*.ipynb"))
    assert released == sorted(p.name for p in (hub.course / "release" / ASSIGNMENT).glob("*.ipynb"))
    for path in outbound.glob("*.ipynb"):  # the exchange holds no solutions, no hidden tests
        assert "BEGIN SOLUTION" not in path.read_text() and "HIDDEN TESTS" not in path.read_text()
    steps.done(f"released {len(released)} notebooks to {outbound}")

    # 2. Each student fetches their own copy, as themselves.
    for student in (hub.solved, hub.wrong):
        runner.ok(student, ["nbgrader", "fetch_assignment", ASSIGNMENT], env=hub.student_env())
        fetched = sorted((student.home / ASSIGNMENT).glob("*.ipynb"))
        assert [p.name for p in fetched] == released
        assert {p.stat().st_uid for p in fetched} == {student.uid}
    steps.done("both students fetched their own copy")

    # 3. The solved student fills in the solution, validates ("Success!") and submits.
    fill_in(hub.solved.home / ASSIGNMENT, answers([SOLVED], tmp_path), hub.solved)
    validated = validate(hub, hub.solved, GRADED_NOTEBOOKS)
    assert validated.count("Success! Your notebook passes all the tests.") == len(
        GRADED_NOTEBOOKS
    ), validated
    solved_at = submit(hub, hub.solved)
    steps.done(
        f"solved: validated ({validated.count('Success!')} x Success!), submitted {solved_at}"
    )

    # 4. The other student submits the untouched copy, the due date passes, then they answer
    #    the quiz wrongly, validate (whatever it says: Validate never blocks a submission) and
    #    submit again.
    first_at = submit(hub, hub.wrong)
    due = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    runner.ok(
        instructor,
        ["nbgrader", "db", "assignment", "add", ASSIGNMENT, f"--duedate={due}"],
        cwd=hub.course,
    )
    time.sleep(1)
    fill_in(hub.wrong.home / ASSIGNMENT, answers([SOLVED, WRONG], tmp_path), hub.wrong)
    wrong_validated = validate(hub, hub.wrong, GRADED_NOTEBOOKS[:1])
    wrong_at = submit(hub, hub.wrong)
    assert parse_utc(first_at) < parse_utc(due) < parse_utc(wrong_at)
    steps.done(
        f"wrong: submitted {first_at}, due {due}, validated "
        f"({verdict(wrong_validated)}), submitted again {wrong_at}"
    )

    # 4b. The other student, who knows the name of the solved student's submission, tries to
    #     read and change it, file by file; then forges a later submission in their name.
    inbound = hub.exchange / hub.course_id / "inbound"
    (target,) = [p for p in inbound.iterdir() if p.name.startswith(f"{hub.solved.name}+")]
    files = sorted(p.name for p in target.iterdir())
    before = {name: (target / name).read_bytes() for name in files}
    argv = ["python", "-c", ATTACK, str(inbound), target.name, *files]
    outcome = json.loads(runner.ok(hub.wrong, argv).strip().splitlines()[-1])
    print(json.dumps(outcome, indent=1))
    assert outcome == dict.fromkeys(outcome, "PermissionError"), outcome
    assert len(outcome) == 5 + 4 * len(files)
    assert {name: (target / name).read_bytes() for name in os.listdir(target)} == before
    forged = forge(
        hub, hub.solved, hub.wrong, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    )
    steps.done(
        f"another student, knowing {target.name}: {len(outcome)} operations on it and its "
        f"{len(files)} files, all PermissionError; forged {forged}"
    )

    # 5. The instructor collects: each student's latest submission (never the forged one).
    output = runner.ok(
        instructor, ["autograder", "collect", *hub.exchange_options()], cwd=hub.course
    )
    assert f"{hub.solved.name}: submitted {solved_at}" in output
    assert f"{hub.wrong.name}: submitted {wrong_at}" in output
    assert f"Skipping {inbound / forged}: it claims to be {hub.solved.name}'s submission" in output
    steps.done("collected the latest submission of each")

    # 6. ... and grades what was collected, as themselves (no grading service here): the run
    #    says first that the kernels run as the instructor's uid.
    graded = runner.ok(
        instructor,
        ["autograder", "grade", "--workers", "2", "--quiet"],
        cwd=hub.course,
        timeout=900,
    )
    assert graded.startswith("Not protected in this run: a dedicated uid"), graded[:500]
    assert f"the kernel runs as uid {instructor.uid}, like the grader" in graded, graded[:500]
    report = json.loads((hub.course / "grading-report" / ASSIGNMENT / "report.json").read_text())
    students = {student["student"]: student for student in report["students"]}
    assert set(students) == {hub.solved.name, hub.wrong.name}
    examples = {e.name: e for e in load_examples(EXAMPLES / "submissions")}
    for student, example in ((hub.solved, SOLVED), (hub.wrong, WRONG)):
        scores = expected_scores(examples[example], students[student.name])
        wrong_cells = {cell: pair for cell, pair in scores.items() if pair[0] != pair[1]}
        assert not wrong_cells, f"{student.name} ({example}): (got, golden) {wrong_cells}"
    assert students[hub.solved.name]["score"] == students[hub.solved.name]["max_score"]
    assert students[hub.wrong.name]["score"] < students[hub.wrong.name]["max_score"]
    graded_at = {name: parse_utc(s["submitted_at"]) for name, s in students.items()}
    assert graded_at == {hub.solved.name: parse_utc(solved_at), hub.wrong.name: parse_utc(wrong_at)}
    assert students[hub.solved.name]["seconds_late"] == 0
    assert students[hub.wrong.name]["seconds_late"] > 0  # recorded as late
    steps.done(
        "graded: "
        + ", ".join(
            f"{name} {s['score']:g}/{s['max_score']:g} submitted {s['submitted_at']} "
            f"{s['seconds_late']:.1f} s late"
            for name, s in sorted(students.items())
        )
    )

    # 7. Feedback goes back through the exchange; each student fetches only their own.
    output = runner.ok(
        instructor, ["autograder", "feedback", *hub.exchange_options()], cwd=hub.course
    )
    notebooks = sorted(p.stem for p in (hub.course / "release" / ASSIGNMENT).glob("*.ipynb"))
    lessons = len(notebooks) - len(GRADED_NOTEBOOKS)
    assert (
        f"Released feedback to 2 students ({2 * len(notebooks)} pages, {2 * lessons} of them "
        "for notebooks that are not graded)" in output
    ), output
    assert "'Fetch Feedback', then '(view feedback)'" in output
    for student, submitted_at in ((hub.solved, solved_at), (hub.wrong, wrong_at)):
        runner.ok(student, ["nbgrader", "fetch_feedback", ASSIGNMENT], env=hub.student_env())
        got = student.home / ASSIGNMENT / "feedback"
        assert [p.name for p in got.iterdir()] == [submitted_at]  # not the first, ungraded one
        # A page for every notebook (the lessons' say they are not graded): nbgrader's list
        # marks the feedback fetched only then, and the Assignments tab offers "(view feedback)".
        assert sorted(p.stem for p in (got / submitted_at).iterdir()) == notebooks
        listed = runner.ok(student, ["nbgrader", "list", "--cached"], env=hub.student_env())
        assert f"{submitted_at} (feedback already fetched)" in listed, listed
        lesson = (got / submitted_at / "01_lesson_free_large_arrays.html").read_text()
        assert "is a lesson: it is not graded" in lesson
        own = hub.course / "feedback" / student.name / ASSIGNMENT
        assert sorted(p.name for p in (got / submitted_at).iterdir()) == sorted(
            p.name for p in own.glob("*.html")
        )
        for path in own.glob("*.html"):
            assert (got / submitted_at / path.name).read_bytes() == path.read_bytes()
    quiz = f"{GRADED_NOTEBOOKS[0]}.html"
    assert (hub.solved.home / ASSIGNMENT / "feedback" / solved_at / quiz).read_bytes() != (
        hub.wrong.home / ASSIGNMENT / "feedback" / wrong_at / quiz
    ).read_bytes()
    steps.done("feedback released; each student fetched only their own, for the graded submission")

    # 8. A student cannot see the others' submissions or feedback, nor the instructor's source.
    course_exchange = hub.exchange / hub.course_id
    tries = {
        "list inbound": ("listdir", course_exchange / "inbound"),
        "list feedback": ("listdir", course_exchange / "feedback"),
        "read the instructor's source": (
            "read",
            hub.course / "source" / ASSIGNMENT / quiz.replace(".html", ".ipynb"),
        ),
        "list the other student's home": ("listdir", hub.wrong.home),
    }
    probe = (
        "import json, os, sys\n"
        "tries = json.loads(sys.argv[1]); out = {}\n"
        "for name, (how, path) in tries.items():\n"
        "    try:\n"
        "        os.listdir(path) if how == 'listdir' else open(path).read()\n"
        "        out[name] = 'allowed'\n"
        "    except PermissionError:\n"
        "        out[name] = 'PermissionError'\n"
        "print(json.dumps(out))\n"
    )
    argv = ["python", "-c", probe, json.dumps({k: [h, str(p)] for k, (h, p) in tries.items()})]
    outcome = json.loads(runner.ok(hub.solved, argv).strip().splitlines()[-1])
    assert outcome == dict.fromkeys(tries, "PermissionError")
    steps.done(f"as a student: {outcome}")


def test_students_servers_load_only_what_a_student_uses(hub: Hub) -> None:
    """As a student, with the hub admin's configuration: Assignments and Validate, nothing else."""
    probe = (
        "import json; from jupyter_server.serverapp import ServerApp\n"
        "app = ServerApp(); app.find_server_extensions()\n"
        "print(json.dumps({k: v for k, v in app.jpserver_extensions.items() if 'nbgrader' in k}))\n"
    )
    output = hub.runner.ok(hub.solved, ["python", "-c", probe], env=hub.student_env())
    assert json.loads(output.strip().splitlines()[-1]) == {
        "nbgrader.server_extensions.assignment_list": True,
        "nbgrader.server_extensions.validate_assignment": True,
        "nbgrader.server_extensions.formgrader": False,
        "nbgrader.server_extensions.course_list": False,
    }
    output = hub.runner.ok(hub.solved, ["jupyter", "labextension", "list"], env=hub.student_env())
    disabled = output.split("Disabled extensions:")[1].split()
    assert sorted(disabled) == [
        "@jupyter/nbgrader:course-list",
        "@jupyter/nbgrader:create-assignment",
        "@jupyter/nbgrader:formgrader",
    ]
