"""jupyter_client adapters: a kernel manager whose kernels run sandboxed, a prompt client.

Use it from nbgrader's configuration::

    c.Execute.kernel_manager_class = "autograder.sandbox.SandboxedKernelManager"
    c.SandboxedKernelManager.memory_bytes = 2 * 2**30
    c.SandboxedKernelManager.hidden_paths = ["source", "gradebook.db", "submitted", "tests"]

Each kernel takes a slot (:mod:`.slots`), gets a private dir (HOME, TMPDIR, connection file,
IPC sockets), an allow-listed environment (:mod:`.policy`) and is started through the
launcher (:mod:`.namespaces`, :mod:`.launcher`); whenever the manager cleans up, also after
the kernel died, what it left is killed and its working dir given back (:mod:`.cleanup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import Bool, DottedObjectName, Instance, Integer, List, Type, Unicode, default

from autograder.sandbox import capabilities
from autograder.sandbox.cleanup import (
    check_chownable,
    chown_tree,
    give_back,
    kill_sandbox_processes,
)
from autograder.sandbox.namespaces import (
    interpreter_paths,
    launch_plan,
    launcher_command,
    real,
    under,
)
from autograder.sandbox.policy import (
    DEFAULT_BASE_UID,
    Limits,
    Mode,
    Sandbox,
    SandboxUnavailable,
    forced_env,
)
from autograder.sandbox.slots import acquire_slot, runtime_root


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
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    wait_for_ready = _prompt_wait_for_ready

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


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run in a :class:`Sandbox`.

    Configure with traits (``c.SandboxedKernelManager.memory_bytes = ...``) or pass
    ``sandbox=Sandbox(...)``, which then takes precedence over the limit traits.
    """

    memory_bytes = Integer(Limits.memory_bytes, config=True, help="RLIMIT_AS of a kernel (bytes).")
    cpu_seconds = Integer(
        Limits.cpu_seconds,
        config=True,
        help="RLIMIT_CPU of a kernel (s). ProtectedExecute sets it from its time limits "
        "(autograder.limits.TimeLimits.cpu_seconds), so that it never fires before them.",
    )
    max_processes = Integer(
        Limits.max_processes, config=True, help="RLIMIT_NPROC (with a dedicated uid only)."
    )
    max_file_bytes = Integer(Limits.max_file_bytes, config=True, help="RLIMIT_FSIZE (bytes).")
    max_open_files = Integer(Limits.max_open_files, config=True, help="RLIMIT_NOFILE.")
    hidden_paths = List(
        Unicode(), config=True, help="Files and directories the kernel must not see."
    )
    isolate = Bool(
        None,
        allow_none=True,
        config=True,
        help="None: isolate when root; True: require isolation; False: limits and env only.",
    )
    base_uid = Integer(
        DEFAULT_BASE_UID, config=True, help="A kernel in slot N runs as uid base_uid+N."
    )
    max_slots = Integer(64, config=True, help="How many sandboxed kernels may run at once.")
    runtime_root = Unicode(
        "", config=True, help="Slot locks and kernels' private dirs (default: /run/...)."
    )
    env_passthrough = List(
        Unicode(), config=True, help="More environment variable names a kernel may see."
    )
    slot = Integer(None, allow_none=True, config=True, help="Fixed slot (default: first free).")
    sandbox = Instance(Sandbox, allow_none=False)
    client_class = DottedObjectName("autograder.sandbox.PromptKernelClient", config=True)
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient, config=True)

    @default("sandbox")
    def _sandbox_default(self) -> Sandbox:
        return Sandbox(
            limits=Limits(
                memory_bytes=self.memory_bytes,
                cpu_seconds=self.cpu_seconds,
                max_processes=self.max_processes,
                max_file_bytes=self.max_file_bytes,
                max_open_files=self.max_open_files,
            ),
            hidden_paths=tuple(Path(p) for p in self.hidden_paths),
            isolate=self.isolate,
            base_uid=self.base_uid,
        )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slot_fd: int | None = None
        self._private_dir: Path | None = None
        self._kernel_uid: int | None = None
        self._token = uuid.uuid4().hex
        self._work: Path | None = None
        self._owners: dict[str, tuple[int, int]] | None = None
        self._fixed_slot = self.slot
        self._kernel_started: float | None = None

    @property
    def kernel_uid(self) -> int | None:
        """The uid the kernel runs as, when it has a dedicated one."""
        return self._kernel_uid

    @property
    def private_dir(self) -> Path | None:
        """The kernel's own dir (HOME, TMPDIR, connection file, IPC sockets)."""
        return self._private_dir

    @property
    def sandbox_description(self) -> str:
        """One line for the grading record: what is applied, what is not and why."""
        return capabilities.describe(self.sandbox)

    # ------------------------------------------------------------------ start
    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        try:
            return await self._sandbox_pre_start(**kw)
        except BaseException:
            if not self.has_kernel:  # nothing started: give back the slot and the dirs
                self._finish()
            raise

    pre_start_kernel = _async_pre_start_kernel

    async def _sandbox_pre_start(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        sandbox = self.sandbox
        mode = capabilities.decide_mode(sandbox)
        root = runtime_root(self.runtime_root or None)
        self._take_slot(root)
        uid = self._claim_uid(mode)
        self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
        kw.pop("kernel_id", None)
        private = self._make_private_dir(root, uid)
        mask_file = root / "masked"
        if not mask_file.exists():
            mask_file.touch(mode=0)
        if mode.isolated:  # no network: ZeroMQ over Unix sockets in the private dir
            self.transport = "ipc"
            self.ip = str(private / "ipc")
            self.cache_ports = False
        self.connection_file = str(private / "kernel.json")
        if not kw.get("cwd"):  # never hand the grader's own cwd to a kernel
            (private / "work").mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(private / "work", uid, uid)
            kw["cwd"] = str(private / "work")
        cwd = Path(real(kw["cwd"]))
        if uid is not None and self._owners is None and not under(str(cwd), str(private)):
            self._lend_working_dir(cwd, uid, root)
        kw["env"] = sandbox.kernel_env(
            kw.get("env") or os.environ, private, self._token, self.env_passthrough, self.slot
        )
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        kw["env"].update(forced_env(private, self._token, self.slot))  # kernelspec env cannot undo
        if uid is not None:
            os.chown(self.connection_file, uid, uid)
        plan = launch_plan(
            sandbox, mode=mode, cwd=cwd, private_dir=private, mask_file=mask_file, uid=uid
        )
        return launcher_command(cmd, plan), kw

    def _take_slot(self, root: Path) -> None:
        if self._slot_fd is None:
            self.slot, self._slot_fd = acquire_slot(root, self.max_slots, self._fixed_slot)
            for stale in root.glob(f"k{self.slot}-*"):  # its owner died without cleaning up
                shutil.rmtree(stale, ignore_errors=True)

    def _claim_uid(self, mode: Mode) -> int | None:
        """The slot's uid when the kernel gets a dedicated one; whatever it ran is killed."""
        uid = self.sandbox.uid_for(self.slot) if mode.dedicated_uid else None
        self._kernel_uid = uid
        if uid is not None:
            with contextlib.suppress(KeyError):
                user = pwd.getpwuid(uid).pw_name
                raise SandboxUnavailable(
                    f"uid {uid} belongs to the user {user!r}; choose another base_uid"
                )
            kill_sandbox_processes(uid=uid)  # left by a grader that crashed
        return uid

    def _make_private_dir(self, root: Path, uid: int | None) -> Path:
        private = root / f"k{self.slot}-{self.kernel_id[:8]}"
        self._private_dir = private
        for sub in ("", "home", "tmp"):
            (private / sub).mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(private / sub, uid, uid)
        return private

    def _lend_working_dir(self, cwd: Path, uid: int, root: Path) -> None:
        """The notebook's folder belongs to the kernel's uid for the run (see _finish)."""
        protected = [*interpreter_paths(), str(root)]
        check_chownable(str(cwd), protected)
        self._work = cwd
        hidden = [real(p) for p in self.sandbox.hidden_paths]
        self._owners = chown_tree(cwd, uid, skip=[*protected, *hidden])

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        with contextlib.suppress(psutil.Error, AttributeError, TypeError):
            self._kernel_started = psutil.Process(self.provisioner.pid).create_time()
        await super()._async_post_start_kernel(**kw)

    post_start_kernel = _async_post_start_kernel

    async def _async_wait(self, pollinterval: float = 0.01) -> None:
        # jupyter_client checks a dying kernel every 0.1 s; a killed one is gone in milliseconds.
        await super()._async_wait(pollinterval=min(pollinterval, 0.01))

    # ------------------------------------------------------------------ clean-up
    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            await self.kill_leftovers()
            if not restart:
                self._finish()

    cleanup_resources = _async_cleanup_resources

    async def kill_leftovers(self) -> list[int]:
        """Kill everything the kernel and the student's code started; reap the kernel."""
        pid = self.provisioner.pid if self.provisioner is not None else None
        if pid is None and self._kernel_uid is None:
            return []
        killed = await asyncio.to_thread(
            kill_sandbox_processes,
            uid=self._kernel_uid,
            pid=pid,
            pid_started=self._kernel_started,
            # no dedicated uid: find orphans (new sessions) by the token in their environment
            token=self._token if self._kernel_uid is None else None,
        )
        provisioner = self.provisioner
        if provisioner is not None and provisioner.has_process:
            with contextlib.suppress(Exception):
                if await provisioner.poll() is not None:
                    await provisioner.wait()
        return killed

    def _finish(self) -> None:
        if self._work is not None and self._owners is not None and self._kernel_uid is not None:
            with contextlib.suppress(OSError):
                give_back(self._work, self._kernel_uid, self._owners)
        self._work = self._owners = None
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        self._release_slot()

    def _release_slot(self) -> None:
        if self._slot_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._slot_fd)
            self._slot_fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._release_slot()
        KernelManager.__del__(self)
