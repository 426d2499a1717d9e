"""The integrity evidence: static read, cell inspection and the kernel probe.

Every honest cell of the course (the examples' edits, the instructor's solutions, the
lesson) must raise no evidence at all. Every hostile example in ``autograder/demo/hostile`` must
raise exactly the flags it lists, and its cheat must really work when nothing protects
the grading: its target test cells pass in a kernel where the hostile cells ran. Those
kernel runs also show what the probe sees; a kernel running only honest code must make
the probe report nothing.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from autograder import integrity
from autograder.demo import EXAMPLES
from autograder.demo.examples import load_examples
from autograder.integrity import (
    FLAGS,
    PROTECTED_BUILTINS,
    Evidence,
    inspect_cells,
    instructor_sources,
    new_nonce,
    probe_code,
    read_probe,
    restored_ids,
    scan_code,
    scan_notebook,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "numpy_memory"
HOSTILE = EXAMPLES / "hostile"
SUBMISSIONS = EXAMPLES / "submissions"
EXERCISES = "04_exercises_free_and_budget_memory"
QUIZ = "02_quiz_what_del_frees"
LESSON = "01_lesson_free_large_arrays"
LESSON_2 = "03_lesson_views_temporaries_and_budgets"
LESSONS = (LESSON, LESSON_2)


# --------------------------------------------------------------------------------------
# Notebooks and hostile examples
# --------------------------------------------------------------------------------------


def instructor(name: str) -> nbformat.NotebookNode:
    return nbformat.read(SOURCE / f"{name}.ipynb", as_version=4)


def released(name: str) -> nbformat.NotebookNode:
    """The student's copy, made from the source the way nbgrader makes it."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb, resources = ClearSolutions().preprocess(instructor(name), {})
    nb, _ = ClearHiddenTests().preprocess(nb, resources)
    return nb


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_test(cell: nbformat.NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("grade"))


@dataclass
class Hostile:
    """A hostile example: the standard example fields, plus the two keys for edits of the
    instructor's own cells (``[locked_cells]``: grade_id -> source of a locked or test cell;
    ``deleted_cells``: grade_ids removed from the notebook)."""

    name: str
    notebooks: tuple[str, ...]
    cells: dict[str, str]
    expected: dict[str, float]
    status: str
    flags: tuple[str, ...]
    locked_cells: dict[str, str] = field(default_factory=dict)
    deleted_cells: tuple[str, ...] = ()

    def submitted(self, notebook: str) -> nbformat.NotebookNode:
        """The notebook as the student submits it (built on the instructor's solution)."""
        nb = instructor(notebook)
        edits = {**self.cells, **self.locked_cells}
        nb.cells = [cell for cell in nb.cells if grade_id(cell) not in self.deleted_cells]
        for cell in nb.cells:
            if grade_id(cell) in edits:
                cell.source = edits[grade_id(cell)]
        return nb

    def targets(self, notebook: str) -> set[str]:
        """The test cells the cheat is after: those it must not get credit for."""
        tests = [grade_id(cell) for cell in instructor(notebook).cells if is_test(cell)]
        if "*" in self.expected:
            return {cell for cell in tests if self.expected.get(cell, 0) == 0}
        return {cell for cell, score in self.expected.items() if score == 0}


def load_hostile() -> list[Hostile]:
    examples = []
    for path in sorted(HOSTILE.glob("*.toml")):
        spec = tomllib.loads(path.read_text())
        outcome = spec.get("outcome", {})
        examples.append(
            Hostile(
                name=path.stem,
                notebooks=tuple(spec["notebooks"]),
                cells={key: value.strip("\n") for key, value in spec.get("cells", {}).items()},
                expected={key: float(value) for key, value in spec.get("expected", {}).items()},
                status=outcome.get("status", "graded"),
                flags=tuple(outcome.get("flags", ())),
                locked_cells={
                    key: value.strip("\n") for key, value in spec.get("locked_cells", {}).items()
                },
                deleted_cells=tuple(spec.get("deleted_cells", ())),
            )
        )
    return examples


HOSTILE_EXAMPLES = load_hostile()
BY_NAME = {example.name: example for example in HOSTILE_EXAMPLES}


