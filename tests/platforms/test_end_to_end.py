"""Each platform's container, emulated: build its files, run its own entry script against
honest, wrong, hostile and broken bundled examples, and compare the results with the
examples' golden scores (what ``autograder grade`` gives them) and with what the platform
shows the student (rules.py). PrairieLearn's job directory is laid out as grader-host lays
it out, shared/ included, and a hostile cell searches all of it for hidden-test text."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.platforms import gradescope, prairielearn
from autograder.student.redact import strip_hidden
from tests.examples import EXAMPLE_FOLDERS

from ..conftest import REPO
from .rules import gradescope_student_view, pl_file_upload, upload_element

pytestmark = pytest.mark.slow

EXAMPLES = {
    "honest": "passes-all",
    "wrong": "fails-ex2-view-keeps-base",
    "hostile": "cheat-rebinds-checks",
    "broken": "ungradable-corrupt-json",
}
AUTOGRADER = str(Path(sys.executable).parent / "autograder")  # this venv's, not setup.sh's


def example(name: str) -> Example:
    return next(e for f in EXAMPLE_FOLDERS for e in load_examples(f) if e.name == name)


def golden(example: Example, test_name: str, max_score: float) -> float:
    notebook, grade_id = test_name.split(": ")
    submitted = not example.notebooks or notebook in example.notebooks
    return example.expected_score(grade_id, max_score) if submitted else 0.0


def hidden_test_lines() -> list[str]:
    """Lines of the instructor's hidden tests, long enough to be recognisable, that the
    student's copy does not show too (a visible test may repeat a hidden one's line)."""
    lines, visible, inside = [], set(), False
    for path in (REPO / "source" / "numpy_memory").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            for line in cell.source.splitlines():
                inside = (inside or "BEGIN HIDDEN TESTS" in line) and "END HIDDEN TESTS" not in line
                if inside and len(line.strip()) >= 25 and "HIDDEN TESTS" not in line:
                    lines.append(line.strip())
                elif not inside:
                    visible.add(line.strip())
    lines = [line for line in lines if line not in visible]
    assert len(lines) > 20
    return lines


def submit(example: Example, folder: Path, scratch: Path) -> None:
    written = write_submission(example, Course(REPO, workspace=scratch / example.name))
    shutil.copytree(written, folder)


@dataclass
class Run:
    example: Example
    results: dict
    stdout: str
    seconds: float
    root: Path = Path()


def run_entry(script: Path, root: Path) -> tuple[str, float]:
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_BIN": AUTOGRADER}
    started = time.monotonic()
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout, time.monotonic() - started


def unzip(archive: Path, target: Path) -> None:
    """As Gradescope does, keeping the modes the zip records."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            path = Path(z.extract(info, target))
            path.chmod((info.external_attr >> 16) & 0o777 or 0o644)


@pytest.fixture(scope="module")
def gradescope_runs(gradescope_build, tmp_path_factory) -> dict[str, Run]:
    archive, _ = gradescope_build
    runs = {}
    for kind, name in EXAMPLES.items():
        root = tmp_path_factory.mktemp(f"autograder-{kind}")
        unzip(archive, root / "source")
        submit(example(name), root / "submission", tmp_path_factory.mktemp("scratch"))
        metadata = {"id": 1, "users": [{"name": name, "email": f"{name}@example.edu", "id": 7}]}
        (root / "submission_metadata.json").write_text(
            json.dumps({**metadata, "previous_submissions": []})
        )
        stdout, seconds = run_entry(root / "source" / "run_autograder", root)
        results = json.loads((root / "results" / "results.json").read_text())
        runs[kind] = Run(example(name), results, stdout, seconds)
    return runs


