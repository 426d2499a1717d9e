"""Every fix a failure message proposes runs as written, where the student is.

For each kind of holder the checks name (every kind ``autograder/checks/references.py`` and
``sizes.py`` report), a notebook cell makes that holder keep a tracked array, in a kernel
set up exactly as each notebook sets itself up (its own imports: ``from autograder import
checks`` in the exercises, ``from autograder.checks import forget_last_error, holders_of,
track`` in the lessons). The failure's message must quote each fix it proposes
(:func:`autograder.checks.advice.quoted`), and each fix, run as its own cell on a fresh
copy of the situation, must free the array: its buffer dead at once (no collection in
between) and ``assert_freed`` passing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import nbformat
import pytest

from autograder.checks.advice import quoted

from ..conftest import REPO, Kernel

SOURCE = REPO / "source" / "numpy_memory"
CONTEXTS = {
    "exercises": ("04_exercises_free_and_budget_memory", "checks.track"),
    "lesson 01": ("01_lesson_free_large_arrays", "track"),
    "lesson 03": ("03_lesson_views_temporaries_and_budgets", "track"),
}


def setup_cell(notebook_name: str) -> str:
    """The notebook's own set-up cell: its imports, and the tracer started."""
    nb = nbformat.read(SOURCE / f"{notebook_name}.ipynb", as_version=4)
    return next(
        c.source for c in nb.cells if c.cell_type == "code" and "start_tracing()" in c.source
    )


# Reached without binding a name in the notebook (a name would change what the advice says).
CHECKS = '__import__("autograder.checks", fromlist=["checks"])'
HOLDERS = f"""
try:
    {CHECKS}.assert_freed("held")
    print("FREED")
except AssertionError as error:
    print(__import__("json").dumps([[h.kind, h.where, h.fix, list(h.fixes)] for h in error.holders]))
    print("MESSAGE", error)
"""
FREED_AT_ONCE = f'print({CHECKS}._tracked["held"].ref() is None)'


@dataclass(frozen=True)
class Case:
    cells: tuple[str, ...]  # the student's cells; "{track}" is the notebook's track function
    kind: str  # the kind of holder the message must report ("" for what sizes.py names)
    where: str  # the holder, as the message names it
    fixes: int  # how many fixes it proposes


ARRAY = 'held = np.ones(1_000_000)\n{track}(held, "held")\n'
CASES = {
    "a second name": Case((ARRAY + "alias = held\ndel held",), "variable", "`alias`", 2),
    "a view": Case((ARRAY + "part = held[:10]\ndel held",), "view", "`part`", 2),
    "a dict entry": Case(
        (ARRAY + "results = {'raw': held}\ndel held",), "container", "`results['raw']`", 2
    ),
    "a list item": Case((ARRAY + "box = [0, held]\ndel held",), "container", "`box[1]`", 2),
    "a tuple in a list": Case(
        (ARRAY + "pairs = [(1, held)]\ndel held",), "container", "`pairs[0][1]`", 2
    ),
    "a tuple in a name": Case((ARRAY + "pair = (1, held)\ndel held",), "variable", "`pair[1]`", 2),
    "an attribute": Case(
        (ARRAY + "class Model:\n    pass\nmodel = Model()\nmodel.weights = held\ndel held",),
        "attribute",
        "`model.weights`",
        2,
    ),
    "a memoryview": Case(
        (ARRAY + "exported = memoryview(held)\ndel held",), "memoryview", "`exported.obj`", 1
    ),
    "a paused generator": Case(
        (
            ARRAY
            + "def chunks(a):\n    yield a[:10]\n    yield a[10:20]\ngen = chunks(held)\nnext(gen)\ndel held",
        ),
        "paused generator",
        "`gen (its local variable 'a')`",
        2,
    ),
    "an lru_cache": Case(
        (
            "import functools\n@functools.lru_cache\ndef load(n):\n    return np.ones(n)\n"
            'loaded = load(1_000_000)\n{track}(loaded, "held")\ndel loaded',
        ),
        "function cache",
        "`load (its cache)`",
        1,
    ),
    "a closure": Case(
        (
            "def make():\n    data = np.ones(1_000_000)\n    {track}(data, 'held')\n"
            "    def scale(x):\n        return x * data.max()\n    return scale\nscale = make()",
        ),
        "closure",
        "`scale (closure variable 'data')`",
        1,
    ),
    "a default argument": Case(
        (ARRAY + "def normalize(x, reference=held):\n    return x / reference.max()\ndel held",),
        "closure",
        "`normalize (default argument 0)`",
        1,
    ),
    "a function attribute": Case(
        (ARRAY + "def remember():\n    pass\nremember.last = held\ndel held",),
        "function attribute",
        "`remember.last`",
        2,
    ),
    "a class attribute": Case(
        (ARRAY + "class Store:\n    pass\nStore.data = held\ndel held",),
        "class attribute",
        "`Store.data`",
        2,
    ),
    "a module attribute": Case(
        (ARRAY + "np.saved = held\ndel held",), "module attribute", "`numpy.saved`", 1
    ),
    "the output cache, name kept": Case((ARRAY, "held"), "Jupyter's output cache", "", 1),
    "the output cache, name gone": Case(
        (ARRAY, "held", "del held"), "Jupyter's output cache", "", 1
    ),
    "a traceback": Case(
        (
            "def load():\n    data = np.ones(1_000_000)\n    {track}(data, 'held')\n"
            "    raise ValueError('bad file')",
            "load()",
        ),
        "an exception's traceback",
        "`data` in load()",
        1,
    ),
    "a copy": Case((ARRAY + "backup = held.copy()\ndel held",), "variable", "`backup`", 2),
    "its bytes": Case((ARRAY + "raw = held.tobytes()\ndel held",), "variable", "`raw`", 2),
    "a BytesIO": Case(
        (ARRAY + "import io\nbackup = io.BytesIO(held.tobytes())\ndel held",), "", "`backup`", 2
    ),
    "JSON text": Case(
        (
            ARRAY
            + "import json\ntext = json.dumps(held[::4].tolist())  # a quarter, as text\ndel held",
        ),
        "",
        "`text`",
        2,
    ),
    "a dict of chunks": Case(
        (
            ARRAY
            + "chunks = {i: held[i * 100_000 : (i + 1) * 100_000].copy() for i in range(10)}\ndel held",
        ),
        "",
        "`chunks`",
        2,
    ),
    "a bytearray in an object": Case(
        (
            ARRAY + "class Archive:\n    pass\narchive = Archive()\n"
            "archive.payload = bytearray(b'v1:' + held.tobytes())\ndel held",
        ),
        "",
        "`archive.payload`",
        2,
    ),
}


