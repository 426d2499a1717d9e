"""Kernels forked from the fork server (autograder.sandbox.forked, fork_server): the same
kernel an exec would start, from a state no submission touched, holding nothing of the
server, and gone with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from autograder.sandbox import SandboxedKernelManager, SandboxUnavailable, forked
from autograder.sandbox import kernel_manager as manager_module
from autograder.sandbox.capabilities import decide
from autograder.sandbox.policy import TOKEN_VAR, Sandbox, startup_env

from .kernels import ROOT, gone, run_cell, start, stop

# What a kernel reports about itself; the private dir (its own per kernel) reads as <PRIV>.
FACTS = r"""
import json, os, resource, signal, site, sys, tempfile
from IPython import get_ipython
priv = os.environ["HOME"].rsplit("/", 1)[0]
def rel(value):
    return json.loads(json.dumps(value).replace(priv, "<PRIV>"))
def link(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}").split(":")[0]
    except OSError:
        return None
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
cmdline = open("/proc/self/cmdline", "rb").read().decode().rstrip("\0").replace("\0", " ").split(" ")
shell = get_ipython()
# Open only while IPython's history thread writes this cell's input (sqlite's journal, and
# its folder while it syncs it): when, depends on the thread's timing, not on the start.
history = shell.history_manager.hist_file
transient = {f"{history}-journal", f"{history}-wal", os.path.dirname(history)}
facts = {
    "sys.path": sys.path, "argv": rel(sys.argv[1:]), "cwd": rel(os.getcwd()),
    "tempdir": rel(tempfile.gettempdir()), "ipython_dir": rel(shell.ipython_dir),
    "profile": rel(shell.profile_dir.location), "user_site": rel([site.USER_BASE, site.USER_SITE]),
    "flags": repr(sys.flags), "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
    "no_new_privs": status["NoNewPrivs"].strip(), "umask": os.umask(0o22),
    "session_leader": os.getsid(0) == os.getpid(), "init_parent": os.getppid() == 1,
    "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")},
    "signals": {s: repr(signal.getsignal(getattr(signal, s))) for s in ("SIGINT", "SIGTERM", "SIGCHLD", "SIGPIPE", "SIGHUP", "SIGQUIT")},
    "environ": rel({k: v for k, v in os.environ.items() if k not in ("JPY_PARENT_PID", "AUTOGRADER_SANDBOX_TOKEN")}),
    "proc_environ_token": f"{os.environ['AUTOGRADER_SANDBOX_TOKEN']}" in open("/proc/self/environ").read(),
    "cmdline": rel(cmdline[1:]), "mounts": rel(sorted({l.split()[4] for l in open("/proc/self/mountinfo")})),
    "fd_kinds": rel(sorted({link(fd) for fd in os.listdir("/proc/self/fd") if fd != "0"} - {None} - transient)),
    "main": sys.modules["__main__"].__name__, "tracing": __import__("tracemalloc").is_tracing(),
}
print(json.dumps(facts))
"""


async def _start(cwd: Path, sandbox: Sandbox, fork: bool) -> tuple[SandboxedKernelManager, object]:
    return await start(cwd, sandbox, fork_kernels=fork)


async def _facts(kc) -> dict:
    out = await run_cell(kc, FACTS)
    assert out.error is None, out.error
    return json.loads(out.stdout)


def _slot_neutral(facts: dict, km: SandboxedKernelManager) -> dict:
    """The facts with the kernel's slot (its uid, its user name) read as <SLOT>: two kernels
    started one after the other may get different slots (other runs hold some)."""
    text = json.dumps(facts).replace(f'"student{km.slot}"', '"student<SLOT>"')
    neutral = json.loads(text)
    neutral["ids"] = [i if i != km.kernel_uid else "<SLOT>" for i in neutral["ids"][:3]]
    neutral["ids"].append(facts["ids"][3])
    return neutral


def _server(km: SandboxedKernelManager) -> psutil.Process:
    return psutil.Process(km.provisioner.process._server.process.pid)


def test_a_forked_kernel_is_the_kernel_an_exec_would_start(course):
    """The same paths, ids, limits, signals, environment (in os.environ and in /proc), command
    line, mounts and kinds of open files; only how it was started differs."""

    async def scenario() -> tuple[dict, dict, list[str]]:
        sandbox = Sandbox(hidden_paths=(course / "secret",))
        started = []
        facts = []
        for fork in (True, False):
            km, kc = await _start(course / "work", sandbox, fork)
            started.append(km.kernel_start)
            facts.append(_slot_neutral(await _facts(kc), km))
            await stop(km, kc)
        return facts[0], facts[1], started

    forked_facts, exec_facts, started = asyncio.run(scenario())
    assert started == ["forked", "exec"]
    assert forked_facts["proc_environ_token"] and not forked_facts["tracing"]
    for name, value in exec_facts.items():
        assert forked_facts[name] == value, name


def test_kernels_forked_from_one_server_draw_different_random_numbers(course):
    code = (
        "import random, numpy as np\n"
        "print(random.random(), np.random.random(), int(np.random.get_state()[1][0]))"
    )

    async def scenario() -> list[str]:
        draws = []
        for _ in range(2):
            km, kc = await _start(course / "work", Sandbox(), True)
            assert km.kernel_start == "forked"
            out = await run_cell(kc, code)
            assert out.error is None, out.error
            draws.append(out.stdout)
            await stop(km, kc)
        return draws

    first, second = (draw.split() for draw in asyncio.run(scenario()))
    assert all(a != b for a, b in zip(first, second, strict=True)), (first, second)


def test_a_forked_kernel_holds_nothing_of_the_server(course):
    """It is the server's child, not the grader's, and holds none of the server's files: not
    its socket (no way to ask for a fork), nor a pidfd of another kernel, nor the paths the
    plan opened before it covered them."""

    async def scenario() -> None:
        first = await _start(course / "work", Sandbox(), True)
        km, kc = await _start(course / "work", Sandbox(), True)
        server = _server(km)
        kernel = psutil.Process(km.provisioner.pid)
        assert kernel.ppid() == server.pid and server.ppid() == os.getpid()
        assert server.num_threads() == 1
        servers = {
            os.readlink(f"/proc/{server.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{server.pid}/fd")
        }
        kernels = {
            os.readlink(f"/proc/{kernel.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{kernel.pid}/fd")
        }
        assert not {s for s in servers if s.startswith(("socket:", "anon_inode:[pidfd]"))} & kernels
        assert not [k for k in kernels if "pidfd" in k]
        kinds = (await _facts(kc))["fd_kinds"]
        outside = [k for k in kinds if k.startswith("/") and not k.startswith(("/dev/", "/tmp/"))]
        assert outside == [], outside  # the private dir reads as <PRIV>
        if ROOT:
            assert kernel.uids().real == km.kernel_uid != server.uids().real == 0
        await stop(km, kc)
        await stop(*first)

    asyncio.run(scenario())


def test_the_server_forks_only_when_clean():
    """One thread, no tracemalloc and no file open but its socket and standard streams:
    else it refuses, saying why (and the kernel is started by exec)."""
    script = textwrap.dedent(
        f"""
        import importlib.util, json, os, threading, time, tracemalloc
        spec = importlib.util.spec_from_file_location("server", {str(forked.SERVER)!r})
        server = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(server)
        answers = [server._unclean(set(), [])]
        thread = threading.Thread(target=time.sleep, args=(2,))
        thread.start()
        answers.append(server._unclean(set(), []))
        thread.join()
        # join() returns before the OS thread has exited: wait until /proc lists one task.
        deadline = time.monotonic() + 10
        while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        tracemalloc.start()
        answers.append(server._unclean(set(), []))
        tracemalloc.stop()
        kept = open(os.devnull)
        answers.append(server._unclean(set(), []))
        print(json.dumps(answers))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    clean, threaded, tracing, holding = json.loads(done.stdout)
    assert clean is None
    assert threaded == "the fork server runs 2 threads"
    assert tracing == "the fork server traces its memory"
    assert holding.startswith("the fork server holds open files") and "/dev/null" in holding


