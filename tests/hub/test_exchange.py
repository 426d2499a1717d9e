"""The exchange folder's checks and set-up, and the instructor's commands refusing a bad one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.hub.exchange import (
    ExchangeSetupError,
    check_exchange,
    exchange_problems,
    prepare_exchange,
)
from autograder.hub.instructor import hub_settings
from tests.conftest import copy_course


def test_a_missing_exchange_says_how_to_create_it(tmp_path: Path) -> None:
    (problem,) = exchange_problems(tmp_path / "exchange")
    assert "does not exist" in problem
    assert f"autograder hub exchange {tmp_path / 'exchange'}" in problem


@pytest.mark.parametrize(
    ("mode", "words"),
    [(0o755, "every user must be able to write"), (0o777, "without the sticky bit")],
)
def test_a_wrong_mode_is_named_with_its_fix(tmp_path: Path, mode: int, words: str) -> None:
    root = tmp_path / "exchange"
    root.mkdir()
    root.chmod(mode)
    problems = exchange_problems(root)
    assert any(words in p and f"{mode:04o}" in p for p in problems), problems
    with pytest.raises(ExchangeSetupError, match="1777"):
        check_exchange(root)


def test_prepare_creates_a_sticky_world_writable_folder(tmp_path: Path) -> None:
    root = prepare_exchange(tmp_path / "srv" / "exchange")
    assert os.stat(root).st_mode & 0o7777 == 0o1777
    assert exchange_problems(root) == []


def test_hub_exchange_command_checks_without_changing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "exchange"
    root.mkdir(mode=0o755)
    assert main(["hub", "exchange", str(root), "--check"]) == 2
    assert "every user must be able to write" in capsys.readouterr().err
    assert os.stat(root).st_mode & 0o7777 == 0o755
    assert main(["hub", "exchange", str(root)]) == 0
    assert os.stat(root).st_mode & 0o7777 == 0o1777


def test_release_to_a_bad_exchange_stops_before_touching_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = copy_course(tmp_path / "course")
    root = tmp_path / "exchange"
    root.mkdir(mode=0o755)
    code = main(
        ["--course-dir", str(course), "release", "--exchange", str(root), "--course-id", "c"]
    )
    assert code == 2
    assert "must be 1777" in capsys.readouterr().err
    assert not (course / "release").exists()  # nothing generated, nothing released
    assert list(root.iterdir()) == []


def test_settings_come_from_the_command_line_then_the_course_config(tmp_path: Path) -> None:
    course = copy_course(tmp_path / "course")
    configured = hub_settings(course)
    assert (str(configured.exchange_root), configured.course_id) == (
        "/srv/nbgrader/exchange",
        "numpy-memory",
    )
    given = hub_settings(course, tmp_path / "ex", "other")
    assert (given.exchange_root, given.course_id) == (tmp_path / "ex", "other")
    assert given.nbgrader_options() == (
        f"--Exchange.root={tmp_path / 'ex'}",
        "--CourseDirectory.course_id=other",
    )


def test_bare_exchange_flag_uses_the_configured_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = copy_course(tmp_path / "course")
    config = course / "nbgrader_config.py"
    root = tmp_path / "configured-exchange"  # does not exist: the check names it
    config.write_text(config.read_text() + f"\nc.Exchange.root = {str(root)!r}\n")
    assert main(["--course-dir", str(course), "release", "--exchange"]) == 2
    assert f"The exchange folder {root} does not exist" in capsys.readouterr().err
