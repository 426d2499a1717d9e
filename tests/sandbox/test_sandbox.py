"""Student kernels started through SandboxedKernelManager: real kernels, checked from inside.

As root (CI) every check runs; as another user the root-only ones are skipped with a
reason and the rest run with the isolation available to that user.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty

import nbformat
import psutil
import pytest
from jupyter_client.asynchronous import AsyncKernelClient
from nbclient import NotebookClient
from traitlets.config import Config

from autograder.limits import TimeLimits
from autograder.sandbox import (
    Limits,
    PromptKernelClient,
    Sandbox,
    SandboxedKernelManager,
    acquire_slot,
    interpreter_paths,
    kill_sandbox_processes,
    runtime_root,
)

from ..conftest import CellRun, collect_into

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root: a dedicated uid and namespaces")
GiB = 2**30


async def run_cell(kc, code: str, timeout: float = 30) -> CellRun:
    cell = CellRun()
    await kc.execute_interactive(code, output_hook=collect_into(cell), timeout=timeout)
    return cell


async def start(cwd: Path, sandbox: Sandbox) -> tuple[SandboxedKernelManager, object]:
    km = SandboxedKernelManager(kernel_name="python3", sandbox=sandbox)
    await km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
    except BaseException:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        raise
    return km, kc


async def stop(km: SandboxedKernelManager, kc) -> None:
    """What nbclient does at the end of a notebook."""
    kc.stop_channels()
    if await km.is_alive():
        await km.shutdown_kernel()
    await km.cleanup_resources()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
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


class Shared:
    """One sandboxed kernel for the read-only checks, run on its own event loop."""

    def __init__(self, course: Path):
        os.environ["SANDBOX_TEST_SECRET"] = "grader-only"  # not on the allow-list
        self.loop = asyncio.new_event_loop()
        self.sandbox = Sandbox(
            limits=Limits(memory_bytes=1 * GiB, cpu_seconds=120, max_file_bytes=64 * 2**20),
            hidden_paths=(course / "secret", course / "gradebook.db"),
        )
        self.km, self.kc = self.loop.run_until_complete(start(course / "work", self.sandbox))

    def run(self, code: str) -> CellRun:
        return self.loop.run_until_complete(run_cell(self.kc, code))

    def ok(self, code: str) -> str:
        cell = self.run(code)
        assert cell.error is None, cell.error
        return cell.stdout

    def close(self) -> None:
        try:
            self.loop.run_until_complete(stop(self.km, self.kc))
        finally:
            self.loop.close()
            os.environ.pop("SANDBOX_TEST_SECRET", None)


@pytest.fixture(scope="module")
def kernel(course) -> Iterator[Shared]:
    shared = Shared(course)
    try:
        yield shared
    finally:
        shared.close()


# ------------------------------------------------------------------ limits and env
def test_an_over_size_allocation_is_a_memory_error_and_the_kernel_goes_on(kernel):
    kernel.ok("import numpy as np")
    big = kernel.run("a = np.ones(2 * 2**30 // 8)")  # 2 GiB against a 1 GiB limit
    assert big.error is not None and big.error.startswith("MemoryError"), big.error
    assert kernel.ok("b = np.ones(100 * 2**20 // 8); print(b.nbytes)").strip() == str(100 * 2**20)


def test_the_limits_are_set_in_the_kernel(kernel):
    limits = json.loads(
        kernel.ok(
            "import resource, json\n"
            "print(json.dumps({n: resource.getrlimit(getattr(resource, n)) for n in\n"
            "  ['RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_CORE', 'RLIMIT_NPROC']}))"
        )
    )
    assert limits["RLIMIT_AS"] == [GiB, GiB]
    assert limits["RLIMIT_CPU"][0] == 120
    assert limits["RLIMIT_FSIZE"] == [64 * 2**20] * 2
    assert limits["RLIMIT_NOFILE"] == [256, 256]
    assert limits["RLIMIT_CORE"] == [0, 0]
    if ROOT:
        assert limits["RLIMIT_NPROC"] == [64, 64]
    too_big = kernel.run("open('big.bin', 'wb').write(b'x' * (65 * 2**20))")
    assert too_big.error is not None and "File too large" in too_big.error, too_big.error
    kernel.ok("import os; os.remove('big.bin')")


def test_blas_threads_are_pinned_and_malloc_returns_memory(kernel):
    env = json.loads(kernel.ok("import os, json; print(json.dumps(dict(os.environ)))"))
    for name in (
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        assert env.get(name) == "1", name
    assert env.get("MALLOC_MMAP_THRESHOLD_") == "131072"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    home = Path(env["HOME"])
    assert home == kernel.km.private_dir / "home"
    assert Path(env["IPYTHONDIR"]).is_relative_to(home)
    assert Path(env["MPLCONFIGDIR"]).is_relative_to(home)
    assert "SANDBOX_TEST_SECRET" not in env  # the grader's environment is not passed on
    assert kernel.ok("import numpy, autograder; print('imported')").strip() == "imported"


# ---------------------------------------------------------------- root isolation
@root_only
def test_the_kernel_runs_as_an_unprivileged_uid(kernel):
    ids = json.loads(
        kernel.ok("import os, json; print(json.dumps([os.getuid(), os.geteuid(), os.getgroups()]))")
    )
    assert ids[0] != 0 and ids[1] != 0 and ids[2] == []
    assert ids[0] == kernel.km.kernel_uid == 61000 + kernel.km.slot
    # and its own Python, not a fallback standard library it could not read as that uid
    stdlib = kernel.ok("import json, os; print(os.path.realpath(json.__file__))").strip()
    assert stdlib.startswith(os.path.realpath(sys.base_prefix))


@root_only
def test_the_kernel_has_no_network(kernel):
    out = kernel.ok(
        "import socket, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2); print('connected')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, round(time.monotonic() - t, 2))\n"
        "print(sorted(n for _, n in socket.if_nameindex()))"
    )
    first, names = out.strip().splitlines()
    assert first.split()[0] != "connected" and float(first.split()[1]) < 1.0, out
    assert names == "['lo']"


@root_only
def test_hidden_paths_cannot_be_read(kernel, course):
    out = kernel.ok(
        "import os\n"
        f"for path in [{str(course / 'secret' / 'answers.txt')!r}, {str(course / 'gradebook.db')!r},\n"
        f"             {str(course / 'visible' / 'readable.txt')!r}]:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
        f"print(os.listdir({str(course / 'secret')!r}) if os.access({str(course / 'secret')!r}, os.R_OK) else 'no listing')"
    )
    assert "hidden" not in out, out
    lines = out.strip().splitlines()
    assert lines[0] in ("FileNotFoundError", "PermissionError")
    assert lines[1] == "PermissionError"
    assert lines[2] == "anyone may read this"  # the same kind of file, not hidden: readable
    assert lines[3] in ("[]", "no listing")


@root_only
def test_the_kernel_cannot_write_outside_its_working_dir(kernel, course):
    out = kernel.ok(
        "import os, sys\n"
        f"for d in [{str(course / 'outside')!r}, {str(course)!r}, sys.prefix, '/etc']:\n"
        "    try:\n"
        "        open(os.path.join(d, 'planted.txt'), 'w').write('x'); print('wrote', d)\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
        "open('result.txt', 'w').write('mine'); print(open('data.txt').read())"
    )
    assert "wrote" not in out, out
    assert out.strip().splitlines()[-1] == "the student's data"
    assert not (course / "outside" / "planted.txt").exists()
    assert (course / "work" / "result.txt").read_text() == "mine"


@root_only
def test_the_kernel_sees_only_its_own_processes_and_an_empty_tmp(kernel):
    out = kernel.ok(
        "import os\n"
        "print(len({int(p) for p in os.listdir('/proc') if p.isdigit()} - {os.getpid()}))\n"
        "print(os.listdir('/tmp'))"
    )
    others, tmp = out.strip().splitlines()
    assert int(others) < 5  # its own helper processes at most, not the host's
    # Empty, but for the way to the kernel's own Python when that lives under /tmp.
    kept = {
        Path(p).relative_to("/tmp").parts[0] for p in interpreter_paths() if p.startswith("/tmp/")
    }
    assert tmp == str(sorted(kept))


# ---------------------------------------------------------------------- clean-up
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


def test_a_notebook_runs_through_nbclient_with_this_kernel_manager(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import numpy as np, os"),
        nbformat.v4.new_code_cell(
            "try:\n    np.ones(2 * 2**30 // 8)\nexcept MemoryError:\n    print('caught')"
        ),
        nbformat.v4.new_code_cell("print(os.getuid(), os.environ['OMP_NUM_THREADS'])"),
    ]
    config = Config()
    config.SandboxedKernelManager.memory_bytes = 1 * GiB
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        kernel_manager_class="autograder.sandbox.SandboxedKernelManager",
        resources={"metadata": {"path": str(tmp_path)}},
        config=config,
    )
    client.execute()
    assert nb.cells[1].outputs[0]["text"] == "caught\n"
    uid, threads = nb.cells[2].outputs[0]["text"].split()
    assert threads == "1"
    assert (uid != "0") if ROOT else (uid == str(os.getuid()))


def test_the_client_is_ready_at_once_and_misses_no_output(tmp_path):
    """Ready as soon as IOPub carries our own request's status: the first cell's output
    arrives in full, kernel after kernel (a lost subscription would lose it)."""

    async def scenario() -> list[str]:
        seen = []
        for number in range(3):
            km, kc = await start(tmp_path, Sandbox())
            try:
                assert isinstance(kc, PromptKernelClient)
                seen.append((await run_cell(kc, f"print('kernel {number}')", timeout=10)).stdout)
            finally:
                await stop(km, kc)
        return seen

    assert asyncio.run(scenario()) == [f"kernel {n}\n" for n in range(3)]


CHATTER = (
    "import sys, threading, time\n"
    "def chatter():\n"
    "    while True:\n"
    "        print('.', end=''); sys.stdout.flush(); time.sleep(0.05)\n"
    "threading.Thread(target=chatter, daemon=True).start()"
)


def test_a_kernel_that_never_falls_silent_does_not_stall_a_new_client(tmp_path):
    """jupyter_client's own client waits for 0.2 s of silence on IOPub, which a kernel
    printing from a thread never gives it; ours is ready all the same."""

    async def ready(km, client_class) -> bool:
        kc = client_class(parent=km, **km.get_connection_info(session=True))
        kc.start_channels()
        try:
            await asyncio.wait_for(kc.wait_for_ready(timeout=20), timeout=3)
            return True
        except TimeoutError:
            return False
        finally:
            kc.stop_channels()

    async def scenario() -> tuple[bool, bool]:
        km, kc = await start(tmp_path, Sandbox())
        try:
            assert (await run_cell(kc, CHATTER)).error is None
            return await ready(km, PromptKernelClient), await ready(km, AsyncKernelClient)
        finally:
            await stop(km, kc)

    ours, stock = asyncio.run(scenario())
    assert ours
    assert not stock  # the control: the stock client is still waiting for silence


class FakeChannel:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def get_msg(self, timeout: float) -> dict:
        if self.messages:
            return self.messages.pop(0)
        await asyncio.sleep(timeout)
        raise Empty


class LateStatusClient(PromptKernelClient):
    """A slow link: IOPub delivers each request's status only after the next request."""

    def __init__(self) -> None:
        super().__init__()
        self.fake_shell, self.fake_iopub, self.sent = FakeChannel(), FakeChannel(), []

    shell_channel = property(lambda self: self.fake_shell)
    iopub_channel = property(lambda self: self.fake_iopub)

    def kernel_info(self) -> str:
        msg_id = f"request-{len(self.sent)}"
        if self.sent:  # the previous request's status arrives now, one request late
            self.fake_iopub.messages.append({"parent_header": {"msg_id": self.sent[-1]}})
        self.sent.append(msg_id)
        content = {"protocol_version": "5.3"}
        self.fake_shell.messages.append({"parent_header": {"msg_id": msg_id}, "content": content})
        return msg_id

    async def _async_is_alive(self) -> bool:
        return True


