"""The static read: honest code raises nothing, every means of tampering is flagged.

Every honest cell of the course (the examples' edits, the instructor's solutions, the
lesson) must raise no evidence at all; each hostile snippet must raise its flag.
"""

from __future__ import annotations

import nbformat
import pytest

from autograder.demo.examples import load_examples
from autograder.integrity.cells import inspect_cells, instructor_sources, restored_ids
from autograder.integrity.evidence import FLAGS, TECHNIQUES
from autograder.integrity.rules import PROTECTED_BUILTINS
from autograder.integrity.static.read import scan_notebook
from autograder.integrity.static.scanner import scan_code
from autograder.notebook_cells import grade_id
from tests.integrity.corpus import (
    EXERCISES,
    LESSONS,
    QUIZ,
    SUBMISSIONS,
    instructor,
    released,
)

# --------------------------------------------------------------------------------------
# Honest code raises nothing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [EXERCISES, QUIZ, *LESSONS])
def test_instructor_notebooks_raise_no_evidence(name: str) -> None:
    source = instructor(name)
    assert scan_notebook(source, restored_ids(source)) == []
    assert scan_notebook(source) == []
    if name not in LESSONS:
        assert inspect_cells(source, released(name), instructor_sources(source)) == []
        assert inspect_cells(released(name), released(name), instructor_sources(source)) == []


def test_every_student_cell_of_the_course_is_honest() -> None:
    """Each solution and lesson cell on its own, and every edit of every example submission."""
    for name in (EXERCISES, QUIZ, *LESSONS):
        nb = instructor(name)
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and (
                not meta or meta.get("solution") or not meta.get("locked")
            ):
                strict = name not in LESSONS
                assert scan_code(cell.source, f"{name} cell {index + 1}", strict=strict) == [], (
                    cell.source
                )
    examples = load_examples(SUBMISSIONS)
    assert examples
    for example in examples:
        for cell, source in example.cells.items():
            found = scan_code(source, cell)
            assert [e for e in found if not e.is_technique] == [], (example.name, source)
            # A technique the exercise does not accept costs that exercise, in the golden scores.
            if found:
                assert cell.split("_")[0] in {test.split("_")[0] for test in example.expected}


HONEST_SNIPPETS = [
    'first_1000 = readings[:1000].copy()\nglobals().pop("readings")',
    "report_max = float(report.max())\ndel report\nOut.clear()",
    "report_max = float(report.max())\n%xdel report",
    "%reset_selective -f report\n%who\n%whos",
    "%time total = float(np.ones(10).sum())",
    "%timeit -n 1 -r 1 np.ones(10)",
    "%%capture captured\nprint(np.arange(3))\n%xdel report",
    "%matplotlib inline\n%precision 3",
    "rng = np.random.default_rng(0)\nvalues = rng.normal(size=10)",
    "class Stats:\n    def __init__(self):\n        self.count = 0\n        self.total = 0.0\n\n    def add(self, block):\n        self.count += block.size\n        self.total += float(block.sum())",
    "class Base:\n    def __init__(self, x):\n        self.x = x\n\n\nclass Child(Base):\n    def __init__(self, x):\n        super().__init__(x)\n        self.__secret = 1",
    "results = []\nresults.append(1)\ncache = {}\ncache['a'] = 2\ncache.update(b=3)",
    'assert "grid" not in globals()\nprint(len(globals()))',
    "print(checks.holders_of('grid'))\nprint(checks.numpy_bytes_now())\nchecks.forget_last_error()",
    "with checks.measure() as m:\n    total = np.ones(1000).sum()\nprint(m.peak_bytes, m.net_bytes)",
    "import tracemalloc\nprint(tracemalloc.get_traced_memory(), tracemalloc.is_tracing())\nsnap = tracemalloc.take_snapshot()",
    "import gc\ngc.collect()",
    "import sys\nprint(sys.getsizeof([]), sys.getrefcount(1))\nsys.last_value = None",
    "import psutil\nprint(psutil.Process().memory_info().rss)",
    "import weakref\nblock = np.ones(3)\nr = weakref.ref(block)",
    "import numpy\nnp = numpy",
    "import numpy as np",
    "from IPython.display import display\ndisplay(np.arange(3))",
    "a = np.ones(10)\nprint(a.__array_interface__['data'], type(a).__name__, a.__class__.__name__)",
    "try:\n    x = 1 / 0\nexcept ZeroDivisionError as error:\n    print(error.__traceback__ is not None)",
    "def f(sum=0, max=1):\n    total = 0\n    for x in range(3):\n        total += x\n    return total",
    "max_value = max([1, 2])\nsum_value = sum([1, 2])\nid_ = id(sum_value)",
    "with open('notes.txt') as handle:\n    text = handle.read()",
    "import os\nprint(os.getpid(), os.path.join('a', 'b'), os.environ.get('HOME'))",
    "np.dot(np.ones(3), np.ones(3))\nnp.subtract(a, 1, out=a)",
    "x = getattr(np, 'float64')\nhasattr(np, 'ones')",
    "str = 'B'  # a novice's name clash: it can only break a test\nlen = 3",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (8, 4)",
    "for name in list(globals()):\n    print(name)\ndel globals()['report']",
    "def f():\n    print(locals())\n    np = 3\n    return np",
    "this is not python",  # a syntax error is not evidence
]


