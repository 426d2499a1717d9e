"""The throughput benchmark's pure helpers on given figures (the benchmark itself is not run:
it takes minutes and wants an idle machine)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).with_name("grading_throughput.py")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grading_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


bench = _load_script()


def verdicts(goals: list) -> list[tuple[float, bool]]:
    return [(round(goal.figure, 6), goal.met) for goal in goals]


def test_throughput_goals_met_when_every_figure_is_within_its_target() -> None:
    goals = bench.throughput_goals(stock=45.0, pool=10.0, floor=9.0, dask=10.5, cores=2)

    assert verdicts(goals) == [(4.5, True), (round(10 / 9, 6), True), (1.05, True)]
    assert [goal.row()[-1] for goal in goals] == ["**met**"] * 3


def test_throughput_goals_not_met_when_each_figure_misses() -> None:
    goals = bench.throughput_goals(stock=30.0, pool=10.0, floor=5.0, dask=12.0, cores=2)

    assert verdicts(goals) == [(3.0, False), (2.0, False), (1.2, False)]
    assert [goal.row()[-1] for goal in goals] == ["**not met**"] * 3


def test_goal_on_its_bound_is_met_and_other_core_counts_are_noted() -> None:
    goals = bench.throughput_goals(stock=40.0, pool=10.0, floor=10.0 / 1.2, dask=None, cores=4)

    assert len(goals) == 2  # no Dask run, no Dask goal
    assert all(goal.met for goal in goals)
    assert "measured on 4 cores" in goals[0].row()[-1]
    assert goals[0].row()[1] == "≥ 4x" and goals[1].row()[1] == "≤ 1.2x"


def test_comparison_goals_use_the_median_of_repeated_runs() -> None:
    timings = bench.Timing
    comparison = bench.Comparison("graded notebooks only", ["a", "b"], ["a", "b"], 4)
    comparison.stock = [timings(s, 0.0) for s in (29.0, 30.0, 90.0)]
    comparison.ours = [timings(s, 0.0) for s in (10.0, 12.0, 11.0)]
    comparison.floor = [timings(s, 0.0) for s in (10.0, 11.0, 9.0)]
    comparison.limit = [timings(s, 0.0) for s in (99.0, 99.0, 99.0)]  # not a goal any more

    goals = bench.comparison_goals(comparison)

    assert verdicts(goals) == [(round(30 / 11, 6), False), (round(11 / 10, 6), True)]


def test_the_goals_conditions_are_every_protection_and_every_score() -> None:
    comparison = bench.Comparison("graded notebooks only", ["a"], ["a"], 2)
    comparison.cells_compared = 30
    comparison.disagreeing_cells = {bench.POOL: 0, bench.DASK: 2}
    comparison.protected = []
    rows = bench.condition_rows(comparison)
    assert [row[-1] for row in rows] == ["**met**", "**met**", "**not met**"]
    assert rows[2][2] == "2 of 30 differ"
    comparison.protected = ["s01 / quiz: uid-only, forked"]
    assert bench.condition_rows(comparison)[0][-1] == "**not met**"


def test_the_check_section_says_whether_it_took_under_3_s() -> None:
    fast = bench.CheckTiming([2.5, 2.9, 2.7], [3.1, 3.3, 3.2], 0.02, [0, 0, 0], 2)
    slow = bench.CheckTiming([3.5, 3.2, 3.4], [3.1, 3.3, 3.2], 0.02, [0, 0, 0], 2)
    assert "**met** (< 3 s: 2.70 s)" in "\n".join(bench.check_lines(fast))
    assert "**not met** (< 3 s: 3.40 s)" in "\n".join(bench.check_lines(slow))
    assert "2.70 (2.50-2.90)" in "\n".join(bench.check_lines(fast))
    assert bench.check_lines(None) == []


def points(grader: str, per_submission: dict[int, float]) -> list:
    return [bench.GrowthPoint(grader, n, n * s, 0.0) for n, s in per_submission.items()]


def test_growth_goal_compares_the_largest_cohort_with_the_smallest() -> None:
    flat = points("pool", {384: 1.1, 24: 1.0, 96: 1.3})  # the middle size does not count
    steep = points("dask", {24: 1.0, 384: 1.2})
    single = points("alone", {24: 1.0})

    goals = bench.growth_goals(flat + steep + single)

    assert [(goal.goal.split(":")[0], goal.met) for goal in goals] == [
        ("pool", True),
        ("dask", False),
    ]
    assert "at 384 vs at 24 submissions" in goals[0].goal
    assert round(goals[1].figure, 6) == 1.2


def test_growth_table_shows_each_size_relative_to_the_smallest() -> None:
    text = "\n".join(bench.growth_lines(points("pool", {8: 2.2, 4: 2.0})))

    assert "| pool | 4 | 8.0 | 2.00 | 1.00x | 0% |" in text
    assert "| pool | 8 | 17.6 | 2.20 | 1.10x | 0% |" in text
    assert "**met**" in text
    assert bench.growth_lines([]) == []


def test_per_task_overhead_is_the_extra_dask_time_over_the_submissions() -> None:
    comparison = bench.Comparison("graded notebooks only", ["a"], ["a"], 8)
    comparison.ours = [bench.Timing(20.0, 0.0)]
    comparison.cluster = [bench.Timing(24.0, 0.0)]
    comparison.travel = bench.Travel(5, 10 * 1024, [1024, 3072, 2048], [1100, 3200, 2100], [4096])

    text = "\n".join(bench.travel_lines([comparison], workers=2))

    assert "(24.0 - 20.0) / 8 = **+0.50**" in text
    assert "10.0 KiB (5 files) x 2" in text
    assert "2.0 KiB (1.0 KiB-3.0 KiB)" in text  # the median task payload, with its range
    comparison.cluster = []  # --no-cluster: no section
    assert bench.travel_lines([comparison], workers=2) == []


def test_cohort_sizes_are_sorted_and_must_be_positive_whole_numbers() -> None:
    assert bench.cohort_sizes("96,24,384,24") == [24, 96, 384]
    for wrong in ("0,4", "four", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.cohort_sizes(wrong)


def test_notebooks_below_every_protection_are_named_and_unexecuted_ones_skipped(tmp_path) -> None:
    level = "full" if os.geteuid() == 0 else "uid-only"
    notebooks = [
        {"notebook": "lesson", "max_score": 0, "sandbox_level": "", "kernel_start": ""},
        {"notebook": "quiz", "max_score": 3, "sandbox_level": level, "kernel_start": "forked"},
        {"notebook": "ex", "max_score": 5, "sandbox_level": level, "kernel_start": "exec"},
    ]
    report = {"sandbox": {"level": level}, "students": [{"student": "s01", "notebooks": notebooks}]}
    (tmp_path / "report.json").write_text(json.dumps(report))

    assert bench.unprotected(tmp_path) == [f"s01 / ex: {level}, exec"]


# A command that leaves a grandchild behind, as `autograder grade` leaves its workers' fork
# server: the grandchild burns 0.5 s of CPU after its parent has exited.
_ORPHANING_COMMAND = """
import os, time
if os.fork() == 0:
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass
    os._exit(0)
"""

# In a process of its own: adopting orphans changes the process that calls it for good.
# First without adopting (the CPU is lost: the test can tell), then adopting.
_MEASURE = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.benchmarks import cpu_time
for adopt in (False, True):
    if adopt:
        cpu_time.adopt_orphans()
    _, _, used = cpu_time.run_counted([sys.executable, "-c", sys.argv[2]], check=True)
    print(used)
"""


def test_the_cpu_of_what_a_command_leaves_behind_is_its_own() -> None:
    """The CPU of an orphaned grandchild counts as the command's (not as other load) once the
    benchmark adopts orphans; before, it was lost."""
    import subprocess

    repo = str(SCRIPT.parents[2])
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, repo, _ORPHANING_COMMAND],
        capture_output=True,
        text=True,
        check=True,
    )
    lost, adopted = map(float, done.stdout.split())
    assert lost < 0.45 <= adopted, (lost, adopted)
