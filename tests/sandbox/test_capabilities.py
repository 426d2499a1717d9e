"""What this machine lets the sandbox apply (autograder.sandbox.capabilities)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.limits import TimeLimits
from autograder.sandbox import SandboxUnavailable
from autograder.sandbox.capabilities import decide_mode, describe, probe
from autograder.sandbox.policy import Limits, Mode, Sandbox

from .kernels import ROOT, GiB


def test_describe_says_what_is_applied():
    line = describe(Sandbox(limits=Limits(memory_bytes=GiB), hidden_paths=(Path("/x"),)))
    assert "\n" not in line
    for part in (
        "address space 1 GiB",
        f"CPU {TimeLimits().cpu_seconds} s",  # the default: derived from the time limits
        "files 512 MiB",
        "256 open files",
        "BLAS threads 1",
    ):
        assert part in line, line
    if ROOT:
        assert "dedicated uid (61000+slot)" in line and "no network" in line, line
        assert "1 hidden path" in line and "64 processes" in line, line
        assert "not applied" not in line
    else:
        assert "not applied" in line
    off = Sandbox(isolate=False)
    assert "not applied" in describe(off) and "isolate=False" in describe(off)


def test_isolation_is_required_only_where_it_works():
    """isolate=True: full root isolation, verified by a real launch, or an error."""
    if ROOT:
        assert probe("root", 61000) is None
        assert decide_mode(Sandbox(isolate=True)) == Mode(True, "root")
    else:
        with pytest.raises(SandboxUnavailable, match="needs root"):
            decide_mode(Sandbox(isolate=True))
    assert decide_mode(Sandbox(isolate=False)).isolated is False
