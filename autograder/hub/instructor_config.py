"""The instructor's own Jupyter configuration on a hub: Formgrader on, for their course.

``autograder hub instructor-config``, run by the instructor from the course directory, writes
into their Jupyter config folder (``~/.jupyter``; in a virtual environment Jupyter reads
``JUPYTER_CONFIG_PATH`` and ``<sys.prefix>/etc/jupyter`` before it, so
:func:`formgrader_problems` says when one of those turns Formgrader off):

* ``nbgrader_config.py``: loads the course's ``nbgrader_config.py`` (nbgrader's docs: the
  instructor's ``CourseDirectory.root``); without it Formgrader reads the server's root,
  the home folder, and lists no assignment;
* ``jupyter_server_config.json``: nbgrader's Formgrader server extension on (the students'
  configuration may have turned it off for everyone), and the ``Content-Security-Policy``
  ``frame-ancestors 'self'`` that nbgrader's docs give for JupyterHub >= 4.1, whose
  ``frame-ancestors 'none'`` leaves JupyterLab's Formgrader tab (an iframe) blank;
* ``labconfig/page_config.json``: JupyterLab's Formgrader and Create Assignment plugins on.

Why not ``jupyter server extension enable --user nbgrader.server_extensions.formgrader``:
jupyter_server 2 validates the name against the user's own config folder only, and there it
is not listed yet, so it fails ("could not be found").
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from jupyter_core.paths import jupyter_config_path

from autograder.hub import HubError
from autograder.hub.student_config import (
    NBGRADER_CONFIG,
    PAGE_CONFIG,
    SERVER_CONFIG,
    merge_json,
    server_extensions,
)

FORMGRADER = "nbgrader.server_extensions.formgrader"
FRAME_ANCESTORS = "frame-ancestors 'self'"
SERVER_SETTINGS = {
    "ServerApp": {
        "jpserver_extensions": {FORMGRADER: True},
        "tornado_settings": {"headers": {"Content-Security-Policy": FRAME_ANCESTORS}},
    }
}
PAGE_SETTINGS = {
    "disabledExtensions": {
        "@jupyter/nbgrader:formgrader": False,
        "@jupyter/nbgrader:create-assignment": False,
    }
}
_HEADER = '"""nbgrader for the instructor of the NumPy memory course'


def nbgrader_config_text(course_root: Path) -> str:
    return (
        f"{_HEADER} (written by `autograder hub instructor-config`).\n\n"
        "Formgrader and nbgrader's commands in this account use the course's own configuration.\n"
        '"""\n\n'
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({NBGRADER_CONFIG!r}, path={str(course_root)!r})  # noqa: F821\n"
    )


def write_instructor_config(to: Path, course_root: Path) -> list[Path]:
    """Write the instructor's configuration for ``course_root`` into the folder ``to``."""
    to.mkdir(parents=True, exist_ok=True)
    nbgrader_config = to / NBGRADER_CONFIG
    if nbgrader_config.is_file() and not nbgrader_config.read_text().startswith(_HEADER):
        raise HubError(
            f"{nbgrader_config} exists and was not written by autograder: add this line to it "
            f"instead: load_subconfig({NBGRADER_CONFIG!r}, path={str(course_root)!r})"
        )
    nbgrader_config.write_text(nbgrader_config_text(course_root))
    for name, settings in ((SERVER_CONFIG, SERVER_SETTINGS), (PAGE_CONFIG, PAGE_SETTINGS)):
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "settings.json")
            source.write_text(json.dumps(settings))
            merge_json(source, to / name)
    return [nbgrader_config, to / SERVER_CONFIG, to / PAGE_CONFIG]


def formgrader_problems(to: Path) -> list[str]:
    """Folders Jupyter reads before ``to`` that turn Formgrader off ([] when none does)."""
    folders = [os.path.realpath(folder) for folder in jupyter_config_path()]
    target = os.path.realpath(to)
    before = folders[: folders.index(target)] if target in folders else folders
    return [
        f"{folder} turns Formgrader off and is read before {to}: your server will not load it. "
        "The hub admin installs the students' configuration with --to DIR and the "
        "pre_spawn_hook (README, 'On a shared JupyterHub'), not --sys-prefix."
        for folder in before
        if server_extensions(Path(folder)).get(FORMGRADER) is False
    ]
