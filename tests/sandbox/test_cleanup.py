"""Clean-up (autograder.sandbox.cleanup): nothing a kernel started outlives it, nothing of
another slot is touched, and the kernel works in a copy of its folder. Each test needs a
kernel of its own: it kills it."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import threading
import time

import psutil
import pytest

from autograder.sandbox import SandboxedKernelManager
from autograder.sandbox.cleanup import clear_uid, kill_sandbox_processes
from autograder.sandbox.policy import Sandbox, SandboxUnavailable

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
def test_the_kernel_works_in_a_copy_and_owns_nothing_of_the_folder(tmp_path):
    """With a dedicated uid the kernel's folder is copied into its private dir (no notebooks,
    no links): what it deletes, plants or writes never reaches the course's folder."""
    work = tmp_path / "alice" / "ps1"
    (work / "sub").mkdir(parents=True)
    (work / "data.txt").write_text("the student's data")
    (work / "sub" / "more.txt").write_text("more")
    (work / "graded.ipynb").write_text("{}")  # another notebook, maybe graded: not copied
    (work / "link").symlink_to("/etc/passwd")
    before = {p: p.lstat() for p in work.rglob("*")}

    async def scenario() -> None:
        km, kc = await start(work, Sandbox())
        out = await run_cell(
            kc,
            "import os\n"
            "print(sorted(os.listdir('.')), open('data.txt').read(), open('sub/more.txt').read())\n"
            "os.remove('data.txt'); os.symlink('/etc/passwd', 'data.txt')\n"
            "open('made.npy', 'wb').write(b'x'); print(os.getcwd())",
        )
        assert out.error is None, out.error
        listing, cwd = out.stdout.splitlines()
        assert listing == "['data.txt', 'sub'] the student's data more", listing
        assert cwd.startswith(str(km.private_dir)), cwd
        await stop(km, kc)

    asyncio.run(scenario())
    after = {p: p.lstat() for p in work.rglob("*")}
    assert after.keys() == before.keys()  # nothing made, nothing removed
    for path, st in after.items():
        assert (st.st_uid, st.st_mode, st.st_mtime) == (
            before[path].st_uid,
            before[path].st_mode,
            before[path].st_mtime,
        ), path
    assert (work / "data.txt").read_text() == "the student's data"


@root_only
def test_the_clean_up_of_one_slot_kills_nothing_of_another(tmp_path):
    """Two kernels at once; the first one's children are killed with it, the second
    kernel and its children live on, and so does a process that reuses nothing of it."""

    async def scenario() -> tuple[list[int], list[int], int]:
        first = await start(tmp_path, Sandbox())
        second = await start(tmp_path, Sandbox())
        code = (
            "import subprocess\n"
            "a = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "print(a.pid)"
        )
        mine = [int((await run_cell(first[1], code)).stdout)]
        theirs = [int((await run_cell(second[1], code)).stdout), second[0].provisioner.pid]
        assert first[0].kernel_uid != second[0].kernel_uid
        await stop(*first)
        alive = [pid for pid in theirs if not gone(pid)]
        await stop(*second)
        return mine, alive, len(theirs)

    mine, alive, expected = asyncio.run(scenario())
    time.sleep(0.1)
    assert all(gone(p) for p in mine)
    assert len(alive) == expected  # the other slot's kernel and child outlived the clean-up


def test_a_kernel_that_is_gone_gets_no_signal_through_its_old_group_id(tmp_path):
    """jupyter_client signals a kernel's process group by its id, also after it reaped the
    kernel; the sandbox's manager does not, since the id may be another process's by then."""

    async def scenario() -> None:
        km, kc = await start(tmp_path, Sandbox())
        process = km.provisioner.process
        with pytest.raises((RuntimeError, TimeoutError, asyncio.TimeoutError)):
            await kc.execute_interactive("import os; os._exit(3)", timeout=5)
        for _ in range(200):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.02)
        assert process.returncode is not None  # reaped: its pid is free for anyone
        sent = []
        original = os.killpg

        def spy(pgid: int, signum: int) -> None:
            sent.append((pgid, signum))
            original(pgid, signum)

        os.killpg = spy  # type: ignore[assignment]
        try:
            await km.interrupt_kernel()
            await km.shutdown_kernel(now=True)
        finally:
            os.killpg = original  # type: ignore[assignment]
            kc.stop_channels()
            await km.cleanup_resources()
        assert sent == []

    asyncio.run(scenario())


