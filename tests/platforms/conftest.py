"""Helpers for the platform tests: the results files' JSON Schemas, a report as
``autograder grade`` writes it, and each platform's files built once for the session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SCHEMAS = Path(__file__).parent / "schemas"
REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "numpy_memory"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}_results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="session")
def gradescope_schema() -> jsonschema.Draft202012Validator:
    return validator("gradescope")


@pytest.fixture(scope="session")
def prairielearn_schema() -> jsonschema.Draft202012Validator:
    return validator("prairielearn")


def cell(grade_id: str, score: float, max_score: float, message: str = "") -> dict[str, Any]:
    status = "passed" if score >= max_score else "failed"
    return {
        "grade_id": grade_id,
        "score": score,
        "max_score": max_score,
        "status": status,
        "message": message,
    }


def notebook(
    name: str, cells: list[dict[str, Any]], status: str = "graded", reason: str = "", **more: Any
) -> dict[str, Any]:
    return {
        "notebook": name,
        "status": status,
        "reason": reason,
        "flags": more.get("flags", []),
        "evidence": more.get("evidence", []),
        "observations": [],
        "score": sum(c["score"] for c in cells),
        "max_score": sum(c["max_score"] for c in cells),
        "cells": cells,
        "seconds": 1.5,
        "sandbox": "Student kernels run with limits: address space 448 MiB.",
        "log": "",
    }


def report(*notebooks: dict[str, Any]) -> dict[str, Any]:
    """A student's report in the shape of autograder.grading.run._student_report."""
    return {
        "student": "student",
        "score": sum(n["score"] for n in notebooks),
        "max_score": sum(n["max_score"] for n in notebooks),
        "flagged": any(n["flags"] for n in notebooks),
        "notebooks": [
            notebook("01_lesson", [], reason="no graded cells: not executed"),
            *notebooks,
        ],
        "notes": [],
    }


@pytest.fixture(scope="session")
def gradescope_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Gradescope's zip, built once (a release and a wheel: tens of seconds)."""
    from autograder.platforms import gradescope

    out = tmp_path_factory.mktemp("gradescope") / "autograder.zip"
    return out, gradescope.build_gradescope(REPO, out=out, assignment=ASSIGNMENT)


@pytest.fixture(scope="session")
def prairielearn_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """PrairieLearn's question, grader files and image, built once."""
    from autograder.platforms import prairielearn

    out = tmp_path_factory.mktemp("question")
    return out, prairielearn.build_prairielearn(
        REPO, out=out, assignment=ASSIGNMENT, image="example/grader:1"
    )