# PrairieLearn's job, as grader-host builds it (apps/prairielearn/src/lib/externalGraderCommon.ts,
# buildDirectory): serverFilesCourse/ with the files info.json lists, shared/ a second copy of
# it, tests/ (the question's: ours has none), student/ (the upload, under the names the
# element kept) and data/data.json. grader-host's own job folder is private to its user; here
# /grade is open (0755), the worst case, so that every entry has to protect itself. It is made
# outside /tmp: the kernel has a private /tmp, where nothing of the job would be in its sight.
JOB_PARENT = Path("/var/lib") if os.access("/var/lib", os.W_OK) else Path(tempfile.gettempdir())
KERNEL_UID = 61000  # the sandbox's first kernel uid (autograder.sandbox.policy.DEFAULT_BASE_UID)


def grader_host_job(question: Path, name: str) -> Path:
    """/grade for one submission, all but the upload."""
    root = Path(tempfile.mkdtemp(prefix=f"pl-job-{name}-", dir=JOB_PARENT))
    root.chmod(0o755)
    shutil.copytree(question / "serverFilesCourse", root / "serverFilesCourse")
    shutil.copytree(root / "serverFilesCourse", root / "shared")
    (root / "tests").mkdir()
    (root / "data").mkdir()
    (root / "data" / "data.json").write_text(json.dumps({"variant_seed": 1, "params": {}}))
    return root


def upload_to(root: Path, question: Path, upload: dict[str, bytes]) -> None:
    """The files a student dropped on the question's element, in student/ as PrairieLearn
    keeps (and names) them."""
    element = upload_element((question / "question.html").read_text())
    outcome = pl_file_upload(element, list(upload))
    assert outcome.graded and not outcome.refused_in_browser, outcome
    (root / "student").mkdir()
    by_kept_name = {name.lower(): data for name, data in upload.items()}
    for kept in outcome.kept:
        (root / "student" / kept).write_bytes(by_kept_name[kept])


def notebooks_of(example: Example, scratch: Path, *, lessons: bool = False) -> dict[str, bytes]:
    """The example's notebooks as a student would have them: no hidden tests in them."""
    folder = write_submission(example, Course(REPO, workspace=scratch / example.name))
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".ipynb":
            try:
                nb = nbformat.read(path, as_version=4)
            except Exception:  # a broken example's file: as it is
                files[path.name] = path.read_bytes()
                continue
            for cell in nb.cells:
                cell.source = strip_hidden(cell.source)
            files[path.name] = nbformat.writes(nb).encode()
        else:
            files[path.name] = path.read_bytes()
    if lessons:
        for path in sorted((REPO / "release" / "numpy_memory").glob("0[13]_*.ipynb")):
            files[path.name] = path.read_bytes()
    return files


def zipped(files: dict[str, bytes], folder: str = "numpy_memory") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"{folder}/{name}", data)
    return buffer.getvalue()


def quiz_answer(question: str) -> str:
    """The instructor's answer to a quiz question, read from the source notebook's solution."""
    path = REPO / "source" / "numpy_memory" / "02_quiz_what_del_frees.ipynb"
    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.splitlines():
            if line.startswith(f"{question} = "):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise AssertionError(f"no solution for {question}")


def probe_quiz(root: Path) -> Example:
    """The solution's quiz, whose first answer cell also walks all of ``root`` reading every
    file it can for the instructor's hidden-test lines (kept hex-encoded, so that the upload
    itself holds none). It answers question 1 right only if it found none, and question 8
    only if it could read the student's own upload (the search really ran)."""
    secret = [line.encode().hex() for line in hidden_test_lines()]
    probe = f"""\
import os

_secret = [bytes.fromhex(h).decode() for h in {secret!r}]
_found, _student_files = [], 0
for _folder, _dirs, _names in os.walk({str(root)!r}):
    for _name in _names:
        _path = os.path.join(_folder, _name)
        try:
            with open(_path, "rb") as _file:
                _text = _file.read().decode("utf-8", "replace")
        except OSError:
            continue
        _student_files += _path.startswith({str(root / "student")!r})
        _found += [_path] if any(_line in _text for _line in _secret) else []
q1 = "B" if not _found else "found " + ", ".join(_found)
"""
    quiz = "02_quiz_what_del_frees"
    right = quiz_answer("q8")
    cells = {"q1_answer": probe, "q8_answer": f'q8 = "{right}" if _student_files else "unread"'}
    return Example("probe-reads-grade", "reads /grade", notebooks=(quiz,), cells=cells)


