"""The code is linted and formatted (ruff, configured in pyproject.toml)."""

import subprocess
import sys

from ..conftest import REPO


def test_ruff_lint_and_format():
    for command in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
