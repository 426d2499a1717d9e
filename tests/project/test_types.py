"""The package type-checks (mypy, configured in pyproject.toml: strict where it pays)."""

import subprocess
import sys

from ..conftest import REPO


def test_mypy_finds_no_error():
    # The cache in .mypy_cache/ makes a repeated run take a second; a fresh clone, about 10 s.
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found"), done.stdout