@pytest.mark.parametrize("source", HONEST_SNIPPETS)
def test_honest_snippets_raise_nothing(source: str) -> None:
    assert scan_code(source, "cell 1") == []


# --------------------------------------------------------------------------------------
# The static read catches the means of tampering
# --------------------------------------------------------------------------------------

HOSTILE_SNIPPETS = [
    ("checks.assert_freed = lambda *a, **k: None", "monkeypatch"),
    ("np.random.default_rng = None", "monkeypatch"),
    ("import numpy as xp\nxp.allclose = lambda *a, **k: True", "monkeypatch"),
    ("from numpy import random as r\nr.default_rng = None", "monkeypatch"),
    ("alias = np\nalias.ones = None", "monkeypatch"),
    ('setattr(np, "ones", None)', "monkeypatch"),
    ("del checks.assert_freed", "monkeypatch"),
    ("sys.modules['numpy'].ones = 1", "monkeypatch"),
    ("import os\nos.environ['MALLOC_MMAP_THRESHOLD_'] = '1'", "monkeypatch"),
    ("type(checks.measure()).net_bytes = 0", "monkeypatch"),
    ('globals()["np"].ones = None', "monkeypatch"),
    ('globals().get("checks").assert_freed = None', "monkeypatch"),
    ("(alias := np).ones = None", "monkeypatch"),
    ("globals()[name].ones = None", "obfuscation"),
    ("import helpers  # a .py file submitted next to the notebook", "obfuscation"),
    ("data = np.load('x.npy', allow_pickle=True)", "obfuscation"),
    ("import sqlite3", "shell-or-network"),
    ("checks = None", "rebinds-protected-name"),
    ("import os as np", "rebinds-protected-name"),
    ("def checks():\n    pass", "rebinds-protected-name"),
    ("class np:\n    pass", "rebinds-protected-name"),
    ('globals()["checks"] = 1', "rebinds-protected-name"),
    ('vars()["np"] = 1', "rebinds-protected-name"),
    ("g = globals()\ng['np'] = 1", "rebinds-protected-name"),
    ("globals().update({'isinstance': print})", "rebinds-protected-name"),
    ("globals().update(namespace)", "rebinds-protected-name"),
    ("isinstance = lambda *a: True", "rebinds-protected-name"),
    ("float = int", "rebinds-protected-name"),
    ("def len(x):\n    return 0", "rebinds-protected-name"),
    ("def f():\n    global float\n    float = int", "rebinds-protected-name"),
    ("for np in range(3):\n    pass", "rebinds-protected-name"),
    ("(checks := None)", "rebinds-protected-name"),
    ("from os import *", "rebinds-protected-name"),
    ("get_ipython().ast_transformers.append(None)", "ipython-hook"),
    ("ip = get_ipython()", "ipython-hook"),
    ("%load_ext something", "ipython-hook"),
    ("%config InteractiveShell.ast_node_interactivity = 'all'", "ipython-hook"),
    ("%run other.py", "ipython-hook"),
    ("from IPython.core.magic import register_line_magic", "ipython-hook"),
    ("import sys\nsys.excepthook = print", "monkeypatch"),
    ("import sys\nsys.settrace(print)", "trace-function"),
    ("import threading\nthreading.settrace(print)", "trace-function"),
    ("import gc\ngc.callbacks.append(print)", "trace-function"),
    ("breakpoint()", "trace-function"),
    ("%pdb on", "trace-function"),
    ('checks.track(np.ones(10), "grid")', "tracker-tampering"),
    ("checks._tracked.clear()", "tracker-tampering"),
    ("from autograder.checks import track", "tracker-tampering"),
    ("from autograder.checks import memory", "tracker-tampering"),
    ("import tracemalloc\ntracemalloc.stop()", "tracker-tampering"),
    ("import tracemalloc\ntracemalloc.reset_peak()", "tracker-tampering"),
    ("import gc\nobjects = gc.get_objects()", "tracker-tampering"),
    ("import os\nos._exit(0)", "exits-kernel"),
    ("import sys\nsys.exit()", "exits-kernel"),
    ("exit()", "exits-kernel"),
    ("quit()", "exits-kernel"),
    ("raise SystemExit", "exits-kernel"),
    ("raise KeyboardInterrupt()", "exits-kernel"),
    ("import signal", "exits-kernel"),
    ("import ctypes", "exits-kernel"),
    ("import faulthandler", "exits-kernel"),
    ("!ls", "shell-or-network"),
    ("files = !ls", "shell-or-network"),
    ("%%bash\nls", "shell-or-network"),
    ("%%writefile x.py\nprint(1)", "shell-or-network"),
    ("import subprocess", "shell-or-network"),
    ("import os\nos.system('ls')", "shell-or-network"),
    ("import socket", "shell-or-network"),
    ("from urllib.request import urlopen", "shell-or-network"),
    ("import multiprocessing", "shell-or-network"),
    ("exec('x = 1')", "obfuscation"),
    ("eval('1')", "obfuscation"),
    ("code = compile('x = 1', 'x', 'exec')", "obfuscation"),
    ("__import__('os')", "obfuscation"),
    ("import importlib", "obfuscation"),
    ("import builtins", "obfuscation"),
    ("import pickle\ndata = pickle.loads(raw)", "obfuscation"),
    ("from pickle import load", "obfuscation"),
    ("__builtins__.len = None", "obfuscation"),
    ("f.__code__ = g.__code__", "obfuscation"),
    ("checks.assert_freed.__globals__", "obfuscation"),
    ("().__class__.__mro__[1].__subclasses__()", "obfuscation"),
    ("getattr(np, 'on' + 'es')", "obfuscation"),
    ("setattr(thing, name, value)", "obfuscation"),
    ("def patch(module):\n    module.ones = None\n\n\npatch(np)", "obfuscation"),
    ("patch(np.random)", "obfuscation"),
    ("modules = [np, checks]", "obfuscation"),
    ("import sys\nframe = sys._getframe()", "obfuscation"),
    ("frame.f_back.f_globals['x'] = 1", "obfuscation"),
    ("vars(np)['ones'] = None", "obfuscation"),
    ("from __future__ import barry_as_FLUFL", "obfuscation"),
    ("%xdel {exec('np.ones = None')}", "obfuscation"),
    ("%timeit -n1 np.ones = None", "monkeypatch"),
    ("%%time\nchecks.assert_freed = None", "monkeypatch"),
    ("%%capture out\nchecks.assert_freed = None", "monkeypatch"),
    ("class F(float):\n    pass", "fake-value"),
    ("class A(np.ndarray):\n    pass", "fake-value"),
    ("class S:\n    __class__ = str", "fake-value"),
    ("class T:\n    def __array_function__(self, *args):\n        return True", "fake-value"),
    ("class M(type):\n    def __instancecheck__(cls, obj):\n        return True", "fake-value"),
    ("class K(metaclass=Meta):\n    pass", "fake-value"),
]


