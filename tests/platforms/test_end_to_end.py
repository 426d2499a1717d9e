"""Each platform's container, emulated in a temporary ROOT: build its files, run its own
entry script against honest, wrong, hostile and broken bundled examples, and compare the
results with the examples' golden scores (what ``autograder grade`` gives them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.platforms import gradescope, prairielearn
from tests.examples import EXAMPLE_FOLDERS

from ..conftest import REPO

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
    """Lines of the instructor's hidden tests, long enough to be recognisable."""
    lines, inside = [], False
    for path in (REPO / "source" / "numpy_memory").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            for line in cell.source.splitlines():
                inside = (inside or "BEGIN HIDDEN TESTS" in line) and "END HIDDEN TESTS" not in line
                if inside and len(line.strip()) >= 25 and "HIDDEN TESTS" not in line:
                    lines.append(line.strip())
    assert lines
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
def gradescope_build(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("gradescope") / "autograder.zip"
    return out, gradescope.build_gradescope(REPO, out=out)


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


@pytest.fixture(scope="module")
def prairielearn_build(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("question")
    return out, prairielearn.build_prairielearn(REPO, out=out, image="example/grader:1")


@pytest.fixture(scope="module")
def prairielearn_runs(prairielearn_build, tmp_path_factory) -> dict[str, Run]:
    question, _ = prairielearn_build
    entrypoint = json.loads((question / "info.json").read_text())["externalGradingOptions"][
        "entrypoint"
    ]
    runs = {}
    for kind, name in EXAMPLES.items():
        root = tmp_path_factory.mktemp(f"grade-{kind}")
        shutil.copytree(question / "serverFilesCourse", root / "serverFilesCourse")
        submit(example(name), root / "student", tmp_path_factory.mktemp("scratch"))
        (root / "data").mkdir()
        (root / "data" / "data.json").write_text(json.dumps({"variant_seed": 1, "params": {}}))
        script = root / Path(entrypoint).relative_to("/grade")
        stdout, seconds = run_entry(script, root)
        results = json.loads((root / "results" / "results.json").read_text())
        runs[kind] = Run(example(name), results, stdout, seconds)
    return runs


# -- Gradescope ---------------------------------------------------------------------------------


def test_the_zip_holds_what_gradescope_runs_and_the_grader_needs(gradescope_build, tmp_path):
    archive, names = gradescope_build
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
    for test in run.results["tests"]:
        assert test["score"] == golden(run.example, test["name"], test["max_score"]), test["name"]
    assert run.results["score"] == sum(t["score"] for t in run.results["tests"])
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
    assert (question / "question.html").is_file()


@pytest.mark.parametrize("kind", EXAMPLES)
def test_prairielearn_results_are_valid_and_score_as_autograder_grade(
    kind, prairielearn_runs, prairielearn_schema
):
    run = prairielearn_runs[kind]
    prairielearn_schema.validate(run.results)
    assert len(json.dumps(run.results).encode()) < prairielearn.MAX_RESULTS_BYTES
    assert run.results["gradable"] is True  # every example submits at least one good notebook
    points = sum(t["points"] for t in run.results["tests"])
    out_of = sum(t["max_points"] for t in run.results["tests"])
    for test in run.results["tests"]:
        assert test["points"] == golden(run.example, test["name"], test["max_points"])
    assert run.results["score"] == pytest.approx(points / out_of)
    text = json.dumps(run.results)
    assert not [line for line in hidden_test_lines() if line in text]


def test_prairielearn_messages_match_what_happened(prairielearn_runs):
    assert prairielearn_runs["honest"].results["score"] == 1.0
    assert "flagged" in prairielearn_runs["hostile"].results["message"]
    assert "rebinds-protected-name" in prairielearn_runs["hostile"].stdout
    assert "not valid JSON" in prairielearn_runs["broken"].results["message"]
