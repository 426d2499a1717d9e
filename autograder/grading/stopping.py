"""Ctrl-C and SIGTERM stop a grading run cleanly.

The instructor's process decides. The processes it starts for the run (the local pool's
workers, the plot drawer, a LocalCluster's workers) leave SIGINT to it, so a Ctrl-C sent
to the whole process group (as a terminal sends it) and one sent to the run's process
alone end the same way:

1. the students being graded stop: their kernels are killed with what they started, and
   nothing of them is recorded (:mod:`autograder.running`); students already
   recorded keep their results, and the same command grades the rest;
2. within :data:`STOP_SECONDS` the processes the run started have exited; what is left is
   killed (:class:`Processes`);
3. the command prints one paragraph (:meth:`RunStopped.summary`) and exits with 128 plus
   the signal's number, as a shell reports a process that signal ended: 130 for Ctrl-C
   (SIGINT), 143 for SIGTERM (a scheduler or a hub stopping the job).

The signal handler records the stop, and raises RunStopped only while the run's own loop
waits for its workers (:func:`waiting`), where nothing but the run's code can catch it. Raised
anywhere else, a library could swallow it or log it as a crash (SQLAlchemy logs an exception
raised while it closes a connection, then goes on; Python prints one raised in a weakref
callback or a ``__del__`` as "Exception ignored in"). The loops call :func:`raise_if_stopped`
at least every :data:`POLL_SECONDS`, so a stop recorded elsewhere ends the run as promptly.

A second Ctrl-C (or SIGTERM) during the clean-up stops at once: every process the run's
process started is killed, and it exits. A run started with SIGINT ignored (a background
job of a non-interactive shell) keeps ignoring it, as Python itself does: SIGTERM stops it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from multiprocessing import resource_tracker
from types import FrameType

import psutil

from autograder.limits import duration

# Seconds the run's processes get to stop their kernels and exit before they are killed.
STOP_SECONDS = 5.0
# The longest the run's loops wait between two looks at a stop the handler recorded.
POLL_SECONDS = 0.5
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class RunStopped(KeyboardInterrupt):
    """The run was stopped by a signal; what it recorded, once the clean-up is done."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(_NAMES.get(signum, f"signal {signum}"))
        self.signum = signum
        self.recorded = 0  # students whose results are kept (this run's and unchanged ones)
        self.not_recorded = 0
        self.seconds = 0.0
        self.force = False  # the run was asked to grade everyone again
        self.left: list[int] = []  # processes of the run that could not be killed

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def summary(self, next_step: str = "") -> str:
        """One paragraph: what was recorded, what was not, and what to do next (``next_step``
        when it is not to run the same command)."""
        total = self.recorded + self.not_recorded
        again = next_step or (
            "Run the same command without --force to grade the rest (with --force it grades "
            "everyone again)."
            if self.force
            else "Run the same command to grade the rest: it skips the students recorded."
        )
        processes = (
            f"{len(self.left)} process(es) it started could not be killed: "
            f"{', '.join(map(str, self.left))}."
            if self.left
            else "Every kernel and worker process it started has stopped."
        )
        return (
            f"Stopped by {_NAMES.get(self.signum, f'signal {self.signum}')} after "
            f"{duration(self.seconds)}. {self.recorded} of {total} student"
            f"{'s' if total != 1 else ''} recorded (grades, graded notebooks and report "
            f"files kept), {self.not_recorded} not. {processes} {again}"
        )


def stopped(interrupt: KeyboardInterrupt) -> RunStopped:
    """``interrupt`` as a RunStopped (a plain KeyboardInterrupt is a Ctrl-C)."""
    return interrupt if isinstance(interrupt, RunStopped) else RunStopped(signal.SIGINT)


# -- the run's own process ---------------------------------------------------------------------


@contextlib.contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise RunStopped in this (the main) thread, and
    a second one stops at once. A signal ignored when the block starts stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    _requested.clear()
    for signum in _SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _first)
    # Inside waiting() a collection can still run a __del__ or a weakref callback, and a
    # RunStopped raised there is dropped with an "Exception ignored in" traceback. The stop is
    # recorded all the same (raise_if_stopped raises it next), so that traceback is noise.
    unraisable = sys.unraisablehook

    def keep_quiet_about_a_recorded_stop(swallowed: sys.UnraisableHookArgs) -> None:
        if not isinstance(swallowed.exc_value, RunStopped):
            unraisable(swallowed)

    sys.unraisablehook = keep_quiet_about_a_recorded_stop
    try:
        yield
    finally:
        sys.unraisablehook = unraisable
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested.clear()


