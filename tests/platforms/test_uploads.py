"""What a student uploads: notebooks matched by name or cells, hostile zips refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from autograder.platforms import uploads
from autograder.platforms.uploads import member_problem, take_notebooks

EXPECTED = {
    "01_lesson": set(),
    "02_quiz": {"q1", "q1_test"},
    "04_exercises": {"ex1_free", "ex1_size_test", "ex2_keep_and_free"},
}


def notebook_bytes(*grade_ids: str) -> bytes:
    cells = [
        {
            "cell_type": "code",
            "metadata": {"nbgrader": {"grade_id": g}},
            "source": "",
            "outputs": [],
        }
        for g in grade_ids
    ]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    return folder


def test_notebooks_are_matched_by_name_and_copies_by_their_name(upload, tmp_path):
    (upload / "02_quiz.ipynb").write_bytes(notebook_bytes("q1", "q1_test"))
    (upload / "04_Exercises (1).ipynb").write_bytes(notebook_bytes("ex1_free"))
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {"02_quiz": "02_quiz.ipynb", "04_exercises": "04_Exercises (1).ipynb"}
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == [
        "02_quiz.ipynb",
        "04_exercises.ipynb",
    ]
    assert intake.refused == []


def test_a_renamed_notebook_is_matched_by_its_cells(upload, tmp_path):
    (upload / "my work.ipynb").write_bytes(notebook_bytes("ex1_free", "ex2_keep_and_free"))
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {"04_exercises": "my work.ipynb"}
    assert "my work.ipynb was graded as 04_exercises.ipynb" in intake.notes


def test_a_notebook_of_another_assignment_is_reported_not_graded(upload, tmp_path):
    (upload / "homework3.ipynb").write_bytes(notebook_bytes("hw3_q1"))
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {}
    assert any(
        "homework3.ipynb was not graded" in r and "another assignment" in r for r in intake.refused
    )
    assert any("No notebook of this assignment" in r for r in intake.refused)


def test_another_assignments_notebook_under_our_name_is_graded_and_reported(upload, tmp_path):
    (upload / "04_exercises.ipynb").write_bytes(notebook_bytes("hw3_q1"))
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {
        "04_exercises": "04_exercises.ipynb"
    }  # graded: it scores what it scores
    assert any("another assignment's notebook" in note for note in intake.notes)


def test_the_exact_name_wins_over_a_copy(upload, tmp_path):
    (upload / "02_quiz (2).ipynb").write_bytes(notebook_bytes("q1"))
    (upload / "02_quiz.ipynb").write_bytes(notebook_bytes("q1", "q1_test"))
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {"02_quiz": "02_quiz.ipynb"}
    assert any(note.startswith("ignored 02_quiz (2).ipynb") for note in intake.notes)


def test_notebooks_come_out_of_a_zip_without_its_folders(upload, tmp_path):
    with zipfile.ZipFile(upload / "work.zip", "w") as archive:
        archive.writestr("numpy_memory/02_quiz.ipynb", notebook_bytes("q1"))
        archive.writestr("numpy_memory/.ipynb_checkpoints/02_quiz-checkpoint.ipynb", b"{}")
        archive.writestr("__MACOSX/._02_quiz.ipynb", b"\0")
        archive.writestr("numpy_memory/data.csv", b"1,2")
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {"02_quiz": "work.zip/numpy_memory/02_quiz.ipynb"}
    assert intake.refused == []
    assert intake.notes == ["ignored work.zip/numpy_memory/data.csv: not a notebook (.ipynb)"]


@pytest.mark.parametrize(
    "member",
    [
        "../02_quiz.ipynb",
        "/etc/02_quiz.ipynb",
        "a/../../02_quiz.ipynb",
        "C:/02_quiz.ipynb",
        "a\\..\\x.ipynb",
    ],
)
def test_a_zip_whose_paths_escape_is_refused_whole(upload, tmp_path, member):
    with zipfile.ZipFile(upload / "evil.zip", "w") as archive:
        archive.writestr("02_quiz.ipynb", notebook_bytes("q1"))
        archive.writestr(member, notebook_bytes("ex1_free"))
    staged = tmp_path / "deep" / "staged"
    intake = take_notebooks(upload, staged, EXPECTED)
    assert intake.placed == {}
    assert any(r.startswith("evil.zip was refused") for r in intake.refused)
    assert (
        not list(tmp_path.rglob("x.ipynb")) and not (tmp_path / "deep" / "02_quiz.ipynb").exists()
    )


def test_a_symbolic_link_in_a_zip_is_refused():
    info = zipfile.ZipInfo("02_quiz.ipynb")
    info.external_attr = (0o120777) << 16
    assert "symbolic link" in member_problem(info)
    assert member_problem(zipfile.ZipInfo("folder/02_quiz.ipynb")) == ""


def test_a_symbolic_link_in_the_upload_is_refused(upload, tmp_path):
    secret = tmp_path / "secret.ipynb"
    secret.write_bytes(notebook_bytes("q1"))
    (upload / "02_quiz.ipynb").symlink_to(secret)
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {}
    assert "02_quiz.ipynb was refused: it is a link, not a file." in intake.refused


def test_files_too_large_are_refused_alone_and_in_a_zip(upload, tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    (upload / "02_quiz.ipynb").write_bytes(notebook_bytes("q1") + b" " * 2000)
    with zipfile.ZipFile(upload / "work.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("04_exercises.ipynb", notebook_bytes("ex1_free") + b" " * 5000)
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {}
    assert any(
        r.startswith("02_quiz.ipynb was refused: it is") and "limit" in r for r in intake.refused
    )
    assert any(r.startswith("work.zip/04_exercises.ipynb was refused") for r in intake.refused)


def test_a_zip_that_is_not_a_zip_is_reported(upload, tmp_path):
    (upload / "work.zip").write_bytes(b"not a zip at all")
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert any("work.zip is not a readable zip file" in r for r in intake.refused)


def test_an_empty_upload_names_the_notebooks_to_upload(upload, tmp_path):
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    (message,) = intake.refused
    assert "02_quiz.ipynb, 04_exercises.ipynb" in message and "01_lesson" not in message


def test_a_corrupt_notebook_with_the_right_name_goes_on_to_staging(upload, tmp_path):
    (upload / "04_exercises.ipynb").write_text('{"cells": [{"cell_ty')
    intake = take_notebooks(upload, tmp_path / "staged", EXPECTED)
    assert intake.placed == {"04_exercises": "04_exercises.ipynb"}  # staging says why it fails
    assert intake.messages == []
