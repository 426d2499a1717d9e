"""Gradescope: the autograder zip, and the run that grades one submission in its container.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` there once (as
root, Ubuntu 22.04) when it builds the image, then for each submission puts the upload in
``/autograder/submission``, runs ``/autograder/run_autograder`` and reads
``/autograder/results/results.json`` (its specification: tests with ``name``, ``number``,
``score``, ``max_score``, ``status``, ``output``, ``visibility``). What ``run_autograder``
prints is ``/autograder/results/stdout``, which only instructors see: the evidence goes
there. One test per graded cell; a cell whose source has hidden tests is ``after_published``
by default (its result says what the hidden test checked), the others ``visible``.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.exercises import assignment_exercises
from autograder.platforms.distribution import (
    build_wheel,
    interpreter_version,
    pinned_requirements,
)
from autograder.platforms.single_submission import (
    GRADER_FAILED,
    ContainerLimits,
    MiB,
    SubmissionResult,
    container_limits,
    grade_upload,
    hidden_test_ids,
    hide_material,
    instructor_log,
    limits_settings,
    notebook_outcome,
    prepare_material,
    read_settings,
    student_summary,
)
from autograder.platforms.visible import VisibleResult, not_run_results

DEFAULT_ROOT = Path("/autograder")
# Gradescope's default container: 768 MB (Docker's megabytes are MiB), half a CPU, 10 minutes.
DEFAULT_LIMITS = ContainerLimits(memory_bytes=768 * MiB, seconds=600, cpus=0.5)
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
MAX_TEST_OUTPUT = 4000  # characters of one test's message
VENV = "/opt/numpy-memory-autograder"

UV = "0.13.9"  # installs the standalone CPython; pinned, from the package index
TOOLS = "/opt/numpy-memory-autograder-tools"  # uv itself
PYTHONS = "/opt/numpy-memory-autograder-python"  # the CPython uv installs


def setup_sh(python: str) -> str:
    """Gradescope's ``setup.sh``, installing CPython ``python`` (the version the pins hold for)."""
    return f"""\
#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source when it builds the image (Ubuntu
# 22.04 by default, or 24.04). The image's own Python is not the one the pins were resolved
# and tested on (22.04: python3 is 3.10.12 and apt's python3.11 a 3.11.0 build; 24.04:
# 3.12), so the image's pip installs uv {UV} from the package index, and uv installs CPython
# {python} as a standalone build (the same on either image). Then, in a virtual environment
# at {VENV}, the dependencies pinned in requirements.txt (wheels only, exactly: --no-deps)
# and the autograder package shipped beside this file.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-pip ca-certificates
# --target: a folder of its own, which Ubuntu 24.04's externally managed Python allows.
python3 -m pip install --no-cache-dir --no-deps --target {TOOLS} uv=={UV}
export UV_PYTHON_INSTALL_DIR={PYTHONS}
{TOOLS}/bin/uv python install {python}
{TOOLS}/bin/uv venv --python {python} --python-preference only-managed {VENV}
{TOOLS}/bin/uv pip install --python {VENV}/bin/python --no-cache --no-deps \\
    --only-binary :all: -r requirements.txt
{TOOLS}/bin/uv pip install --python {VENV}/bin/python --no-cache --no-deps ./*.whl
# Fail the image build here, not at the first student's submission.
{VENV}/bin/python -c 'import platform; print("Python", platform.python_version())'
{VENV}/bin/autograder gradescope --help >/dev/null
"""


FALLBACK_RESULTS = {
    "score": 0,
    "output": GRADER_FAILED,
    "output_format": "text",
    "stdout_visibility": "hidden",
    "tests": [],
}

RUN_AUTOGRADER = f"""\
#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission into
# /autograder/results/results.json (what run prints goes to results/stdout: instructors only).
# AUTOGRADER_BIN and AUTOGRADER_ROOT say where the grader and the root are, for a test
# outside Gradescope's container.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
BIN="${{AUTOGRADER_BIN:-{VENV}/bin/autograder}}"
"$BIN" gradescope run "$ROOT"
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    # The grader could not even start: still a valid results file, saying so.
    mkdir -p "$ROOT/results"
    cat >"$ROOT/results/results.json" <<'JSON'
{json.dumps(FALLBACK_RESULTS)}
JSON
fi
exit "$status"
"""


