"""CheckCellMetadataFast accepts and refuses exactly what nbgrader's CheckCellMetadata does."""

from __future__ import annotations

import copy

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import CheckCellMetadata

from autograder.pipeline import check_cell_metadata
from autograder.pipeline.check_cell_metadata import CheckCellMetadataFast, FastMetadataValidator

GOOD = {
    "schema_version": 3,
    "grade": True,
    "solution": False,
    "locked": True,
    "points": 3,
    "grade_id": "ex1_test",
}


def _cell(kind: str = "code", **changes: object) -> object:
    metadata = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    cell = new_code_cell("x = 1") if kind == "code" else new_markdown_cell("text")
    cell.metadata["nbgrader"] = metadata
    return cell


CELLS = {
    "valid": _cell(),
    "no nbgrader metadata": new_code_cell("y = 2"),
    "points not a number": _cell(points="three"),
    "grade not a boolean": _cell(grade="yes"),
    "no grade_id": _cell(grade_id=None),
    "empty grade_id": _cell(grade_id=""),
    "grade cell without points": _cell(points=None),
    "schema too old": _cell(schema_version=1),
    "schema too new": _cell(schema_version=9),
    "markdown grade without solution": _cell("markdown"),
    "required key missing": _cell(locked=None),
}


def _outcome(validator: object, cell: object) -> tuple[str, str]:
    try:
        validator.validate_cell(copy.deepcopy(cell))  # type: ignore[attr-defined]
    except Exception as error:
        return type(error).__name__, str(error)
    return "ok", ""


@pytest.mark.parametrize("case", sorted(CELLS))
def test_each_cell_gets_nbgraders_own_verdict(case):
    expected = _outcome(MetadataValidator(), CELLS[case])
    assert _outcome(FastMetadataValidator(), CELLS[case]) == expected
    if case != "valid" and case != "no nbgrader metadata":
        assert expected[0] != "ok"  # the case really tests a refusal


def test_a_duplicate_grade_id_fails_the_notebook_as_nbgrader_does():
    notebook = new_notebook(cells=[_cell(), _cell()])
    with pytest.raises(ValidationError, match="Duplicate grade id"):
        MetadataValidator().validate_nb(notebook)
    for step in (CheckCellMetadata(), CheckCellMetadataFast()):
        with pytest.raises(ValidationError, match="the nbgrader metadata may be corrupted"):
            step.preprocess(notebook, {})


def test_the_schema_is_checked_once_for_many_cells(monkeypatch):
    monkeypatch.setattr(check_cell_metadata, "_VALIDATORS", {})
    cells = [_cell(grade_id=f"cell_{n}") for n in range(40)]
    CheckCellMetadataFast().preprocess(new_notebook(cells=cells), {})
    CheckCellMetadataFast().preprocess(new_notebook(cells=cells), {})
    assert list(check_cell_metadata._VALIDATORS) == [3]