def test_a_forked_kernel_ends_with_its_server(course):
    """Killed with the server (the grading process gone), a kernel does not outlive it; the
    next kernel gets a new server."""

    async def scenario() -> tuple[int, int]:
        km, kc = await _start(course / "work", Sandbox(), True)
        server, kernel = _server(km), km.provisioner.pid
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 10
        while not gone(kernel) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        alive = not gone(kernel)
        await stop(km, kc)
        km2, kc2 = await _start(course / "work", Sandbox(), True)
        assert km2.kernel_start == "forked" and _server(km2).pid != server.pid
        await stop(km2, kc2)
        return alive, kernel

    alive, kernel = asyncio.run(scenario())
    assert not alive, f"kernel {kernel} outlived its server"


def test_the_server_and_its_kernels_end_with_the_grading_process(tmp_path):
    """The grading process dies without cleaning up: its server sees its socket close, kills
    the kernels it forked, and exits."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from autograder.sandbox import SandboxedKernelManager
        async def main():
            km = SandboxedKernelManager(kernel_name="python3")
            await km.start_kernel(cwd={str(tmp_path)!r})
            print(km.provisioner.process._server.process.pid, km.provisioner.pid, flush=True)
            os._exit(0)  # no clean-up at all
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    server, kernel = (int(pid) for pid in done.stdout.split())
    deadline = time.monotonic() + 15
    while not (gone(server) and gone(kernel)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(server) and gone(kernel)


def test_a_step_that_fails_after_fork_stops_the_launch(tmp_path, monkeypatch):
    """The child's own words for the failed step reach the grader on the report pipe, no
    kernel runs, and nothing is left of the attempts."""
    protection = decide(Sandbox()).to_json()
    real_plan = manager_module.launch_plan

    def failing_plan(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        plan["cwd"] = "/nonexistent/sandbox-step-fails"
        return plan

    monkeypatch.setattr(manager_module, "launch_plan", failing_plan)
    monkeypatch.setattr(manager_module.capabilities, "check", lambda level, sandbox: None)
    km = SandboxedKernelManager(
        kernel_name="python3", runtime_root=str(tmp_path / "run"), protection=protection
    )
    (tmp_path / "work").mkdir()
    with pytest.raises(SandboxUnavailable, match="FileNotFoundError") as raised:
        asyncio.run(km.start_kernel(cwd=str(tmp_path / "work")))
    assert f"in {manager_module.LAUNCH_ATTEMPTS} slots" in str(raised.value)
    assert km.kernel_start == "forked"  # the last attempt too: no exec behind its back
    server = next(iter(forked._servers.values()))
    assert psutil.Process(server.process.pid).children() == []  # every attempt reaped
    assert list((tmp_path / "run").glob("[ku]*-*")) == []


def test_an_orphan_of_a_forked_kernel_carries_its_token_and_is_killed(course):
    """A process the kernel forked (no exec) and detached: found by the token the clean-up
    looks for, in /proc/<pid>/environ as in a kernel started by exec, and killed."""

    async def scenario() -> tuple[int, str, SandboxedKernelManager]:
        km, kc = await _start(course / "work", Sandbox(), True)
        out = await run_cell(
            kc,
            "import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.setsid()\n"
            "    if os.fork():\n"
            "        os._exit(0)\n"
            "    time.sleep(300)\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)",
        )
        assert out.error is None, out.error
        kernel = psutil.Process(km.provisioner.pid)
        orphans = [
            p
            for p in psutil.process_iter(["environ"])
            if p.pid != kernel.pid and (p.info["environ"] or {}).get(TOKEN_VAR) == km._token
        ]
        assert len(orphans) == 1, orphans
        orphan = orphans[0]
        token = orphan.info["environ"][TOKEN_VAR]
        await stop(km, kc)
        return orphan.pid, token, km

    orphan, token, _km = asyncio.run(scenario())
    time.sleep(0.1)
    assert token and gone(orphan)


def test_the_graders_environment_reaches_neither_server_nor_kernel(course, monkeypatch):
    monkeypatch.setenv("FORK_SERVER_TEST_SECRET", "grader-only")
    server = forked.ForkServer(startup_env(Sandbox().kernel_env(os.environ, Path("/"), "t")))
    try:
        server._request({"op": "reap", "pid": 1})  # answered once its imports are done
        environ = Path(f"/proc/{server.process.pid}/environ").read_bytes()
        assert b"FORK_SERVER_TEST_SECRET" not in environ and b"MALLOC_ARENA_MAX=2" in environ
    finally:
        server.close()

    async def scenario() -> dict:
        km, kc = await _start(course / "work", Sandbox(), True)
        facts = await _facts(kc)
        environ = Path(f"/proc/{km.provisioner.pid}/environ").read_bytes()
        await stop(km, kc)
        assert b"FORK_SERVER_TEST_SECRET" not in environ
        return facts

    assert "FORK_SERVER_TEST_SECRET" not in asyncio.run(scenario())["environ"]