# Techniques the exercises' text does not accept: found (so that their exercise fails, with
# what to do instead), but not flags: nothing here tampers with the grading.
TECHNIQUE_SNIPPETS = [
    ("a = np.memmap('x.dat', dtype=np.float64, mode='w+', shape=(10,))", "untraced-memory"),
    ("from numpy.lib.format import open_memmap", "untraced-memory"),
    ("data = np.load('x.npy', mmap_mode='r')", "untraced-memory"),
    ("import mmap", "untraced-memory"),
    ("import threading\nthreading.Thread(target=print).start()", "threads"),
    ("from _thread import start_new_thread", "threads"),
    ("with open('/tmp/x', 'w') as f:\n    pass", "files"),
    ("import os\nos.remove('x.npy')", "files"),
    ("import os\nos.makedirs('out')", "files"),
]


@pytest.mark.parametrize(("source", "technique"), TECHNIQUE_SNIPPETS)
def test_techniques_are_found_and_are_not_flags(source: str, technique: str) -> None:
    found = scan_code(source, "ex5_stats")
    assert [(e.flag, e.is_technique) for e in found] == [(technique, True)], found
    assert technique in TECHNIQUES and technique not in FLAGS


def test_pickling_is_a_technique_of_no_concern_but_unpickling_runs_code() -> None:
    assert scan_code("import pickle\nkept = pickle.dumps(grid)", "ex1_free") == []
    assert {e.flag for e in scan_code("import pickle\npickle.loads(kept)", "ex1_free")} == {
        "obfuscation"
    }


