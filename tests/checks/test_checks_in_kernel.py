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
    assert failed.message.startswith(
        "AssertionError: The 7.63 MiB (8,000,000 bytes) array 'report' is still in memory"
    )
    assert "Jupyter's output cache" in failed.message
    for place in ("Out[3]", "_3", "_"):
        assert place in failed.message
    # The name is gone, so the advice is to get it back and %xdel it.
    assert "`report = Out[3]` then `%xdel report`" in failed.message
    assert failed.stderr == ""  # nbgrader would score any stderr as 0
    kernel.ok("report = Out[3]")
    kernel.ok("%xdel report")
    kernel.ok('checks.assert_freed("report")')


def test_xdel_advice_while_the_name_still_exists(notebook):
    notebook.ok(SETUP)
    notebook.ok('grid = np.ones(1_000_000)\nchecks.track(grid, "grid")')
    notebook.ok("grid")
    message = notebook.run('checks.assert_freed("grid")').message
    assert "Use `%xdel grid` instead of `del grid`" in message
    assert "variable `grid`" not in message  # %xdel removes the name too: one fix, not two
    notebook.ok("%xdel grid")
    notebook.ok('checks.assert_freed("grid")')


def test_a_traceback_keeps_a_functions_locals_alive(notebook):
    notebook.ok(SETUP)
    notebook.ok(
        "def load():\n"
        "    data = np.ones(1_000_000)\n"
        '    checks.track(data, "data")\n'
        '    raise ValueError("bad file")\n'
    )
    assert notebook.run("load()").error == "ValueError: bad file"
    notebook.ok("x = 1")  # a later successful cell does not drop the traceback
    message = notebook.run('checks.assert_freed("data")').message
    assert "an exception's traceback `data` in load()" in message
    assert "checks.forget_last_error()" in message
    assert "<module>" not in message and "run_code" not in message  # only the student's frames
    notebook.ok("checks.forget_last_error()")
    notebook.ok('checks.assert_freed("data")')


def test_an_ordinary_variable_is_not_blamed_on_a_traceback(notebook):
    notebook.ok(SETUP)
    notebook.ok('keep = np.ones(1_000_000)\nchecks.track(keep, "keep")')
    assert notebook.run("1 / 0").error.startswith("ZeroDivisionError")
    holders = notebook.ok('print(checks.holders_of("keep"))').stdout
    assert "variable `keep`" in holders
    assert "traceback" not in holders


def test_a_view_in_the_notebook_is_named(notebook):
    notebook.ok(SETUP)
    notebook.ok('readings = np.ones(2_000_000)\nchecks.track(readings, "readings")')
    notebook.ok("first = readings[:1000]\ndel readings")
    message = notebook.run('checks.assert_freed("readings")').message
    assert "view `first`" in message and "first = first.copy()" in message


def test_stopping_tracemalloc_fails_the_check(notebook):
    notebook.ok(SETUP)
    notebook.ok('big = np.ones(1_000_000)\nchecks.track(big, "big")\ndel big')
    notebook.ok("import tracemalloc\ntracemalloc.stop()")
    message = notebook.run('checks.assert_freed("big")').message
    assert message.startswith("TracingOffError: Memory tracing is off")


def test_unknown_label_in_kernel(notebook):
    notebook.ok(SETUP)
    run = notebook.run('checks.assert_freed("grid")')
    assert run.message.startswith("AssertionError: No array was tracked as 'grid'")
    assert run.stderr == ""


# -- every route that frees passes; every holder is named, with its fix ------------------------

TRACKED = 'grid = np.random.default_rng(0).random(1_000_000)\nchecks.track(grid, "grid")'


def test_every_route_that_frees_passes(notebook):
    notebook.ok(SETUP)
    routes = {
        "rebinding": "grid = None",
        "xdel after a display": "grid\n",  # then %xdel, below
        "a function scope": "def use(a):\n    return float(a.sum())\ntotal = use(grid)\ndel grid",
        "reset_selective": "%reset_selective -f ^grid$",
    }
    for route, code in routes.items():
        notebook.ok(TRACKED)
        notebook.ok(code)
        if route == "xdel after a display":
            notebook.ok("%xdel grid")
        run = notebook.run('checks.assert_freed("grid", expected_nbytes=8_000_000)')
        assert run.error is None, f"{route}: {run.error}"


