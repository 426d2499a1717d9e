"""Grade one uploaded submission in a throw-away course, as ``autograder grade`` would.

Both platforms run one container per submission. The course material the grader needs
(``nbgrader_config.py``, the instructor's source notebooks with their hidden tests, the
released notebooks and the gradebook ``nbgrader generate_assignment`` filled in) is made
once, when the instructor builds the platform's files (:func:`prepare_material`), so a
submission does not pay for a release. For each submission (:func:`grade_upload`) the
material is copied into a temporary course directory, the upload is checked and put in
``submitted/student/<assignment>/`` (:mod:`autograder.platforms.uploads`), and
:func:`autograder.grading.run.grade` grades it with the course's pipeline: the same
sandbox, time limits, integrity checks and memory evidence as a local run, so the same
notebook gets the same points, status and flags everywhere.

The limits come from the container's (:class:`ContainerLimits`): the kernel's address
space is the container's memory less what the grader itself holds, and the time limits
leave the grader its start-up and reporting time inside the platform's timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import ClearHiddenTests

from autograder import defaults
from autograder.course import Course
from autograder.exercises import Exercise, assignment_exercises
from autograder.grading.run import grade
from autograder.platforms.uploads import FIX_UPLOAD, Intake, take_notebooks
from autograder.platforms.visible import VisibleResult, visible_results
from autograder.release import release

STUDENT = "student"  # the one student of a throw-away course (the platform knows who it is)
SETTINGS = "platform.json"  # beside the material: the assignment, limits, visibility
MiB = defaults.MiB

# The grading process and its one worker, with nbgrader loaded, hold about 150 MiB each
# (measured: 146 MiB peak RSS for the grading process); the kernel gets the rest.
GRADER_MEMORY = 320 * MiB
# The exercises pass with 448 MiB of address space for the kernel (measured); below this
# the honest solution would fail, so a smaller container is refused at build time.
MIN_KERNEL_MEMORY = 448 * MiB
# Seconds a submission spends outside the notebooks' limits and the grading run's own
# overhead (defaults.RUN_OVERHEAD): start Python, copy the material, check the upload,
# write the results. About 3 s on an idle core; the allowance covers half a slow CPU.
STARTUP_SECONDS = 40


class PlatformError(ValueError):
    """A platform's files cannot be built as asked (the instructor's problem, not a student's)."""


@dataclass(frozen=True)
class ContainerLimits:
    """What the platform gives one grading container."""

    memory_bytes: int
    seconds: int
    cpus: float

    def kernel_memory(self) -> int:
        memory = self.memory_bytes - GRADER_MEMORY
        if memory < MIN_KERNEL_MEMORY:
            raise PlatformError(
                f"a container of {self.memory_bytes // MiB} MiB leaves the student's kernel "
                f"{max(0, memory) // MiB} MiB after the grader's {GRADER_MEMORY // MiB} MiB; the "
                f"exercises need {MIN_KERNEL_MEMORY // MiB} MiB: choose a larger container"
            )
        return memory

    def grading_options(self, graded_notebooks: int) -> dict[str, int]:
        """The kernel's memory and the time limits, so that the worst case a submission
        can take (autograder.limits.TimeLimits.run_worst_case) ends before the container's."""
        notebooks = max(1, graded_notebooks)
        student = int(
            self.seconds
            - STARTUP_SECONDS
            - defaults.RUN_OVERHEAD
            - notebooks * defaults.NOTEBOOK_OVERHEAD
            - defaults.INTERRUPT_GRACE
        )
        if student < 60:
            raise PlatformError(
                f"a {self.seconds} s container timeout leaves {max(0, student)} s to run the "
                "notebooks: give the autograder at least 3 minutes"
            )
        notebook = min(defaults.NOTEBOOK_TIMEOUT, student)
        return {
            "memory_bytes": self.kernel_memory(),
            "cell_timeout": min(defaults.CELL_TIMEOUT, notebook),
            "notebook_timeout": notebook,
            "student_timeout": student,
        }


