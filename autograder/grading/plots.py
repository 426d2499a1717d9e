"""A small plot per submission: the kernel's memory after every cell, read from outside,
with where each tracked array was created and where a test checked it was freed."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autograder.grading import stopping
from autograder.records import NotebookReport, StudentReport

CREATED_STYLE = {"marker": "^", "color": "tab:green", "label": "array created (checks.track)"}
FREED_STYLE = {"marker": "v", "color": "tab:purple", "label": "checked freed (assert_freed)"}


def _mark_tracked(axis: Any, notebook: NotebookReport, mib_at: dict[int, float]) -> bool:
    """A marker and the array's label at each create and free cell that ran; True if any."""
    marks: dict[str, list[tuple[int, float, str]]] = {"created": [], "freed": []}
    for array in notebook.tracked:
        if array.created_cell in mib_at:
            marks["created"].append((array.created_cell, mib_at[array.created_cell], array.label))
        if array.freed_cell is not None and array.freed_cell in mib_at:
            marks["freed"].append((array.freed_cell, mib_at[array.freed_cell], array.label))
    for kind, style, offset in (("created", CREATED_STYLE, 6), ("freed", FREED_STYLE, -10)):
        if not marks[kind]:
            continue
        cells, mib, _ = zip(*marks[kind], strict=True)
        axis.scatter(cells, mib, s=36, zorder=4, **style)
        for cell, value, label in marks[kind]:
            axis.annotate(
                label,
                (cell, value),
                xytext=(0, offset),
                textcoords="offset points",
                ha="center",
                fontsize=6,
                color=style["color"],
            )
    return bool(marks["created"] or marks["freed"])


def _draw_notebook(axis: Any, notebook: NotebookReport) -> None:
    points = notebook.memory_after_each_cell
    cells = [p.cell for p in points]
    mib = [(p.rss_bytes or 0) / 2**20 for p in points]
    axis.plot(cells, mib, marker=".", linewidth=1)
    tests = [
        (p.cell, m)
        for p, m in zip(points, mib, strict=True)
        if p.grade_id and p.grade_id.endswith("_test")
    ]
    if tests:
        axis.scatter(
            *zip(*tests, strict=True),
            marker="s",
            s=14,
            color="tab:orange",
            label="test cell",
            zorder=3,
        )
    marked = _mark_tracked(axis, notebook, dict(zip(cells, mib, strict=True)))
    if tests or marked:  # beside the axes: inside, it would hide the first cells' marks
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=6, borderaxespad=0)
    axis.margins(y=0.25)  # room for the labels above and below the marks
    axis.set_title(f"{notebook.notebook}: {notebook.status}", fontsize=9)
    axis.set_ylabel("kernel RSS (MiB)", fontsize=8)
    axis.tick_params(labelsize=7)


def plot_memory(student: StudentReport, folder: Path) -> Path | None:
    """Write ``<folder>/<student>.png`` from a student's report; None when nothing ran."""
    runs = [n for n in student.notebooks if n.memory_after_each_cell]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a grading server
    import matplotlib.pyplot as plt

    height = 2.4 * len(runs)
    figure, axes = plt.subplots(len(runs), 1, figsize=(8.5, height), squeeze=False)
    # Fixed margins (in inches, for the titles, labels and the legend on the right):
    # tight_layout would measure every label first, half of the plot's cost per student.
    figure.subplots_adjust(
        left=0.8 / 8.5,
        right=1 - 1.9 / 8.5,
        top=1 - 0.6 / height,
        bottom=0.45 / height,
        hspace=0.9 / 2.4,
    )
    for axis, notebook in zip(axes[:, 0], runs, strict=True):
        _draw_notebook(axis, notebook)
    axes[-1, 0].set_xlabel("cell", fontsize=8)
    figure.suptitle(f"{student.student}: memory after each cell", fontsize=10)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{student.student}.png"
    partial = path.with_name(f".{path.name}.partial")
    figure.savefig(partial, dpi=80, format="png")
    plt.close(figure)
    partial.replace(path)  # whole or absent, even if the drawer is stopped mid-write
    return path


class PlotsInBackground:
    """Draw students' plots in a process of its own while the run goes on: matplotlib takes
    a tenth of a second per student, which the instructor's process (the one writer of the
    gradebook and the report, and on a cluster the one every result passes through) should
    not spend between results. ``close`` waits for the last plot; a plot that failed is
    raised there, after every grade and report is saved."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future[Path | None]] = []

    def draw(self, student: StudentReport) -> None:
        if not any(n.memory_after_each_cell for n in student.notebooks):
            return
        if self._pool is None:  # started on the first plot: a run with none never pays for it
            # Spawned, not forked from the workers' fork server (autograder.grading.worker_forks):
            # a first fork there waits, signals held, until the server has done its imports,
            # seconds on a busy machine, in the one process every result passes through.
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=stopping.leave_interrupts_to_the_run,  # a Ctrl-C is the run's
            )
        with stopping.signals_held():  # the process is spawned here
            self._pending.append(self._pool.submit(plot_memory, student, self.folder))

    def draw_if_missing(self, student: StudentReport) -> None:
        """A student kept from an earlier run: their plot, unless that run drew it."""
        if not (self.folder / f"{student.student}.png").is_file():
            self.draw(student)

    def close(self) -> None:
        if self._pool is None:
            return
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PlotsInBackground:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self._pool is not None:  # stopped: no waiting for plots
            pool, self._pool = self._pool, None
            drawer = list(pool._processes.values())  # (the pool's own record of its process)
            pool.shutdown(wait=False, cancel_futures=True)
            for process in drawer:  # a plot not drawn is drawn by the next run (draw_if_missing)
                process.kill()  # (SIGTERM waits while it starts up with signals held)
        self.close()