def test_a_status_that_comes_late_still_counts():
    """Under load IOPub may lag behind every request: an answer to any earlier kernel_info
    proves the subscription, so asking again never turns into asking forever."""
    client = LateStatusClient()
    asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=5), timeout=10))
    assert len(client.sent) == 2


def test_waiting_for_a_dead_kernel_fails_at_once(tmp_path):
    async def scenario() -> float:
        km, kc = await start(tmp_path, Sandbox())
        kc.stop_channels()
        os.kill(km.provisioner.pid, 9)
        late = km.client()
        late.start_channels()
        started = time.monotonic()
        try:
            with pytest.raises(RuntimeError, match="died"):
                await late.wait_for_ready(timeout=30)
            return time.monotonic() - started
        finally:
            late.stop_channels()
            await km.shutdown_kernel(now=True)

    assert asyncio.run(scenario()) < 10


# -------------------------------------------------------------- describe, config
def test_describe_says_what_is_applied():
    line = Sandbox(limits=Limits(memory_bytes=GiB), hidden_paths=(Path("/x"),)).describe()
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
        assert "not applied" not in line and Sandbox().not_applied() == ""
    else:
        assert "not applied" in line and Sandbox().not_applied().startswith(
            "Student kernels run without"
        )
    off = Sandbox(isolate=False)
    assert "not applied" in off.describe() and "isolate=False" in off.not_applied()


