"""``autograder feedback``: one HTML page per graded student, from the grading report.

A page shows the score per exercise, each failing check's message, the kernel's memory
after every cell (the grader's plot, embedded), and the student's own cells with their
outputs. It is built from the report (``<report>/students/<student>.json``) and the graded
notebooks (``Course.autograded``), both passed through ``redact``: no hidden test's code
reaches the page, whichever route it takes (see ``autograder.student.redact``). The
instructor's evidence (flags' details, observations, logs) is never shown.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder.course import Course
from autograder.exercises import Exercise, course_exercises, exercise_of
from autograder.grading.plots import plot_memory
from autograder.records import StudentReport
from autograder.student.redact import hidden_lines, redact_notebook, scrub

# What happened to a notebook that did not simply run, and what the student can do about it.
WHAT_TO_DO = {
    "flagged": "The grader found code that changes how the tests, NumPy or the kernel work, so "
    "it did not trust the tests that ran after it (they score 0; each says why below). Remove "
    "that code, restart the kernel, run the notebook from the top and check it with "
    "`autograder check` before you submit again.",
    "timed out": "A cell ran past its time limit. Find the slow cell (it says so below), make it "
    "faster or remove it, and run `autograder check`, which uses the same limits.",
    "over memory": "A cell ran out of memory. Work on smaller pieces (one block at a time) and "
    "free large arrays as soon as you are done with them.",
    "kernel died": "The kernel stopped mid-notebook (it exited, crashed or ran out of memory); the "
    "cells after that point were not run. Remove what ends the kernel and run the notebook "
    "from the top.",
    "ungradable": "The notebook could not be graded. Submit the released notebook with your "
    "answers in it, saved from Jupyter, under its original name.",
}

STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
td, th { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
.passed { color: #176117; } .failed, .distrusted, .not-run { color: #a31515; }
pre { background: #f6f6f6; padding: 0.5rem; white-space: pre-wrap; }
.status { padding: 0.5rem; background: #fff4e5; border-left: 4px solid #e08a00; }
img.memory { max-width: 100%; border: 1px solid #ddd; }
"""


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _secret_lines(course: Course, graded: list[NotebookNode]) -> set[str]:
    """Every hidden line the instructor has: in the source notebooks and the graded ones."""
    secret: set[str] = set()
    for path in sorted(course.source.glob("*.ipynb")) if course.source.is_dir() else []:
        secret |= hidden_lines(nbformat.read(path, as_version=4))
    for nb in graded:
        secret |= hidden_lines(nb)
    return secret


def _graded_notebook(course: Course, student: str, name: str) -> NotebookNode | None:
    path = course.autograded / student / course.assignment / f"{name}.ipynb"
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # missing or unreadable: the report says why
        return None


def _verdicts(safe: NotebookNode | None) -> dict[str, str]:
    """grade_id -> the redacted message of each test cell that failed."""
    verdicts: dict[str, str] = {}
    for cell in safe.cells if safe else []:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                verdicts[grade_id] = f"{output.ename}: {output.evalue}"
            elif output.output_type == "stream" and grade_id not in verdicts:
                verdicts[grade_id] = output.text.strip()
    return verdicts


def _exercise_rows(
    entry: dict[str, Any], safe: NotebookNode | None, secret: set[str], exercises: list[Exercise]
) -> str:
    titles = {e.key: e.title for e in exercises}
    verdicts = _verdicts(safe)
    rows = []
    for cell in entry["cells"]:
        message = verdicts.get(cell["grade_id"]) if safe is not None else None
        if message is None and cell["status"] != "passed":
            message = scrub(cell["message"], secret) if safe is None else ""
        exercise = titles.get(exercise_of(cell["grade_id"]), exercise_of(cell["grade_id"]))
        status = cell["status"]
        rows.append(
            f"<tr><td>{_escape(exercise)}</td><td>{_escape(cell['grade_id'])}</td>"
            f"<td>{cell['score']:g} / {cell['max_score']:g}</td>"
            f'<td class="{status.replace(" ", "-")}">{_escape(status)}</td>'
            f"<td>{f'<pre>{_escape(message)}</pre>' if message else ''}</td></tr>"
        )
    header = "<tr><th>exercise</th><th>test</th><th>score</th><th>result</th><th>message</th></tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def _output_html(output: NotebookNode, secret: set[str]) -> str:
    if output.output_type == "stream":
        return f"<pre>{_escape(scrub(output.text, secret))}</pre>"
    if output.output_type == "error":
        return f"<pre>{_escape(scrub(f'{output.ename}: {output.evalue}', secret))}</pre>"
    data = output.get("data", {})
    if "image/png" in data:
        return f'<img alt="cell output" src="data:image/png;base64,{data["image/png"]}">'
    return f"<pre>{_escape(scrub(data.get('text/plain', ''), secret))}</pre>"


