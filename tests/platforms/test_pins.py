"""Every pin of each bundle installs, from a wheel, on exactly the interpreter its image runs:
what `setup.sh` installs on Gradescope, what the `Dockerfile` starts from on PrairieLearn.
Resolved with pip's own download against the package index (reachable in CI), in a
temporary folder, for CPython on Linux x86_64 with Ubuntu 22.04's glibc (2.35; Ubuntu 24.04
and Debian 12 are newer and accept these wheels too)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.platforms import gradescope

pytestmark = pytest.mark.slow

GLIBC = (2, 35)  # Ubuntu 22.04, Gradescope's default image: the oldest of the images


def wheel_platforms(glibc: tuple[int, int] = GLIBC, arch: str = "x86_64") -> list[str]:
    """Every manylinux tag a system with ``glibc`` accepts, named one by one: pip does not
    widen a --platform it is given (manylinux2014 alone would miss a manylinux_2_28 wheel)."""
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, 4, -1)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def pins_that_do_not_install(pins: list[str], python: str, folder: Path) -> list[str]:
    """The pins with no wheel for CPython ``python`` (pip stops at the first: each is then
    tried alone, to name them all)."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--python-version", python, "--implementation", "cp",
        *(f"--platform={tag}" for tag in wheel_platforms()), "--dest", str(folder),
    ]  # fmt: skip
    if subprocess.run([*command, *pins], capture_output=True).returncode == 0:
        return []
    return [pin for pin in pins if subprocess.run([*command, pin], capture_output=True).returncode]


def test_the_check_names_a_pin_that_does_not_install(tmp_path):
    """The issue's case: apt's python3.11 on Ubuntu 22.04 is 3.11.0, and soupsieve 4.1.4 needs
    Python 3.11.5 or newer."""
    assert pins_that_do_not_install(["soupsieve==4.1.4"], "3.11.0", tmp_path) == [
        "soupsieve==4.1.4"
    ]


def _from_zip(archive: Path, name: str) -> str:
    with zipfile.ZipFile(archive) as z:
        return z.read(name).decode()


@pytest.fixture(scope="module")
def check_pins(tmp_path_factory):
    """pins_that_do_not_install, each pin set and Python resolved once (the two bundles ship
    the same set for the same version: one download serves both)."""
    done: dict[tuple[tuple[str, ...], str], list[str]] = {}

    def check(pins: list[str], python: str) -> list[str]:
        key = (tuple(pins), python)
        if key not in done:
            done[key] = pins_that_do_not_install(pins, python, tmp_path_factory.mktemp("wheels"))
        return done[key]

    return check


def test_every_pin_installs_on_the_python_setup_sh_installs(gradescope_build, check_pins):
    archive, _ = gradescope_build
    python = re.search(r"uv python install (\S+)", _from_zip(archive, "setup.sh")).group(1)
    pins = _from_zip(archive, "requirements.txt").split()
    failed = check_pins(pins, python)
    assert failed == [], f"no wheel for CPython {python}: {', '.join(failed)}"


def test_every_pin_installs_on_the_python_of_the_prairielearn_image(prairielearn_build, check_pins):
    question, _ = prairielearn_build
    dockerfile = (question / "image" / "Dockerfile").read_text()
    python = re.search(r"^FROM python:(\d+\.\d+\.\d+)-slim-bookworm$", dockerfile, re.M).group(1)
    pins = (question / "image" / "requirements.txt").read_text().split()
    failed = check_pins(pins, python)
    assert failed == [], f"no wheel for CPython {python}: {', '.join(failed)}"


def test_the_pinned_uv_offers_the_python_setup_sh_asks_for(gradescope_build, tmp_path):
    """setup.sh's `uv python install X` downloads a standalone build only if that uv knows
    one for Linux x86_64 (glibc): its own list says so without downloading anything."""
    archive, _ = gradescope_build
    script = _from_zip(archive, "setup.sh")
    python = re.search(r"uv python install (\S+)", script).group(1)
    assert f"uv=={gradescope.UV}" in script
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         f"uv=={gradescope.UV}", "--dest", str(tmp_path)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("uv-*.whl")
    with zipfile.ZipFile(wheel) as z:
        binary = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
        uv = Path(z.extract(binary, tmp_path / "uv"))
    uv.chmod(0o755)
    listing = subprocess.run(
        [str(uv), "python", "list", "--all-versions", "--only-downloads", "--all-platforms"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "UV_NO_CACHE": "1", "HOME": str(tmp_path)},
    ).stdout
    assert re.search(rf"^cpython-{re.escape(python)}-linux-x86_64-gnu\s", listing, re.M), listing[
        :2000
    ]
