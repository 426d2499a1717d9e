"""The kernel's start-up objects frozen out of the collector's walks (checks/collector.py): the
checks stay fast on an honest notebook, and nothing a frozen object holds or is part of
changes a verdict. Each test needs a fresh kernel: the freeze happens once per process."""

SETUP = """
import gc
import numpy as np
from autograder import checks
checks.start_tracing()
"""
GRID = "grid = np.random.default_rng(0).random(1_000_000)"


def frozen(kernel) -> int:
    return int(kernel.ok("print(gc.get_freeze_count())").stdout)


def test_an_honest_notebook_runs_every_check_with_the_start_up_objects_frozen(kernel):
    kernel.ok(SETUP)
    assert frozen(kernel) > 10_000  # IPython's, ipykernel's and NumPy's objects
    kernel.ok(f'{GRID}\nchecks.track(grid, "grid")\ndel grid')
    kernel.ok('checks.assert_freed("grid")')
    kernel.ok(f'{GRID}\nchecks.track(grid, "grid")\nfirst = grid[:10].copy()\ndel grid')
    kernel.ok('checks.assert_freed("grid", keep_bytes=first.nbytes)')
    kernel.ok("def double(a):\n    return a * 2")
    kernel.ok("checks.assert_no_leak(double, lambda: (np.ones(100_000),))")
    assert frozen(kernel) > 10_000  # no check had to see every object again


def test_a_copy_made_before_tracking_into_a_list_frozen_at_the_start_is_found(kernel):
    kernel.ok("keep = [0.0]")  # made before the set-up cell: frozen with the kernel's objects
    kernel.ok(SETUP)
    kernel.ok(f"{GRID}\nkeep[:] = grid.tolist()")  # before tracking: the memory proof misses it
    kernel.ok('checks.track(grid, "grid")\ndel grid')
    message = kernel.run('checks.assert_freed("grid")').message
    assert message is not None and "a full copy of its data is still in memory (list" in message
    kernel.ok("keep.clear()")
    kernel.ok('checks.assert_freed("grid")')


def test_a_copy_the_notebook_froze_itself_is_found(kernel):
    kernel.ok(SETUP)
    kernel.ok(f"{GRID}\nkept = grid.tolist()\ngc.freeze()")  # out of gc.get_objects()
    kernel.ok('checks.track(grid, "grid")\ndel grid')
    message = kernel.run('checks.assert_freed("grid")').message
    assert message is not None and "a full copy of its data is still in memory (list" in message
    assert "variable `kept`" in message


def test_garbage_that_a_frozen_object_is_part_of_never_fails_a_check(kernel):
    kernel.ok('holder = {"empty": []}')  # frozen at the set-up cell (an empty dict is not)
    kernel.ok(SETUP)
    kernel.ok(f'{GRID}\nchecks.track(grid, "grid")')
    # A cycle through the frozen dict: garbage, but only a full collection frees it.
    kernel.ok('holder["grid"] = grid\nholder["me"] = holder\ndel holder, grid')
    kernel.ok('checks.assert_freed("grid")')
