"""Execute a submission the way nbgrader does, but protected and observed from outside.

``ProtectedExecute`` replaces nbgrader's ``Execute`` preprocessor (see
``nbgrader_config.py``), so plain ``nbgrader autograde`` and ``autograder grade``
run the same steps. Around nbclient's cell loop it adds, in this order:

1. a static read of the student's cells (before any of them runs);
2. a contained kernel (``autograder.sandbox``): memory, CPU, process and file
   limits, no network, another user, hidden instructor files;
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

What happened is written as JSON beside the run (``evidence_dir``) and passed
on in ``resources["autograder"]`` for the preprocessors after it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Float, Integer, TraitError, Unicode, validate

from autograder import defaults, limits
from autograder.integrity.evidence import FLAGS
from autograder.integrity.probe import probe_code, read_probe
from autograder.integrity.static.read import scan_notebook
from autograder.notebook_cells import grade_id, is_test
from autograder.sandbox import (
    SandboxedKernelManager,  # sets MALLOC_MMAP_THRESHOLD_: freed arrays leave RSS
)

# Statuses of a graded notebook, most serious first (a notebook gets the first that applies).
STATUSES = ("ungradable", "kernel died", "timed out", "over memory", "flagged", "graded")

_TRACK = re.compile(r"checks\.track\(\s*\w+\s*,\s*[\"'](\w+)[\"']")
_FREED = re.compile(r"checks\.assert_freed\(\s*[\"'](\w+)[\"'][^)]*?expected_nbytes\s*=\s*([\d_]+)")


@dataclass
class CellRecord:
    index: int
    grade_id: str | None
    rss_bytes: int | None = None  # the kernel's resident memory after the cell, read from outside
    # Around a test that calls assert_peak_below: resident memory when the cell started, and
    # the highest it reached during the cell (the kernel's VmHWM, reset just before).
    rss_start_bytes: int | None = None
    rss_peak_bytes: int | None = None
    seconds: float = 0.0
    ran: bool = False


@dataclass
class NotebookRun:
    """Everything the grader saw while running one notebook."""

    student: str
    notebook: str
    status: str = "graded"
    reason: str = ""
    evidence: list[dict[str, str]] = field(default_factory=list)
    # Measurements that are no evidence on their own (resident memory that did not fall: the
    # allocator may keep freed memory), for the instructor to read beside the evidence.
    observations: list[dict[str, str]] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)
    sandbox: str = ""
    seconds: float = 0.0
    # The limit that stopped the notebook early ("cell", "notebook", "student", "probe"), or
    # None when it ran to its end (a cell may still have been interrupted and the rest run).
    ended_by: str | None = None
    limits: dict[str, float] = field(default_factory=dict)  # the limits it ran under

    @property
    def flags(self) -> list[str]:
        return sorted({item["flag"] for item in self.evidence})

    def raise_status(self, status: str, reason: str) -> None:
        """Keep the most serious status seen."""
        if STATUSES.index(status) < STATUSES.index(self.status):
            self.status, self.reason = status, reason

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = self.flags
        return data


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def _passed(cell: NotebookNode) -> bool:
    return not any(
        output.output_type == "error"
        or (output.output_type == "stream" and output.name == "stderr")
        for output in cell.outputs
    )


def _tree_rss(pid: int | None) -> int | None:
    """Resident memory of the kernel and everything it started."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return None


def _seen_from_outside(
    run: NotebookRun, flag: str, record: CellRecord, detail: str
) -> dict[str, str]:
    """Evidence this process measured itself, recorded in the run and returned."""
    item = {"flag": flag, "cell": record.grade_id or f"cell {record.index + 1}", "detail": detail}
    run.evidence.append(item)
    return item


