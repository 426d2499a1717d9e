"""This package as a platform's image installs it: a wheel, and its dependencies pinned.

The pins are the versions installed here, where the tests ran: the closure of this
distribution's requirements (extras followed, environment markers evaluated for this
machine), each as ``name==version``. An image installs them with ``--no-deps``, so it gets
exactly this set from the package index and resolves nothing of its own. The pins hold for
the interpreter they were resolved on, so each image runs that very CPython version
(:func:`interpreter_version`): Gradescope's ``setup.sh`` installs it as a standalone build,
PrairieLearn's ``Dockerfile`` starts from the official image of that version. Both are
Linux x86_64 with glibc 2.35 or newer (Ubuntu 22.04 and 24.04, Debian 12), which accept
every ``manylinux`` wheel up to ``manylinux_2_35``.
"""

from __future__ import annotations

import fcntl
import hashlib
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from autograder.platforms.single_submission import PlatformError

DISTRIBUTION = "numpy-memory-autograder"
PROJECT = Path(__file__).resolve().parents[2]  # the checkout this package runs from


def interpreter_version() -> str:
    """This interpreter's version, ``3.11.7``: the one the images install, since the pins
    were resolved (and the tests run) on it. Only a released CPython has standalone builds
    and official images."""
    if platform.python_implementation() != "CPython" or sys.version_info.releaselevel != "final":
        raise PlatformError(
            f"build the platform's files with a released CPython (this is "
            f"{platform.python_implementation()} {sys.version.split()[0]}): the image installs "
            "the very version the pins were resolved on"
        )
    return platform.python_version()


def pinned_requirements(root: str = DISTRIBUTION) -> list[str]:
    """``name==version`` for every distribution ``root`` needs, itself excluded."""
    pins: dict[str, str] = {}
    followed: dict[str, set[str]] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in followed and extras <= followed[key]:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise PlatformError(
                f"{name} is required but not installed here: install the project "
                "(pip install -e .) before building a platform's files"
            ) from None
        followed.setdefault(key, set()).update(extras)
        pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for text in dist.requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                todo.append((requirement.name, frozenset(requirement.extras)))
    pins.pop(canonicalize_name(root), None)
    return sorted(pins.values(), key=str.lower)


def build_wheel(out_dir: Path) -> Path:
    """Build this package's wheel from its checkout into ``out_dir``; return its path."""
    if not (PROJECT / "pyproject.toml").is_file():
        raise PlatformError(
            f"No pyproject.toml at {PROJECT}: build the platform's files from a checkout of "
            "the project (pip install -e .), where the wheel can be built."
        )
    # pip builds a local project in its own tree (setuptools' build/): two builds at once (the
    # Gradescope and PrairieLearn files made side by side) would write the same files. One
    # build of this checkout at a time, machine-wide.
    key = hashlib.sha256(str(PROJECT).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"autograder-wheel-{key}.lock"
    with (
        lock_path.open("a") as lock,
        tempfile.TemporaryDirectory(prefix="autograder-wheel-") as tmp,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(PROJECT)],
            capture_output=True,
            text=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise PlatformError(f"Building the package's wheel failed:\n{tail}")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / wheels[0].name
        target.write_bytes(wheels[0].read_bytes())
    return target