def static_evidence(example: Hostile, notebook: str) -> list[Evidence]:
    """What the grading process sees before anything runs: the static read and the inspection."""
    source = instructor(notebook)
    submitted = example.submitted(notebook)
    return scan_notebook(submitted, restored_ids(source)) + inspect_cells(
        submitted, released(notebook), instructor_sources(source)
    )


# --------------------------------------------------------------------------------------
# A kernel, driven the way the grader drives it
# --------------------------------------------------------------------------------------


@dataclass
class CellRun:
    stdout: str
    stderr: str
    errors: list[str]

    @property
    def passed(self) -> bool:  # nbgrader's rule: no error output and nothing on stderr
        return not self.errors and not self.stderr


class Kernel:
    """A real IPython kernel (jupyter_client's AsyncKernelManager, as the grader uses)."""

    async def __aenter__(self) -> Kernel:
        from jupyter_client.manager import AsyncKernelManager

        self.manager = AsyncKernelManager(kernel_name="python3")
        await self.manager.start_kernel(env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            await asyncio.wait_for(self.client.wait_for_ready(timeout=60), 90)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.stop_channels()
        try:
            await asyncio.wait_for(self.manager.shutdown_kernel(now=True), 30)
        except BaseException:
            await self.manager.kill_kernel()

    async def run(
        self, code: str, *, store_history: bool = True, timeout: float = 60
    ) -> CellRun | None:
        """Run one cell; None when the kernel died under it."""
        msg_id = self.client.execute(code, store_history=store_history)
        stdout: list[str] = []
        stderr: list[str] = []
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                msg = await self.client.get_iopub_msg(timeout=1)
            except Exception:  # queue.Empty: is the kernel still there?
                if not await self.manager.is_alive():
                    return None
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"cell did not finish in {timeout} s: {code[:80]!r}"
                    ) from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (stdout if content["name"] == "stdout" else stderr).append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return CellRun("".join(stdout), "".join(stderr), errors)

    async def probe(self, cell: str) -> list[Evidence]:
        nonce = new_nonce()
        result = await self.run(probe_code(nonce), store_history=False)
        assert result is not None, "the kernel died under the probe"
        assert result.stderr == "" and not result.errors, (result.stderr, result.errors)
        return read_probe(result.stdout, nonce, cell)


KERNELS_AT_ONCE = 3
NOTEBOOK_TIMEOUT = 300  # seconds, waiting for a free kernel slot included


@dataclass
class NotebookRun:
    probe_evidence: list[Evidence]
    results: dict[str, CellRun | None]  # grade_id (or "cell N") -> the run of that cell
    died_at: str | None = None


async def run_notebook(cells: list[nbformat.NotebookNode], limit: asyncio.Semaphore) -> NotebookRun:
    """Run code cells as the grader does: a probe right after the kernel starts, then one
    before every graded test cell, and one after the last cell."""
    async with limit, Kernel() as kernel:
        evidence = await kernel.probe("kernel start")
        results: dict[str, CellRun | None] = {}
        for index, cell in enumerate(cells):
            if cell.cell_type != "code":
                continue
            name = grade_id(cell) or f"cell {index + 1}"
            if is_test(cell):
                evidence += await kernel.probe(name)
            result = await kernel.run(cell.source)
            results[name] = result
            if result is None:
                return NotebookRun(evidence, results, died_at=name)
        evidence += await kernel.probe("end")
        return NotebookRun(evidence, results)


def exercise_of(cell_id: str) -> str:
    return cell_id.split("_")[0]


def mini_notebook(example: Hostile, notebook: str) -> list[nbformat.NotebookNode]:
    """The cells that matter for ``example``, hostile edits applied as they would run if nothing
    restored the locked cells: the set-up, exercise 1 (its tracked array shows a restarted
    tracemalloc) and every exercise the example edits, in the notebook's order."""
    nb = example.submitted(notebook)
    if notebook != EXERCISES:
        return nb.cells
    edited = {*example.cells, *example.locked_cells, *example.deleted_cells}
    keep = {"setup", "ex1"} | {exercise_of(cell) for cell in edited}
    return [
        cell
        for cell in nb.cells
        if exercise_of(grade_id(cell) or "") in keep or grade_id(cell) == "setup"
    ]


