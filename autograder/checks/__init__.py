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

import collections
import contextlib
import tracemalloc
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autograder.checks import collector
from autograder.checks.advice import Holder, collect_fix, quoted
from autograder.checks.copies import Fingerprint, find_copies, fingerprint
from autograder.checks.memory import (
    describe_bytes,
    held_bytes,
    measure,
    measure_call,
    notebook_held_bytes,
    numpy_bytes,
    require_tracing,
    start_tracing,
)
from autograder.checks.messages import CheckFailed
from autograder.checks.references import (
    buffer_owner,
    current_shell,
    find_holders,
    forget_last_error,
    held_only_by_a_cycle,
    notebook_namespace,
    notebook_variables,
)
from autograder.checks.sizes import largest_holders

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
    # What the notebook's own code held when tracked: NumPy bytes (libraries' arrays left
    # out) and Python objects (bytes, text, lists...), read by memory.notebook_held_bytes.
    numpy_bytes_when_tracked: int
    python_bytes_when_tracked: int
    content: Fingerprint  # to recognise a copy of the data, made before or after tracking
    # The notebook's variables then, as (name, id): a holder bound since is named first.
    variables_when_tracked: frozenset[tuple[str, int]]


_tracked: dict[str, _Tracked] = {}


def _require_array(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise CheckFailed(
            f"{what} must be a NumPy array, but it is {type(value).__name__}: {value!r:.60}"
        )
    return value


def track(array: np.ndarray, label: str) -> None:
    """Remember the buffer behind ``array`` under ``label`` (its owner, following ``.base``)."""
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    require_tracing()
    _require_array(array, f"The value tracked as {label!r}")
    owner = buffer_owner(array)
    content = fingerprint(owner)
    numpy_held, python_held = notebook_held_bytes()
    variables = frozenset((name, id(value)) for name, value in notebook_variables())
    _tracked[label] = _Tracked(
        label, weakref.ref(owner), owner.nbytes, numpy_held, python_held, content, variables
    )


def _lookup(label: str) -> _Tracked:
    try:
        return _tracked[label]
    except KeyError:
        known = ", ".join(repr(name) for name in _tracked) or "none yet"
        raise CheckFailed(
            f"No array was tracked as {label!r} (tracked: {known}). The cell that creates "
            f"{label!r} and calls checks.track(...) must run without an error first: "
            "re-run the notebook from the top."
        ) from None


def _holders(tracked: _Tracked) -> list[Holder]:
    """What keeps the tracked buffer alive ([] when it is freed); no reference is kept."""
    owner = tracked.ref()
    return find_holders(owner, tracked.label) if owner is not None else []


def holders_of(label: str) -> list[str]:
    """What keeps the tracked array alive, one line each ([] when it is freed).

    It only looks: it does not run the garbage collector, so an array that only a
    reference cycle holds is still there afterwards, until the collector runs.
    """
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    tracked = _lookup(label)
    holders = _holders(tracked)
    if any(holder.kind != "unnamed holder" for holder in holders):
        return [holder.describe() for holder in holders]
    owner = tracked.ref()
    if owner is not None and held_only_by_a_cycle(owner):
        fix = collect_fix(notebook_namespace())
        return [
            "a reference cycle: objects that refer to each other (and to the array) but that "
            "nothing else reaches. Python's garbage collector frees them when it next runs; "
            f"{quoted(fix)} runs it now."
        ]
    return [holder.describe() for holder in holders]


def _still_alive(tracked: _Tracked) -> CheckFailed:
    holders = _holders(tracked)
    size = describe_bytes(tracked.nbytes)
    if holders:
        lines = "\n".join(f"  - {holder.describe()}" for holder in holders)
        return CheckFailed(
            f"The {size} array {tracked.label!r} is still in memory. What holds it:\n{lines}",
            holders,
        )
    return CheckFailed(
        f"The {size} array {tracked.label!r} is still in memory, but nothing the notebook can "
        "name holds it (not a variable, container, attribute, closure, generator, cache, the "
        "output cache or a traceback). Look for where it was passed to a library or a thread."
    )


def _copies_found(tracked: _Tracked, copies: list[Any]) -> CheckFailed:
    named: list[Holder] = []
    for copy in copies:
        named += find_holders(copy, f"a copy of {tracked.label}", ignore=(copies,))
    kinds = sorted({type(copy).__name__ for copy in copies})
    lines = "\n".join(f"  - {holder.describe()}" for holder in named) or (
        f"  - (a {' and a '.join(kinds)} holding the same values, kept somewhere the notebook's "
        "variables do not reach)"
    )
    return CheckFailed(
        f"The array {tracked.label!r} itself is gone, but a full copy of its data is still in "
        f"memory ({', '.join(kinds)}: `.copy()`, `np.array(...)`, `.tolist()`, `.tobytes()`, "
        f"made before or after it was tracked). What holds the copy:\n{lines}\n"
        "Free the copy too, or keep only the small result the exercise asks for.",
        named,
    )


# Labels whose copy search found nothing, with the cell run it was made in: a test cell
# that checks twice (the visible and the hidden test) searches once. No student code
# runs between two checks in one cell.
_no_copies_in_run: dict[str, int] = {}


def _copies_of(tracked: _Tracked) -> list[Any]:
    shell = current_shell()
    run = getattr(shell, "execution_count", None)
    if run is not None and _no_copies_in_run.get(tracked.label) == run:
        return []
    copies = find_copies(tracked.content)
    if not copies and run is not None:
        _no_copies_in_run[tracked.label] = run
    return copies


def _kept_in_another_form(tracked: _Tracked, dropped: int, expected: int) -> CheckFailed:
    """The message when the array is gone but the memory did not come back: name what
    holds the most since it was tracked (a BytesIO, text, pickle bytes, chunks...)."""
    missing = expected - max(dropped, 0)
    new_names = frozenset(
        name
        for name, value in notebook_variables()
        if (name, id(value)) not in tracked.variables_when_tracked
    )
    holders = largest_holders(max(missing // 4, SLACK_BYTES), tracked.label, new_names=new_names)
    lines = "\n".join(f"  - {holder.describe()}" for holder in holders) or (
        "  - (no variable of the notebook holds that much: look for what you stored in a "
        "module, a library's object or a thread)"
    )
    return CheckFailed(
        f"The array {tracked.label!r} itself is gone, but the memory your notebook holds "
        f"(arrays and Python objects alike) fell by only {describe_bytes(max(dropped, 0))} "
        f"since it was tracked, not by {describe_bytes(expected)}: its data is still kept, "
        "in another form (bytes, text, a buffer, a list, chunks) or in arrays made from it. "
        f"What holds the memory:\n{lines}\n"
        "Free what the exercise did not ask you to keep.",
        holders,
    )


def assert_freed(label: str, *, keep_bytes: int = 0, expected_nbytes: int | None = None) -> None:
    """Prove the array tracked as ``label`` is freed, however it was freed.

    The route does not matter (``del``, rebinding the name, a function returning,
    ``%xdel``, clearing a cache): what counts is the outcome. Three proofs:

    1. the buffer itself is dead (a weak reference to it);
    2. no full copy of its data is alive anywhere (an array, list or bytes with the same
       content, made before or after tracking);
    3. the memory the notebook's own code holds fell by its size since it was tracked,
       counted in every domain ``tracemalloc`` traces: NumPy's buffers and Python objects
       alike, so no partial or converted copy is hiding either, whatever its form (an
       ``io.BytesIO``, text, ``pickle`` bytes, an ``array.array``, a dict of chunks). What
       libraries keep for themselves (matplotlib keeps a copy of every image it shows) and
       the kernel's own bookkeeping do not count.

    ``keep_bytes`` allows new arrays or objects the exercise asks you to keep (a small
    copy, a smaller dtype). ``expected_nbytes`` is the size the exercise asked for, so freeing a
    smaller stand-in proves nothing.
    """
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    require_tracing()
    tracked = _lookup(label)
    if expected_nbytes is not None and tracked.nbytes != expected_nbytes:
        raise CheckFailed(
            f"The array tracked as {label!r} held {describe_bytes(tracked.nbytes)}; this exercise "
            f"asks for {describe_bytes(expected_nbytes)}. Create the array the exercise describes."
        )
    expected = tracked.nbytes - keep_bytes
    collector.collect()  # reference cycles are garbage the collector has not reached yet
    if (
        tracked.ref() is None
        and not _copies_of(tracked)
        and _dropped(tracked) >= expected - SLACK_BYTES
    ):
        return  # the usual case, decided with the kernel's start-up objects frozen
    # About to fail: every object collected and seen, as the messages below need too.
    collector.collect_every_object()
    if tracked.ref() is not None:
        raise _still_alive(tracked)
    copies = _copies_of(tracked)
    if copies:
        failure = _copies_found(tracked, copies)
        del copies
        raise failure
    dropped = _dropped(tracked)
    if dropped < expected - SLACK_BYTES:
        raise _kept_in_another_form(tracked, dropped, expected)


def _dropped(tracked: _Tracked) -> int:
    """How much less the notebook's own code holds now than when ``tracked`` was tracked."""
    numpy_held, python_held = notebook_held_bytes()
    return (tracked.numpy_bytes_when_tracked + tracked.python_bytes_when_tracked) - (
        numpy_held + python_held
    )


def _containers_of(func: Callable[..., Any]) -> dict[str, Any]:
    """Where a leaking function usually keeps things: the notebook's variables, and the
    function's own default arguments, closure variables and attributes."""
    places = {
        name: value
        for name, value in list(notebook_namespace().items())
        if not name.startswith("_") and name not in ("In", "Out")
    }
    inner = getattr(func, "__wrapped__", func)
    if isinstance(inner, types.FunctionType):
        for index, default in enumerate(inner.__defaults__ or ()):
            places[f"{inner.__name__}'s default argument {index}"] = default
        for name, cell in zip(inner.__code__.co_freevars, inner.__closure__ or (), strict=False):
            with contextlib.suppress(ValueError):
                places[f"{inner.__name__}'s closure variable {name!r}"] = cell.cell_contents
        for name, value in vars(inner).items():
            places[f"{inner.__name__}.{name}"] = value
    return places


def _sizes(places: dict[str, Any]) -> dict[str, int]:
    return {
        name: len(value)
        for name, value in places.items()
        if isinstance(value, (list, dict, set, collections.deque))
    }


def _leak_holders(func, before: dict[str, int], calls: int, last: list[tuple[str, Any]]) -> str:
    """Name what the calls left behind: containers that grew, then the last input/output."""
    name = getattr(func, "__name__", "the function")
    found = [
        f"  - `{place}` grew by {size - before.get(place, 0)} entries over {calls} calls: "
        "remove it or stop adding to it."
        for place, size in _sizes(_containers_of(func)).items()
        if size - before.get(place, 0) >= calls // 2 > 0
    ]
    for role, ref in last:
        owner = ref()
        if owner is not None:
            found += [
                f"  - {role}: {h.describe()}" for h in find_holders(owner, f"{name}'s {role}")
            ]
        del owner
    return "\n".join(found) or (
        "  - (no name found: look for a list, dict, cache or global the function adds to)"
    )


def _calls(
    func: Callable[..., Any], make_args: Callable[[], tuple], calls: int, allowed: int
) -> tuple[int, int, dict[str, int], list[tuple[str, weakref.ref]]]:
    """Call ``func`` up to ``calls`` times: (bytes still held after, calls made, the sizes of
    its containers before, weak references to the last input and result)."""
    func(*make_args())  # warm-up: one-off caches (imports, lazy tables) are not leaks
    collector.collect()
    sizes_before = _sizes(_containers_of(func))
    start = sum(held_bytes())
    traced_start = tracemalloc.get_traced_memory()[0]  # every domain, read in O(1): cheap per call
    last: list[tuple[str, weakref.ref]] = []
    done = 0
    for done in range(1, calls + 1):
        args = make_args()
        result = func(*args)
        last = [
            ("its input", weakref.ref(buffer_owner(a))) for a in args if isinstance(a, np.ndarray)
        ]
        if isinstance(result, np.ndarray):
            last.append(("its result", weakref.ref(buffer_owner(result))))
        del args, result
        if done >= 2 and tracemalloc.get_traced_memory()[0] - traced_start > 4 * allowed:
            break  # certain already: more calls would only cost time and memory
    collector.collect()
    return sum(held_bytes()) - start, done, sizes_before, last


def assert_no_leak(
    func: Callable[..., Any],
    make_args: Callable[[], tuple],
    *,
    calls: int = 20,
    allowed_bytes_per_call: int = 1024,
) -> None:
    """Call ``func(*make_args())`` many times and fail if memory keeps growing.

    A leak is counted in any form: NumPy buffers, and the Python objects made from them
    (``.tolist()``, floats, bytes) by the notebook's code. Each call's arguments and
    result are dropped before the next; whatever is still held after all calls is what
    ``func`` kept. A leak is stopped as soon as it is certain, so a leaking function
    costs a few calls' time and memory, not all of them. The holder is named where it
    can be found: a container that grew, or where the last input or result is kept.
    """
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    require_tracing()
    name = getattr(func, "__name__", "the function")
    allowed = allowed_bytes_per_call * calls + SLACK_BYTES
    growth, done, sizes_before, last = _calls(func, make_args, calls, allowed)
    if growth <= allowed * done / calls + SLACK_BYTES:
        return
    if collector.collect_every_object():
        # Measured again with every object collectable: an object frozen at the start that
        # became garbage since would otherwise count against the function.
        growth, done, sizes_before, last = _calls(func, make_args, calls, allowed)
        if growth <= allowed * done / calls + SLACK_BYTES:
            return
    where = _leak_holders(func, sizes_before, done, last)
    raise CheckFailed(
        f"{name}() leaks: {done} calls left {describe_bytes(growth)} held "
        f"({describe_bytes(growth // done)} per call), as NumPy arrays or Python objects made "
        f"from them (lists, floats, bytes). After each call nothing should remain but what "
        f"the caller keeps. Still held after the last call:\n{where}\n"
        "Remove the cache or global list, or keep only small summaries (floats), not arrays "
        "or lists of their values."
    )


def assert_peak_below(
    func: Callable[..., Any], /, *args: Any, budget_bytes: int, **kwargs: Any
) -> Any:
    """Call ``func`` and fail if memory peaked above ``budget_bytes``; returns its result.

    Only the tracer's running totals are read (no snapshot): a snapshot's own list of
    traces is large when the notebook keeps millions of Python objects, and it would
    show in the kernel's peak memory, which the grader also reads from outside.
    """
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    require_tracing()
    name = getattr(func, "__name__", "the function")
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    result = func(*args, **kwargs)
    require_tracing()
    peak = tracemalloc.get_traced_memory()[1] - before
    if peak > budget_bytes:
        raise CheckFailed(
            f"{name}() peaked at {describe_bytes(peak)} of memory, over the "
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
    __tracebackhide__ = True  # IPython leaves the checks' frame out of a traceback
    require_tracing()
    _require_array(array, "The array to transform")
    name = getattr(func, "__name__", "the function")
    address = array.__array_interface__["data"][0]
    _, measured = measure_call(func, array)
    if array.__array_interface__["data"][0] != address:
        raise CheckFailed(f"{name}() moved the array to a new buffer: work in place.")
    budget = int(array.nbytes * max_peak_fraction)
    if measured.peak_bytes > budget:
        raise CheckFailed(
            f"{name}() allocated {describe_bytes(measured.peak_bytes)} while working on a "
            f"{describe_bytes(array.nbytes)} array (allowed: {describe_bytes(budget)}). An "
            "expression such as `a - a.min()` or `a / s` builds a new array the size of the "
            "input; the in-place forms `a -= m`, `a /= s` or `np.subtract(a, m, out=a)` do not."
        )


def numpy_bytes_now() -> int:
    """The bytes NumPy holds now (exact, since tracing started)."""
    return numpy_bytes()
