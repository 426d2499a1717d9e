"""The run's protection (autograder.sandbox.capabilities): decided once by a check nothing a
student does can disturb, and held by every kernel, or the kernel is not started."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.limits import TimeLimits
from autograder.sandbox import SandboxedKernelManager, SandboxUnavailable, capabilities
from autograder.sandbox import kernel_manager as manager_module
from autograder.sandbox.capabilities import Protection, check, decide
from autograder.sandbox.policy import Limits, Sandbox
from autograder.sandbox.slots import CHECK_UIDS, acquire_check_uid, acquire_slot, runtime_root
from tests.conftest import execute_protected

from .kernels import ROOT, GiB, root_only


def test_the_line_says_what_is_applied_and_what_is_not():
    sandbox = Sandbox(limits=Limits(memory_bytes=GiB), hidden_paths=(Path("/x"),))
    line = decide(sandbox).describe(sandbox)
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
        assert line.startswith("Sandbox fully applied"), line
        assert "dedicated uid, 62000+slot, which cannot reach" in line and "no network" in line, (
            line
        )
        assert "1 hidden path" in line and "64 processes" in line, line
        assert "not applied" not in line
    else:
        assert "not applied" in line
    lowered = decide(sandbox, "limits-only")
    text = lowered.describe(sandbox)
    assert lowered.chosen == "--sandbox=limits-only" and "lowered by the instructor" in text
    assert "not applied" in text and "the instructor chose --sandbox=limits-only" in text


def test_only_what_works_is_decided():
    if ROOT:
        assert decide(Sandbox(), "full").level == "full"
        assert decide(Sandbox()).fully_applied
    else:
        with pytest.raises(SandboxUnavailable, match="needs root"):
            decide(Sandbox(), "full")
    with pytest.raises(SandboxUnavailable, match="must be one of"):
        decide(Sandbox(), "off")
    assert Protection.from_json(decide(Sandbox()).to_json()).level == decide(Sandbox()).level


def test_the_checks_uids_are_never_a_kernels():
    base = Sandbox().base_uid
    uid, fd = acquire_check_uid(base)
    try:
        assert base - CHECK_UIDS <= uid < base  # kernels run as base + slot, slot >= 0
    finally:
        os.close(fd)


@root_only
def test_a_full_process_table_in_slot_0_does_not_disturb_the_check():
    """What a fork bomb in slot 0 leaves, and a slot-0 clean-up killing every process of its
    uid at the same time: the check runs as a uid of its own and passes all along. The slot
    is a base uid no other test or run uses: the 64 processes would otherwise fill the
    process limit of a kernel another test runs in slot 0 at the same time."""
    sandbox = Sandbox(base_uid=3_200_000 + 16 * random.randrange(100_000))
    uid = sandbox.uid_for(0)
    count = sandbox.limits.max_processes

    def as_slot_0_uid() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    bomb = [subprocess.Popen(["sleep", "60"], preexec_fn=as_slot_0_uid) for _ in range(count)]
    try:
        for _ in range(3):
            assert check("full", sandbox) is None
    finally:
        for process in bomb:
            process.kill()
            process.wait()


@root_only
def test_the_check_proves_the_course_files_unreadable_to_a_kernels_uid(tmp_path):
    """It seals what the kernels must not see (others lose every permission), then reads
    each path as a check uid: a course file readable by "others" would fail it."""
    course = Path("/var/lib/autograder-sandbox-tests") / tmp_path.name
    (course / "source").mkdir(parents=True)
    try:
        (course / "source" / "answers.ipynb").write_text("{}")
        (course / "gradebook.db").write_text("grades")
        os.chmod(course / "source", 0o755)
        os.chmod(course / "gradebook.db", 0o644)
        sandbox = Sandbox(hidden_paths=(course / "source", course / "gradebook.db"))
        assert check("full", sandbox) is None
        assert (course / "source").stat().st_mode & 0o007 == 0
        assert (course / "gradebook.db").stat().st_mode & 0o007 == 0
        assert (course / "source").stat().st_mode & 0o750 == 0o750  # the owner keeps them
    finally:
        subprocess.run(["rm", "-rf", str(course)], check=False)


# -- a kernel that cannot get the run's protection is not started --------------------------


class _Launches:
    """Counts launches; each one fails in the launcher (before the kernel's exec) when
    ``fail`` says so, and the kernel command would leave a marker file if it ever ran."""

    def __init__(self, tmp_path: Path, fail: list[bool]):
        self.marker = tmp_path / "kernel-ran"
        self.fail = fail
        self.uids: list[int | None] = []

    def plan(self, *args, **kwargs):
        plan = _real_launch_plan(*args, **kwargs)
        self.uids.append(plan["uid"])
        if self.fail[min(len(self.uids), len(self.fail)) - 1]:
            plan["cwd"] = "/nonexistent/sandbox-step-fails"  # the launcher's chdir fails
        return plan

    def command(self, cmd, plan):
        return _real_launcher_command(
            [sys.executable, "-c", f"open({str(self.marker)!r}, 'w')"], plan
        )


_real_launch_plan = manager_module.launch_plan
_real_launcher_command = manager_module.launcher_command


@pytest.fixture
def protection() -> dict:
    """The run's protection, decided by the real check (before a test replaces it)."""
    return decide(Sandbox()).to_json()


def _start(tmp_path: Path, protection: dict) -> SandboxedKernelManager:
    km = SandboxedKernelManager(
        kernel_name="python3", runtime_root=str(tmp_path / "run"), protection=protection
    )
    (tmp_path / "work").mkdir(exist_ok=True)
    asyncio.run(km.start_kernel(cwd=str(tmp_path / "work")))
    return km


def test_when_the_check_fails_the_kernel_is_not_started(tmp_path, monkeypatch, protection):
    """A launch fails; the check, run afresh, fails too: SandboxUnavailable with both
    reasons, one launch only, no kernel ever ran, and the slot and dirs are given back."""
    launches = _Launches(tmp_path, fail=[True])
    monkeypatch.setattr(manager_module, "launch_plan", launches.plan)
    monkeypatch.setattr(manager_module, "launcher_command", launches.command)
    checks = []

    def failing_check(level: str, sandbox: Sandbox) -> str:
        checks.append(level)
        return "the machine no longer allows it (simulated)"

    monkeypatch.setattr(capabilities, "check", failing_check)
    with pytest.raises(SandboxUnavailable) as raised:
        _start(tmp_path, protection)
    message = str(raised.value)
    assert "the sandbox's check now fails too: the machine no longer allows it" in message
    assert "FileNotFoundError" in message  # the launcher's own words for the failed step
    assert len(launches.uids) == 1 and len(checks) == 1
    assert not launches.marker.exists()  # the kernel command never ran
    assert list((tmp_path / "run").glob("[ku]*-*")) == []  # no private dir left
    # The failed slot was given back: its lock (machine-wide for a uid, so another run on the
    # same machine may hold a neighbour's) can be taken again.
    uid = launches.uids[0]
    wanted, base = (uid - 62000, 62000) if uid is not None else (0, None)
    _slot, fd = acquire_slot(runtime_root(tmp_path / "run"), wanted + 1, wanted, base)
    os.close(fd)


def test_a_failed_launch_is_retried_in_another_slot_then_given_up(
    tmp_path, monkeypatch, protection
):
    launches = _Launches(tmp_path, fail=[True])
    monkeypatch.setattr(manager_module, "launch_plan", launches.plan)
    monkeypatch.setattr(manager_module, "launcher_command", launches.command)
    monkeypatch.setattr(capabilities, "check", lambda level, sandbox: None)
    with pytest.raises(SandboxUnavailable, match=f"in {manager_module.LAUNCH_ATTEMPTS} slots"):
        _start(tmp_path, protection)
    assert len(launches.uids) == manager_module.LAUNCH_ATTEMPTS
    if ROOT:
        assert len(set(launches.uids)) == manager_module.LAUNCH_ATTEMPTS  # another slot each time
    assert not launches.marker.exists()


@root_only
def test_a_launch_that_fails_once_starts_the_kernel_in_another_slot(
    tmp_path, monkeypatch, protection
):
    launches = _Launches(tmp_path, fail=[True, False])
    monkeypatch.setattr(manager_module, "launch_plan", launches.plan)
    monkeypatch.setattr(capabilities, "check", lambda level, sandbox: None)
    km = _start(tmp_path, protection)
    try:
        assert len(launches.uids) == 2 and launches.uids[0] != launches.uids[1]
        assert km.kernel_uid == launches.uids[1] and km.applied_level == "full"
        assert asyncio.run(km.is_alive())
    finally:
        asyncio.run(km.shutdown_kernel(now=True))


def test_a_notebook_whose_kernel_cannot_get_the_sandbox_is_not_graded(work, monkeypatch):
    """ProtectedExecute records "not graded" with the reason, runs no cell, and raises, so
    that nbgrader records no grade for it."""

    def refuse(sandbox: Sandbox, choice: str) -> Protection:
        raise SandboxUnavailable("no uid of its own (simulated)")

    monkeypatch.setattr(capabilities.decisions, "get", refuse)
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(f"open({str(work / 'ran')!r}, 'w')"),
            nbformat.v4.new_code_cell(
                "assert True",
                metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 1}},
            ),
        ]
    )
    with pytest.raises(SandboxUnavailable):
        execute_protected(nb, work, student="s", notebook="n")
    record = json.loads((work.parent / "runs" / "s" / "n.json").read_text())
    assert record["status"] == "not graded"
    assert record["reason"] == "sandbox unavailable: no uid of its own (simulated)"
    assert record["sandbox_level"] == ""
    assert not (work / "ran").exists()
    test = next(c for c in record["cells"] if c["grade_id"] == "t")
    assert test["verdict"] == "not run" and "sandbox unavailable" in test["message"]


def test_kernels_started_side_by_side_share_one_decision(monkeypatch):
    """`autograder check` starts its notebooks' kernels in threads: one decision for both."""
    import threading
    import time

    made: list[str] = []

    def slow_decide(sandbox: Sandbox, choice: str = "auto") -> Protection:
        made.append(choice)
        time.sleep(0.2)  # both threads ask while the first decision is being made
        return Protection("limits-only")

    monkeypatch.setattr(capabilities, "decide", slow_decide)
    decisions = capabilities._Decisions()
    sandbox = Sandbox(hidden_paths=(Path("/side-by-side"),))
    got: list[Protection] = []
    threads = [
        threading.Thread(target=lambda: got.append(decisions.get(sandbox, "auto")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["auto"]
    assert got == [Protection("limits-only")] * 2
