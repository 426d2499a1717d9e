"""A small plot per submission: the kernel's memory after every cell, read from outside."""

from __future__ import annotations

from pathlib import Path

from autograder.records import StudentReport


def plot_memory(student: StudentReport, folder: Path) -> Path | None:
    """Write ``<folder>/<student>.png`` from a student's report; None when nothing ran."""
    runs = [n for n in student.notebooks if n.memory_after_each_cell]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a grading server
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(runs), 1, figsize=(7, 2.2 * len(runs)), squeeze=False)
    for axis, notebook in zip(axes[:, 0], runs, strict=True):
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
            axis.legend(loc="upper left", fontsize=7)
        axis.set_title(f"{notebook.notebook}: {notebook.status}", fontsize=9)
        axis.set_ylabel("kernel RSS (MiB)", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("cell", fontsize=8)
    figure.suptitle(f"{student.student}: memory after each cell", fontsize=10)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{student.student}.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
