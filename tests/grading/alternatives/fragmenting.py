"""Heap-fragmenting cells for the fairness test: honest work a curious student does first.

Each snippet is put before the instructor's ``ex1_allocate`` cell (see `fragmented_example`),
so that the whole notebook is the instructor's correct solution, run after some memory-heavy
Python that has nothing to do with the exercises. The snippets make and drop many Python
objects or arrays of different sizes and shapes, and some keep a few of them, leaving holes in
the C heap. Afterwards the C allocator may serve the exercises' 8 and 16 MB arrays from memory
it already holds, so the process's resident memory need not fall when they are freed.
Each snippet's size is what leaves holes of several MB (2,000,000 floats leave ~170 MiB kept by
the allocator, lesson 1 measures), and no more: under tracemalloc, which records every object,
a million Python objects cost about 4 s of the kernel's CPU. None of
them keeps any array of the exercises, so each notebook must get full marks and no flag.

Names are chosen not to clash with the notebook's own (``grid``, ``readings``, ``_expected``...).
"""

from __future__ import annotations

import textwrap

import nbformat

from autograder.demo.examples import Example

EXERCISES = "04_exercises_free_and_budget_memory"


def _cell(source: str) -> str:
    return textwrap.dedent(source).strip("\n") + "\n"


# (id, source): every source is a complete, honest cell prefix.
SNIPPETS: list[tuple[str, str]] = [
    (
        "tolist-2m-floats",
        _cell(
            """
        tmp = np.arange(2_000_000, dtype=float).tolist()
        del tmp
        """
        ),
    ),
    (
        "tolist-500k-random",
        _cell(
            """
        tmp = np.random.default_rng(1).random(500_000).tolist()
        print(sum(tmp) / len(tmp))
        del tmp
        """
        ),
    ),
    (
        "tolist-2d-list-of-lists",
        _cell(
            """
        rows = np.ones((1000, 750)).tolist()
        print(len(rows), len(rows[0]))
        del rows
        """
        ),
    ),
    (
        "50k-small-arrays-dropped",
        _cell(
            """
        small = [np.ones(100) for _ in range(50_000)]
        del small
        """
        ),
    ),
    (
        "10k-small-arrays-every-other-freed",
        _cell(
            """
        arrays = [np.full(100, float(i)) for i in range(10_000)]
        del arrays[::2]  # keep the odd ones
        """
        ),
    ),
    (
        "dict-of-600k-floats",
        _cell(
            """
        lookup = {i: i * 0.5 for i in range(600_000)}
        print(lookup[599_999])
        del lookup
        """
        ),
    ),
    (
        "bytes-of-many-sizes",
        _cell(
            """
        chunks = [bytes(size) for size in range(1, 60_000, 7)]
        blob = b"x" * 40_000_000
        print(sum(map(len, chunks)) + len(blob))
        del chunks, blob
        """
        ),
    ),
    (
        "np-split-into-40k-copies",
        _cell(
            """
        pieces = np.split(np.arange(4_000_000.0), 40_000)
        copies = [piece.copy() for piece in pieces]
        del pieces, copies
        """
        ),
    ),
    (
        "strings-joined",
        _cell(
            """
        words = [f"word-{i:07d}" for i in range(500_000)]
        text = " ".join(words)
        print(len(text))
        del words, text
        """
        ),
    ),
    (
        "interleaved-keep-small-slices",
        _cell(
            """
        kept = []
        for i in range(30):
            big = np.arange(50_000, dtype=float).tolist()
            if i % 3 == 0:
                kept.append(big[:1000])  # a small survivor between freed lists
            del big
        """
        ),
    ),
    (
        "list-grown-by-append",
        _cell(
            """
        values = []
        for i in range(500_000):
            values.append(i * 1.5)
        del values
        """
        ),
    ),
    (
        "160kb-arrays-every-third-kept",
        _cell(
            """
        blocks = [np.empty(20_000) for _ in range(200)]
        survivors = blocks[::3]
        del blocks
        """
        ),
    ),
    (
        "set-of-tuples",
        _cell(
            """
        pairs = {(i, i % 97) for i in range(300_000)}
        print(len(pairs))
        del pairs
        """
        ),
    ),
    (
        "bytearray-grown",
        _cell(
            """
        buf = bytearray()
        for i in range(200_000):
            buf += b"0123456789"
        del buf
        """
        ),
    ),
    (
        "json-round-trip",
        _cell(
            """
        import json
        text = json.dumps(np.arange(300_000.0).tolist())
        back = json.loads(text)
        print(len(text), len(back))
        del text, back
        """
        ),
    ),
    (
        "object-array-of-strings",
        _cell(
            """
        objs = np.array([str(i) for i in range(300_000)], dtype=object)
        print(objs[-1])
        del objs
        """
        ),
    ),
    (
        "unique-counts-kept",
        _cell(
            """
        sample = np.random.default_rng(3).integers(0, 1000, size=3_000_000)
        values_seen, counts = np.unique(sample, return_counts=True)
        histogram = dict(zip(values_seen.tolist(), counts.tolist()))
        del sample, values_seen, counts
        """
        ),
    ),
    (
        "arrays-of-growing-size-some-kept",
        _cell(
            """
        mixed = [np.ones(n) for n in range(1, 2000)]
        keep_some = mixed[::50]
        del mixed
        """
        ),
    ),
    (
        "sqrt-list-summed",
        _cell(
            """
        import math
        roots = [math.sqrt(i) for i in range(750_000)]
        print(sum(roots))
        del roots
        """
        ),
    ),
    (
        "parsed-text-records-thinned",
        _cell(
            """
        lines = [f"{x:.6f}" for x in np.random.default_rng(5).random(200_000)]
        parsed = np.array([float(line) for line in lines])
        records = [(i, line) for i, line in enumerate(lines)][::50]
        del lines, parsed
        """
        ),
    ),
]


def instructor_cell(source_notebook, grade_id: str) -> str:
    """The source of one cell of the instructor's notebook, found by grade_id."""
    notebook = nbformat.read(source_notebook, as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell.source
    raise KeyError(grade_id)


def fragmented_example(snippet_id: str, snippet: str, allocate_source: str) -> Example:
    """The instructor's full solution, with ``snippet`` run first in the ``ex1_allocate`` cell."""
    return Example(
        name=f"passes-fragmented-{snippet_id}",
        description=f"The instructor's solution, after a heap-fragmenting cell ({snippet_id}).",
        notebooks=(EXERCISES,),
        cells={"ex1_allocate": f"{snippet}\n{allocate_source}"},
    )
