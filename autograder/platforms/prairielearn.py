"""PrairieLearn: a question graded externally, and the run that grades one submission.

PrairieLearn's external grading runs the question's ``entrypoint`` in the instructor's
image, with the upload in ``/grade/student/``, the question's data in
``/grade/data/data.json`` and the course files the question lists in
``/grade/serverFilesCourse/``; it reads ``/grade/results/results.json``: ``gradable``,
``score`` in [0, 1], ``message``, ``tests`` (``name``, ``points``, ``max_points``,
``message``, ``output``), and ``format_errors`` when the upload cannot be graded. Students
see all of it, so it holds only student-facing messages; the instructor's log (evidence,
sandbox) is the job's output, in PrairieLearn's external-grading log.
"""

from __future__ import annotations

import json
import shutil
import stat
import time
import traceback
from pathlib import Path
from typing import Any

from autograder.course import ASSIGNMENT
from autograder.platforms.distribution import build_wheel, pinned_requirements
from autograder.platforms.gradescope import write_results
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
    notebook_outcome,
    prepare_material,
    read_settings,
    student_summary,
)

DEFAULT_ROOT = Path("/grade")
GRADER_DIR = "numpy_memory_grader"  # under the course's serverFilesCourse/
# PrairieLearn's hosts run a job with 2 GiB and about 0.9 CPU; its timeout is at most 600 s.
DEFAULT_LIMITS = ContainerLimits(memory_bytes=2048 * MiB, seconds=300, cpus=0.9)
MAX_TIMEOUT = 600
MAX_RESULTS_BYTES = 1_000_000  # PrairieLearn drops a larger results file
MAX_TEST_MESSAGE = 2000

RUN_GRADER = f"""\
#!/usr/bin/env bash
# PrairieLearn's entrypoint: grade /grade/student into /grade/results/results.json.
# AUTOGRADER_BIN and AUTOGRADER_ROOT override the grader and the root (for tests).
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/grade}}"
BIN="${{AUTOGRADER_BIN:-autograder}}"
"$BIN" prairielearn run "$ROOT" --material "$ROOT/serverFilesCourse/{GRADER_DIR}/course"
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    mkdir -p "$ROOT/results"
    printf '%s\\n' '{{"gradable": false, "format_errors": ["The autograder could not start."], "message": "The autograder could not start: the problem is on the grader side. Your instructor has the details."}}' >"$ROOT/results/results.json"
fi
exit "$status"
"""

DOCKERFILE = """\
# The image PrairieLearn runs the grader in: Python 3.11, the dependencies pinned in
# requirements.txt (the versions the autograder was tested with, exactly: --no-deps) and
# the autograder package. Build and push it under the name info.json gives as "image".
FROM python:3.11-slim
COPY requirements.txt *.whl /tmp/autograder/
RUN python -m pip install --no-cache-dir --no-deps -r /tmp/autograder/requirements.txt \\
 && python -m pip install --no-cache-dir --no-deps /tmp/autograder/*.whl \\
 && rm -rf /tmp/autograder \\
 && autograder prairielearn --help >/dev/null
"""


