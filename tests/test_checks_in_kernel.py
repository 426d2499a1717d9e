"""The checks inside a real Jupyter kernel: the output cache, tracebacks, and no stderr."""

SETUP = """
import numpy as np
from autograder import checks
checks.start_tracing()
"""


def test_displayed_array_is_held_by_the_output_cache_until_xdel(kernel):
    kernel.ok(SETUP)
    kernel.ok('report = np.ones(1_000_000)\nchecks.track(report, "report")')
    shown = kernel.ok("report")
    assert shown.results, "the array should have been displayed"
    kernel.ok("del report")
    failed = kernel.run('checks.assert_freed("report")')
    assert failed.error.startswith(
        "AssertionError: The 7.63 MiB (8,000,000 bytes) array 'report' is still in memory"
    )
    assert "Jupyter's output cache" in failed.error
    for place in ("Out[3]", "_3", "_"):
        assert place in failed.error
    # The name is gone, so the advice is to get it back and %xdel it.
    assert "`report = Out[3]` then `%xdel report`" in failed.error
    assert failed.stderr == ""  # nbgrader would score any stderr as 0
    kernel.ok("report = Out[3]")
    kernel.ok("%xdel report")
    kernel.ok('checks.assert_freed("report")')


def test_xdel_advice_while_the_name_still_exists(kernel):
    kernel.ok(SETUP)
    kernel.ok('grid = np.ones(1_000_000)\nchecks.track(grid, "grid")')
    kernel.ok("grid")
    message = kernel.run('checks.assert_freed("grid")').error
    assert "variable `grid`" in message and "Use `%xdel grid` instead of `del grid`" in message
    kernel.ok("%xdel grid")
    kernel.ok('checks.assert_freed("grid")')


def test_a_traceback_keeps_a_functions_locals_alive(kernel):
    kernel.ok(SETUP)
    kernel.ok(
        "def load():\n"
        "    data = np.ones(1_000_000)\n"
        '    checks.track(data, "data")\n'
        '    raise ValueError("bad file")\n'
    )
    assert kernel.run("load()").error == "ValueError: bad file"
    kernel.ok("x = 1")  # a later successful cell does not drop the traceback
    message = kernel.run('checks.assert_freed("data")').error
    assert "an exception's traceback `data` in load()" in message
    assert "checks.forget_last_error()" in message
    assert "<module>" not in message and "run_code" not in message  # only the student's frames
    kernel.ok("checks.forget_last_error()")
    kernel.ok('checks.assert_freed("data")')


def test_an_ordinary_variable_is_not_blamed_on_a_traceback(kernel):
    kernel.ok(SETUP)
    kernel.ok('keep = np.ones(1_000_000)\nchecks.track(keep, "keep")')
    assert kernel.run("1 / 0").error.startswith("ZeroDivisionError")
    holders = kernel.ok('print(checks.holders_of("keep"))').stdout
    assert "variable `keep`" in holders
    assert "traceback" not in holders


def test_a_view_in_the_notebook_is_named(kernel):
    kernel.ok(SETUP)
    kernel.ok('readings = np.ones(2_000_000)\nchecks.track(readings, "readings")')
    kernel.ok("first = readings[:1000]\ndel readings")
    message = kernel.run('checks.assert_freed("readings")').error
    assert "view `first`" in message and "first = first.copy()" in message


def test_stopping_tracemalloc_fails_the_check(kernel):
    kernel.ok(SETUP)
    kernel.ok('big = np.ones(1_000_000)\nchecks.track(big, "big")\ndel big')
    kernel.ok("import tracemalloc\ntracemalloc.stop()")
    message = kernel.run('checks.assert_freed("big")').error
    assert message.startswith("TracingOffError: Memory tracing is off")


def test_unknown_label_in_kernel(kernel):
    kernel.ok(SETUP)
    run = kernel.run('checks.assert_freed("grid")')
    assert run.error.startswith("AssertionError: No array was tracked as 'grid'")
    assert run.stderr == ""
