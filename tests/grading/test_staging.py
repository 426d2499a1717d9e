"""Staging: what is graded, and in which order (the largest submissions first)."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from autograder.grading.staging import largest_first, stage


def test_largest_submissions_go_first_and_ties_by_name():
    sizes = {"ann": 10, "bob": 300, "cy": 10, "dee": 7000}
    assert largest_first(sizes) == ["dee", "bob", "ann", "cy"]


def test_the_staged_size_counts_the_gradable_notebooks_only(tmp_path):
    submitted = tmp_path / "submitted"
    submitted.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1" * 500)]), submitted / "quiz.ipynb")
    (submitted / "exercises.ipynb").write_text("{ not json")
    (submitted / "notes.txt").write_text("extra")
    staged = stage(submitted, tmp_path / "staged", ["quiz", "exercises"], "ann")
    assert staged.staged == ["quiz"] and "exercises" in staged.ungradable
    assert staged.size == (tmp_path / "staged" / "quiz.ipynb").stat().st_size > 2500
