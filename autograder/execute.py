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
5. a kernel that dies or a notebook that runs out of time: the cells that ran
   keep their grades, the rest score 0 with a message;
6. a test whose result the evidence contradicts is given an error output, so
   nbgrader scores it 0, and the evidence is recorded for the instructor.

What happened is written as JSON beside the run (``evidence_dir``) and passed
on in ``resources["autograder"]`` for the preprocessors after it.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from nbgrader.utils import is_grade
from traitlets import Bool, Enum, Float, Integer, Unicode

from . import integrity
from .sandbox import SandboxedKernelManager  # sets MALLOC_MMAP_THRESHOLD_: freed arrays leave RSS

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
    # Measurements that would count against a result only beside other evidence (resident
    # memory that did not fall: the allocator may keep freed memory): for the instructor.
    observations: list[dict[str, str]] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)
    sandbox: str = ""
    seconds: float = 0.0

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


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


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
    "rss-not-freed": "the kernel's memory, measured from outside Python, never fell when the "
    "array was said to be freed.",
}


def _student_words(item: dict[str, str]) -> str:
    """What a student reads about one piece of evidence: where, and what the code did."""
    flag = item["flag"]
    if flag in _STUDENT_WORDS:
        return _STUDENT_WORDS[flag]
    what = integrity.FLAGS.get(flag, flag.replace("-", " "))
    return f"in {item['cell']}, the notebook {what}."


