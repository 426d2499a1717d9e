"""The instructor's side of a hub course: release to the exchange, collect, return feedback.

Each step is nbgrader's own command (``release_assignment``, ``collect``,
``generate_feedback``, ``release_feedback``) run from the course directory with the
course's ``nbgrader_config.py``; what is added here is a check of the exchange folder first
(a wrong mode is a sentence saying how to fix it, not a traceback half-way through) and one
place that settles the course id and exchange root every step uses. Grading in between is
``autograder grade``, which reads ``submitted/<student>/<assignment>/`` as collect lays it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder import defaults
from autograder.course import Course
from autograder.hub.exchange import check_exchange, protect_inbound
from autograder.hub.feedback import StudentFeedback, complete_feedback
from autograder.release import release


@dataclass(frozen=True)
class HubSettings:
    """Where the course's exchange is and which course id it is filed under."""

    exchange_root: Path
    course_id: str

    def nbgrader_options(self) -> tuple[str, ...]:
        return (
            f"--Exchange.root={self.exchange_root}",
            f"--CourseDirectory.course_id={self.course_id}",
        )


@dataclass(frozen=True)
class Collected:
    student: str
    timestamp: str  # as nbgrader submit wrote it (timestamp.txt); the latest submission wins


def hub_settings(
    course_root: Path, exchange_root: Path | None = None, course_id: str | None = None
) -> HubSettings:
    """The given values, else the course's ``nbgrader_config.py``, else autograder.defaults."""
    config = Config()
    if (course_root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course_root)).load_config()
    configured_root = config.get("Exchange", {}).get("root")
    configured_id = config.get("CourseDirectory", {}).get("course_id")
    return HubSettings(
        exchange_root=Path(exchange_root or configured_root or defaults.HUB_EXCHANGE_ROOT),
        course_id=course_id or configured_id or defaults.HUB_COURSE_ID,
    )


def hub_course(course: Course, hub: HubSettings) -> Course:
    """``course`` with every nbgrader command it runs pointed at ``hub``'s exchange and course id."""
    return Course(
        course.root,
        assignment=course.assignment,
        workspace=course.workspace,
        extra_config=(*course.extra_config, *hub.nbgrader_options()),
    )


def release_to_exchange(
    course: Course,
    hub: HubSettings,
    *,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Regenerate ``release/`` from ``source/`` and release it to the exchange's ``outbound/``,
    then give ``inbound/`` the sticky bit (:func:`autograder.hub.exchange.protect_inbound`).

    ``force`` replaces an assignment already released (students who fetched it keep their
    copy), and releases changed cells nbgrader would refuse (:func:`autograder.release.release`).
    Returns the released notebooks; ``warn`` gets what would expose submissions.
    """
    check_exchange(hub.exchange_root)
    course = hub_course(course, hub)
    notebooks = release(course, force=force, warn=warn)
    course.run_nbgrader("release_assignment", course.assignment, *(["--force"] if force else []))
    for warning in protect_inbound(hub.exchange_root / hub.course_id):
        if warn is not None:
            warn(warning)
    return notebooks


def collect_submissions(
    course: Course, hub: HubSettings, *, warn: Callable[[str], None] | None = None
) -> list[Collected]:
    """Copy each student's latest submission from the exchange into ``submitted/``
    (``nbgrader collect --update``: a newer submission replaces the one collected before).
    ``warn`` gets each folder skipped because another user made it under a student's name
    (the course's ``OwnedCollect``)."""
    check_exchange(hub.exchange_root)
    course = hub_course(course, hub)
    log = course.run_nbgrader("collect", course.assignment, "--update")
    for line in log.splitlines():
        if "Skipping " in line and " claims to be " in line and warn is not None:
            warn(line[line.index("Skipping ") :])
    return collected(course)


def collected(course: Course) -> list[Collected]:
    """Every student in ``submitted/`` with the timestamp of the submission there."""
    found = []
    for stamp in sorted(course.submitted.glob(f"*/{course.assignment}/timestamp.txt")):
        found.append(Collected(stamp.parent.parent.name, stamp.read_text().strip()))
    return found


def return_feedback(course: Course, hub: HubSettings) -> list[StudentFeedback]:
    """Write feedback for every graded student (``nbgrader generate_feedback``), a page for
    each submitted notebook it has none for (a lesson: :mod:`autograder.hub.feedback`), and
    put it in the exchange (``release_feedback``), where each student fetches only their own.
    Returns, per student, the pages released."""
    check_exchange(hub.exchange_root)
    course = hub_course(course, hub)
    course.run_nbgrader("generate_feedback", course.assignment, "--force")
    # Before the release: the Assignments tab links feedback only when every notebook has a page.
    students = complete_feedback(course)
    course.run_nbgrader("release_feedback", course.assignment)
    return students


def where_students_find_feedback(assignment: str) -> str:
    """What to tell students, in the words of the Assignments tab they use."""
    return (
        "Students find it in JupyterLab: Nbgrader > Assignment List, under Submitted "
        f"assignments, {assignment}: 'Fetch Feedback', then '(view feedback)' beside the "
        f"submission opens ~/{assignment}/feedback/<submission time>/, one page per notebook "
        f"(or in a terminal: nbgrader fetch_feedback {assignment})."
    )
