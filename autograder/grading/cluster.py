"""Grade on a Dask distributed cluster: ``autograder grade --scheduler ADDRESS|local[:N]``.

Only imported when ``--scheduler`` is given (``pip install '.[cluster]'``). The run is the
local pool's, with the workers elsewhere:

* once per worker, a :class:`CourseOnWorker` plugin unpacks the course material (the
  :class:`autograder.grading.task.CourseBundle`), checks that the worker runs the same
  package (version and code) as the instructor;
* one task per student carries the staged notebooks (bytes) and returns the run
  records, the graded notebooks and the scores (:mod:`autograder.grading.task`);
* this process is the only writer of the gradebook, the graded notebooks, the run
  records and the report: a worker killed mid-task leaves nothing half-written. The
  scheduler gives a task whose worker died to another worker (up to its
  ``distributed.scheduler.allowed-failures``) and a task that raised is retried
  (``TASK_RETRIES``); after that the student gets a recorded status in the report
  and is graded again by the next run;
* the largest submissions (staged bytes) go first, a few tasks ahead of the free
  workers, so a run does not end with one worker busy and the others idle, and the
  scheduler never holds every student's notebooks at once;
* the wait is bounded: when the scheduler's connection is lost, when it has had no worker
  for :data:`NO_WORKER_PATIENCE`, or when no student comes back for one student's worst
  case (the run's limits) plus :data:`STARTUP_MARGIN` (workers that stopped answering),
  every student not yet recorded gets a ClusterError and the run ends with its report;
  the next run grades only them;
* when the run is stopped (Ctrl-C, SIGTERM: :mod:`autograder.grading.stopping`), every
  worker kills the kernels of this run's students (:func:`stop_run`) and their tasks are
  cancelled; a LocalCluster is then closed, and what of it is left after ``STOP_SECONDS``
  is killed. Its workers leave SIGINT to the instructor's process, as the local pool's do;
* however the run ends, its course is removed from every worker and from the scheduler (a
  worker that joins later does not unpack it), and what a killed worker left in its
  temporary directory is removed by the next run's workers (:mod:`autograder.grading.scratch`).

Nanny workers are daemonic processes by default; student kernels are started with
``subprocess`` (allowed there), but a LocalCluster started here sets
``distributed.worker.daemon: False`` anyway so that nothing a grading step starts is
refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
from distributed import Client, Future, KilledWorker, LocalCluster, as_completed, get_worker
from distributed.client import FutureCancelledError
from distributed.diagnostics.plugin import WorkerPlugin

from autograder import running
from autograder.course import Course
from autograder.grading import scratch, stopping
from autograder.grading.run import GradingError
from autograder.grading.staging import largest_first
from autograder.grading.task import (
    CourseBundle,
    StudentResult,
    StudentTask,
    grade_task,
    package_identity,
    portable_overrides,
    staged_files,
    write_result,
)
from autograder.limits import duration
from autograder.sandbox import SandboxUnavailable, capabilities
from autograder.sandbox.capabilities import Protection
from autograder.sandbox.policy import Sandbox

CONNECT_TIMEOUT = 10  # seconds to reach a scheduler, and for it to have a worker
# Seconds to wait for the next student beyond the longest one can take: a worker's start-up
# (a nanny restarting one that died, the course's set-up there) and the
# notebooks' way there and back. Past that, the cluster is taken to be gone.
STARTUP_MARGIN = 60.0
RESULT_TIMEOUT = 60  # seconds to fetch one finished student's result
# A LocalCluster's workers: not daemonic (see above), and without Dask's statistical
# profiler, which samples every thread's stack every 10 ms: about 8% of the run's CPU here.
LOCAL_WORKER_CONFIG = {
    "distributed.worker.daemon": False,
    "distributed.worker.profile.enabled": False,
}
POLL_SECONDS = 0.1  # how often the wait looks at the scheduler's connection
WORKER_CHECK_SECONDS = 5.0  # how often it asks the scheduler whether any worker is left
NO_WORKER_PATIENCE = 60.0  # seconds with no worker at all before giving up (one may rejoin)
LOST_SCHEDULER = "scheduler-connection-lost"  # the reason distributed cancels futures with
TASK_RETRIES = 2  # a task that raised (not a student's failure: those are results) runs again
AHEAD = 2  # tasks queued per worker thread beyond the one it runs

# on_done(student, log, final): final False when the student could not be graded for a
# reason of the cluster's (the report shows it; the next run grades the student again).
OnDone = Callable[[str, str, bool], None]


class ClusterError(GradingError):
    """The cluster cannot be used for this run (not one student's problem)."""


def local_workers(scheduler: str) -> int | None:
    """N for ``local:N`` (the machine's cores for ``local``); None for a scheduler address."""
    if scheduler != "local" and not scheduler.startswith("local:"):
        return None
    count = scheduler.partition(":")[2]
    if not count:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"--scheduler {scheduler!r}: write local or local:N with N at least 1.")
    return int(count)


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Client]:
    """A client of ``scheduler``, or of a LocalCluster this process starts and stops."""
    workers = local_workers(scheduler)
    if workers is not None:
        before = stopping.children()
        try:
            with dask.config.set(LOCAL_WORKER_CONFIG):
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
        except KeyboardInterrupt:  # stopped as it started: kill the workers it started
            stopping.Processes(stopping.children() - before).kill()
            raise
        stopped = False
        try:
            with Client(cluster) as client:
                yield client
        except KeyboardInterrupt:  # stopped: close it, and kill what did not close in time
            stopped = True
            processes = stopping.Processes(w.pid for w in cluster.workers.values() if w.pid)
            _bounded(cluster.close, stopping.STOP_SECONDS)
            processes.kill()
            scratch.sweep()  # the folders of workers killed here, in this machine's /tmp
            raise
        finally:
            if not stopped:
                cluster.close()
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT} s "
            f"({type(error).__name__}: {error}). Is `dask scheduler` running there, and is "
            "the address (tcp://host:8786) right?"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClusterError(
                f"The Dask scheduler at {scheduler} has no workers (waited {CONNECT_TIMEOUT} s): "
                "start some with `dask worker " + scheduler + " --nthreads 1`."
            ) from None
        yield client
    finally:
        _close(client)


