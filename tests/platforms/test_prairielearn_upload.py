"""The question page through PrairieLearn's own upload rules (rules.pl_file_upload): every way
a student naturally uploads this assignment reaches the grader, and the grader finds the
notebooks in what PrairieLearn writes to /grade/student."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from autograder.platforms.prairielearn import question_html
from autograder.platforms.single_submission import expected_notebooks
from autograder.platforms.uploads import take_notebooks

from ..conftest import REPO
from .rules import pl_file_upload, upload_element

RELEASE = REPO / "release" / "numpy_memory"
EXPECTED = expected_notebooks(RELEASE)
GRADED = sorted(name for name, cells in EXPECTED.items() if cells)
EVERY = sorted(EXPECTED)
QUESTION = question_html(GRADED)

UPLOADS = {
    "the graded notebooks": [f"{name}.ipynb" for name in GRADED],
    "renamed copies": [f"{GRADED[0]} (1).ipynb", f"{GRADED[1].title()} (2).ipynb"],
    "all notebooks": [f"{name}.ipynb" for name in EVERY],
    "one zip": ["numpy_memory.zip"],
    "a zip and a notebook": ["Numpy_Memory.ZIP", f"{GRADED[0]}.ipynb"],
}


def test_the_notebook_names_are_the_assignments():
    assert GRADED == ["02_quiz_what_del_frees", "04_exercises_free_and_budget_memory"]
    assert len(EVERY) == 4


@pytest.mark.parametrize("upload", UPLOADS)
def test_every_natural_upload_reaches_the_grader_whole(upload):
    """PrairieLearn's element (elements/pl-file-upload/pl-file-upload.py parse() and .js;
    docs/elements/pl-file-upload.md) keeps every file of these uploads and raises no format
    error, so the submission is sent to the grader."""
    outcome = pl_file_upload(upload_element(QUESTION), UPLOADS[upload])
    assert outcome.graded, outcome.format_errors
    assert outcome.refused_in_browser == []
    assert sorted(outcome.kept) == sorted(name.lower() for name in UPLOADS[upload])


def test_a_wrong_file_is_refused_in_the_browser_and_alone_is_not_graded():
    """The browser refuses a file no name or pattern accepts; with nothing left, parse() says
    "No submitted answer for file upload." and nothing is graded or counted."""
    outcome = pl_file_upload(upload_element(QUESTION), ["notes.pdf", f"{GRADED[0]}.ipynb"])
    assert outcome.refused_in_browser == ["notes.pdf"] and outcome.graded
    alone = pl_file_upload(upload_element(QUESTION), ["notes.pdf"])
    assert not alone.graded
    assert alone.format_errors == ["No submitted answer for file upload."]


def test_the_old_element_refused_every_natural_upload():
    """Why the element changed: required patterns are matched one file each, and a pattern
    with no file is a format error, so "*.ipynb, *.zip" demanded exactly a notebook AND a zip."""
    old = upload_element('<pl-file-upload file-patterns="*.ipynb, *.zip"></pl-file-upload>')
    graded = pl_file_upload(old, UPLOADS["the graded notebooks"])
    assert graded.format_errors == ["The following required file patterns were missing: *.zip"]
    assert len(graded.kept) == 1  # the second notebook is dropped
    assert not pl_file_upload(old, UPLOADS["all notebooks"]).graded
    assert pl_file_upload(old, UPLOADS["one zip"]).format_errors == [
        "The following required file patterns were missing: *.ipynb"
    ]


def test_the_rules_follow_the_elements_documented_examples():
    """docs/elements/pl-file-upload.md: required names must all be there; a repeated required
    pattern (`*.py,*.py`) takes exactly two files; optional patterns take any number."""
    required = upload_element('<pl-file-upload file-names="foo.py, bar.c"></pl-file-upload>')
    assert pl_file_upload(required, ["foo.py"]).format_errors == [
        "The following required files were missing: bar.c"
    ]
    assert pl_file_upload(required, ["FOO.PY", "bar.c"]).kept == ["foo.py", "bar.c"]
    twice = upload_element('<pl-file-upload file-patterns="*.py,*.py"></pl-file-upload>')
    assert pl_file_upload(twice, ["a.py", "b.py"]).graded
    assert not pl_file_upload(twice, ["a.py"]).graded
    assert pl_file_upload(twice, ["a.py", "b.py", "c.py"]).refused_in_browser == ["c.py"]


def _write_upload(names: list[str], folder: Path) -> None:
    """The files as PrairieLearn writes them to /grade/student: under the kept names, with
    the released notebooks' content (a zip holds them all)."""
    folder.mkdir()
    for name in names:
        if name.endswith(".zip"):
            with zipfile.ZipFile(folder / name, "w") as archive:
                for path in sorted(RELEASE.glob("*.ipynb")):
                    archive.write(path, f"numpy_memory/{path.name}")
            continue
        original = next(
            n for n in EVERY if n.lower() in name.lower().replace(" (1)", "").replace(" (2)", "")
        )
        (folder / name).write_bytes((RELEASE / f"{original}.ipynb").read_bytes())


@pytest.mark.parametrize("upload", UPLOADS)
def test_the_grader_finds_both_graded_notebooks_in_what_prairielearn_wrote(upload, tmp_path):
    kept = pl_file_upload(upload_element(QUESTION), UPLOADS[upload]).kept
    _write_upload(kept, tmp_path / "student")
    intake = take_notebooks(tmp_path / "student", tmp_path / "staged", EXPECTED)
    assert set(GRADED) <= set(intake.placed), intake.messages
    assert intake.refused == []
