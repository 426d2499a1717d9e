"""README's set-up commands are the ones CI runs, and install extras that exist."""

import re
import tomllib

from ..conftest import REPO

README = (REPO / "README.md").read_text()


def test_the_readme_test_command_is_exactly_what_ci_runs():
    script = (REPO / ".ci" / "run").read_text().splitlines()
    (command,) = [line for line in script if "pytest" in line and not line.startswith("#")]
    assert f"\n{command}\n" in README


def test_every_extra_the_readme_installs_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = set(project["optional-dependencies"])
    installed = set(re.findall(r"pip install -e '\.\[(\w+)\]'", README))
    assert installed >= {"lab", "test"}
    assert installed <= declared