@root_only
def test_a_manager_cleaned_up_twice_kills_nothing_of_its_uids_next_kernel(tmp_path):
    """A second shutdown or clean-up of a manager whose kernel is gone (nbclient's, a test's)
    once killed every process of the uid it had held, though the lock was released: the
    uid's next kernel, another notebook's or another run's, died at start (SIGKILL)."""
    base = 3_300_000 + 8 * random.randrange(100_000)  # uids no grading run uses

    async def scenario() -> tuple[int, int, bool]:
        first, first_kc = await start(tmp_path, Sandbox(base_uid=base), max_slots=1)
        uid = first.kernel_uid
        await stop(first, first_kc)
        second, second_kc = await start(tmp_path, Sandbox(base_uid=base), max_slots=1)
        try:
            await first.kill_leftovers()
            await first.shutdown_kernel(now=True)
            await first.cleanup_resources()
            alive = await second.is_alive()
            return uid, second.kernel_uid, alive
        finally:
            await stop(second, second_kc)

    first_uid, second_uid, alive = asyncio.run(scenario())
    assert first_uid == second_uid == base  # one slot: the second kernel took the same uid
    assert alive


def test_kill_refuses_root_and_own_uid():
    for uid in {0, os.getuid()}:
        with pytest.raises(ValueError):
            kill_sandbox_processes(uid=uid)


def _zombie_of(uid: int) -> subprocess.Popen[bytes]:
    """A process of ``uid`` that has exited and that nobody has reaped yet (a zombie), as a
    killed fork bomb's processes are until the machine's init reaps them."""
    process = subprocess.Popen(["true"], user=uid)
    deadline = time.monotonic() + 10
    while psutil.Process(process.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return process


@root_only
def test_a_kernel_never_gets_a_uid_whose_processes_are_not_all_gone(tmp_path, monkeypatch):
    """A zombie still counts against its uid's 64-process limit: a kernel given that uid
    could not start the threads or processes its notebook needs (a student after a fork bomb
    lost points for it). The kernel takes a slot whose uid has no process at all; with none
    clear, it is not started, and the reason names what is left."""
    monkeypatch.setattr("autograder.sandbox.slots.UID_CLEAR_WAIT", 0.5)
    base = 3_100_000 + 8 * random.randrange(100_000)  # uids no grading run uses
    zombie = _zombie_of(base)

    async def scenario(slots: int) -> int | None:
        km = SandboxedKernelManager(kernel_name="python3", sandbox=Sandbox(base_uid=base))
        km.max_slots = slots
        await km.start_kernel(cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        uid = km.kernel_uid
        await stop(km, kc)
        return uid

    try:
        assert asyncio.run(scenario(2)) == base + 1
        with pytest.raises(SandboxUnavailable) as refused:
            asyncio.run(scenario(1))
        assert f"uid {base}: {zombie.pid} (zombie" in str(refused.value)
    finally:
        zombie.wait()
    assert asyncio.run(scenario(1)) == base  # reaped: the uid is clear again


def test_clear_uid_waits_for_a_zombie_to_be_reaped():
    if os.geteuid() != 0:
        pytest.skip("not root: no other uid to start a process as")
    uid = 3_100_000 + 8 * random.randrange(100_000)
    zombie = _zombie_of(uid)
    reaper = threading.Timer(0.5, zombie.wait)
    reaper.start()
    started = time.monotonic()
    assert clear_uid(uid, timeout=10) == []
    assert 0.4 < time.monotonic() - started < 5
    reaper.join()