def _close(client: Client) -> None:
    """Close ``client``. When its scheduler went away, distributed is still trying to reach
    it, and closing cancels that with a logged traceback: the run has already said what
    happened (every student not recorded has a ClusterError), so the traceback is left out."""
    if client.status == "running":
        client.close()
        return
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with contextlib.suppress(Exception):  # nothing is left to close cleanly
            client.close()
    finally:
        log.setLevel(level)


def _bounded(call: Callable[[], object], seconds: float) -> None:
    """``call()``, given at most ``seconds``: a stopping run waits no longer for the cluster
    (a scheduler that stopped answering would hold it)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)


def worker_threads(client: Client) -> int:
    return max(1, sum(client.nthreads().values()))


def describe(client: Client) -> str:
    threads = client.nthreads()
    where = client.scheduler.address
    dashboard = f", dashboard {client.dashboard_link}" if _has_dashboard(client) else ""
    return (
        f"Dask cluster at {where}: {len(threads)} worker{'s' if len(threads) != 1 else ''}, "
        f"{sum(threads.values())} thread{'s' if sum(threads.values()) != 1 else ''}{dashboard}."
    )


def _has_dashboard(client: Client) -> bool:
    try:
        return bool(client.scheduler_info().get("services", {}).get("dashboard"))
    except Exception:  # the link is a courtesy; never fail a run over it
        return False


class CourseOnWorker(WorkerPlugin):
    """Per-worker set-up, once per run: the course material and the version check."""

    def __init__(self, bundle: CourseBundle, local: bool = False) -> None:
        self.bundle = bundle
        self.local = local  # a LocalCluster's worker: SIGINT is the instructor's process's
        # One per run (two runs of one course may share a cluster): the run removes it when
        # it ends, and a worker that joins later does not unpack a course graded before.
        self.name = f"autograder-course-{bundle.digest}-{uuid.uuid4().hex[:8]}"
        self.scratch: scratch.Scratch | None = None
        self.course_dir: Path | None = None
        self.problem = ""  # why this worker cannot grade, for every student sent to it

    def setup(self, worker: Any) -> None:
        if self.local and threading.current_thread() is threading.main_thread():
            # In the instructor's process group, a terminal's Ctrl-C reaches this worker too;
            # the run's process stops its students (stop_run). A worker someone started with
            # `dask worker` keeps its own Ctrl-C.
            signal.signal(signal.SIGINT, stopping.ignore_interrupt)
        identity = package_identity()
        if identity != self.bundle.identity:
            self.problem = (
                f"ClusterError: worker {worker.address} runs numpy-memory-autograder "
                f"{identity}, the instructor {self.bundle.identity}: install the same version "
                "on every worker (pip install numpy-memory-autograder==<version>)."
            )
            return
        scratch.sweep()  # what workers killed in earlier runs left on this machine
        self.scratch = scratch.Scratch("course")
        self.course_dir = self.scratch.path
        self.bundle.unpack(self.course_dir)
        _fingerprint_without_worker_hooks()
        # The sandbox: the run's protection travels with each task (the overrides); every
        # kernel launch here proves it or the notebook is not graded.

    def teardown(self, worker: Any) -> None:
        if self.scratch is not None:
            self.scratch.remove()


def _fingerprint_without_worker_hooks() -> None:
    """The integrity probe compares each student kernel (a fresh process) with a fingerprint
    of this grading process, computed once and cached. A Dask worker has a garbage-collector
    callback of its own (distributed's GC diagnosis) that no kernel has; left in, every
    notebook would be flagged ``probe-failed``. Compute the fingerprint without it."""
    import gc

    from autograder.integrity.probe import fingerprint

    callbacks = list(gc.callbacks)
    gc.callbacks.clear()
    try:
        fingerprint()
    finally:
        gc.callbacks.extend(callbacks)


def decide_on_worker(client: Client, sandbox: Sandbox, choice: str) -> Protection:
    """The run's protection, decided on one of the cluster's workers (where the kernels run,
    maybe as another user than the instructor); every worker's kernels must then get it, or
    their notebooks are not graded. The course's paths stay here: each task seals its own."""
    portable = dataclasses.replace(sandbox, hidden_paths=())
    future = client.submit(capabilities.decide, portable, choice, pure=False)
    try:
        return future.result(timeout=RESULT_TIMEOUT)
    except SandboxUnavailable:
        raise
    except Exception as error:
        raise ClusterError(
            f"No worker of the cluster could decide the sandbox ({type(error).__name__}: "
            f"{error}): nothing was graded."
        ) from None


def grade_on_worker(task: StudentTask, plugin_name: str) -> StudentResult:
    """The task: grade one student on the worker this runs on."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if not isinstance(plugin, CourseOnWorker):
        raise ClusterError(f"the course was not set up on worker {worker.address}")
    if plugin.problem:
        return StudentResult(task.student, log=plugin.problem, worker=worker.address)
    if plugin.course_dir is None:
        raise ClusterError(f"the course was not set up on worker {worker.address}")
    hidden = [str(plugin.course_dir), str(worker.local_directory)]
    with running.grading(task.run):
        return grade_task(task, plugin.course_dir, hidden, worker=worker.address)


def stop_run(run: str) -> int:
    """On a worker (``Client.run``): stop the gradings of ``run``; how many kernels were killed."""
    return running.stop(run)


def _failure_log(error: BaseException) -> str:
    if isinstance(error, KilledWorker):
        return (
            "ClusterError: every worker that took this student died while grading "
            f"(KilledWorker: {error}); it may be over a worker's memory limit, or the "
            "workers were stopped. The next run grades this student again."
        )
    hint = (
        " Is numpy-memory-autograder installed on every worker?"
        if isinstance(error, ImportError)
        else ""
    )
    return (
        f"ClusterError: grading this student failed on the cluster ({type(error).__name__}: "
        f"{error}).{hint} The next run grades this student again."
    )


def _set_up_course(client: Client, course: Course) -> CourseOnWorker:
    plugin = CourseOnWorker(CourseBundle.of(course), local=isinstance(client.cluster, LocalCluster))
    try:
        client.register_plugin(plugin)
    except Exception as error:
        raise ClusterError(
            f"Could not set up the course on the Dask workers ({type(error).__name__}: {error}). "
            "Is numpy-memory-autograder installed on every worker, with the same version?"
        ) from None
    return plugin


def _remove_course(client: Client, plugin_name: str) -> None:
    """Every worker removes its copy of the run's course (its plugin's teardown), and the
    scheduler forgets the plugin; within STOP_SECONDS, and not when the scheduler is gone."""

    def remove() -> None:
        with contextlib.suppress(Exception):  # a worker or scheduler that cannot be reached
            client.unregister_worker_plugin(plugin_name)

    if client.status == "running":
        _bounded(remove, stopping.STOP_SECONDS)


class _Work:
    """The students of one run: waiting (largest first), sent to the cluster, or done."""

    def __init__(
        self,
        client: Client,
        course: Course,
        plugin: CourseOnWorker,
        students: list[str],
        report_dir: Path,
        overrides: dict[str, Any],
    ) -> None:
        self.client, self.course, self.plugin_name = client, course, plugin.name
        self.address = str(client.scheduler.address)
        self.portable = portable_overrides(overrides)
        self.folders = {s: report_dir / "staged" / s / course.assignment for s in students}
        self.sizes = {
            s: sum(len(d) for d in staged_files(self.folders[s]).values()) for s in students
        }
        self.waiting = largest_first(self.sizes)
        self.running: dict[str, str] = {}  # future key -> student
        self.futures: dict[str, Future] = {}  # future key -> its future, while it runs
        self.queue = as_completed()
        self.run = uuid.uuid4().hex  # what the workers know this run's tasks by

    def submit_more(self) -> None:
        """Keep every worker thread busy and a few tasks ahead of them, no more."""
        try:
            threads = worker_threads(self.client)
        except OSError:  # CommClosedError: the scheduler went away since the last student
            raise _ClusterGone(_scheduler_gone(self.address)) from None
        room = threads * (1 + AHEAD) - len(self.running)
        for _ in range(max(0, room)):
            if not self.waiting:
                return
            student = self.waiting.pop(0)
            files = staged_files(self.folders[student])
            task = StudentTask(student, self.course.assignment, files, self.portable, self.run)
            future = self.client.submit(
                grade_on_worker,
                task,
                self.plugin_name,
                key=f"grade-{student}-{uuid.uuid4().hex[:8]}",
                pure=False,
                retries=TASK_RETRIES,
                priority=self.sizes[student],
            )
            self.running[str(future.key)] = student
            self.futures[str(future.key)] = future
            self.queue.add(future)

    def unrecorded(self) -> list[str]:
        return sorted([*self.running.values(), *self.waiting])

    def stop(self) -> None:
        """The run stops: no task of it starts, and the workers kill its students' kernels
        (within STOP_SECONDS: a cluster that stopped answering is not waited for)."""

        def stop_on_the_cluster() -> None:
            with contextlib.suppress(
                Exception
            ):  # a worker that cannot be reached is not waited for
                self.client.run(stop_run, self.run, on_error="ignore")
            with contextlib.suppress(Exception):
                self.client.cancel(list(self.futures.values()))

        _bounded(stop_on_the_cluster, stopping.STOP_SECONDS)


class _ClusterGone(Exception):
    """The scheduler, or every worker, went away: nobody left will be graded in this run."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.log = (  # one line: the report shows it as each notebook's reason
            f"ClusterError: {what}; nothing of this student's was recorded. Once the cluster "
            "runs again, the same command grades only the students not recorded."
        )


