"""Evidence this process reads from outside the kernel, which no code in it can fake.

* The kernel's resident memory after every cell (with everything it started).
* Around a test that calls ``assert_peak_below``: its peak resident memory (VmHWM, reset
  just before the cell). A peak far above the budget means the data was held where the
  tracer does not look (``np.memmap``, ``mmap``, a C extension): ``rss-over-budget``.
* After a passed ``assert_freed``: whether resident memory fell by the array's size. It
  may not for an honest notebook (glibc keeps freed heap for reuse), so this is only an
  *observation* for the instructor, never evidence.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from autograder.integrity.evidence import Evidence
from autograder.records import CellRecord, NotebookRun

# `checks.track(array, "label")`: where a tracked array is made (also read by pipeline.tracked_arrays).
TRACK_CALL = re.compile(r"checks\.track\(\s*\w+\s*,\s*[\"'](\w+)[\"']")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_FREED = re.compile(r"checks\.assert_freed\(\s*[\"'](\w+)[\"'][^)]*?expected_nbytes\s*=\s*([\d_]+)")


def tree_rss(pid: int | None) -> int | None:
    """Resident memory of the kernel and everything it started (None when it is gone).

    Read after every cell, so read lean: one pass over ``/proc/*/stat`` for the parents,
    then each process of the tree's ``statm`` (what psutil's ``memory_info().rss`` reads)."""
    if pid is None:
        return None
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read(f"/proc/{name}/stat")
            if stat:  # fields[1]: the parent (fields[0] is field 3 of proc(5))
                fields = stat[stat.rfind(b")") + 2 :].split(maxsplit=2)
                children.setdefault(int(fields[1]), []).append(int(name))
    total, todo, found = 0, [pid], False
    while todo:
        process = todo.pop()
        statm = _read(f"/proc/{process}/statm")
        if statm:
            found = found or process == pid
            total += int(statm.split()[1]) * _PAGE
        todo += children.get(process, [])
    return total if found else None


def _read(path: str) -> bytes:
    """The start of a /proc file, or b"" when its process is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, 1024)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _proc_status_bytes(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024
    raise KeyError(field)


def reset_peak_rss(pid: int | None) -> int | None:
    """Reset the kernel's peak resident memory to what it holds now; that amount, or None
    where Linux does not let this process do it (no such process, not its owner, no /proc)."""
    if pid is None:
        return None
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset VmHWM to VmRSS
        return _proc_status_bytes(pid, "VmHWM")
    except (OSError, KeyError, ValueError):
        return None


def peak_rss(pid: int | None) -> int | None:
    """The kernel's peak resident memory since the last reset."""
    if pid is None:
        return None
    try:
        return _proc_status_bytes(pid, "VmHWM")
    except (OSError, KeyError, ValueError):
        return None


def peak_budgets(source: str) -> list[int]:
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


def _where(record: CellRecord) -> str:
    return record.grade_id or f"cell {record.index + 1}"


def peak_evidence(record: CellRecord, budgets: list[int], allowance: int) -> Evidence | None:
    """A passed `assert_peak_below` while the kernel's memory, seen from outside, rose
    far past the budget: the data was held where tracemalloc does not look."""
    start, peak = record.rss_start_bytes, record.rss_peak_bytes
    if not budgets or start is None or peak is None:
        return None
    budget = max(budgets)
    if peak - start <= budget + allowance:
        return None
    detail = (
        f"assert_peak_below passed with a budget of {budget:,} bytes, but the kernel's "
        f"resident memory, read from outside, rose by {peak - start:,} bytes during the "
        "test: the data was held in memory the tracer does not count (np.memmap, mmap, "
        "a C extension). Read one block at a time into ordinary arrays and keep only "
        "running totals."
    )
    return Evidence("rss-over-budget", _where(record), detail)


def rss_not_freed(
    sources: list[str], run: NotebookRun, index: int, drop_fraction: float
) -> list[Evidence]:
    """Observations for the passed `assert_freed` calls of test cell ``index`` whose array
    never left the kernel's resident memory (``sources``: every cell's source, in order).

    Never evidence: glibc carves new arrays out of free heap blocks (after a student's
    `.tolist()`, for one), and such memory stays resident when the array is freed, exactly
    as a hidden copy would. Beside evidence that flags the notebook it helps the
    instructor's case; it never decides a score or a flag (and whether RSS fell varies
    from run to run, which a flag must not).
    """
    found = []
    for label, size in _FREED.findall(sources[index]):
        nbytes = int(size.replace("_", ""))
        tracked_at = [i for i in range(index) if label in TRACK_CALL.findall(sources[i])]
        before = run.cells[tracked_at[-1]].rss_bytes if tracked_at else None
        # The lowest reading since: a failed test in between formats a traceback, and that
        # one-off cost (megabytes) must not hide the drop the student's freeing cell made.
        since = (
            [c.rss_bytes for c in run.cells[tracked_at[-1] + 1 : index + 1] if c.rss_bytes]
            if tracked_at
            else []
        )
        after = min(since) if since else None
        if before is None or after is None or before - after >= drop_fraction * nbytes:
            continue
        detail = (
            f"assert_freed({label!r}) passed, but the kernel's resident memory, read from "
            f"outside, went from {before:,} to {after:,} bytes: it did not fall by the "
            f"{nbytes:,} bytes of {label!r} (heap reuse, or a hidden copy)."
        )
        found.append(Evidence("rss-not-freed", _where(run.cells[index]), detail))
    return found
