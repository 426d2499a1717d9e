"""Where things live in an nbgrader course directory, and how to run nbgrader in one.

A course has any number of assignments, each a folder of ``source/`` (nbgrader's layout:
``source/<assignment>/*.ipynb``). A command works on one: the one it is given, else the
course's only one; a course with several must say which (:func:`choose_assignment`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder import defaults


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message carries the end of its log."""


def assignments(root: Path) -> list[str]:
    """The course's assignments: the folders of ``source/`` that hold notebooks."""
    source = root / "source"
    if not source.is_dir():
        return []
    return sorted(
        folder.name
        for folder in source.iterdir()
        if folder.is_dir() and not folder.name.startswith(".") and any(folder.glob("*.ipynb"))
    )


def choose_assignment(root: Path, given: str | None = None, command: str = "grade") -> str:
    """``given``, or the course's only assignment; ValueError naming them when the course has
    several (or does not have ``given``), with how to name one to ``autograder command``."""
    names = assignments(root)
    if given:
        if names and given not in names:
            raise ValueError(
                f"No assignment {given!r} in {root / 'source'} (it has: {', '.join(names)})."
            )
        return given
    if len(names) == 1:
        return names[0]
    if not names:
        raise FileNotFoundError(
            f"No assignment in {root / 'source'}: an assignment is a folder of source notebooks "
            "(source/<assignment>/*.ipynb)."
        )
    raise ValueError(
        f"This course has {len(names)} assignments ({', '.join(names)}): say which, as for "
        f"nbgrader, e.g. `autograder {command} {names[-1]}` (or --assignment {names[-1]})."
    )


@dataclass(frozen=True)
class Course:
    """An nbgrader course directory (the repository root, for this course).

    ``workspace`` holds the grading side (submissions, graded copies, the
    gradebook) when it should stay apart from the instructor's own: the demo
    grades its example students there. ``assignment`` defaults to the course's only one.
    """

    root: Path
    assignment: str = ""
    workspace: Path | None = None
    extra_config: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.assignment:
            object.__setattr__(self, "assignment", choose_assignment(self.root))

    @property
    def source(self) -> Path:
        return self.root / "source" / self.assignment

    @property
    def release(self) -> Path:
        return self.root / "release" / self.assignment

    @property
    def _grading_root(self) -> Path:
        return self.workspace or self.root

    @property
    def submitted(self) -> Path:
        return self._grading_root / "submitted"

    @property
    def autograded(self) -> Path:
        return self._grading_root / "autograded"

    @property
    def feedback(self) -> Path:
        return self._grading_root / "feedback"

    @property
    def report_dir(self) -> Path:
        """Where ``autograder grade`` reports on this assignment (one folder per assignment)."""
        return self._grading_root / defaults.REPORT_DIR / self.assignment

    @property
    def gradebook(self) -> Path:
        return self._grading_root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    def nbgrader_options(self) -> list[str]:
        """Command-line options that point nbgrader at this course's folders."""
        options = [f"--CourseDirectory.root={self.root}", f"--CourseDirectory.db_url={self.db_url}"]
        if self.workspace is not None:
            for name, path in (
                ("submitted_directory", self.submitted),
                ("autograded_directory", self.autograded),
                ("feedback_directory", self.feedback),
            ):
                options.append(f"--CourseDirectory.{name}={os.path.relpath(path, self.root)}")
        return options + list(self.extra_config)

    def run_nbgrader(self, *args: str) -> str:
        """Run ``nbgrader ARGS`` from the course root, as an instructor would; return its log."""
        command = [sys.executable, "-m", "nbgrader", *args, *self.nbgrader_options()]
        done = subprocess.run(
            command, cwd=self.root, env=tool_environment(), capture_output=True, text=True
        )
        log = done.stdout + done.stderr
        if done.returncode != 0:
            tail = "\n".join(log.strip().splitlines()[-25:])
            raise NbgraderError(f"`nbgrader {' '.join(args)}` failed:\n{tail}")
        return log


def tool_environment() -> dict[str, str]:
    """This environment, with this Python's scripts first on PATH.

    nbgrader runs ``alembic`` by name to set up the gradebook, and kernels must
    be this Python (it has numpy and this package), even when the virtual
    environment was never activated.
    """
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    return env


def find_course_root(start: Path | None = None) -> Path:
    """The nearest folder, from ``start`` up, that holds ``nbgrader_config.py`` and ``source/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "source").is_dir():
            return folder
    raise FileNotFoundError(
        f"No course directory at or above {here}: run this from the repository root "
        "(the folder with nbgrader_config.py and source/), or pass --course-dir."
    )