def _student_cells(safe: NotebookNode, secret: set[str]) -> str:
    """The student's own cells (answers and cells they added), with what they printed."""
    parts = []
    for cell in safe.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or (meta and not meta.get("solution")):
            continue
        label = meta.get("grade_id", "a cell you added")
        outputs = "".join(_output_html(o, secret) for o in cell.outputs)
        parts.append(
            f"<h4>{_escape(label)}</h4><pre>{_escape(scrub(cell.source, secret))}</pre>{outputs}"
        )
    return "".join(parts)


def _memory_plot(report: dict[str, Any]) -> str:
    """The grader's plot of the kernel's memory after each cell, as an embedded PNG.

    An image, so ``scrub`` cannot reach into it: its marks (tracked arrays' labels and
    cells) are read from visible code only (``autograder.pipeline.tracked_arrays``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = plot_memory(StudentReport.from_json(report), Path(folder))
        if path is None:
            return "<p>No cell ran, so there is no memory to show.</p>"
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        '<img class="memory" alt="the kernel\'s memory after each cell" '
        f'src="data:image/png;base64,{encoded}">'
    )


def _notebook_section(
    course: Course,
    report: dict[str, Any],
    entry: dict[str, Any],
    secret: set[str],
    exercises: dict[str, list[Exercise]],
) -> str:
    graded = _graded_notebook(course, report["student"], entry["notebook"])
    safe = redact_notebook(graded) if graded is not None else None
    status = entry["status"]
    parts = [
        f"<h2>{_escape(entry['notebook'])}: {entry['score']:g} / {entry['max_score']:g}</h2>",
    ]
    if status != "graded":
        reason = scrub(entry["reason"], secret) if status != "flagged" else ""
        parts.append(
            f'<p class="status"><b>{_escape(status)}</b>{": " + _escape(reason) if reason else ""}. '
            f"{_escape(WHAT_TO_DO.get(status, ''))}</p>"
        )
    parts.append(_exercise_rows(entry, safe, secret, exercises.get(entry["notebook"], [])))
    if safe is not None:
        parts.append(f"<h3>Your cells</h3>{_student_cells(safe, secret)}")
    return "".join(parts)


def feedback_page(
    course: Course, report: dict[str, Any], exercises: dict[str, list[Exercise]] | None = None
) -> str:
    """One student's feedback page, as HTML. ``exercises``: each notebook's, as the source
    notebooks have them (read from ``course.source`` when not given)."""
    if exercises is None:
        exercises = course_exercises(course)
    entries = [entry for entry in report["notebooks"] if entry["cells"]]
    graded = [
        nb
        for entry in entries
        if (nb := _graded_notebook(course, report["student"], entry["notebook"])) is not None
    ]
    secret = _secret_lines(course, graded)
    sections = "".join(
        _notebook_section(course, report, entry, secret, exercises) for entry in entries
    )
    title = f"Feedback for {report['student']}: {report['score']:g} / {report['max_score']:g}"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{_escape(title)}</h1>"
        "<h2>Your kernel's memory after each cell</h2>"
        f"{_memory_plot(report)}{sections}</body></html>"
    )


def _same_assignment(course: Course, report_dir: Path) -> None:
    """A report of another assignment never makes this one's pages."""
    try:
        graded = json.loads((report_dir / "report.json").read_text()).get("assignment")
    except (OSError, ValueError):
        return  # a run still going, or stopped: its students' files are this assignment's
    if graded and graded != course.assignment:
        raise ValueError(
            f"The report in {report_dir} is for {graded}, not {course.assignment}: name the "
            f"assignment (`autograder feedback {graded}`) or its report (--report)."
        )


def write_feedback(
    course: Course,
    *,
    report_dir: Path | None = None,
    out_dir: Path | None = None,
    students: list[str] | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<student>.html`` for every graded student (or ``students``) of the
    course's assignment; default folders: the assignment's report folder
    (``grading-report/<assignment>/``) and its ``feedback/``."""
    report_dir = (report_dir or course.report_dir).resolve()
    out_dir = (out_dir or report_dir / "feedback").resolve()
    reports = sorted((report_dir / "students").glob("*.json"))
    if not reports:
        raise FileNotFoundError(
            f"No graded students of {course.assignment} in {report_dir}: run "
            f"`autograder grade {course.assignment}` first."
        )
    _same_assignment(course, report_dir)
    known = {path.stem for path in reports}
    unknown = sorted(set(students or ()) - known)
    if unknown:
        raise ValueError(f"No grading report for: {', '.join(unknown)} (in {report_dir}).")
    out_dir.mkdir(parents=True, exist_ok=True)
    exercises = course_exercises(course)
    pages = []
    for path in reports:
        if students and path.stem not in students:
            continue
        report = json.loads(path.read_text())
        page = out_dir / f"{report['student']}.html"
        page.write_text(feedback_page(course, report, exercises))
        pages.append(page)
    return pages
