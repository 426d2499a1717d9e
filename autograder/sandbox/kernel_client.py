"""The kernel client the sandboxed kernels get: ready as soon as the kernel has answered."""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient


class PromptKernelClient(AsyncKernelClient):
    """An AsyncKernelClient that is ready as soon as the kernel has answered on both channels.

    jupyter_client's ``wait_for_ready`` ends by listening to IOPub until it has been silent
    for 0.2 s, an idle core on every kernel start. The proof it wants (IOPub is subscribed)
    is the kernel's status message for our own ``kernel_info`` request; whatever else is
    left on IOPub is harmless, since nbclient and the probes read only their own replies.
    """

    ready_reply: dict[str, Any] | None = None  # the kernel_info reply that proved it ready

    async def _prompt_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        asked: set[str] = set()  # every kernel_info sent: a late answer to any of them counts
        reply = None
        while True:
            asked.add(self.kernel_info())
            reply = reply or await self._answer(asked, "shell", 1.0)
            # A status published before our subscription reached the kernel is lost (ZeroMQ's
            # "slow joiner"); when none comes at once, ask again rather than wait long.
            if reply is not None and await self._answer(asked, "iopub", 0.05) is not None:
                self._handle_kernel_info_reply(reply)
                self.ready_reply = reply
                return
            if not await self._async_is_alive():
                raise RuntimeError(
                    f"Kernel died before replying to kernel_info{self._how_it_ended()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    wait_for_ready = _prompt_wait_for_ready

    def _how_it_ended(self) -> str:
        """ " (killed by signal 9)", " (exit status 1)", or "" when unknown: what tells a
        kernel killed from outside from one that failed on its own."""
        process = getattr(getattr(self.parent, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return ""
        return f" (killed by signal {-code})" if code < 0 else f" (exit status {code})"

    async def _answer(self, asked: set[str], channel: str, timeout: float) -> dict[str, Any] | None:
        """The first message on ``channel`` answering one of ``asked``, or None after ``timeout``."""
        queue = self.shell_channel if channel == "shell" else self.iopub_channel
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await queue.get_msg(timeout=left)
            except Empty:
                return None
            if message.get("parent_header", {}).get("msg_id") in asked:
                return message
        return None