@pytest.mark.parametrize(("source", "flag"), HOSTILE_SNIPPETS)
def test_hostile_snippets_are_flagged(source: str, flag: str) -> None:
    found = scan_code(source, "ex1_free")
    assert flag in {evidence.flag for evidence in found}, found
    assert all(
        (evidence.flag in FLAGS or evidence.is_technique) and evidence.cell == "ex1_free"
        for evidence in found
    )
    assert all(
        evidence.describe().startswith(f"[{evidence.flag}] ex1_free: ") for evidence in found
    )


def test_barry_as_flufl_does_not_hide_a_later_cell() -> None:
    """A cell that only parses with the __future__ flag of an earlier cell is read with it."""
    nb = instructor(EXERCISES)
    cell = next(cell for cell in nb.cells if grade_id(cell) == "ex1_free")
    cell.source = "from __future__ import barry_as_FLUFL\ngrid_nbytes = grid.nbytes\ndel grid"
    fake = nbformat.v4.new_code_cell("if 1 <> 2:\n    checks.assert_freed = print")
    nb.cells.insert(nb.cells.index(cell) + 1, fake)
    flags = {evidence.flag for evidence in scan_notebook(nb, restored_ids(instructor(EXERCISES)))}
    assert {"obfuscation", "monkeypatch"} <= flags


def test_a_cell_posing_as_locked_is_still_read() -> None:
    """nbgrader keeps a cell with an unknown grade_id, and the first of two duplicates, as written."""
    source = instructor(EXERCISES)
    nb = instructor(EXERCISES)
    track = next(cell for cell in nb.cells if grade_id(cell) == "ex1_track")
    fake = nbformat.v4.new_code_cell(
        "checks.assert_freed = print",
        metadata={"nbgrader": dict(track.metadata["nbgrader"], grade_id="my_cell")},
    )
    copy = nbformat.v4.new_code_cell(
        "np.ones = None", metadata={"nbgrader": dict(track.metadata["nbgrader"])}
    )
    nb.cells[nb.cells.index(track) : nb.cells.index(track)] = [fake, copy]
    found = scan_notebook(nb, restored_ids(source))
    assert {(e.flag, e.cell) for e in found} == {
        ("monkeypatch", "my_cell"),
        ("monkeypatch", "ex1_track"),
    }
    inspected = {
        (e.flag, e.cell) for e in inspect_cells(nb, released(EXERCISES), instructor_sources(source))
    }
    assert inspected == {
        ("changed-metadata", "my_cell"),
        ("duplicated-cell", "ex1_track"),
        ("edited-locked-cell", "ex1_track"),
    }


def test_protected_builtins_cover_every_name_the_test_cells_use() -> None:
    import ast
    import builtins

    used = set()
    for name in (EXERCISES, QUIZ):
        for cell in instructor(name).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("locked"):
                used |= {
                    node.id
                    for node in ast.walk(ast.parse(cell.source))
                    if isinstance(node, ast.Name) and hasattr(builtins, node.id)
                }
    assert used <= PROTECTED_BUILTINS, used - PROTECTED_BUILTINS