@pytest.fixture(scope="module")
def prairielearn_runs(prairielearn_build, tmp_path_factory) -> dict[str, Run]:
    question, _ = prairielearn_build
    entrypoint = json.loads((question / "info.json").read_text())["externalGradingOptions"][
        "entrypoint"
    ]
    scratch = tmp_path_factory.mktemp("scratch")
    release_quiz = (REPO / "release" / "numpy_memory" / "02_quiz_what_del_frees.ipynb").read_bytes()
    wrong = notebooks_of(example(EXAMPLES["wrong"]), scratch)
    uploads = {  # how each student uploads (see test_prairielearn_upload for every way)
        "honest": {
            "numpy_memory.zip": zipped(
                notebooks_of(example(EXAMPLES["honest"]), scratch, lessons=True)
            )
        },
        "wrong": {  # renamed copies; the quiz as released
            "04_Exercises_free_and_budget_memory (1).ipynb": wrong[
                "04_exercises_free_and_budget_memory.ipynb"
            ],
            "02_quiz_what_del_frees (1).ipynb": release_quiz,
        },
        "broken": notebooks_of(example(EXAMPLES["broken"]), scratch),
    }
    runs, roots = {}, []
    try:
        for kind, name in EXAMPLES.items():
            root = grader_host_job(question, kind)
            roots.append(root)
            if kind == "hostile":  # every notebook; the quiz searches this very job
                uploads[kind] = {
                    **notebooks_of(example(name), scratch, lessons=True),
                    **notebooks_of(probe_quiz(root), scratch),
                }
            upload_to(root, question, uploads[kind])
            stdout, seconds = run_entry(root / Path(entrypoint).relative_to("/grade"), root)
            results = json.loads((root / "results" / "results.json").read_text())
            runs[kind] = Run(example(name), results, stdout, seconds, root)
        yield runs
    finally:
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


# -- Gradescope ---------------------------------------------------------------------------------


def test_the_zip_holds_what_gradescope_runs_and_the_grader_needs(gradescope_build, tmp_path):
    archive, built = gradescope_build
    names = built.files
    for required in ("setup.sh", "run_autograder", "requirements.txt", "course/gradebook.db"):
        assert required in names
    assert any(n.endswith(".whl") for n in names)
    assert "course/source/numpy_memory/04_exercises_free_and_budget_memory.ipynb" in names
    unzip(archive, tmp_path)
    assert os.access(tmp_path / "run_autograder", os.X_OK)
    assert subprocess.run(["bash", "-n", str(tmp_path / "setup.sh")]).returncode == 0
    pins = (tmp_path / "requirements.txt").read_text().split()
    assert all("==" in pin for pin in pins)
    assert {"nbgrader", "numpy"} <= {pin.split("==")[0].lower() for pin in pins}
    assert not {"pytest", "ruff"} & {pin.split("==")[0].lower() for pin in pins}


@pytest.mark.parametrize("kind", EXAMPLES)
def test_gradescope_results_are_valid_and_score_as_autograder_grade(
    kind, gradescope_runs, gradescope_schema
):
    run = gradescope_runs[kind]
    gradescope_schema.validate(run.results)
    graded = [test for test in run.results["tests"] if "max_score" in test]
    assert len(graded) == 22 and len(run.results["tests"]) == 22 + 15
    for test in graded:
        assert test["score"] == golden(run.example, test["name"], test["max_score"]), test["name"]
    assert run.results["score"] == sum(t["score"] for t in graded)
    assert run.results["execution_time"] < gradescope.DEFAULT_LIMITS.seconds
    text = json.dumps(run.results)
    assert not [line for line in hidden_test_lines() if line in text]


