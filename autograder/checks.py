"""The checks the assignment's test cells call.

Every check passes silently or raises an ``AssertionError`` whose message a
student can act on: what still holds the memory, and how to let it go. None
writes to stderr (nbgrader scores any stderr in a test cell as 0).

Typical use in a notebook::

    from autograder import checks
    checks.start_tracing()            # set-up cell, before any large array
    big = np.ones((1000, 1000))
    checks.track(big, "big")          # remember its buffer
    del big
    checks.assert_freed("big")        # prove it is gone, or say who holds it
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .memory import (
    describe_bytes,
    measure,
    measure_call,
    numpy_bytes,
    python_bytes,
    require_tracing,
    start_tracing,
)
from .references import buffer_owner, find_holders, forget_last_error

__all__ = [
    "assert_freed",
    "assert_in_place",
    "assert_no_leak",
    "assert_peak_below",
    "forget_last_error",
    "holders_of",
    "measure",
    "numpy_bytes_now",
    "start_tracing",
    "track",
]

# Allocator and interpreter noise below this is not a student's doing.
SLACK_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Tracked:
    label: str
    ref: weakref.ref
    nbytes: int
    numpy_bytes_when_tracked: int
    python_bytes_when_tracked: int  # outside NumPy: a copy kept as bytes or a list shows here


_tracked: dict[str, _Tracked] = {}


def _require_array(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise AssertionError(
            f"{what} must be a NumPy array, but it is {type(value).__name__}: {value!r:.60}"
        )
    return value


def track(array: np.ndarray, label: str) -> None:
    """Remember the buffer behind ``array`` under ``label`` (its owner, following ``.base``)."""
    require_tracing()
    _require_array(array, f"The value tracked as {label!r}")
    owner = buffer_owner(array)
    _tracked[label] = _Tracked(
        label, weakref.ref(owner), owner.nbytes, numpy_bytes(), python_bytes()
    )


def _lookup(label: str) -> _Tracked:
    try:
        return _tracked[label]
    except KeyError:
        known = ", ".join(repr(name) for name in _tracked) or "none yet"
        raise AssertionError(
            f"No array was tracked as {label!r} (tracked: {known}). The cell that creates "
            f"{label!r} and calls checks.track(...) must run without an error first: "
            "re-run the notebook from the top."
        ) from None


def holders_of(label: str) -> list[str]:
    """What keeps the tracked array alive, one line each ([] when it is freed)."""
    owner = _lookup(label).ref()
    if owner is None:
        return []
    return [holder.describe() for holder in find_holders(owner, label)]


def assert_freed(label: str, *, keep_bytes: int = 0, expected_nbytes: int | None = None) -> None:
    """Prove the array tracked as ``label`` is gone, and NumPy's memory dropped with it.

    Two independent proofs: the buffer itself is dead (a weak reference), and
    the bytes NumPy holds fell by its size since it was tracked, so no copy of
    it is hiding anywhere. ``keep_bytes`` allows new arrays the exercise asks
    you to keep (a small copy, a smaller dtype). ``expected_nbytes`` is the size
    the exercise asked for, so freeing a smaller stand-in proves nothing.
    """
    require_tracing()
    tracked = _lookup(label)
    if expected_nbytes is not None and tracked.nbytes != expected_nbytes:
        raise AssertionError(
            f"The array tracked as {label!r} held {describe_bytes(tracked.nbytes)}; this exercise "
            f"asks for {describe_bytes(expected_nbytes)}. Create the array the exercise describes."
        )
    gc.collect()  # reference cycles are garbage the collector has not reached yet
    owner = tracked.ref()
    if owner is not None:
        holders = find_holders(owner, label)
        del owner
        size = describe_bytes(tracked.nbytes)
        if holders:
            lines = "\n".join(f"  - {holder.describe()}" for holder in holders)
            raise AssertionError(
                f"The {size} array {label!r} is still in memory. What holds it:\n{lines}"
            )
        raise AssertionError(
            f"The {size} array {label!r} is still in memory, held by something outside the "
            "notebook's variables (a module attribute or an object we cannot see into). "
            "Delete every name, view and container that refers to it."
        )
    dropped = tracked.numpy_bytes_when_tracked - numpy_bytes()
    expected = tracked.nbytes - keep_bytes
    if dropped < expected - SLACK_BYTES:
        raise AssertionError(
            f"The array {label!r} itself is gone, but NumPy's memory fell by only "
            f"{describe_bytes(max(dropped, 0))} since it was tracked, not by "
            f"{describe_bytes(expected)}. Something still holds a copy of that size "
            "(`.copy()`, `np.array(...)`, the result of arithmetic on it): delete it too."
        )
    grown_outside = python_bytes() - tracked.python_bytes_when_tracked
    if grown_outside > expected // 2:
        raise AssertionError(
            f"The array {label!r} is gone, but since it was tracked the notebook's own "
            f"memory outside NumPy grew by {describe_bytes(grown_outside)}: a copy of its "
            "data is still held as Python objects (`.tobytes()`, `.tolist()`, `bytearray(...)`). "
            "Delete that too."
        )


def assert_no_leak(
    func: Callable[..., Any],
    make_args: Callable[[], tuple],
    *,
    calls: int = 20,
    allowed_bytes_per_call: int = 1024,
) -> None:
    """Call ``func(*make_args())`` many times and fail if NumPy's memory keeps growing.

    Each call's arguments and result are dropped before the next; whatever is
    still held after all calls is what ``func`` kept. When it leaks, the last
    call's input and output are looked for in the notebook to name the holder.
    """
    require_tracing()
    name = getattr(func, "__name__", "the function")
    func(*make_args())  # warm-up: one-off caches (imports, lazy tables) are not leaks
    last_args: list[weakref.ref] = []
    last_result: weakref.ref | None = None
    with measure() as measured:
        for _ in range(calls):
            args = make_args()
            result = func(*args)
            last_args = [weakref.ref(buffer_owner(a)) for a in args if isinstance(a, np.ndarray)]
            last_result = (
                weakref.ref(buffer_owner(result)) if isinstance(result, np.ndarray) else None
            )
            del args, result
        gc.collect()
    growth = measured.net_bytes
    if growth <= allowed_bytes_per_call * calls + SLACK_BYTES:
        return
    kept = [("its input", ref()) for ref in last_args] + [
        ("its result", last_result() if last_result else None)
    ]
    found = []
    for role, owner in kept:
        if owner is not None:
            found += [
                f"  - {role}: {h.describe()}" for h in find_holders(owner, f"{name}'s {role}")
            ]
        del owner
    where = (
        "\n".join(found)
        if found
        else ("  - (no name found: look for a list, dict or global the function appends to)")
    )
    raise AssertionError(
        f"{name}() leaks: {calls} calls left {describe_bytes(growth)} of NumPy memory held "
        f"({describe_bytes(growth // calls)} per call). After each call nothing should remain "
        f"but what the caller keeps. Still held after the last call:\n{where}\n"
        "Remove the cache or global list, or keep only small summaries (floats), not arrays."
    )


def assert_peak_below(
    func: Callable[..., Any], /, *args: Any, budget_bytes: int, **kwargs: Any
) -> Any:
    """Call ``func`` and fail if memory peaked above ``budget_bytes``; returns its result."""
    require_tracing()
    name = getattr(func, "__name__", "the function")
    result, measured = measure_call(func, *args, **kwargs)
    if measured.peak_bytes > budget_bytes:
        raise AssertionError(
            f"{name}() peaked at {describe_bytes(measured.peak_bytes)} of memory, over the "
            f"{describe_bytes(budget_bytes)} budget. Something held much of the data at once "
            "(a list of every block, np.concatenate, one big temporary). Work on one block at "
            "a time and keep only running totals."
        )
    return result


def assert_in_place(
    func: Callable[[np.ndarray], Any], array: np.ndarray, *, max_peak_fraction: float = 0.1
) -> None:
    """Call ``func(array)`` and fail unless it changed ``array`` in its own buffer,
    without any temporary bigger than ``max_peak_fraction`` of its size."""
    require_tracing()
    _require_array(array, "The array to transform")
    name = getattr(func, "__name__", "the function")
    address = array.__array_interface__["data"][0]
    _, measured = measure_call(func, array)
    if array.__array_interface__["data"][0] != address:
        raise AssertionError(f"{name}() moved the array to a new buffer: work in place.")
    budget = int(array.nbytes * max_peak_fraction)
    if measured.peak_bytes > budget:
        raise AssertionError(
            f"{name}() allocated {describe_bytes(measured.peak_bytes)} while working on a "
            f"{describe_bytes(array.nbytes)} array (allowed: {describe_bytes(budget)}). An "
            "expression such as `a - a.min()` or `a / s` builds a new array the size of the "
            "input; the in-place forms `a -= m`, `a /= s` or `np.subtract(a, m, out=a)` do not."
        )


def numpy_bytes_now() -> int:
    """The bytes NumPy holds now (exact, since tracing started)."""
    return numpy_bytes()