def _next_done(client: Client, queue: as_completed, address: str, patience: float) -> Future:
    """The next task that ended, waiting at most ``patience`` seconds for one, and at most
    :data:`NO_WORKER_PATIENCE` while the scheduler has no worker at all."""
    started = time.monotonic()
    checked, without_workers_since = started, None
    while not queue.has_ready():
        if client.status != "running":  # the scheduler's connection was lost
            raise _ClusterGone(_scheduler_gone(address))
        now = time.monotonic()
        if now - started >= patience:
            raise _ClusterGone(_stalled(client, address, patience))
        if now - checked >= WORKER_CHECK_SECONDS:
            checked = now
            if _worker_count(client) != 0:
                without_workers_since = None
            elif without_workers_since is None:
                without_workers_since = now
            elif now - without_workers_since >= NO_WORKER_PATIENCE:
                raise _ClusterGone(
                    f"no worker was left at the Dask scheduler at {address}: none for "
                    f"{duration(NO_WORKER_PATIENCE)}"
                )
        with stopping.waiting():
            time.sleep(POLL_SECONDS)
    return next(queue)


def _worker_count(client: Client) -> int | None:
    """How many workers the scheduler has; None when it did not say."""
    try:
        return len(client.nthreads())
    except Exception:  # the scheduler is slow or gone; the connection check above decides
        return None