def run_notebooks(notebooks: list[list[nbformat.NotebookNode]]) -> list[NotebookRun]:
    async def gather() -> list[NotebookRun]:
        limit = asyncio.Semaphore(KERNELS_AT_ONCE)
        return await asyncio.gather(
            *(asyncio.wait_for(run_notebook(cells, limit), NOTEBOOK_TIMEOUT) for cells in notebooks)
        )

    return asyncio.run(gather())


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
            assert scan_code(source, cell) == [], (example.name, source)


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
    ("import mmap", "tracker-tampering"),
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
    ("import threading\nthreading.Thread(target=print).start()", "shell-or-network"),
    ("with open('/tmp/x', 'w') as f:\n    pass", "shell-or-network"),
    ("exec('x = 1')", "obfuscation"),
    ("eval('1')", "obfuscation"),
    ("code = compile('x = 1', 'x', 'exec')", "obfuscation"),
    ("__import__('os')", "obfuscation"),
    ("import importlib", "obfuscation"),
    ("import builtins", "obfuscation"),
    ("import pickle", "obfuscation"),
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


@pytest.mark.parametrize(("source", "flag"), HOSTILE_SNIPPETS)
def test_hostile_snippets_are_flagged(source: str, flag: str) -> None:
    found = scan_code(source, "ex1_free")
    assert flag in {evidence.flag for evidence in found}, found
    assert all(evidence.flag in FLAGS and evidence.cell == "ex1_free" for evidence in found)
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


# --------------------------------------------------------------------------------------
# The cell inspection
# --------------------------------------------------------------------------------------


def test_inspection_sees_edits_deletions_moves_metadata_and_kernel() -> None:
    source = instructor(EXERCISES)
    release = released(EXERCISES)
    sources = instructor_sources(source)

    nb = released(EXERCISES)
    by_id = {grade_id(cell): cell for cell in nb.cells}
    by_id["ex1_freed_test"].source += "\n   \n"  # whitespace only: not evidence
    assert inspect_cells(nb, release, sources) == []

    by_id["ex1_track"].source = 'checks.track(np.ones(3), "grid")'
    by_id["ex2_freed_test"].metadata["nbgrader"]["points"] = 20
    by_id["ex6_rescale"].metadata["nbgrader"]["solution"] = False
    nb.cells.remove(by_id["ex7_freed_test"])
    display = nb.cells.pop(nb.cells.index(by_id["ex3_data"]))
    nb.cells.insert(nb.cells.index(by_id["ex3_free"]) + 1, display)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "x = 1", metadata={"nbgrader": dict(by_id["ex1_free"].metadata["nbgrader"])}
        )
    )
    nb.metadata["kernelspec"] = {
        "name": "python2",
        "display_name": "Python 2",
        "language": "python",
    }
    found = {(e.flag, e.cell) for e in inspect_cells(nb, release, sources)}
    assert found == {
        ("edited-locked-cell", "ex1_track"),
        ("changed-metadata", "ex2_freed_test"),
        ("changed-metadata", "ex6_rescale"),
        ("deleted-graded-cell", "ex7_freed_test"),
        ("moved-cell", "ex3_data"),
        ("duplicated-cell", "ex1_free"),
        ("changed-kernelspec", "notebook"),
    }


# --------------------------------------------------------------------------------------
# The hostile corpus
# --------------------------------------------------------------------------------------


def test_hostile_corpus_is_complete_and_well_formed() -> None:
    assert len(HOSTILE_EXAMPLES) >= 12
    for example in HOSTILE_EXAMPLES:
        assert example.name.startswith("cheat-")
        assert example.status in {"flagged", "kernel died"}
        assert example.flags and set(example.flags) <= set(FLAGS), example.name
        assert example.targets(example.notebooks[0]), (
            f"{example.name} names no test it must not pass"
        )
        for notebook in example.notebooks:
            ids = {grade_id(cell) for cell in instructor(notebook).cells}
            assert {*example.cells, *example.locked_cells, *example.deleted_cells} <= ids, (
                example.name
            )
    # The standard loader reads them too (it ignores the two extra keys).
    loaded = {example.name: example for example in load_examples(HOSTILE)}
    assert loaded.keys() == BY_NAME.keys()
    assert all(loaded[name].flags == BY_NAME[name].flags for name in loaded)


PROBE_FLAGS = {"probe-failed", "probe-no-reply"}


