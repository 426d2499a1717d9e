"""What to teach next week: per exercise, how many students got full marks, and what cost the
others their points: which holder kept their arrays alive (a view, the output cache, a list, a
generator, a cache, a traceback, ...) or which limit they broke (a leak, temporaries, the
budget), counted over the class, with an example message for each.

Read from the grading report alone: each failed test's message is what the checks told the
student (``autograder.checks``), and its words say what held the array or which limit broke
(:func:`causes`). A student is counted once per cause and exercise. Students whose notebook was
flagged, could not be graded or was not submitted are counted apart: their scores say nothing
about what they understood. ``report.json`` holds the figures (``class``), ``class.html`` shows
them as bar charts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from autograder.exercises import Exercise
from autograder.records import NOT_GRADED, StudentReport

HOLDER, LIMIT, OTHER = "holder", "limit", "other"

# What a holder line of a check's message starts with (autograder.checks.advice and
# references name them), and the word the class view counts it under. Longest first where
# one starts another ("function attribute" before "attribute").
HOLDER_KINDS = (
    ("Jupyter's output cache", "the output cache"),
    ("an exception's traceback", "a traceback"),
    ("paused generator", "a paused generator"),
    ("function cache", "a function cache"),
    ("function attribute", "a function attribute"),
    ("class attribute", "a class attribute"),
    ("module attribute", "a module attribute"),
    ("closure", "a closure"),
    ("memoryview", "a memoryview"),
    ("view", "a view"),
    ("container", "a list or dict"),
    ("attribute", "an attribute"),
    ("variable", "a variable"),
    ("unnamed holder", "something unnamed"),
)
NOT_ATTEMPTED = "not attempted"

# (words in the message, cause, kind), first match wins. The checks' own words: a holder's
# message is read line by line below; these are the rest.
_RULES = (
    ("IntegrityError:", "not trusted (evidence of tampering)", OTHER),
    ("CellTimeoutError:", "the time limit", LIMIT),
    ("MemoryError:", "the memory limit", LIMIT),
    ("the kernel died", "the kernel died", OTHER),
    ("NotRun:", "not run (the notebook stopped earlier)", OTHER),
    ("NotAccepted:", "a technique the exercises do not accept", OTHER),
    ("NotImplementedError", NOT_ATTEMPTED, OTHER),
    ("NameError:", NOT_ATTEMPTED, OTHER),
    ("No array was tracked as", "its array was never tracked (an earlier cell failed)", OTHER),
    ("a full copy of its data is still in", "a copy of its data", HOLDER),
    ("What holds the memory:", "its data in another form (bytes, text, chunks)", HOLDER),
    ("but nothing the notebook can name holds it", "something unnamed", HOLDER),
    ("leaks:", "a leak (kept between calls)", LIMIT),
    ("budget. Something held", "over the memory budget", LIMIT),
    ("moved the array to a new buffer", "a new array instead of in place", LIMIT),
    ("while working on a", "temporaries (not in place)", LIMIT),
    ("this exercise asks for", "a different array than asked", OTHER),
    ("AssertionError:", "a wrong value or answer", OTHER),
)
_HOLDER_LINE = re.compile(r"^\s*- (.+)$")


@dataclass(frozen=True)
class Cause:
    cause: str
    kind: str  # HOLDER, LIMIT or OTHER


def causes(message: str) -> list[Cause]:
    """What a failed test's message says cost the points; [] when it says nothing (a passed
    test, or a grader's note such as ``not graded: ...``)."""
    if "What holds it:" in message:
        found = []
        for line in message.split("What holds it:", 1)[1].splitlines():
            holder = _HOLDER_LINE.match(line)
            if holder is None:
                continue
            text = holder.group(1)
            word = next((word for prefix, word in HOLDER_KINDS if text.startswith(prefix)), None)
            if word is not None and Cause(word, HOLDER) not in found:
                found.append(Cause(word, HOLDER))
        return found or [Cause("something unnamed", HOLDER)]
    flat = " ".join(message.split())  # the checks wrap their messages at 80 columns
    for words, cause, kind in _RULES:
        if words in flat:
            return [Cause(cause, kind)]
    if message.startswith("not graded") or not message.strip():
        return []
    return [Cause("an error in the student's code", OTHER)]


