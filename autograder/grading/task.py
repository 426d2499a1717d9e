"""One student's grading as a self-contained task: what travels to a worker, and back.

A worker on another machine shares no file system with the instructor. It gets the
course material once (:class:`CourseBundle`: ``nbgrader_config.py``, the source and
release notebooks, and a copy of the gradebook with the assignment's definition and no
students), then one :class:`StudentTask` per student (the staged notebooks, as bytes).
It grades in a temporary course folder of its own, with nbgrader's Autograde and the
same pipeline, overrides, sandbox and limits as the local pool
(:func:`autograder.grading.workers.autograde_student`), and sends back a
:class:`StudentResult`: the run records, the graded notebooks and the scores. Only the
instructor's process writes them into the course (:func:`write_result`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import autograder
from autograder.course import Course
from autograder.grading.gradebook import SubmissionScores, read_autograded, record_autograded
from autograder.grading.scratch import scratch_folder
from autograder.sandbox.policy import hidden_from_students

DISTRIBUTION = "numpy-memory-autograder"
_STUDENT_TABLES = ("comment", "grade", "submitted_notebook", "submitted_assignment", "student")


def package_identity() -> str:
    """This installation of the package: its version and a digest of its code, so that
    two installations of one version built from different code are told apart."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = autograder.__version__
    digest = hashlib.sha256()
    package = Path(autograder.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return f"{version} (code {digest.hexdigest()[:12]})"


def _files_under(folder: Path, prefix: str) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {
        f"{prefix}/{path.relative_to(folder).as_posix()}": path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".ipynb_checkpoints" not in path.parts
    }


def assignment_only_gradebook(gradebook: Path) -> bytes:
    """The gradebook's bytes without any student: the assignment, notebooks and cells
    (with the hidden tests) that nbgrader's Autograde needs, and nobody's grades."""
    with tempfile.TemporaryDirectory(prefix="autograder-gradebook-") as folder:
        copy = Path(folder) / "gradebook.db"
        source = sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # a consistent snapshot, even while the file is in use
            for table in _STUDENT_TABLES:
                target.execute(f"DELETE FROM {table}")
            target.commit()
            target.execute("VACUUM")
        finally:
            source.close()
            target.close()
        return copy.read_bytes()


@dataclass(frozen=True)
class CourseBundle:
    """What grading needs of the course, sent once to every worker."""

    assignment: str
    files: dict[str, bytes]  # course-relative path -> bytes
    identity: str  # the instructor's package_identity()

    @classmethod
    def of(cls, course: Course) -> CourseBundle:
        files = {"nbgrader_config.py": (course.root / "nbgrader_config.py").read_bytes()}
        files.update(_files_under(course.source, f"source/{course.assignment}"))
        files.update(_files_under(course.release, f"release/{course.assignment}"))
        files["gradebook.db"] = assignment_only_gradebook(course.gradebook)
        return cls(course.assignment, files, package_identity())

    @property
    def digest(self) -> str:
        digest = hashlib.sha256(self.assignment.encode())
        for name in sorted(self.files):
            digest.update(name.encode())
            digest.update(self.files[name])
        return digest.hexdigest()[:16]

    def unpack(self, folder: Path) -> None:
        for name, data in self.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


@dataclass(frozen=True)
class StudentTask:
    student: str
    assignment: str
    files: dict[str, bytes]  # the staged submission: notebook and timestamp.txt names -> bytes
    overrides: dict[str, dict[str, Any]]  # limits and memory only: no instructor paths
    run: str = ""  # the grading run it belongs to: stopping the run stops it

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


@dataclass
class StudentResult:
    student: str
    log: str = ""  # "" when nbgrader succeeded; else why not (its log's end)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # notebook -> NotebookRun JSON
    graded: dict[str, bytes] = field(default_factory=dict)  # autograded files, by name
    scores: SubmissionScores | None = None
    worker: str = ""  # where it was graded


# Keys of the run's overrides that name the instructor's folders; a worker sets its own.
_LOCAL_PATHS = {
    "CourseDirectory": ("root", "db_url", "submitted_directory", "autograded_directory"),
    "ProtectedExecute": ("evidence_dir",),
    "SandboxedKernelManager": ("hidden_paths",),
}


def portable_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run's overrides without the instructor's paths: limits and memory."""
    portable = {}
    for section, values in overrides.items():
        kept = {k: v for k, v in values.items() if k not in _LOCAL_PATHS.get(section, ())}
        if kept:
            portable[section] = kept
    return portable


def staged_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def grade_task(
    task: StudentTask, course_dir: Path, hidden: list[str], worker: str = ""
) -> StudentResult:
    """Grade one student on this machine, in a temporary course folder made from the
    unpacked :class:`CourseBundle` at ``course_dir``; ``hidden``: more paths the student's
    kernel must not see (the bundle, the worker's own folders)."""
    from autograder.grading.workers import autograde_student

    result = StudentResult(task.student, worker=worker)
    with scratch_folder("task") as root:
        for name in ("nbgrader_config.py", "gradebook.db"):
            shutil.copy2(course_dir / name, root / name)
        for name in ("source", "release"):
            if (course_dir / name).is_dir():
                shutil.copytree(course_dir / name, root / name)
        assignment = task.assignment
        submitted = root / "submitted" / task.student / assignment
        submitted.mkdir(parents=True)
        for name, data in task.files.items():
            (submitted / Path(name).name).write_bytes(data)
        overrides = _local_overrides(root, task.overrides, hidden)
        result.log = autograde_student(str(root), assignment, task.student, overrides)
        runs = root / "runs" / task.student
        if runs.is_dir():
            result.runs = {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))}
        graded = root / "autograded" / task.student / assignment
        if graded.is_dir():
            result.graded = staged_files(graded)
        result.scores = read_autograded(
            f"sqlite:///{root / 'gradebook.db'}", assignment, task.student
        )
    return result


def _local_overrides(
    root: Path, portable: dict[str, dict[str, Any]], hidden: list[str]
) -> dict[str, dict[str, Any]]:
    overrides = {section: dict(values) for section, values in portable.items()}
    overrides.setdefault("CourseDirectory", {}).update(
        {
            "root": str(root),
            "db_url": f"sqlite:///{root / 'gradebook.db'}",
            "submitted_directory": "submitted",
            "autograded_directory": "autograded",
        }
    )
    overrides.setdefault("ProtectedExecute", {})["evidence_dir"] = str(root / "runs")
    overrides.setdefault("SandboxedKernelManager", {})["hidden_paths"] = [
        *hidden_from_students(root, root / "runs"),
        *hidden,
    ]
    return overrides


def write_result(course: Course, runs_dir: Path, result: StudentResult) -> None:
    """Put a worker's result into the course, in this (the only writing) process: the
    gradebook first (one transaction), then the graded notebooks and the run records the
    report is made from."""
    if result.scores is not None:
        record_autograded(course.db_url, course.assignment, result.scores)
    graded = course.autograded / result.student / course.assignment
    shutil.rmtree(graded, ignore_errors=True)
    if result.graded:
        graded.mkdir(parents=True)
        for name, data in result.graded.items():
            (graded / Path(name).name).write_bytes(data)
    runs = runs_dir / result.student
    shutil.rmtree(runs, ignore_errors=True)
    if result.runs:
        runs.mkdir(parents=True)
        for notebook, record in result.runs.items():
            (runs / f"{Path(notebook).name}.json").write_text(json.dumps(record, indent=1))
