"""Execute a submission the way nbgrader does, but protected and observed from outside.

``ProtectedExecute`` replaces nbgrader's ``Execute`` preprocessor (see
``nbgrader_config.py``), so plain ``nbgrader autograde`` and ``autograder grade``
run the same steps. Around nbclient's cell loop it adds, in this order:

1. a static read of the student's cells (before any of them runs);
2. a contained kernel (``autograder.sandbox``): memory, CPU, process and file
   limits, no network, another user, hidden instructor files; the run's protection or
   no kernel at all: a notebook whose kernel cannot get it is "not graded" (none of its
   code runs) and nbgrader records nothing for it; one that has not started and
   answered within ``startup_timeout`` is killed, and the notebook is not graded;
3. before every graded test cell, a probe of the kernel's state
   (``autograder.integrity``);
4. after every cell, the kernel's resident memory read by this process, which
   no code in the kernel can fake, and around a test that calls ``assert_peak_below``
   its peak (reset before the cell), which memory the tracer misses cannot hide from;
5. time limits on every cell, the notebook and the student's notebooks together
   (``autograder.limits``), enforced from here: past its limit a cell is interrupted,
   and a kernel that has not answered after a short grace is killed with everything
   it started; nothing more is sent to a kernel that has not answered;
6. a kernel that dies or a notebook that is stopped: the cells that ran keep their
   grades, the rest score 0 with a message that says where and why it stopped;
7. a test whose result the evidence contradicts is given an error output, so
   nbgrader scores it 0, and the evidence is recorded for the instructor.

Under nbgrader's autograde, a notebook with no graded cell (a lesson) is read, not run.
What happened is written as JSON beside the run (``evidence_dir``) and passed
on in ``resources["autograder"]`` for the preprocessors after it. A grading stopped from
outside (``autograder.running``: the run was stopped) raises GradingStopped and
records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_hook, run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Float, Integer, TraitError, Unicode, validate

from autograder import defaults, limits, running
from autograder.integrity import outside
from autograder.integrity.evidence import Evidence
from autograder.integrity.probe import probe_code, read_probe
from autograder.integrity.static.read import scan_notebook
from autograder.notebook_cells import grade_id, is_test
from autograder.pipeline import techniques, verdicts
from autograder.pipeline.cell_limits import (
    KILL_SETTLE,
    Budget,
    Ending,
    KernelDidNotStart,
    KernelNotAnswering,
    ending_of,
    run_hidden,
    settles,
    start_within,
)
from autograder.pipeline.course_directory import find_coursedir
from autograder.pipeline.inspect_submission import take_inspection
from autograder.pipeline.tracked_arrays import tracked_arrays
from autograder.records import (
    NOT_GRADED,
    NOTHING_TO_GRADE,
    SANDBOX_UNAVAILABLE,
    STATUSES,
    CellRecord,
    NotebookRun,
)
from autograder.sandbox import (
    SandboxedKernelManager,  # sets MALLOC_MMAP_THRESHOLD_: freed arrays leave RSS
    SandboxUnavailable,
)


def _is_test(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and is_test(cell)


class ProtectedExecute(Execute):
    """nbgrader's Execute, contained, probed, measured and timed from outside."""

    timeout = Integer(
        defaults.CELL_TIMEOUT,
        help="Seconds a cell may run: past them it is interrupted, and killed (with the rest "
        "of the notebook not run) if it does not answer within interrupt_grace.",
    ).tag(config=True)
    notebook_timeout = Integer(
        defaults.NOTEBOOK_TIMEOUT,
        help="Seconds a whole notebook may run, kernel start included; a cell running when "
        "they run out is stopped, and the cells after it are not run (score 0).",
    ).tag(config=True)
    student_timeout = Integer(
        defaults.STUDENT_TIMEOUT,
        help="Seconds all of one student's notebooks may run together; then the running "
        "cell is stopped and the student's later cells and notebooks are not run.",
    ).tag(config=True)
    interrupt_grace = Float(
        defaults.INTERRUPT_GRACE,
        help="Seconds an interrupted kernel has to answer before it is killed, with "
        "everything it started.",
    ).tag(config=True)
    startup_timeout = Integer(
        defaults.KERNEL_STARTUP_TIMEOUT,
        help="Seconds a kernel has to start and answer its first request, counted in the "
        "notebook's time; past them it is killed and the notebook is not graded (the grading "
        "machine is at fault, not the notebook: the next run grades it again).",
    ).tag(config=True)
    probe_timeout = Float(
        defaults.PROBE_TIMEOUT,
        help="Seconds the kernel has to answer the integrity probe; a kernel that does "
        "not is stopped like a cell over its limit.",
    ).tag(config=True)
    max_output_bytes = Integer(
        defaults.MAX_OUTPUT_BYTES,
        help="Output a notebook may produce; past it, outputs are dropped (errors and stderr kept).",
    ).tag(config=True)
    probe_kernel = Bool(True, help="Check the kernel's state before every graded test cell.").tag(
        config=True
    )
    rss_evidence = Bool(
        True,
        help="Record an observation (never a flag) when a passed `assert_freed` test's array "
        "did not leave the kernel's resident memory, read from outside: at least "
        "rss_drop_fraction of its size.",
    ).tag(config=True)
    rss_drop_fraction = Float(
        defaults.RSS_DROP_FRACTION, help="Fraction of the freed size RSS must fall by."
    ).tag(config=True)
    rss_peak_allowance = Integer(
        defaults.RSS_PEAK_ALLOWANCE,
        help="Flag a passed `assert_peak_below` test when the kernel's peak resident memory "
        "during the cell, read from outside, rose by more than its budget plus this many bytes "
        "(untraced memory: np.memmap, mmap, C extensions). 0 turns the check off.",
    ).tag(config=True)
    evidence_dir = Unicode(
        "",
        help="Where each run's JSON record goes (<dir>/<student>/<notebook>.json); "
        "default: grading-report/<assignment>/runs under the course root.",
    ).tag(config=True)
    # nbclient's default ("graceful") asks the kernel to exit and polls for up to a second:
    # ~0.4 s of idle core per notebook. Nothing in a finished student kernel is worth an
    # orderly exit (every output is in; the sandbox kills whatever it started anyway).
    shutdown_kernel = Enum(
        ["graceful", "immediate"],
        default_value="immediate",
        help="How the kernel is stopped after the notebook: 'immediate' kills it.",
    ).tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", "autograder.sandbox.SandboxedKernelManager")
        super().__init__(*args, **kwargs)

    @validate(
        "timeout",
        "notebook_timeout",
        "student_timeout",
        "interrupt_grace",
        "probe_timeout",
        "startup_timeout",
    )
    def _limit_in_seconds(self, proposal: Any) -> Any:
        # nbclient reads a timeout of None, 0 or -1 as "no limit": here every limit holds.
        try:
            limits.check_seconds(proposal.trait.name, proposal.value, defaults.MAX_CPU_SECONDS)
        except limits.LimitError as error:
            raise TraitError(f"ProtectedExecute.{proposal.trait.name}: {error}") from None
        return proposal.value

    def time_limits(self) -> limits.TimeLimits:
        """This preprocessor's limits, checked together (LimitError)."""
        return limits.TimeLimits(
            cell=self.timeout,
            notebook=self.notebook_timeout,
            student=self.student_timeout,
            interrupt_grace=self.interrupt_grace,
            startup=self.startup_timeout,
        )

    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):  # a last line that never fires first
            km.cpu_seconds = self.time_limits().cpu_seconds
        return km

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        # A cell's limit is enforced by _execute_within (interrupt, then kill); nbclient's own
        # would interrupt, fake a reply and send the next cell to a kernel that never answered.
        return None if cell is not None else super()._get_timeout(cell)

    # -- the cell loop -------------------------------------------------------------------------

    def preprocess(
        self, nb: NotebookNode, resources: Any = None, km: Any = None
    ) -> tuple[NotebookNode, Any]:
        from nbclient import NotebookClient

        time_limits = self.time_limits()  # before anything starts: limits that cannot hold fail
        running.check()  # the run was stopped: no kernel starts
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._output_bytes = 0  # output seen so far in this notebook
        self._told_truncated = False
        info = (resources or {}).get("nbgrader", {})
        run = NotebookRun(student=info.get("student", "?"), notebook=info.get("notebook", "?"))
        run.cells = [CellRecord(index, grade_id(cell)) for index, cell in enumerate(nb.cells)]
        run.tracked = tracked_arrays(nb.cells)  # visible code only: the plot reaches the student
        clock = limits.student_clock(run.student, run.notebook)
        started = time.monotonic()
        student_left = clock.remaining(self.student_timeout)
        budget = Budget(started + self.notebook_timeout, started + student_left)
        run.limits = {**time_limits.to_json(), "student_left": round(student_left, 3)}
        static = self._static_read(nb, run, info)
        try:
            if info.get("assignment") and not any(is_test(cell) for cell in nb.cells):
                # In nbgrader's autograde (OverwriteCells put the gradebook's cells back): a
                # lesson, which only plain `nbgrader autograde` grades, could earn nothing.
                run.reason = NOTHING_TO_GRADE
            elif student_left <= 0:  # the student's time is spent: no kernel at all
                self._stop(nb, run, 0, "student", "the notebook was not started")
            else:
                try:
                    self._run_in_kernel(nb, run, static, budget)
                except SandboxUnavailable as error:
                    self._not_graded(nb, run, error, resources, started)
                    raise  # nbgrader then records no grade for this student's submission
        finally:  # a kernel that failed to start took the student's time too
            clock.used += time.monotonic() - started
        run.seconds = round(time.monotonic() - started, 3)
        if run.evidence and run.status == "graded":
            run.raise_status("flagged", "; ".join(run.flags))
        for cell, record in zip(nb.cells, run.cells, strict=True):
            if _is_test(cell):  # the student's own result, where the grader gave no verdict
                verdict = "passed" if verdicts.passed(cell) else "failed"
                record.conclude(verdict, verdicts.student_message(cell))
        self._save(run, resources)
        return self.nb, self.resources

    def _static_read(
        self, nb: NotebookNode, run: NotebookRun, info: dict[str, str]
    ) -> list[tuple[int, Evidence]]:
        """Before any student code runs. Evidence in cell i taints every test after i; a
        technique the exercises do not accept fails only its own exercise's tests."""
        static = [(self._cell_index(nb, item.cell), item) for item in scan_notebook(nb)]
        # Cells edited before sanitizing: restored, so no credit was at stake.
        run.evidence.extend(take_inspection(info))
        run.evidence.extend(item for _, item in static if not item.is_technique)
        return static

    def _run_in_kernel(
        self,
        nb: NotebookNode,
        run: NotebookRun,
        static: list[tuple[int, Evidence]],
        budget: Budget,
    ) -> None:
        """Start a kernel within the start-up limit, and run the cells in it."""
        seconds, limit = budget.next(self.startup_timeout, "startup")
        try:
            with running.kernel(self._kernel_pid), self._kernel_within(seconds, limit):
                self._run_cells(nb, run, static, budget)
        except KernelDidNotStart as error:
            why = (
                f"it did not answer within {error.seconds:g} s "
                f"({self._limit_text(error.limit)}), so nothing of this notebook ran. The "
                "grading machine is at fault, not the notebook: the next run grades it again"
            )
            verdicts.not_run(nb, run.cells, 0, f"the kernel did not start: {why}")
            run.raise_status("ungradable", f"kernel did not start: {why}")
            run.ended_by = "startup"

    def _kernel_pid(self) -> int | None:
        return getattr(getattr(self.km, "provisioner", None), "pid", None)

    @contextlib.contextmanager
    def _kernel_within(self, seconds: float, limit: str) -> Iterator[None]:
        """nbclient's ``setup_kernel``, with the start bounded: KernelDidNotStart when the
        kernel has not started and answered within ``seconds`` (it is killed first)."""
        if getattr(self, "km", None) is None:  # (nbclient's attribute, not typed there)
            self.km = self.create_kernel_manager()
        try:
            run_sync(start_within)(self._start_ready_kernel(), seconds, limit, self._kill_kernel)
            running.check()  # stopped while it started
            yield
        finally:
            if self.owns_km and self.km is not None:  # None: nbclient cleaned up already
                self._cleanup_kernel()

    async def _start_ready_kernel(self) -> None:
        """Start a kernel and a client, and wait until the kernel answers (unbounded here:
        ``start_within`` bounds it). A kernel started earlier (a fork server) goes here."""
        assert self.km is not None
        await self.async_start_new_kernel()
        self.kc = self.km.client()
        await ensure_async(self.kc.start_channels())
        await ensure_async(self.kc.wait_for_ready(timeout=None))
        self.kc.allow_stdin = False
        await run_hook(self.on_notebook_start, notebook=self.nb)

    def _run_cells(
        self,
        nb: NotebookNode,
        run: NotebookRun,
        static: list[tuple[int, Evidence]],
        budget: Budget,
    ) -> None:
        assert self.kc is not None
        # PromptKernelClient already has the kernel's info; another client asks again.
        reply = getattr(self.kc, "ready_reply", None) or self.wait_for_reply(self.kc.kernel_info())
        if reply:
            self.nb.metadata["language_info"] = reply["content"]["language_info"]
        run.sandbox = getattr(self.km, "sandbox_description", "")
        applied = getattr(self.km, "applied_level", None)
        run.sandbox_level = applied or ""
        run.kernel_start = getattr(self.km, "kernel_start", "") or ""
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        # The baseline, before any student cell.
        if self.probe_kernel and self._probe_within(nb, run, budget, 0, "start") is None:
            return
        for index in range(len(nb.cells)):
            if not self._run_cell(nb, run, static, budget, index, pid):
                return

    def _run_cell(
        self,
        nb: NotebookNode,
        run: NotebookRun,
        static: list[tuple[int, Evidence]],
        budget: Budget,
        index: int,
        pid: int | None,
    ) -> bool:
        """Run one cell under its limits; False when the notebook stops here."""
        cell, record = nb.cells[index], run.cells[index]
        running.check()
        seconds, limit = budget.next(self.timeout)
        if seconds <= 0:
            self._stop(nb, run, index, limit, f"the notebook stopped before cell {index + 1}")
            return False
        test = _is_test(cell)
        probe_evidence: list[Evidence] | None = []
        if test and self.probe_kernel:
            probe_evidence = self._probe_within(nb, run, budget, index, record.grade_id)
            if probe_evidence is None:
                return False
        budgets = outside.peak_budgets(cell.source) if test and self.rss_peak_allowance else []
        if budgets:
            record.rss_start_bytes = outside.reset_peak_rss(pid)
        seconds, limit = budget.next(self.timeout)
        cell_started = time.monotonic()
        ending = run_sync(self._execute_within)(cell, index, seconds)
        running.check()  # a kernel killed because the run stopped did not die of this cell
        record.ran = cell.cell_type == "code" and bool(cell.source.strip())
        record.seconds = round(time.monotonic() - cell_started, 3)
        if not self._after_limit(nb, run, index, ending, limit):
            return False
        record.rss_bytes = outside.tree_rss(pid)
        if record.rss_start_bytes is not None:
            record.rss_peak_bytes = outside.peak_rss(pid)
        # The kernel's own error reply names it: the student's code ran out of memory.
        errors = {o.get("ename") for o in cell.get("outputs", []) if o.output_type == "error"}
        if "MemoryError" in errors:
            run.raise_status("over memory", f"cell {index + 1} ran out of memory")
        if test and verdicts.passed(cell):
            self._check_a_passed_test(nb, run, index, static, probe_evidence or [], budgets)
        return True

    def _check_a_passed_test(
        self,
        nb: NotebookNode,
        run: NotebookRun,
        index: int,
        static: list[tuple[int, Evidence]],
        probe_evidence: list[Evidence],
        budgets: list[int],
    ) -> None:
        """Distrust a passed test that evidence before or during it contradicts."""
        cell, record = nb.cells[index], run.cells[index]
        used = techniques.failing(nb, [(i, e) for i, e in static if e.is_technique], index)
        if used:  # it explains what the memory read from outside would show: no evidence
            run.observations += [e for e in used if e not in run.observations]
            verdicts.not_accepted(cell, record, used)
            return
        if self.rss_evidence and isinstance(self.km, SandboxedKernelManager):
            sources = [c.source for c in nb.cells]
            run.observations += outside.rss_not_freed(sources, run, index, self.rss_drop_fraction)
        tainted = [e for i, e in static if i < index and not e.is_technique] + probe_evidence
        over_budget = outside.peak_evidence(record, budgets, self.rss_peak_allowance)
        if over_budget is not None:
            run.evidence.append(over_budget)
            tainted.append(over_budget)
        if tainted:
            verdicts.distrust(cell, record, tainted)

    def _kernel_alive(self) -> bool:
        try:
            return bool(run_sync(self.km.is_alive)())
        except Exception:  # a manager that cannot even answer: treat the kernel as gone
            return False

    def _not_graded(
        self,
        nb: NotebookNode,
        run: NotebookRun,
        error: SandboxUnavailable,
        resources: Any,
        started: float,
    ) -> None:
        """The kernel could not get the run's sandbox: no code of the notebook ran. Record it
        (the report and the instructor's summary read it) before nbgrader is told."""
        why = f"{SANDBOX_UNAVAILABLE}: {error}"
        run.status, run.reason = NOT_GRADED, why
        run.sandbox, run.sandbox_level = f"Sandbox not applied: {error}", ""
        verdicts.not_run(nb, run.cells, 0, f"not graded: {why}")
        run.seconds = round(time.monotonic() - started, 3)
        self._save(run, resources)

    # -- limits --------------------------------------------------------------------------------

    async def _execute_within(self, cell: NotebookNode, index: int, seconds: float) -> Ending:
        """Run the cell for at most ``seconds``; then interrupt it, and kill the kernel if it
        has not answered ``interrupt_grace`` seconds later."""
        task = asyncio.ensure_future(self.async_execute_cell(cell, index, store_history=True))
        if await settles(task, seconds):
            return ending_of(task, "done", interrupted=False)
        with contextlib.suppress(Exception):  # a kernel already gone: the wait below sees it
            await ensure_async(self.km.interrupt_kernel())
        if await settles(task, self.interrupt_grace):
            return ending_of(task, "interrupted", interrupted=True)
        await self._kill_kernel()
        if not await settles(task, KILL_SETTLE):  # nbclient sees a dead kernel within 1 s
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its DeadKernelError is expected
        return Ending("killed", interrupted=True)

    async def _kill_kernel(self) -> None:
        """Kill the kernel and everything it started, at once."""
        if isinstance(self.km, SandboxedKernelManager):
            await self.km.kill_leftovers()  # its process group, its uid's processes, orphans
        else:
            with contextlib.suppress(Exception):
                await ensure_async(self.km.signal_kernel(signal.SIGKILL))

    def _after_limit(
        self, nb: NotebookNode, run: NotebookRun, index: int, ending: Ending, limit: str
    ) -> bool:
        """Record how the cell ended; False when the notebook stops at it."""
        cell, record, n = nb.cells[index], run.cells[index], index + 1
        if ending.kind == "done":
            return True
        if ending.kind == "no-iopub" and self._kernel_alive():  # it answered; IOPub lagged
            detail = f"No reply from the kernel in time: {ending.detail}"
            verdicts.conclude(cell, record, "timed out", "CellTimeoutError", detail)
            run.raise_status("timed out", f"cell {n} did not finish in time")
            return True
        if ending.kind in ("died", "no-iopub"):
            self._died(nb, run, index, ending.interrupted)
            return False
        over = self._limit_text(limit)
        if ending.kind == "interrupted" and limit == "cell":  # it answered: the notebook goes on
            text = f"This cell ran past {over} and was interrupted."
            verdicts.conclude(cell, record, "timed out", "CellTimeoutError", text)
            run.raise_status("timed out", f"cell {n} ran over its {self.timeout:g} s limit")
            return True
        killed = ending.kind == "killed"
        what = (
            f"did not answer the interrupt within {self.interrupt_grace:g} s, so the kernel was "
            "stopped"
            if killed
            else "was interrupted"
        )
        text = f"This cell ran past {over} and {what}. The cells after it were not run."
        verdicts.conclude(cell, record, "timed out", "CellTimeoutError", text)
        extra = " and the kernel did not answer the interrupt" if killed else ""
        self._stop(nb, run, index + 1, limit, f"the notebook stopped at cell {n}", extra)
        return False

    def _died(self, nb: NotebookNode, run: NotebookRun, index: int, interrupted: bool) -> None:
        n = index + 1
        when = ", as it was interrupted at its time limit" if interrupted else ""
        text = (
            f"The kernel stopped while running this cell{when} (it exited, crashed or ran "
            "out of memory). The cells after it were not run."
        )
        verdicts.conclude(nb.cells[index], run.cells[index], "kernel died", "KernelDied", text)
        run.raise_status("kernel died", f"the kernel died in cell {n}{when}")
        verdicts.not_run(
            nb, run.cells, index + 1, f"the notebook stopped at cell {n}: the kernel died"
        )

    def _probe_within(
        self, nb: NotebookNode, run: NotebookRun, budget: Budget, index: int, where: str | None
    ) -> list[Evidence] | None:
        """The probe's evidence; None when the kernel did not answer it in time (it is then
        killed, and the notebook stopped: nothing more is sent to it)."""
        seconds, limit = budget.next(self.probe_timeout, "probe")
        if seconds <= 0:
            self._stop(nb, run, index, limit, f"the notebook stopped before cell {index + 1}")
            return None
        try:
            return self._probe(run, where or f"cell {index + 1}", seconds)
        except KernelNotAnswering:
            run_sync(self._kill_kernel)()
            place = "before any cell" if where == "start" else f"before cell {index + 1}"
            extra = " and the kernel was stopped"
            self._stop(nb, run, index, limit, f"the notebook stopped {place}", extra)
            return None

    def _limit_text(self, limit: str) -> str:
        return {
            "cell": f"the {self.timeout:g} s limit of a cell",
            "notebook": f"the {self.notebook_timeout:g} s limit of the notebook",
            "student": f"the {self.student_timeout:g} s limit on all of this student's notebooks",
            "probe": f"the {self.probe_timeout:g} s the kernel has to answer the grader's check",
            "startup": f"the {self.startup_timeout:g} s a kernel has to start",
        }[limit]

    def _stop(
        self,
        nb: NotebookNode,
        run: NotebookRun,
        start: int,
        limit: str,
        where: str,
        extra: str = "",
    ) -> None:
        """The notebook stops: graded cells from ``start`` on score 0, saying where and why."""
        why = f"{where}: {self._limit_text(limit)} ran out{extra}"
        verdicts.not_run(nb, run.cells, start, why)
        run.ended_by = limit
        if STATUSES.index(run.status) >= STATUSES.index("timed out"):  # the stop is the news
            run.status, run.reason = "timed out", why

    # -- evidence ------------------------------------------------------------------------------

    @staticmethod
    def _cell_index(nb: NotebookNode, where: str) -> int:
        for index, cell in enumerate(nb.cells):
            if grade_id(cell) == where or where == f"cell {index + 1}":
                return index
        return 0

    def _probe(self, run: NotebookRun, where: str, seconds: float) -> list[Evidence]:
        """Evidence from the probe; KernelNotAnswering when it did not finish in ``seconds``."""
        nonce = secrets.token_hex(8)
        try:
            text = run_sync(run_hidden)(self.kc, probe_code(nonce), seconds)
        except DeadKernelError:
            return []  # the cell itself will report the dead kernel
        found = read_probe(text, nonce, where)
        run.evidence.extend(found)
        return found

    # -- output size ---------------------------------------------------------------------------

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
        """Keep at most max_output_bytes of output; errors and stderr always get through."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        self._output_bytes += size
        keep = msg["msg_type"] == "error" or (
            msg["msg_type"] == "stream" and msg["content"].get("name") == "stderr"
        )
        if self._output_bytes > self.max_output_bytes and not keep:
            if not self._told_truncated:
                self._told_truncated = True
                outs.append(
                    NotebookNode(
                        output_type="stream",
                        name="stdout",
                        text=f"[output past {self.max_output_bytes:,} bytes was dropped by the grader]\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)

    # -- records -------------------------------------------------------------------------------

    def _save(self, run: NotebookRun, resources: Any) -> None:
        """Hand the run to the steps after this one, and save it beside the run."""
        resources = resources if resources is not None else {}
        resources["autograder"] = run
        folder = (
            Path(self.evidence_dir) if self.evidence_dir else self._default_evidence_dir(resources)
        )
        if folder is not None:
            run.save(folder / run.student / f"{run.notebook}.json")

    def _default_evidence_dir(self, resources: Any) -> Path | None:
        coursedir = find_coursedir(self)
        if coursedir is None:
            return None
        assignment = resources.get("nbgrader", {}).get("assignment") or coursedir.assignment_id
        return Path(coursedir.root) / defaults.REPORT_DIR / assignment / "runs"