@pytest.mark.parametrize("example", HOSTILE_EXAMPLES, ids=lambda example: example.name)
def test_hostile_example_static_flags(example: Hostile) -> None:
    """The static read and the inspection find every flag the example lists, except the probe's."""
    found = {
        evidence.flag
        for notebook in example.notebooks
        for evidence in static_evidence(example, notebook)
    }
    assert found == set(example.flags) - PROBE_FLAGS


@pytest.fixture(scope="module")
def kernel_runs() -> dict[str, NotebookRun]:
    """Every hostile example's cells, and the honest notebooks, each in its own kernel."""
    jobs = {
        example.name: mini_notebook(example, example.notebooks[0]) for example in HOSTILE_EXAMPLES
    }
    jobs["honest exercises"] = instructor(EXERCISES).cells
    jobs["honest quiz"] = instructor(QUIZ).cells
    results = run_notebooks(list(jobs.values()))
    return dict(zip(jobs, results, strict=True))


@pytest.mark.parametrize("example", HOSTILE_EXAMPLES, ids=lambda example: example.name)
def test_hostile_example_cheat_works_and_probe_flags(
    example: Hostile, kernel_runs: dict[str, NotebookRun]
) -> None:
    """(a) Without protections the cheat gains credit; the probe adds exactly the listed probe flags."""
    run = kernel_runs[example.name]
    notebook = example.notebooks[0]
    if example.status == "kernel died":
        assert run.died_at in example.cells, run.died_at
        survivors = [
            cell
            for cell, result in run.results.items()
            if result is not None and cell.endswith("_test")
        ]
        assert survivors and all(run.results[cell].passed for cell in survivors)  # type: ignore[union-attr]
    else:
        assert run.died_at is None
        targets = example.targets(notebook) & run.results.keys()
        assert targets, "the mini notebook runs none of the example's target tests"
        for cell in targets:
            result = run.results[cell]
            assert result is not None and result.passed, f"the cheat does not gain {cell}: {result}"
    probe_flags = {evidence.flag for evidence in run.probe_evidence}
    assert probe_flags == set(example.flags) & PROBE_FLAGS, [
        e.describe() for e in run.probe_evidence
    ]
    assert all(evidence.cell != "kernel start" for evidence in run.probe_evidence)


def test_probe_is_silent_on_honest_notebooks(kernel_runs: dict[str, NotebookRun]) -> None:
    """(b) The same probe, in kernels running only the instructor's solutions: no evidence."""
    for name in ("honest exercises", "honest quiz"):
        run = kernel_runs[name]
        assert run.died_at is None
        assert run.probe_evidence == [], [e.describe() for e in run.probe_evidence]
        tests = [result for cell, result in run.results.items() if cell.endswith("_test")]
        assert tests and all(result is not None and result.passed for result in tests)


@pytest.mark.slow
def test_probe_is_silent_on_every_honest_example_and_the_lesson() -> None:
    """(b), wider: every example submission (wrong answers, tracebacks, Out.clear(), %xdel...)
    and the lessons (matplotlib, a real uncaught error, np.memmap), each in a kernel with the probe."""
    jobs: dict[str, list[nbformat.NotebookNode]] = {
        name: instructor(name).cells for name in LESSONS
    }
    for example in load_examples(SUBMISSIONS):
        for notebook in example.notebooks or (EXERCISES, QUIZ):
            nb = instructor(notebook) if example.base == "source" else released(notebook)
            for cell in nb.cells:
                if grade_id(cell) in example.cells:
                    cell.source = example.cells[grade_id(cell)]
            if (
                notebook == EXERCISES and example.notebooks
            ):  # the set-up, exercise 1 and the edited one
                keep = {"setup", "ex1"} | {exercise_of(cell) for cell in example.cells}
                nb.cells = [cell for cell in nb.cells if exercise_of(grade_id(cell) or "") in keep]
            jobs[f"{example.name} ({notebook})"] = nb.cells
    runs = dict(zip(jobs, run_notebooks(list(jobs.values())), strict=True))
    for name, run in runs.items():
        assert run.died_at is None, name
        assert run.probe_evidence == [], (name, [e.describe() for e in run.probe_evidence])


# --------------------------------------------------------------------------------------
# The probe's reply
# --------------------------------------------------------------------------------------