def test_gradescope_tells_the_student_what_happened_and_the_instructor_why(gradescope_runs):
    honest, wrong = gradescope_runs["honest"], gradescope_runs["wrong"]
    hostile, broken = gradescope_runs["hostile"], gradescope_runs["broken"]
    assert honest.results["score"] == 29 and "graded." in honest.results["output"]
    submitted = [t for t in wrong.results["tests"] if t["name"].startswith("04_exercises")]
    failed = [t for t in submitted if t["status"] == "failed"]
    assert [t["name"].split(": ")[1] for t in failed] == ["ex2_freed_test"]
    assert "02_quiz_what_del_frees.ipynb was not submitted" in wrong.results["output"]
    assert failed[0]["output"] not in ("", "This test failed.")
    assert "flagged for your instructor's review" in hostile.results["output"]
    assert "rebinds-protected-name" in hostile.stdout
    assert "rebinds-protected-name" not in json.dumps(hostile.results)
    assert "not valid JSON" in broken.results["output"]
    assert "cheat-rebinds-checks@example.edu" in hostile.stdout  # submission_metadata.json


def test_the_build_states_the_total_and_what_each_setting_shows(gradescope_build):
    _, built = gradescope_build
    summary = built.summary()
    assert summary.startswith("Total points: 29 ")
    assert "15 visible checks" in summary and "22 graded tests" in summary
    for setting in gradescope.VISIBILITIES:
        assert f"\n  {setting} " in summary
    readme = (REPO / "README.md").read_text()  # its figures are the ones build prints
    assert all(f"\n   {line}\n" in readme for line in summary.splitlines())


def checks(results: dict) -> dict[str, dict]:
    return {t["name"]: t for t in results["tests"] if t["name"].endswith(": visible tests")}


def test_right_after_submitting_a_student_sees_each_exercises_visible_verdict(gradescope_runs):
    """What Gradescope shows the student (rules.gradescope_student_view, docs/specs.md) before
    the grades are published: one check per exercise and quiz question, as `autograder check`
    says it, no graded test and no total; after publishing, everything."""
    honest = gradescope_student_view(gradescope_runs["honest"].results)
    assert len(honest["tests"]) == 15 and honest["score"] is None
    assert {t["status"] for t in honest["tests"]} == {"passed"}
    assert "When graded, hidden tests also check" in honest["tests"][0]["output"]
    published = gradescope_student_view(gradescope_runs["honest"].results, published=True)
    assert published["score"] == 29 and len(published["tests"]) == 15 + 22

    wrong = checks(gradescope_runs["wrong"].results)
    ex2 = wrong["Exercise 2: keep a small piece, free the large array: visible tests"]
    assert ex2["status"] == "failed" and "is a view that shares the buffer" in ex2["output"]
    exercises = [t for n, t in wrong.items() if n.startswith("Exercise ") and t is not ex2]
    assert len(exercises) == 6 and {t["status"] for t in exercises} == {"passed"}
    questions = [t for n, t in wrong.items() if n.startswith("Question ")]
    assert len(questions) == 8 and all("was not submitted" in t["output"] for t in questions)
    question = wrong["Question 1: visible tests"]
    assert question["status"] == "failed" and "was not submitted" in question["output"]
    ex1 = "Exercise 1: allocate, measure and free the lesson's array: visible tests"
    hostile = checks(gradescope_runs["hostile"].results)
    assert hostile[ex1]["status"] == "failed"
    broken = checks(gradescope_runs["broken"].results)
    assert "not valid JSON" in broken[ex1]["output"]
    text = json.dumps([t for r in gradescope_runs.values() for t in checks(r.results).values()])
    assert not [line for line in hidden_test_lines() if line in text]


# -- PrairieLearn --------------------------------------------------------------------------------


def test_the_question_is_graded_externally_without_network(prairielearn_build):
    question, names = prairielearn_build
    options = json.loads((question / "info.json").read_text())["externalGradingOptions"]
    assert options["enabled"] is True and options["enableNetworking"] is False
    assert options["image"] == "example/grader:1"
    assert 0 < options["timeout"] <= prairielearn.MAX_TIMEOUT
    for path in options["serverFilesCourse"]:
        assert (question / "serverFilesCourse" / path).is_dir()
    assert options["entrypoint"].startswith("/grade/serverFilesCourse/")
    assert "image/Dockerfile" in names and "image/requirements.txt" in names
    assert prairielearn.UPLOAD_ELEMENT in (question / "question.html").read_text()


