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
import os
import shutil
import stat
import time
import traceback
from pathlib import Path
from typing import Any

from autograder.platforms.distribution import (
    build_wheel,
    interpreter_version,
    pinned_requirements,
)
from autograder.platforms.grades import NOT_SUBMITTED
from autograder.platforms.gradescope import write_results
from autograder.platforms.single_submission import (
    GRADER_FAILED,
    ContainerLimits,
    MiB,
    SubmissionResult,
    container_limits,
    expected_notebooks,
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


def grader_dir(assignment: str) -> str:
    """The grader's folder in the course's serverFilesCourse/: one per assignment, so that a
    course's questions for several assignments do not overwrite each other's."""
    return f"{assignment}_grader"


# PrairieLearn's hosts run a job with 2 GiB and about 0.9 CPU; its timeout is at most 600 s.
DEFAULT_LIMITS = ContainerLimits(memory_bytes=2048 * MiB, seconds=300, cpus=0.9)
MAX_TIMEOUT = 600
MAX_RESULTS_BYTES = 1_000_000  # PrairieLearn drops a larger results file
MAX_TEST_MESSAGE = 2000

FALLBACK_RESULTS = {
    "gradable": False,
    "format_errors": ["The autograder could not start."],
    "message": "The autograder could not start: the problem is on the grader's side, not in "
    "your notebooks. Your instructor has the details; you may submit again later.",
}


def run_grader(folder: str) -> str:
    """The entrypoint script of the grader in ``serverFilesCourse/<folder>/``."""
    return RUN_GRADER.replace("GRADER_FOLDER", folder)


RUN_GRADER = f"""\
#!/usr/bin/env bash
# PrairieLearn's entrypoint: grade /grade/student into /grade/results/results.json.
# AUTOGRADER_BIN and AUTOGRADER_ROOT override the grader and the root (for tests).
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/grade}}"
BIN="${{AUTOGRADER_BIN:-autograder}}"
"$BIN" prairielearn run "$ROOT" --material "$ROOT/serverFilesCourse/GRADER_FOLDER/course"
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    echo "the grader exited with status $status and wrote no results: writing the fallback"
    mkdir -p "$ROOT/results"
    cat >"$ROOT/results/results.json" <<'JSON'
{json.dumps(FALLBACK_RESULTS)}
JSON
fi
# grader-host reads results.json only after an exit status of 0 (any other shows the student
# "Unknown error"): 0 whenever there are results to read, the fallback included.
[ -s "$ROOT/results/results.json" ]
"""


def dockerfile(python: str) -> str:
    """The image PrairieLearn runs the grader in, on CPython ``python`` (the pins' version)."""
    return f"""\
# The image PrairieLearn runs the grader in: CPython {python} (the version the pins were
# resolved and tested on; Debian 12), the dependencies pinned in requirements.txt (wheels
# only, exactly: --no-deps) and the autograder package. PrairieLearn runs linux/amd64 images:
#   docker build --platform linux/amd64 -t YOURNAME/numpy-memory-grader:1 .
#   docker push YOURNAME/numpy-memory-grader:1
# then Sync the image on the course's Sync page (Docker images).
FROM python:{python}-slim-bookworm
COPY requirements.txt *.whl /tmp/autograder/
RUN python -m pip install --no-cache-dir --no-deps --only-binary :all: \\
        -r /tmp/autograder/requirements.txt \\
 && python -m pip install --no-cache-dir --no-deps /tmp/autograder/*.whl \\
 && rm -rf /tmp/autograder \\
 && autograder prairielearn --help >/dev/null
"""


# PrairieLearn's upload element (elements/pl-file-upload/pl-file-upload.py, parse()) matches
# each required pattern to exactly one file and refuses a submission whose required name or
# pattern has no file: with file-patterns="*.ipynb, *.zip", two notebooks or a zip alone never
# reached the grader. Optional patterns accept any number of notebooks and zips (the browser
# refuses any other file); the grader itself says what is missing, as gradable: false.
UPLOAD_ELEMENT = '<pl-file-upload optional-file-patterns="*.ipynb, *.zip"></pl-file-upload>'


def question_html(notebooks: list[str]) -> str:
    names = " and ".join(f"<code>{name}.ipynb</code>" for name in notebooks)
    return f"""\
<pl-question-panel>
  <p>Upload your graded notebooks, {names}, together: the files as you downloaded them from
  Jupyter (a renamed copy such as <code>{notebooks[-1]} (1).ipynb</code> is fine), all of the
  assignment's notebooks, or one zip of them. Upload every graded notebook, even unfinished:
  a submission without one is not graded and does not count.</p>
  {UPLOAD_ELEMENT}
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
    assignment: str,
    image: str = "numpy-memory-autograder:latest",
    limits: ContainerLimits = DEFAULT_LIMITS,
) -> list[str]:
    """Write a question (``info.json``, ``question.html``), the grader's files for the
    course's ``serverFilesCourse/`` and the image's ``Dockerfile`` into ``out``."""
    if not 0 < limits.seconds <= MAX_TIMEOUT:
        raise ValueError(f"PrairieLearn's timeout is at most {MAX_TIMEOUT} s, not {limits.seconds}")
    limits.grading_options(1)  # too small or too short fails now
    python = interpreter_version()
    folder = grader_dir(assignment)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out / "serverFilesCourse" / folder, ignore_errors=True)
    grader = out / "serverFilesCourse" / folder
    files = prepare_material(
        course_root,
        grader / "course",
        assignment=assignment,
        settings={"platform": "prairielearn", **limits_settings(limits)},
    )
    release_folder = grader / "course" / "release" / assignment
    notebooks = sorted(name for name, cells in expected_notebooks(release_folder).items() if cells)
    (grader / "run_grader").write_text(run_grader(folder))
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
            "entrypoint": f"/grade/serverFilesCourse/{folder}/run_grader",
            "serverFilesCourse": [f"{folder}/"],
            "timeout": limits.seconds,
            "enableNetworking": False,
        },
    }
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "question.html").write_text(question_html(notebooks))
    image_dir = out / "image"
    shutil.rmtree(image_dir, ignore_errors=True)
    build_wheel(image_dir)
    (image_dir / "requirements.txt").write_text("\n".join(pinned_requirements()) + "\n")
    (image_dir / "Dockerfile").write_text(dockerfile(python))
    written = [*files, grader / "run_grader", out / "info.json", out / "question.html"]
    written += sorted(image_dir.iterdir())
    return sorted(str(path.relative_to(out)) for path in written)


# -- results ----------------------------------------------------------------------------------


def _not_graded(notebook: dict[str, Any]) -> str:
    name, reason = f"{notebook['notebook']}.ipynb", notebook["reason"]
    if reason == NOT_SUBMITTED:
        return f"{name} is not in your upload."
    return notebook_outcome(notebook)


def prairielearn_results(result: SubmissionResult) -> dict[str, Any]:
    """results.json for one graded upload. Not gradable (the attempt does not count, and
    format_errors say what to fix) when a graded notebook is missing or unreadable, as
    PrairieLearn itself treats an upload without a required file, or when the grader failed."""
    if result.report is None:
        return {"gradable": False, "format_errors": [GRADER_FAILED], "message": GRADER_FAILED}
    notebooks = result.graded_notebooks()
    missing = [n for n in notebooks if n["status"] == "ungradable"]
    if missing:
        names = ", ".join(f"{n['notebook']}.ipynb" for n in notebooks)
        errors = [_not_graded(n) for n in missing] + result.intake.refused
        errors.append(
            f"Upload every graded notebook together ({names}), even unfinished, or one zip of "
            "them. This submission was not graded and does not count."
        )
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


# What grader-host puts in the job directory (apps/prairielearn/src/lib/externalGraderCommon.ts,
# buildDirectory): serverFilesCourse/ (the files info.json lists), shared/ (a second copy of
# them, deprecated but still made), tests/ (the question's), student/ (the upload) and
# data/data.json; results/ is the grader's. Only these three may stay open to the kernel.
OPEN_TO_KERNEL = ("student", "data", "results")


def lock_job_directory(root: Path) -> str:
    """Make everything in the job directory but ``OPEN_TO_KERNEL`` unreadable to the student's
    kernel, which runs as a uid of its own when the grader is root: every copy of the course
    material (serverFilesCourse/, shared/, tests/, and whatever else is there). Raises
    OSError when an entry cannot be locked: no student code runs beside readable material."""
    if os.geteuid() != 0:
        return "not root: the kernel runs as the grader's uid and the sandbox hides what it can"
    locked = []
    for entry in sorted(root.iterdir()):
        if entry.name in OPEN_TO_KERNEL or entry.is_symlink():  # chmod would follow a link
            continue
        entry.chmod(0o700 if entry.is_dir() else 0o600)
        locked.append(entry.name + ("/" if entry.is_dir() else ""))
    return f"readable by their owner only: {', '.join(locked) or 'nothing else in ' + str(root)}"


def run_prairielearn(root: Path = DEFAULT_ROOT, *, material: Path | None = None) -> int:
    """Grade ``root/student`` and write ``root/results/results.json``, whatever happens; the
    instructor's log goes to stdout. Returns 0 once the results file is written (grader-host
    reads it only then), 1 when it could not be written."""
    started = time.monotonic()
    try:
        material = material or _only_material(root)
        settings = read_settings(material)
        privacy = f"{lock_job_directory(root)}; {hide_material(material)}"
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
    try:
        write_results(root / "results" / "results.json", results)
    except OSError as error:
        print(f"COULD NOT WRITE THE RESULTS: {error}", flush=True)
        return 1
    return 0


def _only_material(root: Path) -> Path:
    """The material of the job's one grader folder (info.json lists one per question)."""
    found = sorted((root / "serverFilesCourse").glob("*_grader/course"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{len(found)} grader folders in {root / 'serverFilesCourse'}: pass --material"
        )
    return found[0]


def _read_data(root: Path) -> str:
    """What ``data/data.json`` says about the attempt, in one line for the log."""
    try:
        data = json.loads((root / "data" / "data.json").read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(data, dict):
        return ""
    return ", ".join(f"{key}={data[key]!r}" for key in ("variant_seed", "options") if key in data)
