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
from pathlib import Path
from typing import Any

from autograder.course import ASSIGNMENT
from autograder.platforms.distribution import build_wheel, pinned_requirements
from autograder.platforms.single_submission import (
    GRADER_FAILED,
    ContainerLimits,
    MiB,
    SubmissionResult,
    container_limits,
    grade_upload,
    hide_material,
    instructor_log,
    limits_settings,
    prepare_material,
    read_settings,
    student_summary,
)

DEFAULT_ROOT = Path("/autograder")
# Gradescope's default container: 768 MB (Docker's megabytes are MiB), half a CPU, 10 minutes.
DEFAULT_LIMITS = ContainerLimits(memory_bytes=768 * MiB, seconds=600, cpus=0.5)
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
MAX_TEST_OUTPUT = 4000  # characters of one test's message
VENV = "/opt/numpy-memory-autograder"

SETUP_SH = f"""\
#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source when it builds the image
# (Ubuntu 22.04). It installs Python 3.11 from Ubuntu's own packages, then, in a virtual
# environment at {VENV}, the dependencies pinned in requirements.txt (the versions this
# autograder was tested with, from the package index, exactly: --no-deps) and the
# autograder package shipped beside this file. It downloads nothing else.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv
python3.11 -m venv {VENV}
{VENV}/bin/python -m pip install --no-cache-dir --no-deps -r requirements.txt
{VENV}/bin/python -m pip install --no-cache-dir --no-deps ./*.whl
# Fail the image build here, not at the first student's submission.
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


def build_gradescope(
    course_root: Path,
    *,
    out: Path,
    assignment: str = ASSIGNMENT,
    hidden_visibility: str = "after_published",
    limits: ContainerLimits = DEFAULT_LIMITS,
) -> list[str]:
    """Write Gradescope's autograder zip to ``out``; return the names of its files."""
    if hidden_visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    limits.grading_options(1)  # a container too small or too short fails now, not in Gradescope
    settings = {"platform": "gradescope", "hidden_visibility": hidden_visibility}
    with tempfile.TemporaryDirectory(prefix="autograder-gradescope-") as tmp:
        staging = Path(tmp)
        prepare_material(
            course_root,
            staging / "course",
            assignment=assignment,
            settings={**settings, **limits_settings(limits)},
        )
        build_wheel(staging)
        (staging / "requirements.txt").write_text("\n".join(pinned_requirements()) + "\n")
        (staging / "setup.sh").write_text(SETUP_SH)
        (staging / "run_autograder").write_text(RUN_AUTOGRADER)
        return _zip(staging, out)


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


def gradescope_results(
    result: SubmissionResult, *, hidden_visibility: str = "after_published"
) -> dict[str, Any]:
    """results.json for one graded upload (without ``execution_time``: the run adds it)."""
    tests = []
    for number, notebook in enumerate(result.graded_notebooks(), start=1):
        for index, cell in enumerate(notebook["cells"], start=1):
            hidden = cell["grade_id"] in result.hidden_tests
            tests.append(
                {
                    "name": f"{notebook['notebook']}: {cell['grade_id']}",
                    "number": f"{number}.{index}",
                    "score": cell["score"],
                    "max_score": cell["max_score"],
                    "status": "passed" if cell["score"] >= cell["max_score"] else "failed",
                    "output": _test_output(cell),
                    "output_format": "text",
                    "visibility": hidden_visibility if hidden else "visible",
                }
            )
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
