"""Run Python's garbage collector for the checks, quickly, and never to a student's gain.

The checks collect reference cycles before they measure (a dozen times in a notebook), and a
full collection walks every object the collector tracks: about 60,000 in a fresh kernel
(IPython's, ipykernel's, NumPy's), 35 ms each time. None of those is the notebook's. So when
tracing starts (the notebook's set-up cell), the objects that exist are collected once and
then frozen (``gc.freeze``): later collections walk only what the notebook made since, in
about 2 ms.

What the freeze must never do is let a check pass that would fail otherwise:

* a frozen object is never collected, so memory can only look *more* held: a check that is
  about to fail first calls :func:`collect_every_object` (unfreeze, collect) and looks again;
* the collector's lists (``gc.get_objects``, ``gc.get_referrers``) leave frozen objects out,
  and the notebook's namespace is one of them: :func:`lists` adds the lists that existed at
  the freeze, and a search that needs every object calls :func:`see_every_object` first.

Nothing is frozen again once unfrozen: from then on the checks run as if nothing had been
(a notebook that fails a check pays the full collections, as before).
"""

from __future__ import annotations

import gc
from typing import Any

_start_up_lists: list[list[Any]] = []  # lists that existed at the freeze (frozen: unlisted)
_freeze: dict[str, int] = {}  # {"count": objects frozen} once these checks froze; then {}
_tried = False  # the freeze happens once per process at most: never again once unfrozen


def freeze_start_up_objects() -> None:
    """Collect, then put every object that exists now out of the collector's reach. Once
    per process: a notebook's second set-up cell changes nothing."""
    global _tried
    if _tried:
        return
    _tried = True
    gc.unfreeze()  # whatever froze objects before (nothing does): they are listed below too
    gc.collect()
    _start_up_lists[:] = [o for o in gc.get_objects() if type(o) is list]
    gc.freeze()
    _freeze["count"] = gc.get_freeze_count()


def _frozen() -> bool:
    """Frozen by these checks, as they left it (less frozen objects that died since). Any
    other freeze (code that froze objects itself) is undone: every object is seen again."""
    count = gc.get_freeze_count()
    if _freeze and 0 < count <= _freeze["count"]:
        _freeze["count"] = count
        return True
    if count or _freeze:
        see_every_object()
    return False


def collect() -> None:
    """Free reference cycles among the objects made since the freeze (all of them, if none)."""
    _frozen()  # someone else's freeze is undone first
    gc.collect()


def see_every_object() -> None:
    """From now on the collector sees every object again (its lists and its collections)."""
    gc.unfreeze()
    _start_up_lists.clear()
    _freeze.clear()


def collect_every_object() -> bool:
    """A full collection, frozen objects included: before a check fails. False when nothing
    was frozen (the collection already done was full, so looking again changes nothing)."""
    was_frozen = bool(gc.get_freeze_count())
    see_every_object()
    if was_frozen:
        gc.collect()
    return was_frozen


def lists() -> list[list[Any]]:
    """Every list alive: those the collector lists, and those frozen at the start."""
    found = [o for o in gc.get_objects() if type(o) is list]
    return found + _start_up_lists if _frozen() else found
