"""What the grading processes leave unimported (autograder/lean_imports.py), each in a fresh
interpreter: nothing they use goes missing."""

import json
import subprocess
import sys
from importlib.metadata import version

from .conftest import REPO


def _run(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_a_grading_process_imports_no_server_extension_and_no_iri_grammar():
    found = _run(
        "import json, sys\n"
        "import autograder.cli\n"  # what `autograder grade` and `autograder check` start with
        "import autograder.grading.run, autograder.grading.task\n"
        "import autograder.pipeline.protected_execute, autograder.student.check\n"
        "import nbgrader\n"
        "print(json.dumps({'version': nbgrader.__version__, 'loaded': sorted(\n"
        "    m for m in sys.modules if m.startswith(('nbgrader.server_extensions', 'rfc3987'))\n"
        "    and sys.modules[m] is not None)}))"
    )
    assert found == {"version": version("nbgrader"), "loaded": []}


def test_what_only_nbgraders_init_defines_still_works():
    found = _run(
        "import json, sys\n"
        "import autograder.cli, nbgrader.api\n"
        "points = nbgrader._jupyter_server_extension_points()\n"
        "from nbgrader import utils\n"
        "print(json.dumps({'points': points, 'utils': utils.__name__,\n"
        "    'extensions': 'nbgrader.server_extensions.formgrader' in sys.modules}))"
    )
    assert found == {
        "points": [{"module": "nbgrader"}],
        "utils": "nbgrader.utils",
        "extensions": True,
    }