class ProtectedExecute(Execute):
    """nbgrader's Execute, contained, probed and measured from outside."""

    notebook_timeout = Integer(
        900, help="Seconds a whole notebook may run; cells after that are not run (score 0)."
    ).tag(config=True)
    max_output_bytes = Integer(
        2 * 2**20,
        help="Output a notebook may produce; past it, outputs are dropped (errors and stderr kept).",
    ).tag(config=True)
    probe_kernel = Bool(True, help="Check the kernel's state before every graded test cell.").tag(
        config=True
    )
    rss_evidence = Bool(
        True,
        help="Flag a passed `assert_freed` test when the kernel's resident memory, read from "
        "outside, did not fall by at least half the array's size (needs the sandbox's "
        "MALLOC_MMAP_THRESHOLD_, which makes freed large arrays leave RSS).",
    ).tag(config=True)
    rss_drop_fraction = Float(0.5, help="Fraction of the freed size RSS must fall by.").tag(
        config=True
    )
    rss_peak_allowance = Integer(
        32 * 2**20,
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

    # -- the cell loop -------------------------------------------------------------------------

    def preprocess(
        self, nb: NotebookNode, resources: Any = None, km: Any = None
    ) -> tuple[NotebookNode, Any]:
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._output_bytes = 0  # output seen so far in this notebook
        self._told_truncated = False
        info = (resources or {}).get("nbgrader", {})
        run = NotebookRun(student=info.get("student", "?"), notebook=info.get("notebook", "?"))
        run.cells = [CellRecord(index, _grade_id(cell)) for index, cell in enumerate(nb.cells)]
        started = time.monotonic()

        # 1. Static read, before any student code runs. Evidence in cell i taints every test after i.
        static = [(self._cell_index(nb, item.cell), item) for item in integrity.scan_notebook(nb)]
        for item in nb.metadata.get("autograder", {}).get("inspection", []):
            run.evidence.append(
                item
            )  # cells edited before sanitizing: restored, so no credit was at stake
        for _, item in static:
            run.evidence.append(self._evidence_dict(item))

        with self.setup_kernel():
            assert self.kc is not None
            # PromptKernelClient already has the kernel's info; another client asks again.
            reply = getattr(self.kc, "ready_reply", None) or self.wait_for_reply(
                self.kc.kernel_info()
            )
            if reply:
                self.nb.metadata["language_info"] = reply["content"]["language_info"]
            run.sandbox = getattr(self.km, "sandbox_description", "")
            pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
            if self.probe_kernel:
                self._probe(run, "start")  # the baseline, before any student cell
            for index, cell in enumerate(nb.cells):
                record = run.cells[index]
                if time.monotonic() - started > self.notebook_timeout:
                    self._not_run(nb, index, "the notebook ran out of time")
                    run.raise_status(
                        "timed out", f"the notebook took over {self.notebook_timeout} s"
                    )
                    break
                test = cell.cell_type == "code" and is_grade(cell)
                probe_evidence = (
                    self._probe(run, record.grade_id or f"cell {index + 1}")
                    if test and self.probe_kernel
                    else []
                )
                budgets = _budgets(cell.source) if test and self.rss_peak_allowance else []
                if budgets:
                    record.rss_start_bytes = _reset_peak_rss(pid)
                cell_started = time.monotonic()
                try:
                    self.preprocess_cell(cell, resources, index)
                except (DeadKernelError, CellTimeoutError) as error:
                    record.ran = True
                    if self._kernel_alive():  # nbclient gave up waiting, but the kernel lives
                        cell.outputs.append(
                            _error_output(
                                "CellTimeoutError",
                                f"No reply from the kernel in time: {str(error).splitlines()[0]}",
                            )
                        )
                        run.raise_status("timed out", f"cell {index + 1} did not finish in time")
                        continue
                    cell.outputs.append(
                        _error_output(
                            "KernelDied",
                            "The kernel stopped while running this cell (it exited, crashed or ran "
                            "out of memory). The cells after it were not run.",
                        )
                    )
                    run.raise_status("kernel died", f"the kernel died in cell {index + 1}")
                    self._not_run(nb, index + 1, "the kernel died before this cell")
                    break
                record.ran = cell.cell_type == "code" and bool(cell.source.strip())
                record.seconds = round(time.monotonic() - cell_started, 3)
                record.rss_bytes = _tree_rss(pid)
                if record.rss_start_bytes is not None:
                    record.rss_peak_bytes = _peak_rss(pid)
                errors = {
                    o.get("ename") for o in cell.get("outputs", []) if o.output_type == "error"
                }
                if "CellTimeoutError" in errors:
                    run.raise_status("timed out", f"cell {index + 1} ran over {self.timeout} s")
                if "MemoryError" in errors:
                    run.raise_status("over memory", f"cell {index + 1} ran out of memory")
                if test:
                    tainted = [
                        self._evidence_dict(e) for i, e in static if i < index
                    ] + probe_evidence
                    tainted += self._rss_evidence(nb, run, index)
                    tainted += self._peak_evidence(cell, run.cells[index], budgets, run)
                    if tainted and _passed(cell):
                        self._distrust(cell, tainted)
        run.seconds = round(time.monotonic() - started, 3)
        if run.evidence:  # doubted already: what RSS showed is part of the instructor's case
            run.evidence += run.observations
        if run.evidence and run.status == "graded":
            run.raise_status("flagged", "; ".join(run.flags))
        self._save(run, resources)
        return self.nb, self.resources

    def _kernel_alive(self) -> bool:
        try:
            return bool(run_sync(self.km.is_alive)())
        except Exception:  # a manager that cannot even answer: treat the kernel as gone
            return False

    # -- evidence ------------------------------------------------------------------------------

    @staticmethod
    def _cell_index(nb: NotebookNode, where: str) -> int:
        for index, cell in enumerate(nb.cells):
            if _grade_id(cell) == where or where == f"cell {index + 1}":
                return index
        return 0

    @staticmethod
    def _evidence_dict(item: Any) -> dict[str, str]:
        return {"flag": item.flag, "cell": item.cell, "detail": item.detail}

    def _probe(self, run: NotebookRun, where: str) -> list[dict[str, str]]:
        nonce = secrets.token_hex(8)
        try:
            text = run_sync(self._run_hidden)(integrity.probe_code(nonce))
        except DeadKernelError:
            return []  # the cell itself will report the dead kernel
        found = [self._evidence_dict(e) for e in integrity.read_probe(text, nonce, where)]
        run.evidence.extend(found)
        return found

    async def _run_hidden(self, code: str, timeout: float = 10.0) -> str:
        """Run code in the kernel outside the notebook: no history, no cell; return its stdout."""
        assert self.kc is not None
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False)
        stdout: list[str] = []
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "".join(stdout)
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

    def _rss_evidence(self, nb: NotebookNode, run: NotebookRun, index: int) -> list[dict[str, str]]:
        """A passed `assert_freed` whose array never left the kernel's resident memory.

        Recorded as an observation, never as evidence on its own, so it returns nothing:
        glibc carves new arrays out of free heap blocks (after a student's `.tolist()`,
        for one), and such memory stays resident when the array is freed, exactly as a
        hidden copy would. It joins the evidence only where other evidence already
        doubts the notebook (see `preprocess`).
        """
        cell = nb.cells[index]
        if (
            not self.rss_evidence
            or not isinstance(self.km, SandboxedKernelManager)
            or not _passed(cell)
        ):
            return []
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
        return []

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
            if cell.cell_type == "code" and is_grade(cell):
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
