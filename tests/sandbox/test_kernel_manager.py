"""The jupyter_client adapters (autograder.sandbox.kernel_manager): configured by traitlets,
driven by nbclient, and a client that is ready as soon as the kernel has answered."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from jupyter_client.asynchronous import AsyncKernelClient
from nbclient import NotebookClient
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from autograder.sandbox import PromptKernelClient, SandboxedKernelManager
from autograder.sandbox.policy import Limits, Sandbox

from .kernels import ROOT, GiB, run_cell, start, stop


def test_limits_are_configurable_through_traitlets():
    config = Config()
    config.SandboxedKernelManager.memory_bytes = 2 * GiB
    config.SandboxedKernelManager.cpu_seconds = 30
    config.SandboxedKernelManager.hidden_paths = ["/course/source", "/course/gradebook.db"]
    km = SandboxedKernelManager(kernel_name="python3", config=config)
    assert km.sandbox.limits == Limits(memory_bytes=2 * GiB, cpu_seconds=30)
    assert km.sandbox.hidden_paths == (Path("/course/source"), Path("/course/gradebook.db"))


def test_the_dotted_names_in_configuration_still_resolve():
    """nbgrader's config and ProtectedExecute name these by string, not by import."""
    km = SandboxedKernelManager(kernel_name="python3")
    assert import_item("autograder.sandbox.SandboxedKernelManager") is SandboxedKernelManager
    assert import_item(km.client_class) is PromptKernelClient


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
            with pytest.raises(RuntimeError, match=r"died .*\(killed by signal 9\)"):
                await late.wait_for_ready(timeout=30)
            return time.monotonic() - started
        finally:
            late.stop_channels()
            await km.shutdown_kernel(now=True)

    assert asyncio.run(scenario()) < 10


def test_a_runtime_dir_too_deep_for_unix_sockets_is_refused_before_the_kernel_starts(tmp_path):
    """ZeroMQ binds the isolated kernel's sockets in its private dir: a path over 107 bytes
    fails there ("File name too long"). The manager refuses first, and says what to change."""
    from autograder.sandbox.capabilities import Protection
    from autograder.sandbox.policy import SandboxUnavailable

    km = SandboxedKernelManager(kernel_name="python3")
    protection = km.run_protection()
    if not protection.mode.isolated:
        pytest.skip(f"no namespaces here ({protection.level}): the kernel uses TCP")
    deep = tmp_path / ("d" * 90)
    km.runtime_root = str(deep)
    with pytest.raises(SandboxUnavailable, match="shorter path") as refused:
        asyncio.run(km._async_pre_start_kernel(Protection.from_json(protection.to_json())))
    assert str(deep) in str(refused.value)
    assert not km.has_kernel and not [p for p in deep.iterdir() if p.name.startswith("u")]
