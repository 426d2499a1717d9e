"""The configuration a student's Jupyter server loads on a shared hub, and where to put it.

The files ship in ``autograder/hub/student/``, laid out as a Jupyter configuration folder:

* ``nbgrader_config.py``: the course id and the exchange root (the Assignments tab and
  nbgrader's fetch/submit commands read them);
* ``jupyter_server_config.json``: of nbgrader's server extensions only the ones a student
  uses (assignment list, validate); formgrader and the course list off;
* ``labconfig/page_config.json``: JupyterLab's nbgrader plugins Formgrader, Create assignment
  and Courses disabled (the Nbgrader menu hides what has no command behind it).

:func:`write_student_config` copies them into a folder (merging the JSON files into what is
there), and :func:`effective_problems` says when Jupyter would not apply them: the folder is
not one Jupyter reads, or one it reads first turns formgrader back on (``pip install
nbgrader`` enables all four server extensions in ``<sys.prefix>/etc/jupyter``, which outranks
``/etc/jupyter``).
"""

from __future__ import annotations

import json
import os
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_config_dir, jupyter_config_path

from autograder.hub import HubError

SERVER_CONFIG = "jupyter_server_config.json"
NBGRADER_CONFIG = "nbgrader_config.py"
PAGE_CONFIG = Path("labconfig", "page_config.json")
EXTENSIONS_KEY = ("ServerApp", "jpserver_extensions")
STUDENT_OFF = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
_HEADER = '"""nbgrader for the students of the NumPy memory course'


class StudentConfigError(HubError):
    """The student configuration cannot be written where it was asked to go."""


def shipped() -> Path:
    """The folder of shipped student files (inside the installed package)."""
    return Path(str(files("autograder.hub") / "student"))


def nbgrader_config_text(course_id: str, exchange_root: str) -> str:
    """The shipped ``nbgrader_config.py`` with this hub's course id and exchange root."""
    text = (shipped() / NBGRADER_CONFIG).read_text()
    text = re.sub(
        r"(?m)^c\.CourseDirectory\.course_id = .*$",
        lambda _: f"c.CourseDirectory.course_id = {course_id!r}",
        text,
    )
    return re.sub(
        r"(?m)^c\.Exchange\.root = .*$", lambda _: f"c.Exchange.root = {exchange_root!r}", text
    )


def _recursive_update(target: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _recursive_update(target[key], value)
        else:
            target[key] = value


def merge_json(source: Path, target: Path) -> None:
    """Write ``source``'s settings into ``target``, keeping ``target``'s other settings."""
    data: dict[str, Any] = {}
    if target.is_file() and target.stat().st_size:
        try:
            data = json.loads(target.read_text())
        except json.JSONDecodeError as error:
            raise StudentConfigError(
                f"{target} is not valid JSON ({error}): fix or remove it first."
            ) from None
    _recursive_update(data, json.loads(source.read_text()))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")
    target.chmod(0o644)


def write_student_config(to: Path, course_id: str, exchange_root: str) -> list[Path]:
    """Write the student configuration into the Jupyter config folder ``to``; return the files.

    An ``nbgrader_config.py`` already there that this command did not write is left alone
    (:class:`StudentConfigError` says which two lines to add to it instead).
    """
    to.mkdir(parents=True, exist_ok=True)
    nbgrader_config = to / NBGRADER_CONFIG
    text = nbgrader_config_text(course_id, exchange_root)
    if nbgrader_config.is_file() and not nbgrader_config.read_text().startswith(_HEADER):
        raise StudentConfigError(
            f"{nbgrader_config} exists and was not written by autograder; add these lines to it "
            f"instead:\nc.CourseDirectory.course_id = {course_id!r}\nc.Exchange.root = {exchange_root!r}"
        )
    nbgrader_config.write_text(text)
    nbgrader_config.chmod(0o644)
    for name in (Path(SERVER_CONFIG), PAGE_CONFIG):
        merge_json(shipped() / name, to / name)
    for folder in (to, to / PAGE_CONFIG.parent):
        folder.chmod(folder.stat().st_mode | 0o755)  # students' servers must read it
    return [nbgrader_config, to / SERVER_CONFIG, to / PAGE_CONFIG]


def server_extensions(folder: Path) -> dict[str, bool]:
    """The server extensions one config folder turns on or off (its .d files, then its root file)."""
    found: dict[str, bool] = {}
    paths = [*sorted((folder / "jupyter_server_config.d").glob("*.json")), folder / SERVER_CONFIG]
    for path in paths:
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
        except (json.JSONDecodeError, OSError):
            continue
        found.update(data.get(EXTENSIONS_KEY[0], {}).get(EXTENSIONS_KEY[1], {}))
    return found


def effective_problems(to: Path) -> list[str]:
    """Why a student's server would not apply the configuration in ``to`` ([] when it would).

    Reads the folders Jupyter reads, as a student's server would (without the user's own
    ``~/.jupyter``, which is the student's): ``to`` must be one of them, and no folder read
    before it may turn a student-off server extension back on.
    """
    own = os.path.realpath(jupyter_config_dir())
    folders = [p for p in jupyter_config_path() if os.path.realpath(p) != own]
    target = os.path.realpath(to)
    real = [os.path.realpath(p) for p in folders]
    if target not in real:
        return [
            f"{to} is not a folder Jupyter reads configuration from here ({', '.join(folders)}): "
            "students' servers will not see it unless their JUPYTER_CONFIG_PATH includes it."
        ]
    problems = []
    for folder in folders[: real.index(target)]:  # earlier folders outrank ``to``
        turned_on = [name for name in STUDENT_OFF if server_extensions(Path(folder)).get(name)]
        if turned_on:
            problems.append(
                f"{folder} turns on {', '.join(turned_on)} and outranks {to}: install the student "
                f"configuration into {folder} instead (or remove that setting there)."
            )
    return problems