def _scheduler_gone(address: str) -> str:
    return f"the Dask scheduler at {address} stopped answering (its connection was lost)"


def _stalled(client: Client, address: str, patience: float) -> str:
    """Why no student came back for ``patience`` seconds: no worker left, or none answered."""
    waited = f"no student came back for {duration(patience)}, more than one can take"
    try:
        threads = client.nthreads()
    except Exception:  # the scheduler stopped answering as well
        return f"{_scheduler_gone(address)}: {waited}"
    if not threads:
        return f"no worker was left at the Dask scheduler at {address}: {waited}"
    return f"the workers of the Dask scheduler at {address} stopped answering: {waited}"


def _receive(client: Client, future: Future, address: str) -> StudentResult | str:
    """The student's result, or the log of the cluster's failure for this student alone;
    raises _ClusterGone when the cluster itself went away."""
    try:
        return future.result(timeout=RESULT_TIMEOUT)
    except Exception as error:  # the cluster's failure, after its retries
        lost = isinstance(error, FutureCancelledError) and error.reason == LOST_SCHEDULER
        if lost or client.status != "running":
            raise _ClusterGone(_scheduler_gone(address)) from None
        if isinstance(error, TimeoutError):
            raise _ClusterGone(
                f"the result of a finished student could not be fetched from the Dask "
                f"cluster at {address} within {RESULT_TIMEOUT} s"
            ) from None
        return _failure_log(error)