def _apart(status: str, reason: str) -> str | None:
    """Why a notebook's students are counted apart, or None when their scores count."""
    if status == "flagged":
        return "flagged"
    if status in ("ungradable", NOT_GRADED):
        return "not submitted" if reason == "not submitted" else "ungradable"
    return None


def class_view(
    students: Iterable[StudentReport], exercises: dict[str, list[Exercise]]
) -> dict[str, Any]:
    """The class's figures, per exercise of ``exercises`` (each notebook's, in order)."""
    students = sorted(students, key=lambda s: s.student)
    rows: list[dict[str, Any]] = []
    overall: dict[tuple[str, str], dict[str, Any]] = {}
    for notebook, found in exercises.items():
        for exercise in found:
            row = _exercise_row(students, notebook, exercise)
            rows.append(row)
            for cause in row["causes"]:
                entry = overall.setdefault(
                    (cause["cause"], cause["kind"]),
                    {"cause": cause["cause"], "kind": cause["kind"], "students": 0, "where": []},
                )
                entry["students"] += cause["students"]
                entry["where"].append(exercise.key)
    return {
        "students": len(students),
        "exercises": rows,
        "overall": sorted(overall.values(), key=lambda c: (-c["students"], c["cause"])),
    }


def _exercise_row(
    students: list[StudentReport], notebook: str, exercise: Exercise
) -> dict[str, Any]:
    counted, full = 0, 0
    apart: dict[str, list[str]] = {}
    found: dict[Cause, list[tuple[str, str]]] = {}  # cause -> (student, message)
    for student in students:
        entry = next((n for n in student.notebooks if n.notebook == notebook), None)
        if entry is None:
            continue
        why = _apart(entry.status, entry.reason)
        if why is not None:
            apart.setdefault(why, []).append(student.student)
            continue
        counted += 1
        cells = [c for c in entry.cells if c.grade_id in exercise.tests]
        if all(c.score >= c.max_score for c in cells):
            full += 1
            continue
        lost: list[tuple[Cause, str]] = [
            (cause, cell.message)
            for cell in cells
            if cell.score < cell.max_score
            for cause in causes(cell.message)
        ]
        if any(cause.cause == NOT_ATTEMPTED for cause, _ in lost):  # its other failures follow
            lost = [(cause, m) for cause, m in lost if cause.cause == NOT_ATTEMPTED][:1]
        for cause, message in lost:
            if all(who != student.student for who, _ in found.get(cause, [])):
                found.setdefault(cause, []).append((student.student, message))
    return {
        "notebook": notebook,
        "key": exercise.key,
        "title": exercise.title,
        "points": exercise.points,
        "students": counted,
        "full_marks": full,
        "share_full_marks": round(full / counted, 3) if counted else None,
        "apart": {why: len(names) for why, names in sorted(apart.items())},
        "apart_students": {why: names for why, names in sorted(apart.items())},
        "causes": [
            {
                "cause": cause.cause,
                "kind": cause.kind,
                "students": len(who),
                "example": {"student": who[0][0], "message": who[0][1]},
            }
            for cause, who in sorted(found.items(), key=lambda item: (-len(item[1]), item[0].cause))
        ],
    }


