"""Fixtures for the sandbox tests: a course-like tree and one kernel shared by the package."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kernels import ROOT, Shared


@pytest.fixture(scope="package")
def course(tmp_path_factory) -> Iterator[Path]:
    """A course-like tree outside /tmp (which kernels see as an empty private tmpfs), so
    that what the kernel must not read or write is really visible to it but for the sandbox."""
    if ROOT:
        # Not under /tmp, wherever the repository is checked out (CI may clone it there).
        base = Path("/var/lib/autograder-sandbox-tests") / uuid.uuid4().hex[:8]
        base.mkdir(parents=True)
        os.chmod(base.parent, 0o755)
    else:
        base = tmp_path_factory.mktemp("course")
    try:
        for sub in ("work", "secret", "visible", "outside"):
            (base / sub).mkdir()
        (base / "secret" / "answers.txt").write_text("the hidden answer")
        (base / "gradebook.db").write_text("hidden grades")
        (base / "visible" / "readable.txt").write_text("anyone may read this")
        (base / "outside").chmod(0o777)  # only a read-only mount stops a write here
        (base / "work" / "data.txt").write_text("the student's data")
        os.chmod(base, 0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="package")
def kernel(course) -> Iterator[Shared]:
    """One sandboxed kernel for every test that only reads it (started once per run)."""
    shared = Shared(course)
    try:
        yield shared
    finally:
        shared.close()
