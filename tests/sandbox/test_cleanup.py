"""Clean-up (autograder.sandbox.cleanup): nothing a kernel started outlives it, and its
working dir is given back. Each test needs a kernel of its own: it kills it."""

from __future__ import annotations

import asyncio
import os
import time

import psutil
import pytest

from autograder.sandbox import SandboxedKernelManager
from autograder.sandbox.cleanup import check_chownable, kill_sandbox_processes
from autograder.sandbox.policy import Sandbox

from .kernels import gone, root_only, run_cell, start, stop


def test_processes_the_student_started_are_gone_after_shutdown(tmp_path):
    async def scenario() -> tuple[list[int], int, SandboxedKernelManager]:
        km, kc = await start(tmp_path, Sandbox())
        out = await run_cell(
            kc,
            "import subprocess\n"
            "a = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "b = subprocess.Popen(['sleep', '301'])\n"
            "print(a.pid, b.pid)",
        )
        assert out.error is None, out.error
        pids = [int(p) for p in out.stdout.split()]
        kernel_pid = km.provisioner.pid
        assert all(psutil.pid_exists(p) for p in pids)
        await stop(km, kc)
        return pids, kernel_pid, km

    pids, kernel_pid, km = asyncio.run(scenario())
    time.sleep(0.1)
    assert all(gone(p) for p in pids), [psutil.Process(p).status() for p in pids if not gone(p)]
    assert gone(kernel_pid)
    assert km.private_dir is None


def test_a_kernel_that_exits_is_cleaned_up_without_hanging(tmp_path):
    async def scenario() -> tuple[int, int, float]:
        km, kc = await start(tmp_path, Sandbox())
        out = await run_cell(
            kc,
            "import subprocess\n"
            "print(subprocess.Popen(['sleep', '300'], start_new_session=True).pid)",
        )
        orphan = int(out.stdout)
        kernel_pid = km.provisioner.pid
        with pytest.raises((RuntimeError, TimeoutError, asyncio.TimeoutError)):
            await kc.execute_interactive("import os; os._exit(3)", timeout=5)
        t = time.monotonic()
        await asyncio.wait_for(stop(km, kc), timeout=20)
        return orphan, kernel_pid, time.monotonic() - t

    orphan, kernel_pid, took = asyncio.run(scenario())
    assert took < 10
    time.sleep(0.1)
    assert gone(orphan) and gone(kernel_pid)


@root_only
def test_the_working_dir_is_given_back_and_planted_links_removed(tmp_path):
    work = tmp_path / "alice" / "ps1"
    work.mkdir(parents=True)
    (work / "ps1.ipynb").write_text("{}")

    async def scenario() -> None:
        km, kc = await start(work, Sandbox())
        out = await run_cell(
            kc,
            "import os\n"
            "os.remove('ps1.ipynb'); os.symlink('/etc/passwd', 'ps1.ipynb')\n"
            "open('made.npy', 'wb').write(b'x'); os.mkdir('sub')",
        )
        assert out.error is None, out.error
        assert (work / "made.npy").stat().st_uid == km.kernel_uid
        await stop(km, kc)

    asyncio.run(scenario())
    assert not (work / "ps1.ipynb").is_symlink() and not (work / "ps1.ipynb").exists()
    for path in (work, work / "made.npy", work / "sub"):
        assert path.lstat().st_uid == 0, path


def test_kill_refuses_root_and_own_uid():
    for uid in {0, os.getuid()}:
        with pytest.raises(ValueError):
            kill_sandbox_processes(uid=uid)


def test_a_shared_folder_or_one_the_grader_needs_is_not_lent_to_a_kernel(tmp_path):
    with pytest.raises(ValueError, match="shared directory"):
        check_chownable("/tmp", [])
    (tmp_path / "venv").mkdir()
    with pytest.raises(ValueError, match="the grader needs"):
        check_chownable(str(tmp_path), [str(tmp_path / "venv")])
    check_chownable(str(tmp_path), [str(tmp_path.parent / "elsewhere")])  # its own folder: fine
