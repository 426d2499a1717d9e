"""The records of a grading run, typed, from the kernel to the report.

One path, one shape at each step:

* :class:`NotebookRun` (with a :class:`CellRecord` per cell): made by the executor
  (``autograder.pipeline.protected_execute``) while it runs one notebook. It is handed to
  the steps after it in ``resources["autograder"]`` (``FlagInGradebook`` reads it) and
  saved as JSON beside the run, which is how it leaves nbgrader's worker process.
* :class:`StudentReport` (with a :class:`NotebookReport` and :class:`CellReport` per
  notebook and graded cell): made by the grading run (``autograder.grading.report``)
  from the runs and the gradebook's scores; ``report.json``, ``totals.csv``, the CLI
  table and the memory plot read it.

Evidence and observations are :class:`autograder.integrity.evidence.Evidence`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autograder.integrity.evidence import Evidence

# Statuses of a graded notebook, most serious first (a notebook gets the first that applies).
# "not graded": the run's sandbox could not be applied to its kernel, so none of its code ran
# (the reason says why); the next run grades it again.
STATUSES = (
    "not graded",
    "ungradable",
    "kernel died",
    "timed out",
    "over memory",
    "flagged",
    "graded",
)
NOT_GRADED = "not graded"
SANDBOX_UNAVAILABLE = "sandbox unavailable"  # how the reason of a "not graded" notebook starts
# The reason of a notebook nbgrader autograded without running it: it has no graded cell.
NOTHING_TO_GRADE = "not run: no cell of this notebook earns points"

# What the executor concluded about one test cell. The grader's own verdicts (all but
# "passed" and "failed") explain why a test scored 0 whatever the student's code printed.
VERDICTS = ("passed", "failed", "distrusted", "not run", "timed out", "kernel died")


def status_rank(status: str) -> int:
    """Lower is more serious; an unknown status counts as the most serious."""
    return STATUSES.index(status) if status in STATUSES else 0


def _evidence(items: list[dict[str, str]]) -> list[Evidence]:
    return [Evidence(item["flag"], item["cell"], item["detail"]) for item in items]


# -- one notebook, as the executor saw it ------------------------------------------------------


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
    verdict: str | None = None  # test cells only: one of VERDICTS
    message: str = ""  # test cells only: what the student reads about this test

    def conclude(self, verdict: str, message: str) -> None:
        """The executor's verdict on this test; the grader's own outrank the student's."""
        if self.verdict in (None, "passed", "failed") or verdict not in ("passed", "failed"):
            self.verdict, self.message = verdict, message


@dataclass
class TrackedArray:
    """An array a cell tracks (``checks.track(array, "label")``) and where a test checks it
    was freed (``checks.assert_freed("label")``). Cells are numbered from 1, as in the plot.

    Read from the visible part of the cells only: the student sees both calls in the
    released notebook, so the plot and the feedback page may show them."""

    label: str
    created_cell: int
    freed_cell: int | None = None  # None: no visible test after it checks it was freed


@dataclass
class NotebookRun:
    """Everything the grader saw while running one notebook."""

    student: str
    notebook: str
    status: str = "graded"
    reason: str = ""
    evidence: list[Evidence] = field(default_factory=list)
    # Measurements that are no evidence on their own (resident memory that did not fall: the
    # allocator may keep freed memory), for the instructor to read beside the evidence.
    observations: list[Evidence] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)
    sandbox: str = ""  # what containment the kernel got, in words
    sandbox_level: str = ""  # its level (autograder.sandbox.capabilities.LEVELS), "" if none ran
    # How its process was started: "forked" (from the fork server, autograder.sandbox.forked)
    # or "exec" (through the launcher); "" if none started.
    kernel_start: str = ""
    seconds: float = 0.0
    # The limit that stopped the notebook early ("cell", "notebook", "student", "probe"), or
    # None when it ran to its end (a cell may still have been interrupted and the rest run).
    ended_by: str | None = None
    limits: dict[str, float] = field(default_factory=dict)  # the limits it ran under
    tracked: list[TrackedArray] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        return sorted({item.flag for item in self.evidence})

    def raise_status(self, status: str, reason: str) -> None:
        """Keep the most serious status seen."""
        if STATUSES.index(status) < STATUSES.index(self.status):
            self.status, self.reason = status, reason

    def cell(self, grade_id: str) -> CellRecord | None:
        return next((c for c in self.cells if c.grade_id == grade_id), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = self.flags
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NotebookRun:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["evidence"] = _evidence(data.get("evidence", []))
        values["observations"] = _evidence(data.get("observations", []))
        values["cells"] = [CellRecord(**cell) for cell in data.get("cells", [])]
        values["tracked"] = [TrackedArray(**item) for item in data.get("tracked", [])]
        return cls(**values)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> NotebookRun | None:
        """The run saved at ``path``; None when there is none (the notebook never ran)."""
        if not path.is_file():
            return None
        return cls.from_json(json.loads(path.read_text()))


# -- one student, as the report shows them -----------------------------------------------------


@dataclass
class CellReport:
    grade_id: str
    score: float
    max_score: float
    status: str  # "passed", "partial", "failed", "distrusted", "not run"
    message: str


@dataclass
class MemoryPoint:
    cell: int  # 1-based
    grade_id: str | None
    rss_bytes: int | None


@dataclass
class NotebookReport:
    notebook: str
    status: str
    reason: str
    score: float
    max_score: float
    cells: list[CellReport] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    # What was measured but is no evidence on its own (RSS that did not fall).
    observations: list[Evidence] = field(default_factory=list)
    memory_after_each_cell: list[MemoryPoint] = field(default_factory=list)
    tracked: list[TrackedArray] = field(default_factory=list)  # marked on the memory plot
    seconds: float | None = None
    ended_by: str | None = None
    limits: dict[str, float] = field(default_factory=dict)
    sandbox: str = ""
    sandbox_level: str = ""
    kernel_start: str = ""  # "forked" or "exec" (NotebookRun.kernel_start)
    log: str = ""  # nbgrader's log, when the grader itself failed on this notebook


@dataclass
class StudentReport:
    student: str
    submission_sha256: str
    score: float
    max_score: float
    flagged: bool
    seconds: float  # how long the student's notebooks ran together (their time limit's clock)
    # Which submission was graded (nbgrader collect keeps a student's latest), and how late.
    submitted_at: str | None = None
    seconds_late: float = 0.0
    late_penalty: float = 0.0
    notebooks: list[NotebookReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worst_status(self) -> str:
        statuses = [n.status for n in self.notebooks]
        return min(statuses, key=status_rank) if statuses else "ungradable"

    @property
    def statuses(self) -> list[str]:
        return sorted({n.status for n in self.notebooks}, key=status_rank)

    @property
    def flags(self) -> list[str]:
        return sorted({flag for n in self.notebooks for flag in n.flags})

    def notebook(self, name: str) -> NotebookReport:
        return next(n for n in self.notebooks if n.notebook == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudentReport:
        notebooks = []
        for entry in data["notebooks"]:
            values = dict(entry)
            values["cells"] = [CellReport(**c) for c in entry["cells"]]
            values["evidence"] = _evidence(entry["evidence"])
            values["observations"] = _evidence(entry["observations"])
            values["memory_after_each_cell"] = [
                MemoryPoint(**p) for p in entry["memory_after_each_cell"]
            ]
            # Reports written before arrays were tracked have none.
            values["tracked"] = [TrackedArray(**t) for t in entry.get("tracked", [])]
            notebooks.append(NotebookReport(**values))
        return cls(**{**data, "notebooks": notebooks})
