"""The installed package carries no answer: every user of a hub can read the environment.

The wheel is built from this checkout (as the Gradescope and PrairieLearn builders build it),
installed into a fresh virtual environment, and every file it installed (the package, the
dist-info with README as its long description) is searched for each line of the source
notebooks' solutions and hidden tests that the released notebooks do not show, and for each
quiz answer in any form (``q1 = "B"``, ``q1.strip().upper() == "B"``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from autograder.platforms.distribution import build_wheel
from tests.conftest import ASSIGNMENT, REPO

SOURCE = REPO / "source" / ASSIGNMENT
RELEASE = REPO / "release" / ASSIGNMENT
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
QUIZ_KEY = re.compile(r"""^(q\d+) = ["'](\w)["']$""")


def secret_lines() -> set[str]:
    """Solution and hidden-test lines of source/ that no released notebook shows (a line a
    student sees anyway, such as a visible test repeated in a hidden block, is no secret).
    Lines without a letter or digit (a closing bracket) say nothing and are left out."""
    secret, shown = set(), set()
    for path in SOURCE.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            source = cell.source + "\n"
            for _kind, body in REGION.findall(source):
                secret |= {line.strip() for line in body.splitlines()}
            shown |= {line.strip() for line in REGION.sub("", source).splitlines()}
    for path in RELEASE.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            shown |= {line.strip() for line in cell.source.splitlines()}
    return {line for line in secret - shown if re.search(r"\w", line)}


def quiz_key(lines: set[str]) -> dict[str, str]:
    """question -> the letter that scores, from the quiz's solution lines."""
    return {m.group(1): m.group(2) for line in lines if (m := QUIZ_KEY.match(line))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> list[Path]:
    """Every file the wheel installed into a fresh environment (from its RECORD)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp / "dist")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The fresh environment's own pip (never this one's with --prefix: that uninstalls the
    # package from the environment running the tests), without dependencies.
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
         "--no-index", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    records = list(
        venv.glob("lib/python*/site-packages/numpy_memory_autograder-*.dist-info/RECORD")
    )
    assert len(records) == 1, records
    site = records[0].parent.parent
    files = [
        (site / line.split(",")[0]).resolve()
        for line in records[0].read_text().splitlines()
        if line.strip()
    ]
    print(f"\nthe wheel {wheel.name} installed {len(files)} files")
    return [path for path in files if path.is_file()]


def test_the_search_has_answers_to_look_for():
    lines = secret_lines()
    assert len(lines) >= 60, len(lines)
    assert len(quiz_key(lines)) == 8  # q1 .. q8


def test_no_installed_file_holds_a_solution_hidden_test_or_quiz_answer(installed):
    lines = secret_lines()
    key = quiz_key(lines)
    answer_forms = [
        re.compile(rf"""\b{question}\b[^\n]{{0,40}}?["']{letter}["']""")
        for question, letter in key.items()
    ]
    assert any(path.name == "RECORD" for path in installed)
    assert any(path.suffix == ".py" for path in installed)
    found = []
    for path in installed:
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {line}" for line in lines if line in text]
        found += [f"{path.name}: {form.pattern}" for form in answer_forms if form.search(text)]
    print(f"searched {len(installed)} files for {len(lines)} lines and {len(key)} quiz answers")
    assert found == []
    names = {path.relative_to(path.parents[1]).as_posix() for path in installed}
    assert not any(name.endswith(".toml") for name in names), "an example submission is shipped"


def test_builds_at_once_each_get_their_wheel(tmp_path):
    """The Gradescope and PrairieLearn files built side by side (two commands, two test
    workers) each build the wheel in the checkout's own build/ folder: one at a time."""
    with ThreadPoolExecutor(3) as pool:
        wheels = list(pool.map(build_wheel, [tmp_path / str(n) for n in range(3)]))
    assert [wheel.is_file() and wheel.stat().st_size > 0 for wheel in wheels] == [True] * 3
