"""This package as a platform's image installs it: a wheel, and its dependencies pinned.

The pins are the versions installed here, where the tests ran: the closure of this
distribution's requirements (extras followed, environment markers evaluated for this
machine, which is the Linux and Python the platforms' images run), each as
``name==version``. An image installs them with ``pip install --no-deps``, so it gets
exactly this set from the package index and resolves nothing of its own.
"""

from __future__ import annotations

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
    with tempfile.TemporaryDirectory(prefix="autograder-wheel-") as tmp:
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