def _proc_status_bytes(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024
    raise KeyError(field)


def _reset_peak_rss(pid: int | None) -> int | None:
    """Reset the kernel's peak resident memory to what it holds now; that amount, or None
    where Linux does not let this process do it (no such process, not its owner, no /proc)."""
    if pid is None:
        return None
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset VmHWM to VmRSS
        return _proc_status_bytes(pid, "VmHWM")
    except (OSError, KeyError, ValueError):
        return None


def _peak_rss(pid: int | None) -> int | None:
    """The kernel's peak resident memory since the last reset."""
    if pid is None:
        return None
    try:
        return _proc_status_bytes(pid, "VmHWM")
    except (OSError, KeyError, ValueError):
        return None


def _budgets(source: str) -> list[int]:
    """The ``budget_bytes`` of every ``checks.assert_peak_below`` call in a test cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        budget
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "assert_peak_below"
        for keyword in node.keywords
        if keyword.arg == "budget_bytes" and (budget := _whole_number(keyword.value)) is not None
    ]


def _whole_number(node: ast.AST) -> int | None:
    """The value of an integer literal or of ``+ - * **`` between them (``8 * 2**20``)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Pow)):
        left, right = _whole_number(node.left), _whole_number(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Pow) and right > 64):
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        return left * right if isinstance(node.op, ast.Mult) else left**right
    return None


_STUDENT_WORDS = {
    "rss-over-budget": "while this test ran, the kernel's memory, measured from outside "
    "Python, rose far past the budget: the data was kept where the memory tracer does not "
    "look (np.memmap, mmap, a C extension). Read one block at a time into ordinary arrays "
    "and keep only running totals.",
}


def _student_words(item: dict[str, str]) -> str:
    """What a student reads about one piece of evidence: where, and what the code did."""
    flag = item["flag"]
    if flag in _STUDENT_WORDS:
        return _STUDENT_WORDS[flag]
    what = FLAGS.get(flag, flag.replace("-", " "))
    return f"in {item['cell']}, the notebook {what}."


class KernelNotAnswering(Exception):
    """The kernel did not finish a request of the grader's in the time it had."""


@dataclass
class _Budget:
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
class _Ending:
    """How a cell run under a limit ended."""

    kind: str  # "done", "interrupted" (answered the interrupt), "killed", "died", "no-iopub"
    interrupted: bool = False
    detail: str = ""


async def _settles(task: asyncio.Future, seconds: float) -> bool:
    done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    return bool(done)


def _ending(task: asyncio.Future, ok: str, interrupted: bool) -> _Ending:
    error = task.exception()
    if error is None:
        return _Ending(ok, interrupted)
    if isinstance(error, DeadKernelError):
        return _Ending("died", interrupted)
    if isinstance(error, CellTimeoutError):  # nbclient: the reply came, IOPub fell silent
        return _Ending("no-iopub", interrupted, str(error).splitlines()[0])
    raise error