@dataclass(frozen=True)
class Outline:
    """What every submission's results hold, read from the instructor's notebooks."""

    total_points: float
    checks: int  # visible tests without points: one per exercise and quiz question
    graded: int  # graded tests: one per test cell, with its points
    hidden: int  # graded tests whose cell has a hidden part

    @classmethod
    def of(cls, source: Path) -> Outline:
        exercises = [e for found in assignment_exercises(source).values() for e in found]
        return cls(
            sum(exercise.points for exercise in exercises),
            len(exercises),
            sum(len(exercise.tests) for exercise in exercises),
            len(hidden_test_ids(source)),
        )

    def describe(self, hidden_visibility: str) -> str:
        """The total to set in Gradescope, and what a student sees under each setting."""
        checks = (
            f"{self.checks} visible checks (one per exercise and quiz question: the verdict and "
            "message of its visible tests, as `autograder check` prints them; no points)"
        )
        later = f"the {self.graded} graded tests and the total"
        lines = [
            f"Total points: {self.total_points:g} (set the Gradescope assignment's total to this).",
            f"Each submission's results: the summary, {checks}, and {self.graded} graded tests "
            f"(the points; {self.hidden} of them have a hidden part).",
        ]
        if not self.hidden:
            lines.append(
                "No test has a hidden part: students see everything right after submitting."
            )
            return "\n".join(lines)
        shown = {
            "visible": f"right after submitting: everything, {later}",
            "after_published": f"right after submitting: the summary and the checks; {later} "
            "once you publish the grades",
            "after_due_date": f"right after submitting: the summary and the checks; {later} "
            "after the due date (the late due date when late submissions are allowed)",
            "hidden": f"the summary and the checks only; {later} never",
        }
        lines.append(
            f"What a student sees, by --hidden-visibility (this build: {hidden_visibility}):"
        )
        lines += [f"  {setting:<16} {shown[setting]}" for setting in reversed(VISIBILITIES)]
        lines.append(
            "(Gradescope hides the total while any test is hidden from the student; the tests "
            "without a hidden part are always visible.)"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class GradescopeBuild:
    files: list[str]  # the zip's, in order
    outline: Outline
    hidden_visibility: str

    def summary(self) -> str:
        return self.outline.describe(self.hidden_visibility)


def build_gradescope(
    course_root: Path,
    *,
    out: Path,
    assignment: str,
    hidden_visibility: str = "after_published",
    limits: ContainerLimits = DEFAULT_LIMITS,
) -> GradescopeBuild:
    """Write Gradescope's autograder zip to ``out``; return its files and what it shows."""
    if hidden_visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    limits.grading_options(1)  # a container too small or too short fails now, not in Gradescope
    python = interpreter_version()
    settings = {"platform": "gradescope", "hidden_visibility": hidden_visibility}
    with tempfile.TemporaryDirectory(prefix="autograder-gradescope-") as tmp:
        staging = Path(tmp)
        prepare_material(
            course_root,
            staging / "course",
            assignment=assignment,
            settings={**settings, **limits_settings(limits)},
        )
        outline = Outline.of(staging / "course" / "source" / assignment)
        build_wheel(staging)
        (staging / "requirements.txt").write_text("\n".join(pinned_requirements()) + "\n")
        (staging / "setup.sh").write_text(setup_sh(python))
        (staging / "run_autograder").write_text(RUN_AUTOGRADER)
        return GradescopeBuild(_zip(staging, out), outline, hidden_visibility)


def _zip(folder: Path, out: Path) -> list[str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = str(path.relative_to(folder))
            info = zipfile.ZipInfo.from_file(path, name)
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            names.append(name)
    return names


# -- results ----------------------------------------------------------------------------------


def _test_output(cell: dict[str, Any]) -> str:
    message = cell["message"].strip()
    if not message:
        message = "Passed." if cell["score"] >= cell["max_score"] else "This test failed."
    return message[:MAX_TEST_OUTPUT]


def _graded_test(
    notebook: str, cell: dict[str, Any], number: str, visibility: str
) -> dict[str, Any]:
    """One graded cell: its points and the message of the whole test (hidden part included)."""
    return {
        "name": f"{notebook}: {cell['grade_id']}",
        "number": number,
        "score": cell["score"],
        "max_score": cell["max_score"],
        "status": "passed" if cell["score"] >= cell["max_score"] else "failed",
        "output": _test_output(cell),
        "output_format": "text",
        "visibility": visibility,
    }


def gradescope_results(
    result: SubmissionResult, *, hidden_visibility: str = "after_published"
) -> dict[str, Any]:
    """results.json for one graded upload (without ``execution_time``: the run adds it).

    Per exercise (and quiz question), first a visible test without points: the verdict and
    message of its visible tests, as ``autograder check`` prints them, which a student sees
    right after submitting; then one graded test per test cell, with the points, shown
    ``hidden_visibility`` when the cell has a hidden part (else at once)."""
    visible: dict[str, list[VisibleResult]] = {}
    for exercise in result.visible:
        visible.setdefault(exercise.notebook, []).append(exercise)
    tests: list[dict[str, Any]] = []
    for number, notebook in enumerate(result.graded_notebooks(), start=1):
        name = notebook["notebook"]
        cells = {cell["grade_id"]: cell for cell in notebook["cells"]}
        exercises = visible.get(name, [])
        if notebook["status"] == "ungradable":  # it did not run: each check says why
            exercises = not_run_results(
                name, list(cells), notebook_outcome(notebook), result.exercises.get(name, [])
            )
        for index, exercise in enumerate(exercises, start=1):
            tests.append(
                {
                    "name": f"{exercise.title}: visible tests",
                    "number": f"{number}.{index}",
                    "status": "passed" if exercise.status == "passed" else "failed",
                    "output": exercise.output()[:MAX_TEST_OUTPUT],
                    "output_format": "text",
                    "visibility": "visible",
                }
            )
            for part, grade_id in enumerate(exercise.tests, start=1):
                if grade_id in cells:
                    cell = cells.pop(grade_id)
                    shown = hidden_visibility if grade_id in result.hidden_tests else "visible"
                    tests.append(_graded_test(name, cell, f"{number}.{index}.{part}", shown))
        for part, cell in enumerate(cells.values(), start=1):  # in no exercise the notebook has
            shown = hidden_visibility if cell["grade_id"] in result.hidden_tests else "visible"
            tests.append(_graded_test(name, cell, f"{number}.{len(exercises) + 1}.{part}", shown))
    return {
        "score": result.report["score"] if result.report else 0,
        "output": student_summary(result),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def read_metadata(root: Path) -> dict[str, Any]:
    """``submission_metadata.json`` (who submitted, earlier submissions), or {}."""
    path = root / "submission_metadata.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _about_submission(metadata: dict[str, Any]) -> dict[str, Any]:
    users = metadata.get("users") or []
    return {
        "submission": metadata.get("id"),
        "submitted at": metadata.get("created_at"),
        "students": ", ".join(
            f"{u.get('name', '?')} <{u.get('email', '?')}> (id {u.get('id', '?')})"
            for u in users
            if isinstance(u, dict)
        ),
        "earlier submissions": len(metadata.get("previous_submissions") or []) if users else None,
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write the results file whole, once: to a temporary file, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=1))
    os.replace(partial, path)


def run_gradescope(root: Path = DEFAULT_ROOT, *, material: Path | None = None) -> int:
    """Grade ``root/submission`` and write ``root/results/results.json``, whatever happens;
    the instructor's log goes to stdout. Returns 0 once the results file is written."""
    started = time.monotonic()
    material = material or root / "source" / "course"
    try:
        settings = read_settings(material)
        metadata = read_metadata(root)
        privacy = hide_material(material)
        result = grade_upload(root / "submission", material, limits=container_limits(settings))
        results = gradescope_results(result, hidden_visibility=settings["hidden_visibility"])
        print(
            instructor_log(
                result, platform="Gradescope", material=privacy, **_about_submission(metadata)
            ),
            flush=True,
        )
    except Exception:  # our own failure: the student still gets a valid results file
        print("THE GRADER FAILED:\n" + traceback.format_exc(), flush=True)
        results = dict(FALLBACK_RESULTS)
    results["execution_time"] = round(time.monotonic() - started)
    write_results(root / "results" / "results.json", results)
    return 0