@dataclass
class SubmissionResult:
    """One graded upload: the student's report from ``autograder grade`` (None when the
    grader itself failed), what was taken from the upload, and which tests are hidden."""

    intake: Intake
    report: dict[str, Any] | None = None
    hidden_tests: set[str] = field(default_factory=set)  # grade_ids with hidden parts
    # Each notebook's exercises, read from the instructor's notebooks in the material.
    exercises: dict[str, list[Exercise]] = field(default_factory=dict)
    # Each exercise's visible part, as `autograder check` prints it (graded notebooks only).
    visible: list[VisibleResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # the grader's own failure, for the instructor (a traceback)

    def graded_notebooks(self) -> list[dict[str, Any]]:
        """The report's notebooks that have graded cells (lessons have none)."""
        return [n for n in (self.report or {}).get("notebooks", []) if n["cells"]]


# -- build time -----------------------------------------------------------------------------


def prepare_material(
    course_root: Path, out: Path, *, assignment: str, settings: dict[str, Any]
) -> list[Path]:
    """Write the course material the grader needs into ``out`` (made fresh): the course's
    ``nbgrader_config.py``, ``source/`` (hidden tests included), ``release/`` and the
    gradebook, released once here; and ``platform.json`` with ``settings``."""
    course = Course(course_root, assignment=assignment)
    if not course.source.is_dir():
        raise PlatformError(f"No assignment source at {course.source}.")
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="autograder-build-") as tmp:
        work = Course(Path(tmp), assignment=assignment)
        shutil.copytree(course.source, work.source)
        shutil.copy2(course_root / "nbgrader_config.py", work.root / "nbgrader_config.py")
        release(work)
        out.mkdir(parents=True)
        for name in ("nbgrader_config.py", "source", "release", "gradebook.db"):
            copy = shutil.copytree if (work.root / name).is_dir() else shutil.copy2
            copy(work.root / name, out / name)
    (out / SETTINGS).write_text(json.dumps({"assignment": assignment, **settings}, indent=1))
    return sorted(p for p in out.rglob("*") if p.is_file())


def read_settings(material: Path) -> dict[str, Any]:
    return json.loads((material / SETTINGS).read_text())


def container_limits(settings: dict[str, Any]) -> ContainerLimits:
    return ContainerLimits(**settings["container"])


def limits_settings(limits: ContainerLimits) -> dict[str, Any]:
    return {"container": asdict(limits)}


# -- grading time ---------------------------------------------------------------------------