@pytest.mark.parametrize("kind", ["honest", "wrong", "hostile"])
def test_prairielearn_results_are_valid_and_score_as_autograder_grade(
    kind, prairielearn_runs, prairielearn_schema
):
    run = prairielearn_runs[kind]
    prairielearn_schema.validate(run.results)
    assert len(json.dumps(run.results).encode()) < prairielearn.MAX_RESULTS_BYTES
    assert run.results["gradable"] is True, run.results
    points = sum(t["points"] for t in run.results["tests"])
    out_of = sum(t["max_points"] for t in run.results["tests"])
    for test in run.results["tests"]:
        if kind == "hostile" and test["name"].startswith("02_quiz"):
            continue  # the probe's quiz: below
        assert test["points"] == golden(run.example, test["name"], test["max_points"]), test
    assert run.results["score"] == pytest.approx(points / out_of)
    text = json.dumps(run.results)
    assert not [line for line in hidden_test_lines() if line in text]


def test_prairielearn_messages_match_what_happened(prairielearn_runs):
    assert prairielearn_runs["honest"].results["score"] == 1.0
    assert "flagged" in prairielearn_runs["hostile"].results["message"]
    assert "rebinds-protected-name" in prairielearn_runs["hostile"].stdout
    assert (
        "04_exercises_free_and_budget_memory (1).ipynb was graded as"
        in (prairielearn_runs["wrong"].results["message"])
    )


def test_an_upload_without_every_graded_notebook_is_not_counted(
    prairielearn_runs, prairielearn_schema
):
    broken = prairielearn_runs["broken"].results
    prairielearn_schema.validate(broken)
    assert broken["gradable"] is False and "score" not in broken
    assert "not valid JSON" in broken["format_errors"][0]
    assert broken["format_errors"][-1].startswith("Upload every graded notebook together")


def test_a_hostile_cell_finds_no_hidden_test_anywhere_in_the_job(prairielearn_runs):
    """The probe answers question 1 right only if no file of /grade it could read held a
    hidden-test line, and question 8 only if it read the student's own files."""
    if os.geteuid() != 0:
        pytest.skip("not root: the kernel runs as the grader's own uid, so no mode can hide files")
    tests = {t["name"]: t for t in prairielearn_runs["hostile"].results["tests"]}
    quiz = {name: t for name, t in tests.items() if name.startswith("02_quiz")}
    assert quiz["02_quiz_what_del_frees: q8_test"]["points"] == 1, "the probe did not run"
    assert quiz["02_quiz_what_del_frees: q1_test"]["points"] == 1, quiz[
        "02_quiz_what_del_frees: q1_test"
    ]
    assert all(t["points"] == t["max_points"] for t in quiz.values())


def test_every_copy_of_the_course_is_locked_from_the_kernels_uid(prairielearn_runs):
    """serverFilesCourse/, shared/ and tests/ are readable by their owner only; a process with
    the kernel's uid cannot read the hidden tests through either copy."""
    if os.geteuid() != 0:
        pytest.skip("not root: no other uid to read as")
    root = prairielearn_runs["hostile"].root
    modes = {p.name: p.stat().st_mode & 0o777 for p in root.iterdir()}
    assert {modes[n] for n in ("serverFilesCourse", "shared", "tests")} == {0o700}
    assert modes["student"] & 0o005 and modes["data"] & 0o005
    source = "numpy_memory_grader/course/source/numpy_memory/02_quiz_what_del_frees.ipynb"
    for copy in ("serverFilesCourse", "shared"):
        read = subprocess.run(
            ["setpriv", f"--reuid={KERNEL_UID}", f"--regid={KERNEL_UID}", "--clear-groups",
             "cat", str(root / copy / source)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert read.returncode != 0 and "Permission denied" in read.stderr, copy