def test_a_library_keeping_its_own_arrays_is_not_a_copy(notebook):
    """matplotlib keeps a copy of every image it shows (1 MB for this uint8 image)."""
    notebook.ok(SETUP)
    notebook.ok(
        "pixels = np.random.default_rng(7).integers(0, 256, (1000, 1000)).astype(np.float64)\n"
        'checks.track(pixels, "pixels")'
    )
    notebook.ok(
        "pixels_u8 = pixels.astype(np.uint8)\ndel pixels\n"
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "image = plt.imshow(pixels_u8)\nplt.gcf().canvas.draw()"
    )
    notebook.ok('checks.assert_freed("pixels", keep_bytes=1_000_000, expected_nbytes=8_000_000)')


def test_a_copy_made_before_tracking_is_found(notebook):
    notebook.ok(SETUP)
    notebook.ok("grid = np.random.default_rng(0).random(1_000_000)\nbackup = grid.copy()")
    notebook.ok('checks.track(grid, "grid")\ndel grid')
    message = notebook.run('checks.assert_freed("grid")').message
    assert "a full copy of its data is still in memory" in message
    assert "variable `backup`" in message
    notebook.ok("del backup")
    notebook.ok('checks.assert_freed("grid")')


def test_a_copy_kept_as_a_list_is_found(notebook):
    notebook.ok(SETUP)
    notebook.ok(TRACKED)
    notebook.ok("values = grid.tolist()\ndel grid")
    message = notebook.run('checks.assert_freed("grid")').message
    assert "a full copy of its data is still in memory (list" in message


HOLDERS = {
    "a paused generator": (
        "def chunks(a):\n    yield a[:10]\n    yield a[10:20]\ngen = chunks(grid)\nnext(gen)\ndel grid",
        ["paused generator", "`gen (its local variable 'a')`", "`gen.close()`"],
        "gen.close()",
    ),
    "a function attribute": (
        "def remember():\n    pass\nremember.last = grid\ndel grid",
        ["function attribute", "`remember.last`", "`del remember.last`"],
        "del remember.last",
    ),
    "an lru_cache": (
        "import functools\n@functools.lru_cache\ndef load(n):\n    return grid\nload(1)\ndel grid",
        ["function cache", "`load.cache_clear()`"],
        "load.cache_clear()",
    ),
    "a class attribute": (
        "class Store:\n    pass\nStore.data = grid\ndel grid",
        ["class attribute", "`Store.data`"],
        "del Store.data",
    ),
    "a module attribute": (
        "np.saved = grid\ndel grid",
        ["module attribute", "`numpy.saved`"],
        "del np.saved",
    ),
}


def test_every_holder_is_named_with_its_fix(notebook):
    notebook.ok(SETUP)
    for kind, (holds, words, fix) in HOLDERS.items():
        notebook.ok(TRACKED)
        notebook.ok(holds)
        message = notebook.run('checks.assert_freed("grid")').message
        assert message is not None, kind
        for word in words:
            assert word in message, f"{kind}: {word!r} not in {message}"
        assert "cannot see into" not in message
        notebook.ok(fix)
        notebook.ok('checks.assert_freed("grid")')


def test_a_reference_cycle_is_named_by_holders_of_and_collected(notebook):
    notebook.ok(SETUP)
    notebook.ok("import gc\ngc.disable()")
    notebook.ok(TRACKED)
    notebook.ok(
        "class Node:\n    pass\nnode = Node()\nnode.me = node\nnode.data = grid\ndel grid, node"
    )
    said = notebook.ok('print(checks.holders_of("grid"))').stdout
    assert "a reference cycle" in said
    notebook.ok("gc.enable()")
    notebook.ok('checks.assert_freed("grid")')


def test_a_leak_kept_as_python_objects_is_caught_quickly_and_named(notebook):
    notebook.ok(SETUP)
    notebook.ok(
        "history = []\n"
        "def zscore(batch):\n"
        "    r = (batch - batch.mean()) / batch.std()\n"
        "    history.append(r.tolist())\n"
        "    return r\n"
    )
    run = notebook.run(
        "rng = np.random.default_rng(4)\n"
        "checks.assert_no_leak(zscore, lambda: (rng.normal(3.0, 2.0, size=100_000),), calls=20)"
    )
    assert "zscore() leaks" in run.message and "Python objects" in run.message
    assert "`history` grew by" in run.message
    assert notebook.ok("print(len(history))").stdout.strip() in {"2", "3"}  # stopped early