def _question_html(notebooks: list[str]) -> str:
    names = ", ".join(f"{name}.ipynb" for name in notebooks)
    return f"""\
<pl-question-panel>
  <p>Upload your notebooks: {names}.</p>
  <pl-file-upload file-patterns="*.ipynb, *.zip"></pl-file-upload>
</pl-question-panel>

<pl-submission-panel>
  <pl-external-grader-results></pl-external-grader-results>
  <pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""


def build_prairielearn(
    course_root: Path,
    *,
    out: Path,
    assignment: str = ASSIGNMENT,
    image: str = "numpy-memory-autograder:latest",
    limits: ContainerLimits = DEFAULT_LIMITS,
) -> list[str]:
    """Write a question (``info.json``, ``question.html``), the grader's files for the
    course's ``serverFilesCourse/`` and the image's ``Dockerfile`` into ``out``."""
    if not 0 < limits.seconds <= MAX_TIMEOUT:
        raise ValueError(f"PrairieLearn's timeout is at most {MAX_TIMEOUT} s, not {limits.seconds}")
    limits.grading_options(1)  # too small or too short fails now
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out / "serverFilesCourse" / GRADER_DIR, ignore_errors=True)
    grader = out / "serverFilesCourse" / GRADER_DIR
    files = prepare_material(
        course_root,
        grader / "course",
        assignment=assignment,
        settings={"platform": "prairielearn", **limits_settings(limits)},
    )
    notebooks = sorted(p.stem for p in (grader / "course" / "release" / assignment).glob("*.ipynb"))
    (grader / "run_grader").write_text(RUN_GRADER)
    (grader / "run_grader").chmod(0o755 | stat.S_IFREG)
    info = {
        "uuid": "REPLACE-WITH-A-NEW-UUID",
        "title": f"{assignment}: upload your notebooks",
        "topic": assignment,
        "type": "v3",
        "singleVariant": True,
        "gradingMethod": "External",
        "externalGradingOptions": {
            "enabled": True,
            "image": image,
            "entrypoint": f"/grade/serverFilesCourse/{GRADER_DIR}/run_grader",
            "serverFilesCourse": [f"{GRADER_DIR}/"],
            "timeout": limits.seconds,
            "enableNetworking": False,
        },
    }
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "question.html").write_text(_question_html(notebooks))
    image_dir = out / "image"
    shutil.rmtree(image_dir, ignore_errors=True)
    build_wheel(image_dir)
    (image_dir / "requirements.txt").write_text("\n".join(pinned_requirements()) + "\n")
    (image_dir / "Dockerfile").write_text(DOCKERFILE)
    written = [*files, grader / "run_grader", out / "info.json", out / "question.html"]
    written += sorted(image_dir.iterdir())
    return sorted(str(path.relative_to(out)) for path in written)


# -- results ----------------------------------------------------------------------------------


def prairielearn_results(result: SubmissionResult) -> dict[str, Any]:
    """results.json for one graded upload. Not gradable (the attempt does not count) when
    no notebook of the assignment could be graded, or when the grader itself failed."""
    if result.report is None:
        return {"gradable": False, "format_errors": [GRADER_FAILED], "message": GRADER_FAILED}
    notebooks = result.graded_notebooks()
    if notebooks and all(n["status"] == "ungradable" for n in notebooks):
        errors = [notebook_outcome(n) for n in notebooks] + result.intake.refused
        return {"gradable": False, "format_errors": errors, "message": "\n".join(errors)}
    tests = [
        {
            "name": f"{notebook['notebook']}: {cell['grade_id']}",
            "points": cell["score"],
            "max_points": cell["max_score"],
            "message": (
                cell["message"].strip()
                or ("Passed." if cell["score"] >= cell["max_score"] else "This test failed.")
            )[:MAX_TEST_MESSAGE],
            "output": "",
        }
        for notebook in notebooks
        for cell in notebook["cells"]
    ]
    max_score = result.report["max_score"]
    score = result.report["score"] / max_score if max_score else 0.0
    return _fit(
        {
            "gradable": True,
            "score": min(1.0, max(0.0, score)),
            "message": student_summary(result),
            "tests": tests,
        }
    )


def _fit(results: dict[str, Any]) -> dict[str, Any]:
    """Shorten the messages until the file is under PrairieLearn's 1 MB limit."""
    limit = MAX_TEST_MESSAGE
    while len(json.dumps(results).encode()) > MAX_RESULTS_BYTES - 10_000 and limit > 20:
        limit //= 2
        results["message"] = results["message"][: limit * 10]
        for test in results.get("tests", []):
            test["message"] = test["message"][:limit]
    return results


def run_prairielearn(root: Path = DEFAULT_ROOT, *, material: Path | None = None) -> int:
    """Grade ``root/student`` and write ``root/results/results.json``, whatever happens;
    the instructor's log goes to stdout. Returns 0 once the results file is written."""
    started = time.monotonic()
    material = material or root / "serverFilesCourse" / GRADER_DIR / "course"
    try:
        settings = read_settings(material)
        privacy = hide_material(material)
        data = _read_data(root)
        result = grade_upload(root / "student", material, limits=container_limits(settings))
        results = prairielearn_results(result)
        print(
            instructor_log(result, platform="PrairieLearn", material=privacy, data=data),
            flush=True,
        )
    except Exception:
        print("THE GRADER FAILED:\n" + traceback.format_exc(), flush=True)
        results = {"gradable": False, "format_errors": [GRADER_FAILED], "message": GRADER_FAILED}
    print(f"took {time.monotonic() - started:.1f} s", flush=True)
    write_results(root / "results" / "results.json", results)
    return 0


def _read_data(root: Path) -> str:
    """What ``data/data.json`` says about the attempt, in one line for the log."""
    try:
        data = json.loads((root / "data" / "data.json").read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(data, dict):
        return ""
    return ", ".join(f"{key}={data[key]!r}" for key in ("variant_seed", "options") if key in data)