def test_read_probe_parses_replies_and_rejects_forgeries() -> None:
    nonce = "a1b2c3d4e5f6"
    assert read_probe(f"hello\nAUTOGRADER-PROBE {nonce} []\n", nonce, "ex1_freed_test") == []
    failed = read_probe(f'AUTOGRADER-PROBE {nonce} ["x was changed", "y"]\n', nonce, "c")
    assert [(e.flag, e.cell) for e in failed] == [("probe-failed", "c"), ("probe-failed", "c")]
    for text in (
        "",
        "AUTOGRADER-PROBE 000000000000 []\n",  # an old reply, printed by the student
        f"AUTOGRADER-PROBE {nonce} []\nAUTOGRADER-PROBE {nonce} []\n",
        f"AUTOGRADER-PROBE {nonce} not json\n",
        f"AUTOGRADER-PROBE {nonce} {{}}\n",
        f"prefix AUTOGRADER-PROBE {nonce} []\n",
    ):
        assert [e.flag for e in read_probe(text, nonce, "c")] == ["probe-no-reply"], text


def test_probe_code_is_one_small_statement() -> None:
    import ast

    code = probe_code("abcdef123456")
    tree = ast.parse(code)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.If)  # nothing is displayed
    assert len(code) < 300  # IPython takes ~4 ms per KB of cell when tracemalloc runs
    assert integrity.fingerprint_digest() in code
    with pytest.raises(ValueError):
        probe_code("bad nonce; import os")


def test_fingerprint_watches_the_checks_numpy_and_ipython() -> None:
    fingerprint = integrity.fingerprint()
    for key in (
        "autograder.checks:assert_freed",
        "autograder.checks.memory:numpy_bytes",
        "autograder.checks.references:find_holders",
        "numpy:ones",
        "numpy:allclose",
        "numpy.random:default_rng",
        "builtins:isinstance",
        "tracemalloc:take_snapshot",
        "gc:callbacks",
        "psutil:Process.memory_info",
        "ipykernel.zmqshell:ZMQInteractiveShell.run_cell",
        "ipykernel.ipkernel:IPythonKernel.do_execute",
    ):
        assert key in fingerprint, key
    assert fingerprint["autograder.checks:assert_freed"].startswith(
        "function autograder.checks.assert_freed "
    )


def test_probe_sees_threads_and_swallowed_output() -> None:
    """A thread started to patch later, a replaced print, a swallowed stdout: never a pass."""

    async def scenario() -> list[list[Evidence]]:
        async with Kernel() as kernel:
            seen = [await kernel.probe("kernel start")]
            await kernel.run(
                "import threading\n"
                "import sys\n_timer = threading.Timer(600, setattr, (sys, 'ps9', '> '))\n"
                "_timer.daemon = True\n"
                "_timer.start()"
            )
            seen.append(await kernel.probe("after a timer"))
            await kernel.run("_timer.cancel()\n_timer.join()\ndel _timer")
            seen.append(await kernel.probe("after the timer ended"))
            await kernel.run(
                "import asyncio, sys\n"
                "_later = asyncio.get_running_loop().call_later(600, setattr, sys, 'ps9', '> ')"
            )
            seen.append(await kernel.probe("after call_later"))
            await kernel.run("_later.cancel()\ndel _later")
            seen.append(await kernel.probe("after the callback was cancelled"))
            await kernel.run("import builtins\nbuiltins.print = lambda *args, **kwargs: None")
            seen.append(await kernel.probe("after print"))
            await kernel.run("import io, sys\nsys.stdout = io.StringIO()")
            seen.append(await kernel.probe("after stdout"))
            await kernel.run("import sys\nsys.stdout = sys.__stdout__")
            seen.append(await kernel.probe("stdout to the terminal"))
            return seen

    start, timer, ended, later, cancelled, after_print, after_stdout, terminal = asyncio.run(
        scenario()
    )
    assert start == [] and ended == [] and cancelled == []
    assert [e.flag for e in timer] == ["probe-failed"] and "thread" in timer[0].detail
    assert [e.flag for e in later] == ["probe-failed"] and "event loop" in later[0].detail
    assert after_print and {e.flag for e in after_print} == {"probe-failed"}
    assert any("builtins.print" in e.detail for e in after_print)
    assert [e.flag for e in after_stdout] == ["probe-no-reply"]
    assert [e.flag for e in terminal] == ["probe-no-reply"]
