"""Read what students submitted, and stage what can be graded.

nbgrader gives up on a student's whole submission when one file cannot be
read, and it grades the files in place. We look at every file first: a
notebook that can be read is staged (upgraded to nbformat 4 if it is older)
into a folder nbgrader grades from; one that cannot gets a status and a
message, and the student's other notebooks are graded as usual. The submitted
files are never changed: they are the evidence.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.defaults import MAX_NOTEBOOK_BYTES


@dataclass
class StagedSubmission:
    student: str
    sha256: str  # of every submitted file: a changed submission is graded again
    staged: list[str] = field(default_factory=list)  # notebook names ready for nbgrader
    ungradable: dict[str, str] = field(default_factory=dict)  # notebook name -> why
    notes: list[str] = field(default_factory=list)  # extra or odd files, upgrades
    size: int = 0  # bytes of the staged notebooks: the larger, the longer it grades, roughly


def submission_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode("utf-8", "surrogateescape"))
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str]:
    """(the notebook as nbformat 4, "") or (None, why it cannot be graded)."""
    size = path.stat().st_size
    if size == 0:
        return None, "the file is empty"
    if size > MAX_NOTEBOOK_BYTES:
        return None, f"the file is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,}-byte limit"
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "the file is not text (not UTF-8): not a notebook"
    except json.JSONDecodeError as error:
        return (
            None,
            f"the file is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): it may be truncated or corrupt",
        )
    if not isinstance(data, dict) or "nbformat" not in data:
        return None, "the file is JSON but not a Jupyter notebook (no nbformat field)"
    try:
        notebook = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several kinds for bad or unknown formats
        return (
            None,
            f"the notebook cannot be read as nbformat 4 ({type(error).__name__}: {str(error)[:200]})",
        )
    return notebook, ""


def stage(folder: Path, staged_folder: Path, expected: list[str], student: str) -> StagedSubmission:
    """Check every file of ``folder`` (a student's ``submitted/<student>/<assignment>``)
    and copy the gradable notebooks, plus nbgrader submit's ``timestamp.txt`` and
    ``submission_secret.txt``, into ``staged_folder``."""
    result = StagedSubmission(student, submission_sha256(folder) if folder.is_dir() else "")
    shutil.rmtree(staged_folder, ignore_errors=True)
    staged_folder.mkdir(parents=True)
    if not folder.is_dir():
        result.ungradable = dict.fromkeys(expected, "no submission folder")
        return result
    for path in sorted(folder.iterdir()):
        # nbgrader submit's files: when it was submitted (for the gradebook and lateness), and
        # the secret release_feedback names the student's feedback with.
        if path.name in ("timestamp.txt", "submission_secret.txt"):
            shutil.copy2(path, staged_folder / path.name)
        elif path.suffix != ".ipynb" or path.stem not in expected:
            result.notes.append(f"ignored {path.name!r}: not a notebook of this assignment")
    for name in expected:
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            result.ungradable[name] = "not submitted"
            continue
        notebook, why = read_notebook(path)
        if notebook is None:
            result.ungradable[name] = why
            continue
        original = json.loads(path.read_text()).get("nbformat")
        if original != 4:
            result.notes.append(f"{name}.ipynb was nbformat {original}: upgraded to 4")
        nbformat.write(notebook, staged_folder / path.name)
        result.staged.append(name)
        result.size += (staged_folder / path.name).stat().st_size
    return result


def largest_first(sizes: dict[str, int]) -> list[str]:
    """Students by staged bytes, largest first (a proxy for the slowest), so that a run does
    not end with one worker busy on a big submission and the others idle; ties by name."""
    return sorted(sizes, key=lambda student: (-sizes[student], student))
