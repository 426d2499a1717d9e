"""What a student uploaded: find this assignment's notebooks in it, trusting nothing.

A platform hands over a folder of whatever the student uploaded: one notebook or all of
them, renamed copies (``04_exercises (1).ipynb``), a zip, stray files. Each notebook is
matched to the assignment's notebook of the same name, or, when renamed, to the one whose
graded cells it carries; a notebook of another assignment is reported, not graded under a
name it does not have. A zip is read member by member: one whose paths escape its folder
(absolute, ``..``, links) is refused whole, and no member is ever extracted to a path the
zip chose. Files over the size limit are refused. Every refusal is a message the student
can act on; the files that pass are written as ``<notebook>.ipynb`` into the folder the
grader stages from (:mod:`autograder.grading.staging` then reads them as it reads any
submission, corrupt ones included).
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder.grading.staging import MAX_NOTEBOOK_BYTES

MAX_UPLOAD_BYTES = MAX_NOTEBOOK_BYTES  # one file, or one member of a zip
MAX_ZIP_MEMBERS = 200
MAX_ZIP_TOTAL_BYTES = 5 * MAX_NOTEBOOK_BYTES  # everything a zip unpacks to

FIX_UPLOAD = "Download it again from Jupyter (File > Download) and upload the .ipynb file."
_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|\s*-\s*copy\d*|-checkpoint|\s*copy\d*)$", re.IGNORECASE)
_SKIPPED_PARTS = ("__MACOSX", ".ipynb_checkpoints", ".git")


@dataclass
class Intake:
    """What was taken from an upload, and what was not and why (in a student's words)."""

    placed: dict[str, str] = field(default_factory=dict)  # notebook name -> where it came from
    refused: list[str] = field(default_factory=list)  # files that were not graded: why
    notes: list[str] = field(default_factory=list)  # what the student may want to know

    @property
    def messages(self) -> list[str]:
        return [*self.refused, *self.notes]


@dataclass(frozen=True)
class _Candidate:
    shown: str  # how the student knows the file: its upload path, or zip/member
    data: bytes


def size_text(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n:,} bytes"


def member_problem(info: zipfile.ZipInfo) -> str:
    """Why a zip member's path cannot be trusted, or "" when it can."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"{name!r} is a symbolic link"
    if "\\" in name or "\x00" in name:
        return f"{name!r} has a backslash or a null byte in its path"
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return f"{name!r} is an absolute path"
    if ".." in path.parts:
        return f"{name!r} climbs out of the zip's folder (..)"
    return ""


def _zip_candidates(path: Path, shown: str, intake: Intake) -> list[_Candidate]:
    """The notebooks in a zip, or [] with the reason in ``intake`` when it is refused."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        intake.refused.append(f"{shown} is not a readable zip file ({error}). {FIX_UPLOAD}")
        return []
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        problems = [why for why in map(member_problem, archive.infolist()) if why]
        if problems:
            intake.refused.append(
                f"{shown} was refused: {problems[0]}. Zip only your notebooks, from their own "
                "folder, or upload the .ipynb files themselves."
            )
            return []
        total = sum(info.file_size for info in members)
        if len(members) > MAX_ZIP_MEMBERS or total > MAX_ZIP_TOTAL_BYTES:
            intake.refused.append(
                f"{shown} was refused: it holds {len(members)} files and {size_text(total)}, "
                f"over the limits of {MAX_ZIP_MEMBERS} files and {size_text(MAX_ZIP_TOTAL_BYTES)}. "
                "Upload only the notebooks (.ipynb)."
            )
            return []
        found = []
        for info in members:
            inner = PurePosixPath(info.filename)
            where = f"{shown}/{info.filename}"
            if any(part in _SKIPPED_PARTS for part in inner.parts) or inner.suffix != ".ipynb":
                if inner.suffix != ".ipynb" and not any(p in _SKIPPED_PARTS for p in inner.parts):
                    intake.notes.append(f"ignored {where}: not a notebook (.ipynb)")
                continue
            if info.file_size > MAX_UPLOAD_BYTES:
                intake.refused.append(_too_large(where, info.file_size))
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(MAX_UPLOAD_BYTES + 1)  # the header's size may lie
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as error:
                intake.refused.append(f"{where} could not be unpacked ({error}). {FIX_UPLOAD}")
                continue
            if len(data) > MAX_UPLOAD_BYTES:
                intake.refused.append(_too_large(where, len(data)))
                continue
            found.append(_Candidate(where, data))
        return found


def _too_large(shown: str, size: int) -> str:
    return (
        f"{shown} was refused: it is {size_text(size)}, over the {size_text(MAX_UPLOAD_BYTES)} "
        "limit. Clear the outputs (Kernel > Restart Kernel and Clear All Outputs), save, "
        "and upload it again."
    )


def _candidates(upload: Path, intake: Intake) -> list[_Candidate]:
    found: list[_Candidate] = []
    if not upload.is_dir():
        return found
    for path in sorted(upload.rglob("*")):
        shown = str(path.relative_to(upload))
        relative = path.relative_to(upload).parts
        if any(part in _SKIPPED_PARTS for part in relative):
            continue
        if path.is_symlink():
            intake.refused.append(f"{shown} was refused: it is a link, not a file.")
            continue
        if not path.is_file():
            continue
        size = path.stat().st_size
        if path.suffix.lower() == ".zip":
            if size > MAX_ZIP_TOTAL_BYTES:
                intake.refused.append(_too_large(shown, size))
            else:
                found.extend(_zip_candidates(path, shown, intake))
        elif path.suffix == ".ipynb":
            if size > MAX_UPLOAD_BYTES:
                intake.refused.append(_too_large(shown, size))
            else:
                found.append(_Candidate(shown, path.read_bytes()))
        else:
            intake.notes.append(f"ignored {shown}: not a notebook (.ipynb) or a zip")
    return found


def _grade_ids(data: bytes) -> set[str] | None:
    """The nbgrader grade_ids of a notebook's cells; None when it is not readable JSON."""
    try:
        notebook = json.loads(data.decode("utf-8"))
        return {
            cell["metadata"]["nbgrader"]["grade_id"]
            for cell in notebook["cells"]
            if isinstance(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"), str)
        }
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _base_name(name: str) -> str:
    """'04_Exercises (1)' -> '04_exercises': how a copy's name relates to the original."""
    stem = name.strip()
    previous = None
    while previous != stem:
        previous, stem = stem, _COPY_SUFFIX.sub("", stem).strip()
    return re.sub(r"^copy of\s+", "", stem, flags=re.IGNORECASE).lower()


def match_notebook(
    candidate_name: str, data: bytes, expected: dict[str, set[str]]
) -> tuple[str | None, str]:
    """(the assignment notebook this upload is, how it was matched: "name", "copy", "cells")
    or (None, why not). ``expected``: notebook name -> the grade_ids of its cells."""
    stem = PurePosixPath(candidate_name).stem
    if stem in expected:
        return stem, "name"
    by_base = [name for name in expected if _base_name(name) == _base_name(stem)]
    if len(by_base) == 1:
        return by_base[0], "copy"
    ids = _grade_ids(data)
    if ids is None:
        return None, "it is not a readable notebook and its name is not one of this assignment's"
    overlap = {name: len(ids & cells) for name, cells in expected.items() if cells}
    best = max(overlap.values(), default=0)
    if best == 0:
        return None, "none of its cells belong to this assignment: is it another assignment's?"
    winners = [name for name, count in overlap.items() if count == best]
    return (winners[0], "cells") if len(winners) == 1 else (None, "its cells match no one notebook")


def take_notebooks(upload: Path, target: Path, expected: dict[str, set[str]]) -> Intake:
    """Write the assignment's notebooks found in ``upload`` into ``target`` as
    ``<name>.ipynb``; say what was refused or ignored, and why."""
    intake = Intake()
    target.mkdir(parents=True, exist_ok=True)
    rank = {"name": 0, "copy": 1, "cells": 2}
    chosen: dict[str, tuple[str, _Candidate]] = {}
    for candidate in _candidates(upload, intake):
        name, how = match_notebook(candidate.shown, candidate.data, expected)
        if name is None:
            intake.refused.append(f"{candidate.shown} was not graded: {how}")
            continue
        kept: _Candidate = candidate
        dropped: _Candidate | None = chosen[name][1] if name in chosen else None
        if name in chosen and rank[chosen[name][0]] <= rank[how]:
            kept, dropped = chosen[name][1], candidate
        else:
            chosen[name] = (how, candidate)
        if dropped is not None:
            intake.notes.append(f"ignored {dropped.shown}: {kept.shown} is graded as {name}.ipynb")
    for name, (how, candidate) in chosen.items():
        (target / f"{name}.ipynb").write_bytes(candidate.data)
        intake.placed[name] = candidate.shown
        if how != "name":
            intake.notes.append(f"{candidate.shown} was graded as {name}.ipynb")
        elif (
            expected[name]
            and (ids := _grade_ids(candidate.data)) is not None
            and not ids & expected[name]
        ):
            intake.notes.append(
                f"{candidate.shown} has none of this assignment's graded cells: it may be another "
                "assignment's notebook saved under this name."
            )
    if not chosen:
        intake.refused.append(
            "No notebook of this assignment was found in your submission. Upload "
            + ", ".join(f"{name}.ipynb" for name, cells in expected.items() if cells)
            + " (or a zip of them)."
        )
    return intake
