"""Running one request in the kernel under a time limit, enforced from this process.

A cell gets the least of its own limit, what is left of the notebook's and what is left
of the student's (:class:`Budget`). Past it the kernel is interrupted; one that has not
answered ``interrupt_grace`` seconds later is killed (``ProtectedExecute._execute_within``),
and :class:`Ending` says which of these happened. A kernel's start gets a limit too
(:func:`start_within`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from queue import Empty
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder import running

# Seconds to let nbclient notice a killed kernel (it looks every second) before giving up on it.
KILL_SETTLE = 5.0
STOP_POLL = 0.1  # seconds between looks at whether the run stopped, while a kernel starts


class KernelNotAnswering(Exception):
    """The kernel did not finish a request of the grader's in the time it had."""


class KernelDidNotStart(Exception):
    """The kernel did not start and answer within the time it had (``limit`` set it)."""

    def __init__(self, seconds: float, limit: str) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds, self.limit = seconds, limit


async def start_within(
    start: Coroutine[Any, Any, None],
    seconds: float,
    limit: str,
    kill: Callable[[], Awaitable[None]],
) -> None:
    """Await ``start`` (a kernel's start, until it answers) for at most ``seconds``; then
    cancel it, ``kill()`` whatever of the kernel started, and raise KernelDidNotStart. A
    stopped grading (:mod:`autograder.running`) does not wait for it either."""
    task = asyncio.ensure_future(start)
    deadline = time.monotonic() + seconds
    while not running.stopped():
        if await settles(task, min(STOP_POLL, deadline - time.monotonic())):
            task.result()  # its error, if it failed
            return
        if time.monotonic() >= deadline:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await kill()
    running.check()
    raise KernelDidNotStart(seconds, limit)


@dataclass
class Budget:
    """When the notebook's and the student's time run out (``time.monotonic()``)."""

    notebook_end: float
    student_end: float

    def next(self, step: float, step_limit: str = "cell") -> tuple[float, str]:
        """Seconds the next step may take, and the limit that sets them (the nearest)."""
        now = time.monotonic()
        return min(
            [
                (step, step_limit),
                (self.notebook_end - now, "notebook"),
                (self.student_end - now, "student"),
            ],
            key=lambda option: option[0],
        )


@dataclass(frozen=True)
class Ending:
    """How a cell run under a limit ended."""

    kind: str  # "done", "interrupted" (answered the interrupt), "killed", "died", "no-iopub"
    interrupted: bool = False
    detail: str = ""


async def settles(task: asyncio.Future[Any], seconds: float) -> bool:
    done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    return bool(done)


def ending_of(task: asyncio.Future[Any], ok: str, interrupted: bool) -> Ending:
    error = task.exception()
    if error is None:
        return Ending(ok, interrupted)
    if isinstance(error, DeadKernelError):
        return Ending("died", interrupted)
    if isinstance(error, CellTimeoutError):  # nbclient: the reply came, IOPub fell silent
        return Ending("no-iopub", interrupted, str(error).splitlines()[0])
    raise error


async def run_hidden(kc: Any, code: str, timeout: float) -> str:
    """Run code in the kernel outside the notebook: no history, no cell; return its stdout.

    KernelNotAnswering when the kernel has not finished it within ``timeout``;
    DeadKernelError when the kernel is gone.
    """
    msg_id = kc.execute(code, silent=False, store_history=False, allow_stdin=False)
    stdout: list[str] = []
    deadline = time.monotonic() + timeout
    idle = False
    while not idle:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KernelNotAnswering(f"no answer within {timeout:g} s")
        try:
            message = await kc.iopub_channel.get_msg(timeout=remaining)
        except Empty:
            if not await kc.is_alive():
                raise DeadKernelError("Kernel died") from None
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        content = message["content"]
        if message["msg_type"] == "stream" and content.get("name") == "stdout":
            stdout.append(content["text"])
        idle = message["msg_type"] == "status" and content["execution_state"] == "idle"
    while time.monotonic() < deadline:  # drain the matching shell reply
        try:
            reply = await kc.shell_channel.get_msg(timeout=max(0.01, deadline - time.monotonic()))
        except Empty:
            break
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    return "".join(stdout)
