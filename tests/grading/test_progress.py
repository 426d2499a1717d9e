"""The progress bar forecasts from the run's own pace; the worst case stays a bound."""

from __future__ import annotations

import pytest

from autograder.grading import run


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(run.time, "monotonic", lambda: now[0])
    return now


def test_the_time_left_is_the_pace_so_far_times_the_students_left(clock):
    # 10 students, 1 with nothing to grade; 2 workers; a worst case of an hour.
    bar = run._Progress(total=10, to_grade=9, workers=2, worst_case=3600.0)
    assert bar.expected_left() is None and "estimating" in bar.bar.postfix
    bar.update(graded=False)  # the empty submission: done at once, says nothing of the pace
    assert bar.expected_left() is None
    clock[0] += 30
    bar.update()
    bar.update()  # two students in 30 s: 15 s a student, 7 left
    assert bar.expected_left() == pytest.approx(7 * 15)
    assert bar.bar.postfix == "about 1 min 45 s left"
    clock[0] += 3500  # far slower than the pace: the forecast never passes the bound
    bar.update()
    assert bar.expected_left() == pytest.approx(3600 - 3530)
    bar.close()
