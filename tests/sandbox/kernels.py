"""Start, use and stop real sandboxed kernels in tests (fixtures: conftest.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import psutil
import pytest

from autograder.sandbox import SandboxedKernelManager
from autograder.sandbox.policy import Limits, Sandbox

from ..conftest import CellRun, collect_into

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root: a dedicated uid and namespaces")
GiB = 2**30


async def run_cell(kc, code: str, timeout: float = 30) -> CellRun:
    cell = CellRun()
    await kc.execute_interactive(code, output_hook=collect_into(cell), timeout=timeout)
    return cell


async def start(
    cwd: Path, sandbox: Sandbox, **traits: object
) -> tuple[SandboxedKernelManager, object]:
    """A ready kernel and its client; ``traits``: more of the manager's settings."""
    km = SandboxedKernelManager(kernel_name="python3", sandbox=sandbox, **traits)
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


class Shared:
    """One sandboxed kernel for the checks that only read, run on its own event loop."""

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