def grade_on_cluster(
    client: Client,
    course: Course,
    students: list[str],
    report_dir: Path,
    overrides: dict[str, Any],
    on_done: OnDone,
    student_seconds: float,
) -> None:
    """Grade ``students`` (staged under ``report_dir/staged/<student>/<assignment>``) on
    the cluster; write each result into the course and call ``on_done`` as each ends.

    ``student_seconds``: the longest one student can take (the run's limits). When no
    student comes back for that plus :data:`STARTUP_MARGIN`, or the scheduler's
    connection is lost, every student not yet recorded gets a ClusterError log and the
    run ends; what was recorded stays."""
    if not students:
        return
    patience = student_seconds + STARTUP_MARGIN
    plugin = _set_up_course(client, course)
    work = _Work(client, course, plugin, students, report_dir, overrides)
    address = work.address
    runs_dir = report_dir / "runs"
    try:
        work.submit_more()
        while work.running:
            future = _next_done(client, work.queue, address, patience)
            received = _receive(client, future, address)
            student = work.running.pop(str(future.key))
            work.futures.pop(str(future.key), None)
            if isinstance(received, str):
                on_done(student, received, False)
            else:
                refused = received.log.startswith("ClusterError")  # the worker could not grade
                if not refused:  # else the student's earlier graded notebooks and runs stay
                    write_result(course, runs_dir, received)
                on_done(student, received.log, not refused)
            future.release()
            work.submit_more()
    except _ClusterGone as gone:
        for student in work.unrecorded():
            on_done(student, gone.log, False)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: nothing more is recorded
        work.stop()
        raise
    finally:
        _remove_course(client, plugin.name)
