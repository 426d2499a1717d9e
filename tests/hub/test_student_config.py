"""The configuration students' servers load: written where asked, and effective there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from autograder.cli import main
from autograder.hub.student_config import (
    StudentConfigError,
    effective_problems,
    shipped,
    write_student_config,
)

FORMGRADER = "nbgrader.server_extensions.formgrader"


def test_the_files_ship_inside_the_package() -> None:
    names = {p.relative_to(shipped()).as_posix() for p in shipped().rglob("*") if p.is_file()}
    assert names == {
        "nbgrader_config.py",
        "jupyter_server_config.json",
        "labconfig/page_config.json",
    }


def test_written_config_names_the_course_and_exchange(tmp_path: Path) -> None:
    to = tmp_path / "etc-jupyter"
    write_student_config(to, "numpy-2026", "/srv/ex change")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(to)).load_config()
    assert config.CourseDirectory.course_id == "numpy-2026"
    assert config.Exchange.root == "/srv/ex change"
    server = json.loads((to / "jupyter_server_config.json").read_text())
    extensions = server["ServerApp"]["jpserver_extensions"]
    assert extensions[FORMGRADER] is False
    assert extensions["nbgrader.server_extensions.assignment_list"] is True
    lab = json.loads((to / "labconfig" / "page_config.json").read_text())
    assert lab["disabledExtensions"]["@jupyter/nbgrader:create-assignment"] is True


def test_existing_json_settings_are_kept(tmp_path: Path) -> None:
    to = tmp_path / "etc-jupyter"
    to.mkdir()
    (to / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyterlab": True}, "port": 9999}})
    )
    write_student_config(to, "c", "/x")
    server = json.loads((to / "jupyter_server_config.json").read_text())["ServerApp"]
    assert server["port"] == 9999
    assert server["jpserver_extensions"]["jupyterlab"] is True
    assert server["jpserver_extensions"][FORMGRADER] is False


def test_someone_elses_nbgrader_config_is_left_alone(tmp_path: Path) -> None:
    to = tmp_path / "etc-jupyter"
    to.mkdir()
    (to / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(StudentConfigError, match=r"add these lines to it"):
        write_student_config(to, "c", "/x")
    assert (to / "nbgrader_config.py").read_text() == "c = get_config()\n"


def test_a_folder_jupyter_does_not_read_is_reported(tmp_path: Path) -> None:
    to = tmp_path / "elsewhere"
    write_student_config(to, "c", "/x")
    (problem,) = effective_problems(to)
    assert "not a folder Jupyter reads" in problem


def test_a_higher_folder_turning_formgrader_on_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    high, to = tmp_path / "high", tmp_path / "students"
    (high / "jupyter_server_config.d").mkdir(parents=True)
    (high / "jupyter_server_config.d" / "nbgrader.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {FORMGRADER: True}}})
    )
    write_student_config(to, "c", "/x")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(to))
    assert effective_problems(to) == []  # outranks the environment's own nbgrader.json
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", f"{high}:{to}")
    (problem,) = effective_problems(to)
    assert str(high) in problem and FORMGRADER in problem


def test_command_writes_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    to = tmp_path / "etc-jupyter"
    code = main(["hub", "student-config", "--to", str(to), "--course-id", "c", "--exchange", "/x"])
    assert code == 0
    out = capsys.readouterr()
    assert str(to / "nbgrader_config.py") in out.out
    assert "warning:" in out.err  # tmp_path is no Jupyter config folder