def situation(kernel: Kernel, context: str, case: Case) -> None:
    """A fresh notebook of ``context`` in which ``case``'s holder keeps the array."""
    name, track = CONTEXTS[context]
    kernel.ok(setup_cell(name))
    for cell in case.cells:
        run = kernel.run(cell.replace("{track}", track))
        assert run.stderr == "", run.stderr
        assert run.error is None or cell == "load()", run.error


def holders(kernel: Kernel) -> tuple[list, str]:
    said = kernel.ok(HOLDERS).stdout
    assert "FREED" not in said, "the holder did not keep the array"
    found, _, message = said.partition("\nMESSAGE ")
    return json.loads(found), " ".join(message.split())


# Advice that names what the notebook imported (or the module it bound): run in the lessons'
# notebooks as well, whose imports differ from the exercises'.
NAMES_DEPEND_ON_IMPORTS = ("a traceback", "a module attribute", "a memoryview")
MATRIX = [("exercises", name) for name in CASES] + [
    (context, name)
    for context in CONTEXTS
    if context != "exercises"
    for name in NAMES_DEPEND_ON_IMPORTS
]


@pytest.mark.parametrize(("context", "name"), MATRIX)
def test_every_fix_runs_as_written_and_frees_the_array(notebook_factory, context, name):
    case = CASES[name]
    kernel = notebook_factory()
    situation(kernel, context, case)
    found, message = holders(kernel)
    assert len(found) == 1, message
    kind, where, _words, fixes = found[0]
    assert kind == case.kind and where.startswith(case.where), message
    assert len(fixes) == case.fixes, message
    for fix in fixes:
        assert quoted(fix) in message, f"{fix!r} is not quoted as written in: {message}"
    for number, fix in enumerate(fixes):
        if number:  # the first runs where the message was given (`Out[n]` names its cell)
            kernel = notebook_factory()
            situation(kernel, context, case)
        ran = kernel.run(fix)
        assert ran.error is None and ran.stderr == "", f"{fix!r}: {ran.error or ran.stderr}"
        if case.kind:  # the buffer itself was alive: the fix must free it at once
            assert kernel.ok(FREED_AT_ONCE).stdout.strip() == "True", f"{fix!r} left it alive"
        assert "FREED" in kernel.ok(HOLDERS).stdout, f"{fix!r} did not free it"


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_reference_cycle_is_named_without_collecting_it_and_its_fix_runs(
    notebook_factory, context
):
    name, track = CONTEXTS[context]
    kernel = notebook_factory()
    kernel.ok(setup_cell(name))
    kernel.ok("__import__('gc').disable()")
    kernel.ok(
        ARRAY.replace("{track}", track)
        + "class Node:\n    pass\nnode = Node()\nnode.me = node\nnode.data = held\ndel held, node"
    )
    said = " ".join(kernel.ok(f'print({CHECKS}.holders_of("held"))').stdout.split())
    assert "a reference cycle" in said
    assert kernel.ok(FREED_AT_ONCE).stdout.strip() == "False", "holders_of ran the collector"
    fix = "gc.collect()" if context.startswith("lesson") else "import gc\ngc.collect()"
    assert quoted(fix) in said, said
    kernel.ok(fix)
    assert kernel.ok(FREED_AT_ONCE).stdout.strip() == "True"


def test_a_holder_out_of_reach_gets_no_code_to_run(notebook_factory):
    """Nested deeper than the search goes: named by what refers to it, with no fix to run
    that could be wrong."""
    kernel = notebook_factory()
    situation(kernel, "exercises", Case((ARRAY + "deep = [[[[[held]]]]]\ndel held",), "", "", 0))
    found, message = holders(kernel)
    assert [(kind, fixes) for kind, _, _, fixes in found] == [("unnamed holder", [])], message
    assert "`" not in message.split("What holds it:")[1]


@pytest.fixture
def notebook_factory(shared_kernel):
    """A fresh notebook each time it is called, in the module's kernel."""
    return shared_kernel.reset
