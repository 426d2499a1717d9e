"""Measure memory: the exact bytes NumPy holds, and the process's resident size.

NumPy reports every data buffer it allocates to :mod:`tracemalloc` in its own
domain, so the sum of that domain's traces is exactly the bytes NumPy holds
(views add nothing, freeing takes the bytes back). That figure decides pass or
fail. The resident set size (RSS) is reported beside it, never used alone: the
C allocator may keep freed memory, and untouched ``np.zeros`` pages are not
resident at all.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

NUMPY_DOMAIN = np.lib.tracemalloc_domain
_NUMPY_ONLY = (tracemalloc.DomainFilter(inclusive=True, domain=NUMPY_DOMAIN),)
_PROCESS = psutil.Process()


class TracingOffError(AssertionError):
    """tracemalloc is not running, so NumPy's allocations are not being counted."""


def start_tracing() -> None:
    """Start counting allocations (one frame each: cheap). Idempotent.

    Only allocations made after this call are seen, so call it before the
    arrays you want to measure are created.
    """
    if not tracemalloc.is_tracing():
        tracemalloc.start(1)


def require_tracing() -> None:
    """Fail with a clear message unless tracemalloc is running."""
    if not tracemalloc.is_tracing():
        raise TracingOffError(
            "Memory tracing is off, so NumPy's memory cannot be measured. Run the set-up "
            "cell at the top of the notebook (it calls checks.start_tracing()). "
            "Calling tracemalloc.stop() erases every measurement: do not call it."
        )


def numpy_bytes() -> int:
    """The bytes NumPy's data buffers hold now, counted since tracing started."""
    require_tracing()
    snapshot = tracemalloc.take_snapshot().filter_traces(_NUMPY_ONLY)
    return sum(trace.size for trace in snapshot.traces)


# Allocations by the kernel's own machinery (tracebacks, history, messaging), not by the student.
_STUDENT_CODE_ONLY = (
    tracemalloc.DomainFilter(inclusive=False, domain=NUMPY_DOMAIN),
    *(
        tracemalloc.Filter(inclusive=False, filename_pattern=pattern)
        for pattern in (
            "*/site-packages/*",
            "<frozen *>",
            "*/asyncio/*",
            "*/linecache.py",
            "*/tokenize.py",
            "*/traceback.py",
            "*/inspect.py",
            "*/tracemalloc.py",
            "*/threading.py",
            "*/selectors.py",
            "*/logging/*",
            "*/json/*",
            "*/re/*",
        )
    ),
)


def python_bytes() -> int:
    """Bytes allocated outside NumPy by the notebook's own code (lists, bytes, ...),
    leaving out the kernel's and libraries' own allocations, which drift by megabytes."""
    require_tracing()
    snapshot = tracemalloc.take_snapshot().filter_traces(_STUDENT_CODE_ONLY)
    return sum(trace.size for trace in snapshot.traces)


def rss_bytes() -> int:
    """The process's resident set size: coarse, and it may not drop after a free."""
    return _PROCESS.memory_info().rss


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
