"""Feedback students can find: a page for every notebook they submitted.

nbgrader's Assignments tab shows "(view feedback)" on a submission only when every notebook
of it has a feedback file (``nbgrader/exchange/default/list.py``: ``has_local_feedback`` is
``all(...)`` over the submission's notebooks), and ``fetch_feedback`` fetches one file per
submitted notebook. ``nbgrader generate_feedback`` writes pages only for what was graded,
so a submission with a lesson (no graded cell, never executed by ``autograder grade``) would
show "(no feedback available)" forever. :func:`complete_feedback` writes a short page for each
submitted notebook that has none: a lesson is not graded; a graded notebook without a result
says so, with the grader's reason when the report has one.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from autograder.course import Course

# What release_feedback reads beside the pages (the submission's timestamp and secret).
SUBMISSION_FILES = ("timestamp.txt", "submission_secret.txt")


@dataclass(frozen=True)
class StudentFeedback:
    student: str
    pages: list[Path]  # one per submitted notebook
    added: list[Path]  # the pages written here (nbgrader wrote the others)


def max_scores(course: Course) -> dict[str, float]:
    """notebook name -> its points, from the gradebook (0 for a lesson)."""
    with Gradebook(course.db_url) as gradebook:
        try:
            assignment = gradebook.find_assignment(course.assignment)
        except MissingEntry:
            return {}
        return {notebook.name: float(notebook.max_score) for notebook in assignment.notebooks}


def _reasons(course: Course, student: str) -> dict[str, str]:
    """notebook -> "status: reason" from the student's grading report, if there is one."""
    path = course.report_dir / "students" / f"{student}.json"
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {
        notebook["notebook"]: f"{notebook['status']}: {notebook.get('reason') or 'no reason given'}"
        for notebook in report.get("notebooks", [])
    }


def _page(title: str, paragraphs: list[str]) -> str:
    body = "\n".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body></html>\n"
    )


def not_graded_page(notebook: str, graded: list[str], reason: str | None) -> str:
    """The page for a submitted notebook that has no graded result."""
    others = ", ".join(f"{name}.html" for name in graded) or "none"
    if reason is None:
        lines = [f"{notebook} is a lesson: it is not graded, so there is no feedback on it."]
    else:
        lines = [f"{notebook} was not graded ({reason}). Ask your instructor."]
    return _page(
        notebook, [*lines, f"Feedback on your graded notebooks, beside this page: {others}."]
    )


def complete_feedback(course: Course) -> list[StudentFeedback]:
    """Give every notebook of every collected submission a page in ``feedback/``; return,
    per student who has feedback, their pages (nbgrader's and the ones added here)."""
    points = max_scores(course)
    done = []
    for submitted in sorted(course.submitted.glob(f"*/{course.assignment}")):
        student = submitted.parent.name
        folder = course.feedback / student / course.assignment
        notebooks = sorted(path.stem for path in submitted.glob("*.ipynb"))
        reasons = _reasons(course, student)
        if not notebooks or not (reasons or list(folder.glob("*.html"))):
            continue  # not graded yet: no feedback to complete
        folder.mkdir(parents=True, exist_ok=True)
        for name in SUBMISSION_FILES:  # when nbgrader wrote no page, it copied neither
            if not (folder / name).exists() and (submitted / name).exists():
                shutil.copy2(submitted / name, folder / name)
        if not all((folder / name).exists() for name in SUBMISSION_FILES):
            continue  # not a submission from the exchange: nothing to release it with
        graded = [name for name in notebooks if (folder / f"{name}.html").exists()]
        added = []
        for name in notebooks:
            page = folder / f"{name}.html"
            if page.exists():
                continue
            is_lesson = points.get(name, 0.0) == 0.0
            reason = None if is_lesson else reasons.get(name, "no graded result")
            page.write_text(not_graded_page(name, graded, reason))
            added.append(page)
        done.append(
            StudentFeedback(student, [folder / f"{name}.html" for name in notebooks], added)
        )
    return done
