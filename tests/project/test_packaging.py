"""What the package imports, its own declared dependencies install.

A fresh ``pip install -e .`` gets only what ``pyproject.toml`` declares; a module that some
other package happened to bring into the developer's environment would break the main job
on a newcomer's machine while every test here still passed.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
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


@functools.cache
def providers() -> dict[str, list[str]]:
    """Which distributions provide each top-level module (about a second to read: once)."""
    return packages_distributions()


def undeclared(
    folder: Path, allowed: set[str], skip: tuple[Path, ...] = ()
) -> dict[str, list[str]]:
    """Third-party modules imported in ``folder`` whose distribution is not in ``allowed``."""
    missing = {}
    for module in sorted(imported_modules(folder, skip)):
        if module in sys.stdlib_module_names or module in ("autograder", "tests", "__future__"):
            continue
        distributions = {normalized(d) for d in providers().get(module, [])}
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


# -- what a built wheel holds ------------------------------------------------------------------
# Read from the build configuration rather than by building a wheel (seconds, and a build
# environment): setuptools ships the .py files of every package it finds (namespace packages
# included, the pyproject default), and of the rest only what [tool.setuptools.package-data]
# names.


def package_data_shipped() -> set[str]:
    """The non-Python files [tool.setuptools.package-data] puts in the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set()
    for package, patterns in config["package-data"].items():
        folder = REPO.joinpath(*package.split("."))
        for pattern in patterns:
            shipped |= {path.relative_to(REPO).as_posix() for path in folder.glob(pattern)}
    return shipped


def package_files() -> set[str]:
    """Every file under autograder/, as a path from the repository root."""
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "autograder").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_ships_py_typed_and_no_example_submission():
    data = {name for name in package_files() if not name.endswith(".py")}
    # The files type checkers and hub students' servers need are there to be shipped...
    assert "autograder/py.typed" in data
    # ...but no example submission: they hold answers (tests/examples/, outside the package;
    # test_wheel_has_no_answers.py searches a built wheel for every answer)...
    assert not any(name.endswith(".toml") for name in data)
    # ...and the build configuration ships every one of them.
    assert data - package_data_shipped() == set()