_requested: list[int] = []  # the signal that stopped the run, once its handler ran


_waiting: list[bool] = []  # not empty while the run's loop waits for its workers


def _first(signum: int, frame: FrameType | None) -> None:
    for handled in _SIGNALS:
        if signal.getsignal(handled) == _first:
            signal.signal(handled, _at_once)
    _requested.append(signum)
    if _waiting:
        raise RunStopped(signum)


def raise_if_stopped() -> None:
    """Raise RunStopped if a signal stopped the run (its handler only recorded it)."""
    if _requested:
        raise RunStopped(_requested[0])


def requested() -> int | None:
    """The signal that stopped the run, if one came (and was not raised yet)."""
    return _requested[0] if _requested else None


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """The run's loop waits for its workers in this block: a signal raises RunStopped at once.
    A stop recorded before it is raised on entering."""
    raise_if_stopped()
    _waiting.append(True)
    try:
        yield
    finally:
        _waiting.pop()


def _at_once(signum: int, frame: FrameType | None) -> None:
    """The second signal: kill every process this one started, and leave now."""
    Processes(_descendants()).kill(wait=1.0)
    # Leaving with os._exit skips the exit handlers; the one that matters outside this process
    # removes multiprocessing's folder (the fork server's socket) from the temporary directory.
    folder = multiprocessing.current_process()._config.get("tempdir")  # type: ignore[attr-defined]
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    sys.stderr.write(
        f"\nStopped at once by a second {_NAMES.get(signum, f'signal {signum}')}: every "
        "process of the run was killed. Students recorded before keep their results; run "
        "the same command to grade the rest.\n"
    )
    sys.stderr.flush()
    os._exit(128 + signum)


def children() -> set[int]:
    """The processes this one started directly (and that are still there)."""
    return {child.pid for child in psutil.Process().children()}


def _descendants() -> list[int]:
    """Every process this one started, except multiprocessing's resource tracker (it
    exits with this process, after freeing what the workers left)."""
    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    children = psutil.Process().children(recursive=True)
    return [child.pid for child in children if child.pid != tracker]


# -- helper processes ----------------------------------------------------------------------------


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM in this thread while helper processes are started: they start
    with both blocked (a Ctrl-C during their start-up would end them with a traceback)
    until :func:`leave_interrupts_to_the_run` releases them."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def ignore_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT in a helper process: the run's process decides what stops. (A handler, not
    SIG_IGN: the kernels it starts get SIGINT's default back, which interrupting a cell needs.)"""


def leave_interrupts_to_the_run() -> None:
    """A helper process's first step: SIGINT does nothing here (:func:`ignore_interrupt`),
    and the signals :func:`signals_held` blocked are released."""
    signal.signal(signal.SIGINT, ignore_interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


class Processes:
    """Processes of the run, and everything they start, followed while they stop."""

    def __init__(self, roots: Iterable[int]) -> None:
        self.roots: list[psutil.Process] = []
        for pid in roots:
            with contextlib.suppress(psutil.Error):
                self.roots.append(psutil.Process(pid))
        self.seen: dict[int, psutil.Process] = {}
        self.look()

    def look(self) -> None:
        """Note what the roots started since the last look (kernels, what students ran)."""
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                for process in [root, *root.children(recursive=True)]:
                    self.seen.setdefault(process.pid, process)

    def wait(self, seconds: float) -> None:
        """Wait for the roots to exit, at most ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(_alive(root) for root in self.roots):
            self.look()
            time.sleep(0.05)

    def kill(self, wait: float = STOP_SECONDS) -> list[int]:
        """SIGKILL whatever is left; the pids still alive ``wait`` seconds later."""
        self.look()
        alive = [process for process in self.seen.values() if _alive(process)]
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        # Not psutil.wait_procs: it would reap this process's own children, whose exit
        # multiprocessing reads itself.
        deadline = time.monotonic() + wait
        while (alive := [p for p in alive if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = sorted(process.pid for process in alive)
        _survivors.extend(left)
        return left


_survivors: list[int] = []  # processes a stop could not kill, until survivors() reads them


def survivors() -> list[int]:
    """The processes the stops so far could not kill (and forget them)."""
    left = sorted(set(_survivors))
    _survivors.clear()
    return left


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; its parent has not read its status yet)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