# Seconds to let nbclient notice a killed kernel (it looks every second) before giving up on it.
_KILL_SETTLE = 5.0


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
        "default: grading-report/runs under the course root.",
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

    @validate("timeout", "notebook_timeout", "student_timeout", "interrupt_grace", "probe_timeout")
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
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._output_bytes = 0  # output seen so far in this notebook
        self._told_truncated = False
        info = (resources or {}).get("nbgrader", {})
        run = NotebookRun(student=info.get("student", "?"), notebook=info.get("notebook", "?"))
        run.cells = [CellRecord(index, grade_id(cell)) for index, cell in enumerate(nb.cells)]
        clock = limits.student_clock(run.student, run.notebook)
        started = time.monotonic()
        student_left = clock.remaining(self.student_timeout)
        budget = _Budget(started + self.notebook_timeout, started + student_left)
        run.limits = {**time_limits.to_json(), "student_left": round(student_left, 3)}
        static = self._static_read(nb, run)
        try:
            if student_left <= 0:  # the student's time is spent: no kernel at all
                self._stop(nb, run, 0, "student", "the notebook was not started")
            else:
                with self.setup_kernel():
                    self._run_cells(nb, run, static, budget)
        finally:  # a kernel that failed to start took the student's time too
            clock.used += time.monotonic() - started
        run.seconds = round(time.monotonic() - started, 3)
        if run.evidence and run.status == "graded":
            run.raise_status("flagged", "; ".join(run.flags))
        self._save(run, resources)
        return self.nb, self.resources

    def _static_read(self, nb: NotebookNode, run: NotebookRun) -> list[tuple[int, Any]]:
        """Before any student code runs. Evidence in cell i taints every test after i."""
        static = [(self._cell_index(nb, item.cell), item) for item in scan_notebook(nb)]
        # Cells edited before sanitizing: restored, so no credit was at stake.
        run.evidence.extend(nb.metadata.get("autograder", {}).get("inspection", []))
        run.evidence.extend(self._evidence_dict(item) for _, item in static)
        return static

    def _run_cells(
        self, nb: NotebookNode, run: NotebookRun, static: list[tuple[int, Any]], budget: _Budget
    ) -> None:
        assert self.kc is not None
        # PromptKernelClient already has the kernel's info; another client asks again.
        reply = getattr(self.kc, "ready_reply", None) or self.wait_for_reply(self.kc.kernel_info())
        if reply:
            self.nb.metadata["language_info"] = reply["content"]["language_info"]
        run.sandbox = getattr(self.km, "sandbox_description", "")
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
        static: list[tuple[int, Any]],
        budget: _Budget,
        index: int,
        pid: int | None,
    ) -> bool:
        """Run one cell under its limits; False when the notebook stops here."""
        cell, record = nb.cells[index], run.cells[index]
        seconds, limit = budget.next(self.timeout)
        if seconds <= 0:
            self._stop(nb, run, index, limit, f"the notebook stopped before cell {index + 1}")
            return False
        test = cell.cell_type == "code" and is_test(cell)
        probe_evidence: list[dict[str, str]] | None = []
        if test and self.probe_kernel:
            probe_evidence = self._probe_within(nb, run, budget, index, record.grade_id)
            if probe_evidence is None:
                return False
        budgets = _budgets(cell.source) if test and self.rss_peak_allowance else []
        if budgets:
            record.rss_start_bytes = _reset_peak_rss(pid)
        seconds, limit = budget.next(self.timeout)
        cell_started = time.monotonic()
        ending = run_sync(self._execute_within)(cell, index, seconds)
        record.ran = cell.cell_type == "code" and bool(cell.source.strip())
        record.seconds = round(time.monotonic() - cell_started, 3)
        if not self._after_limit(nb, run, index, ending, limit):
            return False
        record.rss_bytes = _tree_rss(pid)
        if record.rss_start_bytes is not None:
            record.rss_peak_bytes = _peak_rss(pid)
        errors = {o.get("ename") for o in cell.get("outputs", []) if o.output_type == "error"}
        if "MemoryError" in errors:
            run.raise_status("over memory", f"cell {index + 1} ran out of memory")
        if test:
            self._observe_rss(nb, run, index)
            tainted = [self._evidence_dict(e) for i, e in static if i < index] + probe_evidence
            tainted += self._peak_evidence(cell, run.cells[index], budgets, run)
            if tainted and _passed(cell):
                self._distrust(cell, tainted)
        return True

    def _kernel_alive(self) -> bool:
        try:
            return bool(run_sync(self.km.is_alive)())
        except Exception:  # a manager that cannot even answer: treat the kernel as gone
            return False

    # -- limits --------------------------------------------------------------------------------

    async def _execute_within(self, cell: NotebookNode, index: int, seconds: float) -> _Ending:
        """Run the cell for at most ``seconds``; then interrupt it, and kill the kernel if it
        has not answered ``interrupt_grace`` seconds later."""
        task = asyncio.ensure_future(self.async_execute_cell(cell, index, store_history=True))
        if await _settles(task, seconds):
            return _ending(task, "done", interrupted=False)
        with contextlib.suppress(Exception):  # a kernel already gone: the wait below sees it
            await ensure_async(self.km.interrupt_kernel())
        if await _settles(task, self.interrupt_grace):
            return _ending(task, "interrupted", interrupted=True)
        await self._kill_kernel()
        if not await _settles(task, _KILL_SETTLE):  # nbclient sees a dead kernel within 1 s
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its DeadKernelError is expected
        return _Ending("killed", interrupted=True)

    async def _kill_kernel(self) -> None:
        """Kill the kernel and everything it started, at once."""
        if isinstance(self.km, SandboxedKernelManager):
            await self.km.kill_leftovers()  # its process group, its uid's processes, orphans
        else:
            with contextlib.suppress(Exception):
                await ensure_async(self.km.signal_kernel(signal.SIGKILL))

    def _after_limit(
        self, nb: NotebookNode, run: NotebookRun, index: int, ending: _Ending, limit: str
    ) -> bool:
        """Record how the cell ended; False when the notebook stops at it."""
        cell, n = nb.cells[index], index + 1
        if ending.kind == "done":
            return True
        if ending.kind == "no-iopub" and self._kernel_alive():  # it answered; IOPub lagged
            detail = f"No reply from the kernel in time: {ending.detail}"
            cell.outputs.append(_error_output("CellTimeoutError", detail))
            run.raise_status("timed out", f"cell {n} did not finish in time")
            return True
        if ending.kind in ("died", "no-iopub"):
            self._died(nb, run, index, ending.interrupted)
            return False
        over = self._limit_text(limit)
        if ending.kind == "interrupted" and limit == "cell":  # it answered: the notebook goes on
            cell.outputs.append(
                _error_output("CellTimeoutError", f"This cell ran past {over} and was interrupted.")
            )
            run.raise_status("timed out", f"cell {n} ran over its {self.timeout:g} s limit")
            return True
        killed = ending.kind == "killed"
        what = (
            f"did not answer the interrupt within {self.interrupt_grace:g} s, so the kernel was "
            "stopped"
            if killed
            else "was interrupted"
        )
        cell.outputs.append(
            _error_output(
                "CellTimeoutError",
                f"This cell ran past {over} and {what}. The cells after it were not run.",
            )
        )
        extra = " and the kernel did not answer the interrupt" if killed else ""
        self._stop(nb, run, index + 1, limit, f"the notebook stopped at cell {n}", extra)
        return False

    def _died(self, nb: NotebookNode, run: NotebookRun, index: int, interrupted: bool) -> None:
        n = index + 1
        when = ", as it was interrupted at its time limit" if interrupted else ""
        nb.cells[index].outputs.append(
            _error_output(
                "KernelDied",
                f"The kernel stopped while running this cell{when} (it exited, crashed or ran "
                "out of memory). The cells after it were not run.",
            )
        )
        run.raise_status("kernel died", f"the kernel died in cell {n}{when}")
        self._not_run(nb, index + 1, f"the notebook stopped at cell {n}: the kernel died")

    def _probe_within(
        self, nb: NotebookNode, run: NotebookRun, budget: _Budget, index: int, where: str | None
    ) -> list[dict[str, str]] | None:
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
        self._not_run(nb, start, why)
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

    @staticmethod
    def _evidence_dict(item: Any) -> dict[str, str]:
        return {"flag": item.flag, "cell": item.cell, "detail": item.detail}

    def _probe(self, run: NotebookRun, where: str, seconds: float) -> list[dict[str, str]]:
        """Evidence from the probe; KernelNotAnswering when it did not finish in ``seconds``."""
        nonce = secrets.token_hex(8)
        try:
            text = run_sync(self._run_hidden)(probe_code(nonce), seconds)
        except DeadKernelError:
            return []  # the cell itself will report the dead kernel
        found = [self._evidence_dict(e) for e in read_probe(text, nonce, where)]
        run.evidence.extend(found)
        return found

    async def _run_hidden(self, code: str, timeout: float = defaults.PROBE_TIMEOUT) -> str:
        """Run code in the kernel outside the notebook: no history, no cell; return its stdout.
        KernelNotAnswering when the kernel has not finished it within ``timeout``."""
        assert self.kc is not None
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False)
        stdout: list[str] = []
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KernelNotAnswering(f"no answer within {timeout:g} s")
            try:
                message = await self.kc.iopub_channel.get_msg(timeout=remaining)
            except Empty:
                if not await self.kc.is_alive():
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
                reply = await self.kc.shell_channel.get_msg(
                    timeout=max(0.01, deadline - time.monotonic())
                )
            except Empty:
                break
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        return "".join(stdout)

    def _observe_rss(self, nb: NotebookNode, run: NotebookRun, index: int) -> None:
        """A passed `assert_freed` whose array never left the kernel's resident memory.

        Recorded as an observation for the instructor, never as evidence: glibc carves new arrays out of free heap blocks (after a student's
        `.tolist()`, for one), and such memory stays resident when the array is freed,
        exactly as a hidden copy would. Beside evidence that flags the notebook it helps
        the instructor's case; it never decides a score or a flag (and whether RSS fell
        varies from run to run, which a flag must not).
        """
        cell = nb.cells[index]
        if (
            not self.rss_evidence
            or not isinstance(self.km, SandboxedKernelManager)
            or not _passed(cell)
        ):
            return
        for label, size in _FREED.findall(cell.source):
            nbytes = int(size.replace("_", ""))
            tracked_at = [i for i in range(index) if label in _TRACK.findall(nb.cells[i].source)]
            before = run.cells[tracked_at[-1]].rss_bytes if tracked_at else None
            # The lowest reading since: a failed test in between formats a traceback, and that
            # one-off cost (megabytes) must not hide the drop the student's freeing cell made.
            since = (
                [c.rss_bytes for c in run.cells[tracked_at[-1] + 1 : index + 1] if c.rss_bytes]
                if tracked_at
                else []
            )
            after = min(since) if since else None
            if before is None or after is None or before - after >= self.rss_drop_fraction * nbytes:
                continue
            run.observations.append(
                {
                    "flag": "rss-not-freed",
                    "cell": run.cells[index].grade_id or f"cell {index + 1}",
                    "detail": f"assert_freed({label!r}) passed, but the kernel's resident memory, "
                    f"read from outside, went from {before:,} to {after:,} bytes: it did not "
                    f"fall by the {nbytes:,} bytes of {label!r} (heap reuse, or a hidden copy).",
                }
            )

    def _peak_evidence(
        self, cell: NotebookNode, record: CellRecord, budgets: list[int], run: NotebookRun
    ) -> list[dict[str, str]]:
        """A passed `assert_peak_below` while the kernel's memory, seen from outside, rose
        far past the budget: the data was held where tracemalloc does not look."""
        start, peak = record.rss_start_bytes, record.rss_peak_bytes
        if not budgets or start is None or peak is None or not _passed(cell):
            return []
        budget = max(budgets)
        if peak - start <= budget + self.rss_peak_allowance:
            return []
        detail = (
            f"assert_peak_below passed with a budget of {budget:,} bytes, but the kernel's "
            f"resident memory, read from outside, rose by {peak - start:,} bytes during the "
            "test: the data was held in memory the tracer does not count (np.memmap, mmap, "
            "a C extension). Read one block at a time into ordinary arrays and keep only "
            "running totals."
        )
        return [_seen_from_outside(run, "rss-over-budget", record, detail)]

    @staticmethod
    def _distrust(cell: NotebookNode, evidence: list[dict[str, str]]) -> None:
        """Score the test 0 (nbgrader scores any error output 0) and tell the student why, in
        words they can act on; the figures stay in the instructor's evidence."""
        reasons = "\n".join(f"  - {_student_words(item)}" for item in evidence)
        cell.outputs.insert(
            0,
            _error_output(
                "IntegrityError",
                "This test passed, but the grader does not trust the result, so it scores 0:\n"
                f"{reasons}\nRemove that code, restart the kernel and run the notebook from the "
                "top; the checks' messages then tell you what is left to fix.",
            ),
        )

    def _not_run(self, nb: NotebookNode, start: int, why: str) -> None:
        for cell in nb.cells[start:]:
            if cell.cell_type == "code" and is_test(cell):
                cell.outputs = [_error_output("NotRun", f"This test was not run: {why}.")]

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
        resources = resources if resources is not None else {}
        resources["autograder"] = run.to_json()
        folder = (
            Path(self.evidence_dir) if self.evidence_dir else self._default_evidence_dir(resources)
        )
        if folder is None:
            return
        path = folder / run.student / f"{run.notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run.to_json(), indent=1))

    def _default_evidence_dir(self, resources: Any) -> Path | None:
        coursedir = find_coursedir(self)
        return Path(coursedir.root) / "grading-report" / "runs" if coursedir else None


def find_coursedir(configurable: Any) -> Any:
    """nbgrader's CourseDirectory, from a preprocessor (its parent is the exporter,
    whose parent is the converter that holds the course directory)."""
    node = configurable
    while node is not None:
        if getattr(node, "coursedir", None) is not None:
            return node.coursedir
        node = getattr(node, "parent", None)
    return None
