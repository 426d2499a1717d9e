"""What the package imports, its own declared dependencies install.

A fresh ``pip install -e .`` gets only what ``pyproject.toml`` declares; a module that some
other package happened to bring into the developer's environment would break the main job
on a newcomer's machine while every test here still passed.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "numpy-memory-autograder"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*, extra: str | None = None) -> set[str]:
    """The distributions the project requires (plus those of ``extra``), normalized."""
    names = set()
    for requirement in requires(DISTRIBUTION) or []:
        name, _, marker = requirement.partition(";")
        wanted = not marker.strip() or (extra is not None and f'extra == "{extra}"' in marker)
        if wanted:
            names.add(normalized(re.match(r"[A-Za-z0-9_.-]+", name.strip()).group()))
    return names


def imported_modules(folder: Path, skip: tuple[Path, ...] = ()) -> set[str]:
    """Top-level names of the modules imported anywhere in ``folder``'s Python files
    (``folder`` may be one file), but ``skip``."""
    names = set()
    for path in [folder] if folder.is_file() else folder.rglob("*.py"):
        if path in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def undeclared(
    folder: Path, allowed: set[str], skip: tuple[Path, ...] = ()
) -> dict[str, list[str]]:
    """Third-party modules imported in ``folder`` whose distribution is not in ``allowed``."""
    providers = packages_distributions()
    missing = {}
    for module in sorted(imported_modules(folder, skip)):
        if module in sys.stdlib_module_names or module in ("autograder", "tests", "__future__"):
            continue
        distributions = {normalized(d) for d in providers.get(module, [])}
        if not distributions & allowed:
            missing[module] = sorted(distributions) or ["(not installed)"]
    return missing


# Modules imported only on request, each with the extra that installs what they import.
OPTIONAL = {REPO / "autograder" / "grading" / "cluster.py": "cluster"}  # grade --scheduler


def test_the_package_imports_only_what_it_declares():
    assert undeclared(REPO / "autograder", declared(), skip=tuple(OPTIONAL)) == {}
    for module, extra in OPTIONAL.items():
        assert undeclared(module, declared() | declared(extra=extra)) == {}


@pytest.mark.parametrize("folder", ["tests", "tests/benchmarks"])
def test_the_tests_import_only_what_the_test_extra_declares(folder):
    assert undeclared(REPO / folder, declared() | declared(extra="test")) == {}
