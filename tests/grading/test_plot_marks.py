"""The tracked arrays in the run record and the report, and their marks on the memory plot."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from autograder.grading.plots import PlotsInBackground, _draw_notebook, plot_memory
from autograder.records import (
    MemoryPoint,
    NotebookReport,
    NotebookRun,
    StudentReport,
    TrackedArray,
)

TRACKED = [TrackedArray("grid", 2, 4), TrackedArray("pixels", 5, None)]


def _report(tracked: list[TrackedArray]) -> StudentReport:
    memory = [
        MemoryPoint(n, f"c{n}_test" if n == 4 else None, (60 + 8 * n) * 2**20) for n in range(1, 7)
    ]
    notebook = NotebookReport(
        "04_ex", "graded", "", 2, 2, memory_after_each_cell=memory, tracked=tracked
    )
    return StudentReport("ada", "0" * 64, 2, 2, False, 1.0, notebooks=[notebook])


def test_the_run_record_keeps_its_tracked_arrays_through_json():
    run = NotebookRun("ada", "04_ex", tracked=list(TRACKED))
    again = NotebookRun.from_json(json.loads(json.dumps(run.to_json())))
    assert again.tracked == TRACKED and again == run


def test_the_report_keeps_them_through_json_and_reads_an_older_report_without_them():
    report = _report(list(TRACKED))
    again = StudentReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again.notebooks[0].tracked == TRACKED and again == report
    older = report.to_json()
    del older["notebooks"][0]["tracked"]
    assert StudentReport.from_json(older).notebooks[0].tracked == []


def test_the_plot_marks_each_create_and_free_cell_with_the_arrays_label():
    figure, axis = plt.subplots()
    _draw_notebook(axis, _report(list(TRACKED)).notebooks[0])
    plt.close(figure)
    # grid at its create cell (2) and its free cell (4); pixels only where it was created.
    assert sorted((t.get_text(), t.xy[0]) for t in axis.texts) == [
        ("grid", 2),
        ("grid", 4),
        ("pixels", 5),
    ]
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["test cell", "array created (checks.track)", "checked freed (assert_freed)"]


def test_a_mark_on_a_cell_that_never_ran_is_left_out(tmp_path):
    figure, axis = plt.subplots()
    _draw_notebook(axis, _report([TrackedArray("late", 9, 12)]).notebooks[0])
    plt.close(figure)
    assert len(axis.texts) == 0
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["test cell"]
    assert plot_memory(_report(list(TRACKED)), tmp_path) == tmp_path / "ada.png"
    assert (tmp_path / "ada.png").stat().st_size > 0


def test_plots_drawn_in_the_background_are_all_written_by_close(tmp_path):
    students = [_report(list(TRACKED)) for _ in range(3)]
    for number, student in enumerate(students):
        student.student = f"s{number}"
    nothing_ran = StudentReport("bob", "0" * 64, 0, 2, False, 0.0, notebooks=[])
    with PlotsInBackground(tmp_path) as drawer:
        for student in [*students, nothing_ran]:
            drawer.draw(student)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.png", "s1.png", "s2.png"]
    assert all(p.stat().st_size > 0 for p in tmp_path.iterdir())