def test_limits_are_configurable_through_traitlets():
    config = Config()
    config.SandboxedKernelManager.memory_bytes = 2 * GiB
    config.SandboxedKernelManager.cpu_seconds = 30
    config.SandboxedKernelManager.hidden_paths = ["/course/source", "/course/gradebook.db"]
    km = SandboxedKernelManager(kernel_name="python3", config=config)
    assert km.sandbox.limits == Limits(memory_bytes=2 * GiB, cpu_seconds=30)
    assert km.sandbox.hidden_paths == (Path("/course/source"), Path("/course/gradebook.db"))


def test_concurrent_kernels_get_different_slots(tmp_path):
    root = runtime_root(tmp_path)
    first, fd = acquire_slot(root, 4)
    try:
        second, fd2 = acquire_slot(root, 4)  # another manager in this process
        os.close(fd2)
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "from autograder.sandbox import acquire_slot\n"
                f"import pathlib; print(acquire_slot(pathlib.Path({str(root)!r}), 4)[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert second != first and int(other.stdout) != first
    finally:
        os.close(fd)
    assert stat.S_IMODE(root.stat().st_mode) in (0o700, 0o755)


def test_kill_refuses_root_and_own_uid():
    for uid in {0, os.getuid()}:
        with pytest.raises(ValueError):
            kill_sandbox_processes(uid=uid)
