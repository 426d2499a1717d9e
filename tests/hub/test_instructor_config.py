"""The instructor's Jupyter configuration (autograder.hub.instructor_config), loaded as
Jupyter Server and nbgrader load it: Formgrader on and pointed at the course, the iframe
allowed, whatever the folders before it say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.hub import HubError
from autograder.hub.instructor_config import (
    FRAME_ANCESTORS,
    formgrader_problems,
    write_instructor_config,
)
from autograder.hub.student_config import write_student_config
from tests.conftest import copy_course

PROBE = """
import json, os
from jupyter_server.serverapp import ServerApp
from nbgrader.apps import NbGrader
app = ServerApp()
app.find_server_extensions()
app.load_config_file()
nbgrader = NbGrader()
nbgrader.load_config_file()
print(json.dumps({
    "formgrader": app.jpserver_extensions.get("nbgrader.server_extensions.formgrader"),
    "headers": app.tornado_settings.get("headers", {}),
    "course_root": nbgrader.config.CourseDirectory.root,
}))
"""


def test_formgrader_is_on_for_the_course_and_may_be_framed(tmp_path: Path) -> None:
    course = copy_course(tmp_path / "course")
    user_dir = tmp_path / "home" / ".jupyter"
    written = write_instructor_config(user_dir, course)
    assert [path.name for path in written] == [
        "nbgrader_config.py", "jupyter_server_config.json", "page_config.json",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path / "home"), "JUPYTER_CONFIG_DIR": str(user_dir)}
    env.pop("JUPYTER_CONFIG_PATH", None)  # an instructor's server: no students' folder
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path / "home", env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "formgrader": True,
        "headers": {"Content-Security-Policy": FRAME_ANCESTORS},
        "course_root": str(course.resolve()),
    }
    page = json.loads((user_dir / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is False


def test_a_folder_read_first_that_turns_formgrader_off_is_named(tmp_path, monkeypatch) -> None:
    # The students' configuration where the instructor's server reads it too (--sys-prefix
    # or JUPYTER_CONFIG_PATH): read before ~/.jupyter in a virtual environment.
    students, user_dir = tmp_path / "students", tmp_path / "home" / ".jupyter"
    write_student_config(students, "c", "/x")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(students))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(user_dir))
    write_instructor_config(user_dir, tmp_path / "course")
    (problem,) = formgrader_problems(user_dir)
    assert problem.startswith(f"{students} turns Formgrader off and is read before {user_dir}")
    monkeypatch.delenv("JUPYTER_CONFIG_PATH")
    assert formgrader_problems(user_dir) == []


def test_an_nbgrader_config_it_did_not_write_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(HubError, match="add this line to it instead: load_subconfig"):
        write_instructor_config(tmp_path, tmp_path / "course")
    assert (tmp_path / "nbgrader_config.py").read_text() == "c = get_config()\n"
