"""Measure memory: the exact bytes NumPy holds, and the process's resident size.

NumPy reports every data buffer it allocates to :mod:`tracemalloc` in its own
domain, so the sum of that domain's traces is exactly the bytes NumPy holds
(views add nothing, freeing takes the bytes back). That figure decides pass or
fail. The resident set size (RSS) is reported beside it, never used alone: the
C allocator may keep freed memory, and untouched ``np.zeros`` pages are not
resident at all.
"""

from __future__ import annotations

import functools
import sysconfig
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from autograder.checks import collector
from autograder.checks.messages import CheckFailed

NUMPY_DOMAIN = np.lib.tracemalloc_domain


class TracingOffError(CheckFailed):
    """tracemalloc is not running, so NumPy's allocations are not being counted."""


# Frames kept per allocation: enough to look past NumPy's own Python functions (np.copy,
# np.linspace, ...) to the code that called them, so a library's arrays are told apart
# from the notebook's (see notebook_held_bytes). Costs ~1.3x tracing with one frame on allocation-heavy code (a .tolist() of millions).
TRACE_FRAMES = 3


def start_tracing() -> None:
    """Start counting allocations (a few frames each: cheap). Idempotent.

    Only allocations made after this call are seen, so call it before the
    arrays you want to measure are created.
    """
    if not tracemalloc.is_tracing():
        tracemalloc.start(TRACE_FRAMES)
    collector.freeze_start_up_objects()  # the checks' collections walk the notebook's objects


def require_tracing() -> None:
    """Fail with a clear message unless tracemalloc is running."""
    if not tracemalloc.is_tracing():
        raise TracingOffError(
            "Memory tracing is off, so NumPy's memory cannot be measured. Run the set-up "
            "cell at the top of the notebook (it calls checks.start_tracing()). "
            "Calling tracemalloc.stop() erases every measurement: do not call it."
        )


# Reading the tracer: tracemalloc's own Snapshot.filter_traces runs Python code for every
# trace, about 8 s for a million (a list of floats a student keeps). Its raw list of
# ``(domain, size, frames innermost first, total frames)`` tuples, which take_snapshot is
# built from, is read 20 times faster. A private CPython API: pyproject.toml says so.
_RawTrace = tuple[int, int, tuple[tuple[str, int], ...], int]
_raw_traces: Callable[[], list[_RawTrace]] = tracemalloc._get_traces  # type: ignore[attr-defined]


def numpy_bytes() -> int:
    """The bytes NumPy's data buffers hold now, counted since tracing started."""
    require_tracing()
    return sum(trace[1] for trace in _raw_traces() if trace[0] == NUMPY_DOMAIN)


_STDLIB = sysconfig.get_paths()["stdlib"]
_THIRD_PARTY = ("/site-packages/", "/dist-packages/")
# Code that only passes an allocation on: NumPy's Python functions, the standard library
# (copy.deepcopy, ...) and these checks. The frame past them says who asked for the memory.
_PASSING_ON = ("/numpy/", "/autograder/")


def _third_party(filename: str) -> bool:
    return any(part in filename for part in _THIRD_PARTY)


def _passes_on(filename: str) -> bool:
    if filename.startswith(("<frozen", _STDLIB)) and not _third_party(filename):
        return True
    return any(part in filename for part in _PASSING_ON)


@functools.lru_cache(maxsize=4096)
def _made_by_library(frames: tuple[tuple[str, int], ...]) -> bool:
    """True when the innermost frame that is not NumPy, the standard library or the checks
    belongs to an installed library (matplotlib, pandas, ...): that library's own array."""
    for filename, _ in frames:  # innermost first
        if not _passes_on(filename):
            return _third_party(filename)
    return False  # nothing but pass-through frames: count it, to be safe


