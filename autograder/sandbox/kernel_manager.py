"""A jupyter_client kernel manager whose kernels run sandboxed (its client: kernel_client.py).

Use it from nbgrader's configuration::

    c.Execute.kernel_manager_class = "autograder.sandbox.SandboxedKernelManager"
    c.SandboxedKernelManager.memory_bytes = 2 * 2**30
    c.SandboxedKernelManager.hidden_paths = ["source", "gradebook.db", "submitted", "tests"]

Starting one kernel, in order (:meth:`SandboxedKernelManager._async_start_kernel`):

1. the run's protection (:class:`.capabilities.Protection`): given by the run
   (``protection``, decided once by ``autograder grade`` before any student code ran), or
   decided by this process at its first kernel; never decided again per kernel;
2. a slot, whose uid's machine-wide lock it holds (:mod:`.slots`); whatever that uid
   still runs is killed (a crashed grader's);
3. with a dedicated uid: the course's files sealed (:mod:`.course_files`), and a copy of
   the notebook's folder in the kernel's private dir as its working dir;
4. a private dir (HOME, TMPDIR, connection file, IPC sockets), an allow-listed environment
   (:mod:`.policy`), the launcher's plan for exactly the run's protection
   (:mod:`.namespaces`);
5. the launch, and the launcher's report on a pipe (:mod:`.launcher`): every step applied
   (the kernel is running) or the step that failed (no kernel ran). After a failure the
   slot is cleaned and kept aside, the check is run afresh, and the kernel is launched in
   another slot; when the check fails too, or after :data:`LAUNCH_ATTEMPTS` launches,
   :class:`SandboxUnavailable` says why and no kernel runs.

Whenever the manager cleans up, also after the kernel died, what the kernel left is killed
(:mod:`.cleanup`: by its slot's uid, or its token) and its private dir removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import select
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager, KernelManager, in_pending_state
from traitlets import (
    Bool,
    Dict,
    DottedObjectName,
    Enum,
    Instance,
    Integer,
    List,
    Type,
    Unicode,
    default,
)

from autograder.sandbox import capabilities, forked
from autograder.sandbox.capabilities import Protection
from autograder.sandbox.cleanup import copy_work, kill_sandbox_processes
from autograder.sandbox.course_files import seal
from autograder.sandbox.kernel_client import PromptKernelClient
from autograder.sandbox.namespaces import launch_of, launch_plan, launcher_command, real
from autograder.sandbox.policy import (
    DEFAULT_BASE_UID,
    Limits,
    Sandbox,
    SandboxUnavailable,
    forced_env,
)
from autograder.sandbox.slots import acquire_clear_slot, runtime_root

LAUNCH_ATTEMPTS = 3  # launches of one kernel, each in another slot, before it is not started
LAUNCH_TIMEOUT = 60.0  # seconds the launcher has to apply its plan and exec the kernel
# A Unix socket's path holds at most 107 bytes (sun_path); ZeroMQ names the kernel's sockets
# "<ip>-<port>" with ports 1 to 5, so 4 bytes are left for "-N" and room.
SOCKET_PATH_MAX = 107


class SandboxLaunchFailed(RuntimeError):
    """The launcher could not apply its plan: no kernel ran (the launcher's own words)."""


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run in a :class:`Sandbox`, fully or not at all.

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
        Unicode(),
        config=True,
        help="Files and directories the kernel must not see, read or change: hidden in its "
        "mount namespace, and made unreadable to its uid (autograder.sandbox.course_files).",
    )
    sandbox_choice = Enum(
        capabilities.CHOICES,
        default_value="auto",
        config=True,
        help="auto: all this machine allows (as root: a dedicated uid at least, or no kernel); "
        "full: a dedicated uid and namespaces, or no kernel; uid-only, limits-only: less than "
        "the machine allows, by choice. Used when no run decided the protection.",
    )
    isolate = Bool(
        None,
        allow_none=True,
        config=True,
        help="Older spelling of sandbox_choice: True is 'full', False is 'limits-only'.",
    )
    protection = Dict(
        config=True,
        help="The run's protection, decided once before any student code ran "
        "(autograder.sandbox.capabilities.Protection.to_json(); `autograder grade` sets it). "
        "Empty: decided by this process at its first kernel (sandbox_choice).",
    )
    base_uid = Integer(
        DEFAULT_BASE_UID,
        config=True,
        help="A kernel in slot N runs as uid base_uid+N; the sandbox's checks run as the "
        "few uids just below it.",
    )
    max_slots = Integer(64, config=True, help="How many sandboxed kernels may run at once.")
    runtime_root = Unicode(
        "", config=True, help="Slot locks and kernels' private dirs (default: /run/...)."
    )
    env_passthrough = List(
        Unicode(), config=True, help="More environment variable names a kernel may see."
    )
    slot = Integer(None, allow_none=True, config=True, help="Fixed slot (default: first free).")
    fork_kernels = Bool(
        True,
        config=True,
        help="Start each kernel as a child of a fork server that imported the kernel's modules "
        "once (autograder.sandbox.forked), which applies the same sandbox after fork; False: "
        "every kernel is started by exec, through the launcher.",
    )
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
            base_uid=self.base_uid,
        )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slot_fd: int | None = None
        self._private_dir: Path | None = None
        self._kernel_uid: int | None = None
        self._token = uuid.uuid4().hex
        self._fixed_slot = self.slot
        self._kernel_started: float | None = None
        self._report_pipe: tuple[int, int] | None = None
        self._kernel_start = ""  # "forked" or "exec", once launched
        self._applied: Protection | None = None

    @property
    def kernel_uid(self) -> int | None:
        """The uid the kernel runs as, when it has a dedicated one."""
        return self._kernel_uid

    @property
    def private_dir(self) -> Path | None:
        """The kernel's own dir (HOME, TMPDIR, connection file, IPC sockets, working copy)."""
        return self._private_dir

    @property
    def kernel_start(self) -> str:
        """How the kernel's process was started: "forked" (:mod:`.forked`) or "exec"."""
        return self._kernel_start

    @property
    def applied_level(self) -> str | None:
        """The protection level this kernel was started with (None before it started)."""
        return self._applied.level if self._applied else None

    @property
    def sandbox_description(self) -> str:
        """One line for the grading record: what this kernel got, what it did not and why."""
        protection = self._applied or self.run_protection()
        return protection.describe(self.sandbox, uid=self._kernel_uid)

    def run_protection(self) -> Protection:
        """The protection every kernel of this run gets (SandboxUnavailable: none can start)."""
        if self.protection:
            return Protection.from_json(self.protection)
        choice = self.sandbox_choice
        if self.isolate is not None and choice == "auto":
            choice = "full" if self.isolate else "limits-only"
        return capabilities.decisions.get(self.sandbox, choice)

    # ------------------------------------------------------------------ start
    @in_pending_state
    async def _async_start_kernel(self, **kw: Any) -> None:
        """jupyter_client's start (pre-start, launch, post-start), with the sandbox's retries."""
        self._attempted_start = True
        protection = self.run_protection()  # before anything starts: raises if none can be had
        failures: list[str] = []
        # The locks of slots whose launch failed, held until the end: a retry takes another.
        kept_aside: list[int] = []
        try:
            for _attempt in range(LAUNCH_ATTEMPTS):
                kernel_cmd, launch_kw = await self._async_pre_start_kernel(protection, **kw)
                try:
                    await self._async_launch_kernel(kernel_cmd, **launch_kw)
                except SandboxLaunchFailed as failure:
                    failures.append(f"{self._where()}: {failure}")
                    kept_aside.append(await self._discard_attempt())
                    error = await asyncio.to_thread(
                        capabilities.check, protection.level, self.sandbox
                    )
                    if error is not None:
                        raise SandboxUnavailable(
                            f"the run's sandbox ({protection.level}) could not be applied to "
                            f"this kernel ({failures[-1]}), and the sandbox's check now fails "
                            f"too: {error}"
                        ) from None
                    continue
                self._applied = protection
                await self._async_post_start_kernel(**launch_kw)
                return
        finally:
            for fd in kept_aside:
                with contextlib.suppress(OSError):
                    os.close(fd)
        raise SandboxUnavailable(
            f"the run's sandbox ({protection.level}) could not be applied to this kernel in "
            f"{LAUNCH_ATTEMPTS} slots: " + "; ".join(failures)
        )

    start_kernel = _async_start_kernel

    def _where(self) -> str:
        return f"uid {self._kernel_uid}" if self._kernel_uid is not None else f"slot {self.slot}"

    async def _async_pre_start_kernel(
        self, protection: Protection | None = None, **kw: Any
    ) -> tuple[list[str], dict[str, Any]]:
        try:
            return await self._sandbox_pre_start(protection or self.run_protection(), **kw)
        except BaseException:
            if not self.has_kernel:  # nothing started: give back the slot and the dirs
                self._finish()
            raise

    pre_start_kernel = _async_pre_start_kernel

    async def _sandbox_pre_start(
        self, protection: Protection, **kw: Any
    ) -> tuple[list[str], dict[str, Any]]:
        sandbox = self.sandbox
        mode = protection.mode
        root = runtime_root(self.runtime_root or None)
        self._take_slot(root, mode.dedicated_uid)
        uid = self._claim_uid(mode.dedicated_uid)
        self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
        kw.pop("kernel_id", None)
        private = self._make_private_dir(root, uid)
        mask_file = root / "masked"
        if not mask_file.exists():
            mask_file.touch(mode=0)
        if mode.isolated:  # no network: ZeroMQ over Unix sockets in the private dir
            _check_socket_path(private / "ipc", root)
            self.transport = "ipc"
            self.ip = str(private / "ipc")
            self.cache_ports = False
        self.connection_file = str(private / "kernel.json")
        cwd = self._working_dir(kw.get("cwd"), private, uid)
        kw["cwd"] = str(cwd)
        kw["env"] = sandbox.kernel_env(
            kw.get("env") or os.environ, private, self._token, self.env_passthrough, self._slot
        )
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        kw["env"].update(forced_env(private, self._token, self._slot))  # kernelspec env cannot undo
        if uid is not None:
            os.chown(self.connection_file, uid, uid)
        plan = launch_plan(
            sandbox, mode=mode, cwd=cwd, private_dir=private, mask_file=mask_file, uid=uid
        )
        self._report_pipe = os.pipe()  # both ends close-on-exec; the launcher gets one (below)
        plan["report_fd"] = self._report_pipe[1]
        return launcher_command(cmd, plan), kw

    def _working_dir(self, asked: str | None, private: Path, uid: int | None) -> Path:
        """Where the kernel runs. With a dedicated uid: a copy of the asked folder in its private
        dir, so that the kernel needs no path into the course (sealed to its uid) and owns
        nothing there; without: the asked folder (the user's own), or an empty private one."""
        if uid is None and asked:
            return Path(real(asked))
        work = private / "work"
        work.mkdir(mode=0o700, exist_ok=True)
        if uid is not None:
            os.chown(work, uid, uid)
            seal(self.sandbox.hidden_paths)  # whatever appeared since the run's check
            if asked:
                copy_work(
                    Path(real(asked)),
                    work,
                    uid,
                    self.sandbox.limits.max_file_bytes,
                    skip=[private.parent],  # the runtime dir, if the folder holds it
                )
        return work

    @property
    def _slot(self) -> int:
        """The slot this kernel holds (taken before anything else starts)."""
        if self.slot is None:
            raise SandboxUnavailable("the kernel has no sandbox slot yet")
        return int(self.slot)

    def _take_slot(self, root: Path, dedicated_uid: bool) -> None:
        if self._slot_fd is None:
            base = self.sandbox.base_uid if dedicated_uid else None
            self.slot, self._slot_fd = acquire_clear_slot(
                root, self.max_slots, self._fixed_slot, base
            )

    def _claim_uid(self, dedicated_uid: bool) -> int | None:
        """The slot's uid when the kernel gets a dedicated one (cleared by :meth:`_take_slot`)."""
        uid = self.sandbox.uid_for(self._slot) if dedicated_uid else None
        self._kernel_uid = uid
        if uid is not None:
            with contextlib.suppress(KeyError):
                user = pwd.getpwuid(uid).pw_name
                raise SandboxUnavailable(
                    f"uid {uid} belongs to the user {user!r}; choose another base_uid"
                )
        return uid

    def _make_private_dir(self, root: Path, uid: int | None) -> Path:
        # Named by the uid when there is one (its lock is machine-wide, the slot number is not).
        prefix = f"u{uid}" if uid is not None else f"k{self.slot}"
        for stale in root.glob(f"{prefix}-*"):  # its owner died without cleaning up
            shutil.rmtree(stale, ignore_errors=True)
        private = root / f"{prefix}-{self.kernel_id[:8]}"
        self._private_dir = private
        for sub in ("", "home", "tmp"):
            (private / sub).mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(private / sub, uid, uid)
        return private

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        """Launch, then wait for the launcher's report: SandboxLaunchFailed if a step failed.
        The one place a kernel's process is started (forked, or exec'd through the launcher)."""
        if self._report_pipe is None:
            raise SandboxUnavailable("the kernel's launch plan was not made")
        read_end, write_end = self._report_pipe
        self._report_pipe = None
        try:
            try:
                self._kernel_start = "forked"
                if not await self._fork(kernel_cmd, write_end, kw):
                    self._kernel_start = "exec"
                    await super()._async_launch_kernel(kernel_cmd, pass_fds=(write_end,), **kw)
            finally:
                os.close(write_end)
            pid = getattr(self.provisioner, "pid", None)
            with contextlib.suppress(psutil.Error, TypeError):
                if pid is not None:  # our unreaped child: the pid cannot have been reused yet
                    self._kernel_started = psutil.Process(pid).create_time()
            report = await asyncio.to_thread(_read_report, read_end, LAUNCH_TIMEOUT)
        finally:
            os.close(read_end)
        if report:
            raise SandboxLaunchFailed(report)

    async def _fork(self, kernel_cmd: list[str], report_fd: int, kw: dict[str, Any]) -> bool:
        """Start the launcher's command as a child of this process's fork server
        (:mod:`.forked`): the same plan, carried out after fork, and the same report pipe.
        False where it is not forked (``fork_kernels`` off, a kernel command other than this
        interpreter's ipykernel, or a server that failed): the launcher then starts it."""
        launch = launch_of(kernel_cmd) if self.fork_kernels else None
        arguments = forked.forkable(launch[0]) if launch is not None else None
        if launch is None or arguments is None:
            return False
        opened: list[int] = []
        try:
            fds, opened = forked.stdio_fds(kw.get("stdin"), kw.get("stdout"), kw.get("stderr"))
            process = await asyncio.to_thread(
                forked.launch, arguments, launch[1], kw["env"], (fds[0], fds[1], fds[2]), report_fd
            )
        except forked.ForkServerError as error:
            self.log.warning("Kernel not forked (started by exec instead): %s", error)
            return False
        finally:
            for fd in opened:
                os.close(fd)
        # What LocalProvisioner.launch_kernel records of the Popen it would have made.
        provisioner = self.provisioner
        assert provisioner is not None
        provisioner.process = process  # type: ignore[attr-defined]
        provisioner.pid = provisioner.pgid = process.pid  # type: ignore[attr-defined]
        provisioner.cwd = kw.get("cwd")  # type: ignore[attr-defined]
        self._reconcile_connection_info(provisioner.connection_info)
        return True

    async def _discard_attempt(self) -> int:
        """After a failed launch: kill what is left, free the dirs; the slot's lock fd, kept."""
        await self.kill_leftovers()
        if self.provisioner is not None:
            with contextlib.suppress(Exception):
                await self.provisioner.cleanup(restart=False)
        self.provisioner = None
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        fd, self._slot_fd = self._slot_fd, None
        self.slot, self._kernel_uid, self._kernel_started = self._fixed_slot, None, None
        self._connection_file_written = False
        return fd if fd is not None else -1

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        await super()._async_post_start_kernel(**kw)

    post_start_kernel = _async_post_start_kernel

    async def _async_wait(self, pollinterval: float = 0.01) -> None:
        # jupyter_client checks a dying kernel every 0.1 s; a killed one is gone in milliseconds.
        await super()._async_wait(pollinterval=min(pollinterval, 0.01))

    # ------------------------------------------------------------------ signals
    def _kernel_running(self) -> bool:
        """The kernel process is our child and not yet reaped: its pid, and so its process
        group id, cannot belong to anyone else."""
        process = getattr(self.provisioner, "process", None)
        return process is not None and process.poll() is None

    async def _async_signal_kernel(self, signum: int) -> None:
        # jupyter_client signals the kernel's process group by its id; once the kernel is
        # reaped that id may be another slot's kernel (pids come round quickly under a fork
        # bomb), so a gone kernel gets no signal: kill_leftovers finds what it left.
        if self._kernel_running():
            await super()._async_signal_kernel(signum)

    signal_kernel = _async_signal_kernel

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        if self._kernel_running():
            await super()._async_kill_kernel(restart=restart)
        elif self.has_kernel and self.provisioner is not None:
            await self.provisioner.wait()  # reaped already: only forget it
        await self.kill_leftovers()

    _kill_kernel = _async_kill_kernel

    async def _async_send_kernel_sigterm(self, restart: bool = False) -> None:
        if self._kernel_running():
            await super()._async_send_kernel_sigterm(restart=restart)

    _send_kernel_sigterm = _async_send_kernel_sigterm

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
        """Kill everything the kernel and the student's code started; reap the kernel.

        Every process of the kernel's uid only while this manager holds that uid's lock:
        once its clean-up released the lock, the uid may be another kernel's (another
        notebook's, another run's), and a second shutdown or clean-up of this manager
        (nbclient's, a test's) would kill it. The kernel itself is still found by its pid
        and start time."""
        pid = getattr(self.provisioner, "pid", None)
        uid = self._kernel_uid if self._slot_fd is not None else None
        if pid is None and uid is None:
            return []
        killed = await asyncio.to_thread(
            kill_sandbox_processes,
            uid=uid,
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
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        if self._report_pipe is not None:
            for fd in self._report_pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._report_pipe = None
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


def _read_report(fd: int, timeout: float) -> str:
    """What the launcher wrote before the pipe closed ("" : it exec'd the kernel)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"the launcher did not finish within {timeout:g} s"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode(errors="replace").strip()
        chunks.append(chunk)


def _check_socket_path(ip: Path, root: Path) -> None:
    """Refuse, before the kernel starts, a runtime dir too deep for the kernel's Unix sockets:
    ZeroMQ would fail to bind them ("File name too long") after the launch."""
    longest = len(os.fsencode(ip)) + 4
    if longest > SOCKET_PATH_MAX:
        raise SandboxUnavailable(
            f"the kernel's sockets would be named {ip}-N, {longest} bytes, and a Unix socket's "
            f"path holds at most {SOCKET_PATH_MAX}: set SandboxedKernelManager.runtime_root to "
            f"a shorter path than {root}"
        )