def hidden_test_ids(source: Path) -> set[str]:
    """grade_ids of the graded cells whose source has a hidden-tests block (nbgrader's own
    delimiter, which ``generate_assignment`` strips from the student's copy)."""
    delimiter = ClearHiddenTests().begin_test_delimeter
    hidden = set()
    for path in sorted(source.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and delimiter in cell.source:
                hidden.add(meta["grade_id"])
    return hidden


def expected_notebooks(release_folder: Path) -> dict[str, set[str]]:
    """Notebook name -> grade_ids of its graded or locked cells (how renamed uploads match)."""
    expected = {}
    for path in sorted(release_folder.glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        expected[path.stem] = {
            c.metadata["nbgrader"]["grade_id"]
            for c in cells
            if c.metadata.get("nbgrader", {}).get("grade")
            or c.metadata.get("nbgrader", {}).get("solution")
        }
    return expected


def hide_material(material: Path) -> str:
    """Make the material unreadable to the student's kernel, which runs as its own uid when
    the grader is root; returns what was done, for the instructor's log."""
    if os.geteuid() != 0:
        return "not root: the kernel runs as the grader's uid and the sandbox hides what it can"
    try:
        material.chmod(0o700)
    except OSError as error:  # a read-only mount (PrairieLearn's serverFilesCourse may be)
        return f"could not make {material} private ({error})"
    return f"{material} is readable by root only"


def grade_upload(
    upload: Path, material: Path, *, limits: ContainerLimits, work_dir: Path | None = None
) -> SubmissionResult:
    """Grade what is in ``upload`` (a folder) with the course ``material``; never raises for a
    student's upload, and records the grader's own failure in ``error``."""
    started = time.monotonic()
    result = SubmissionResult(Intake())
    tmp = Path(tempfile.mkdtemp(prefix="autograder-submission-", dir=work_dir))
    try:
        settings = read_settings(material)
        course = Course(tmp / "course", assignment=settings["assignment"])
        shutil.copytree(material, course.root, ignore=shutil.ignore_patterns(SETTINGS))
        result.hidden_tests = hidden_test_ids(course.source)
        result.exercises = assignment_exercises(course.source)
        expected = expected_notebooks(course.release)
        result.intake = take_notebooks(
            upload, course.submitted / STUDENT / course.assignment, expected
        )
        graded = sum(1 for cells in expected.values() if cells)
        report_dir = course.root / defaults.REPORT_DIR
        options = limits.grading_options(graded)
        run = grade(
            course,
            students=[STUDENT],
            workers=1,
            force=True,
            report_dir=report_dir,
            progress=False,
            plots=False,
            memory_bytes=options["memory_bytes"],
            cell_timeout=options["cell_timeout"],
            notebook_timeout=options["notebook_timeout"],
            student_timeout=options["student_timeout"],
        )
        result.report = run.students[0].to_json()  # the report grade() also saved
        result.visible = _visible(course, result.report, result.exercises)
    except Exception:  # the grader's failure must still become a results file
        result.error = traceback.format_exc()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        result.seconds = round(time.monotonic() - started, 2)
    return result


def _visible(
    course: Course, report: dict[str, Any], exercises: dict[str, list[Exercise]]
) -> list[VisibleResult]:
    """The visible verdicts of the notebooks that ran (read before the course is deleted)."""
    found = []
    for notebook in report["notebooks"]:
        name = notebook["notebook"]
        graded = course.autograded / STUDENT / course.assignment / f"{name}.ipynb"
        if notebook["cells"] and notebook["status"] != "ungradable" and graded.is_file():
            found += visible_results(graded, exercises.get(name, []))
    return found


# -- what to tell whom ------------------------------------------------------------------------

GRADER_FAILED = (
    "The autograder could not grade this submission: the problem is on the grader's side, not "
    "in your notebook. Your instructor has the details; you may submit again later."
)


def notebook_outcome(notebook: dict[str, Any]) -> str:
    """One notebook's status, in words a student understands and can act on."""
    name, status, reason = f"{notebook['notebook']}.ipynb", notebook["status"], notebook["reason"]
    if status == "graded":
        return f"{name}: graded."
    if status == "flagged":
        return (
            f"{name}: flagged for your instructor's review. The grader found code that changes "
            "how the notebook or its tests run; tests that ran after it score 0. The tests' "
            "messages say where."
        )
    if status == "kernel died":
        return (
            f"{name}: Python stopped while running it ({reason}). The cells after that point "
            "were not run and score 0. Run it from the top (Kernel > Restart Kernel and Run All "
            "Cells) to find the cell."
        )
    if status == "timed out":
        return (
            f"{name}: it ran out of time ({reason}); what did not run scores 0. Make that cell "
            "faster and run the notebook from the top before you upload it."
        )
    if status == "over memory":
        return (
            f"{name}: it ran out of memory ({reason}); that cell failed with MemoryError. Work "
            "with smaller arrays, or one block at a time."
        )
    if status == "not graded" or reason.startswith("kernel did not start"):
        return f"{name}: {GRADER_FAILED}"  # the grader's sandbox or kernel failed, not the upload
    if reason == "not submitted":
        return f"{name} was not submitted: upload it to be graded on it."
    return f"{name} was not graded: {reason}. {FIX_UPLOAD}"


def student_summary(result: SubmissionResult) -> str:
    """What happened to the submission, for the student: each notebook, then the upload."""
    if result.report is None:
        lines = [GRADER_FAILED]
    else:
        lines = [notebook_outcome(n) for n in result.graded_notebooks()]
    return "\n".join(lines + result.intake.messages)


def instructor_log(result: SubmissionResult, **context: Any) -> str:
    """Everything an instructor may need and a student must not see: evidence, the sandbox,
    limits, the grader's own errors. Platforms print it where only instructors look."""
    lines = [f"{key}: {value}" for key, value in context.items() if value not in (None, "")]
    lines.append(f"grading took {result.seconds:.1f} s")
    for name, shown in result.intake.placed.items():
        lines.append(f"graded {name}.ipynb from {shown}")
    lines += [f"upload: {message}" for message in result.intake.messages]
    if result.error:
        lines.append("THE GRADER FAILED:\n" + result.error)
    if result.report is not None:
        lines.append(f"score {result.report['score']:g}/{result.report['max_score']:g}")
    for notebook in result.graded_notebooks():
        lines.append(
            f"{notebook['notebook']}: {notebook['status']} ({notebook['reason'] or 'ok'}), "
            f"{notebook['score']:g}/{notebook['max_score']:g}, {notebook['seconds'] or 0:.1f} s"
        )
        if notebook["flags"]:
            lines.append("  flags: " + " ".join(notebook["flags"]))
        for item in notebook["evidence"]:
            lines.append("  evidence: " + json.dumps(item, sort_keys=True)[:2000])
        for item in notebook.get("observations", []):
            lines.append("  observed: " + json.dumps(item, sort_keys=True)[:500])
        if notebook.get("sandbox"):
            lines.append("  " + notebook["sandbox"])
        if notebook.get("log"):
            lines.append("  log:\n" + notebook["log"])
    return "\n".join(lines)