@functools.lru_cache(maxsize=4096)
def _decided_by(frames: tuple[tuple[str, int], ...]) -> str:
    """Who asked for a Python object (any domain but NumPy's): "notebook" when the innermost
    frame that is not NumPy or the standard library (json, pickle, io... only pass an
    allocation on) is a notebook cell or a function a cell defined; "library" for an
    installed package, the kernel's machinery and these checks; "" when every frame only
    passes it on (an import, asyncio), which is not counted."""
    for filename, _ in frames:  # innermost first
        if filename.startswith(("<frozen", _STDLIB)) and not _third_party(filename):
            continue
        if "/numpy/" in filename:
            continue
        return "library" if _third_party(filename) or "/autograder/" in filename else "notebook"
    return ""


def _held(numpy_from_libraries: bool) -> tuple[int, int]:
    require_tracing()
    traces = _raw_traces()
    # A million traces (a kept .tolist()) are read while tracing, where every allocation is
    # traced too: these sums allocate nothing per trace (unpacking `for a, b, *rest in`, an
    # int added in Python, an lru_cache key all do: 13 s instead of 1).
    decided: dict[tuple[tuple[str, int], ...], bool] = {}

    def by_the_notebook(frames: tuple[tuple[str, int], ...]) -> bool:
        answer = decided.get(frames)
        if answer is None:
            answer = decided[frames] = _decided_by(frames) == "notebook"
        return answer

    numpy_held = sum(
        trace[1]
        for trace in traces
        if trace[0] == NUMPY_DOMAIN and (numpy_from_libraries or not _made_by_library(trace[2]))
    )
    python_held = sum(
        trace[1] for trace in traces if trace[0] != NUMPY_DOMAIN and by_the_notebook(trace[2])
    )
    del traces
    return numpy_held, python_held


def held_bytes() -> tuple[int, int]:
    """What a leak can keep, from one read of the tracer: ``(bytes NumPy holds, bytes the
    notebook's own code holds outside NumPy: lists, floats, bytes, text...)``."""
    return _held(numpy_from_libraries=True)


def notebook_held_bytes() -> tuple[int, int]:
    """What the notebook's own code holds, from one read of the tracer, in every domain
    tracemalloc traces: ``(NumPy buffers, less libraries' own arrays; Python objects made by
    the notebook's code: bytes, text, lists, buffers of io.BytesIO or array.array...)``."""
    return _held(numpy_from_libraries=False)


def rss_bytes() -> int:
    """The process's resident set size: coarse, and it may not drop after a free."""
    # This process as it is now: a kernel forked after this module was imported (the
    # grader's fork server imports it once) is not the process that imported it.
    return psutil.Process().memory_info().rss


@dataclass
class Measurement:
    """What a block of code did to memory. Filled in when the block ends."""

    net_bytes: int = 0
    """Change in the bytes NumPy holds (exact): positive means still held."""
    peak_bytes: int = 0
    """Highest traced memory above the start, during the block (all domains,
    NumPy's buffers dominate)."""
    rss_delta: int = 0
    """Change in resident set size: reported, never a basis for pass or fail."""
    seconds: float = 0.0


@contextmanager
def measure() -> Iterator[Measurement]:
    """Measure the enclosed block::

    with measure() as m:
        total = np.ones(1_000_000).sum()
    m.peak_bytes  # 8,000,000 and a little
    m.net_bytes   # 0: the temporary is gone
    """
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    require_tracing()
    result = Measurement()
    numpy_before = numpy_bytes()
    rss_before = rss_bytes()
    tracemalloc.reset_peak()
    traced_before, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        require_tracing()
        _, traced_peak = tracemalloc.get_traced_memory()
        result.peak_bytes = max(0, traced_peak - traced_before)
        result.net_bytes = numpy_bytes() - numpy_before
        result.rss_delta = rss_bytes() - rss_before


def measure_call(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> tuple[Any, Measurement]:
    """Call ``func(*args, **kwargs)`` and return ``(its result, Measurement)``.

    The result is still held when ``net_bytes`` is taken, so a function that
    returns a new array shows that array in ``net_bytes``.
    """
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    with measure() as measured:
        result = func(*args, **kwargs)
    return result, measured


def describe_bytes(n: int) -> str:
    """``8000000`` -> ``'7.63 MiB (8,000,000 bytes)'``: exact and readable."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{sign}{n / size:.2f} {unit} ({sign}{n:,} bytes)"
    return f"{sign}{n:,} bytes"