# -- the page -------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 72rem; margin: 2rem auto; color: #222; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; table-layout: fixed; }
td, th { padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
td.what { width: 22%; } td.chart { width: 18%; }
td.count { text-align: right; white-space: nowrap; width: 3rem; }
h3 { margin: 1rem 0 0.2rem; font-size: 1rem; }
.bar { background: #eee; height: 1.1rem; }
.bar span { display: block; height: 100%; }
.holder span { background: #c0504d; } .limit span { background: #e08a00; }
.other span { background: #8a8a8a; } .full span { background: #3a8a3a; }
.kind { color: #666; font-size: 0.85rem; }
pre { background: #f6f6f6; padding: 0.4rem; white-space: pre-wrap; margin: 0.2rem 0;
      font-size: 0.72rem; max-height: 9rem; overflow: auto; }
.apart { color: #555; }
"""
_KIND_WORDS = {HOLDER: "kept arrays alive", LIMIT: "broke a limit", OTHER: "other"}
MAX_EXAMPLE = 700  # characters of an example message shown


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _bar(value: int, most: int, css: str) -> str:
    width = 100 * value / most if most else 0
    return f'<div class="bar {css}"><span style="width:{width:.1f}%"></span></div>'


def _cause_rows(items: list[dict[str, Any]], most: int, examples: bool) -> str:
    rows = []
    for item in items:
        example = ""
        if examples:
            shown = item["example"]["message"]
            shown = shown if len(shown) <= MAX_EXAMPLE else shown[:MAX_EXAMPLE] + " ..."
            example = f'<td><pre title="{_e(item["example"]["student"])}">{_e(shown)}</pre></td>'
        where = f" ({', '.join(item['where'])})" if "where" in item else ""
        rows.append(
            f'<tr class="cause" data-kind="{item["kind"]}" data-count="{item["students"]}">'
            f'<td class="what">{_e(item["cause"])}{_e(where)} <span class="kind">'
            f"{_KIND_WORDS[item['kind']]}</span></td>"
            f'<td class="chart">{_bar(item["students"], most, item["kind"])}</td>'
            f'<td class="count">{item["students"]}</td>{example}</tr>'
        )
    return "".join(rows)


def class_page(assignment: str, view: dict[str, Any]) -> str:
    """``class.html``: the figures of :func:`class_view` as bar charts."""
    parts = [
        f"<h1>What to teach next week: {_e(assignment)}</h1>",
        f"<p>{view['students']} students in the report. Per exercise: the share with full "
        "marks, then what cost the others their points: the holder that kept their arrays "
        "alive, the limit they broke, or another reason, with one student's message for each. "
        "A student counts once per cause and exercise; flagged, ungradable and missing "
        "notebooks are counted apart.</p>",
    ]
    overall = view["overall"]
    if overall:
        most = max(item["students"] for item in overall)
        parts.append('<h2 id="overall">Across the assignment</h2>')
        for kind, heading in (
            (HOLDER, "What kept students' arrays alive"),
            (LIMIT, "Which limits they broke"),
            (OTHER, "Other reasons"),
        ):
            items = [item for item in overall if item["kind"] == kind]
            if items:
                parts.append(
                    f'<h3>{heading}</h3><table class="overall {kind}">'
                    f"{_cause_rows(items, most, examples=False)}</table>"
                )
    for row in view["exercises"]:
        counted = row["students"]
        share = f"{row['share_full_marks']:.0%}" if counted else "-"
        apart = ", ".join(f"{count} {why}" for why, count in row["apart"].items())
        parts.append(
            f'<section class="exercise" id="exercise-{_e(row["notebook"])}-{_e(row["key"])}">'
            f"<h2>{_e(row['title'])} <span class='kind'>({row['points']:g} "
            f"point{'s' if row['points'] != 1 else ''}, {_e(row['notebook'])})</span></h2>"
            f'<table><tr class="full-marks" data-count="{row["full_marks"]}"><td class="what">'
            f"full marks: {row['full_marks']} of {counted} ({share})</td>"
            f'<td class="chart">{_bar(row["full_marks"], counted, "full")}</td>'
            f'<td class="count">{row["full_marks"]}</td><td></td></tr>'
            f"{_cause_rows(row['causes'], counted, examples=True)}</table>"
            + (f'<p class="apart">Counted apart: {_e(apart)}.</p>' if apart else "")
            + "</section>"
        )
    title = f"What to teach next week: {assignment}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
