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

One way around it is known and not closed here: after tracking starts, a notebook could hang
memory on a start-up object (a module's, IPython's) that is garbage in a reference cycle, so
that the full collection before a failing verdict frees it and offsets a copy the notebook
kept. It needs that notebook to reach into objects it did not make; the static read flags it
only where those objects are the checks' or NumPy's.
"""

from __future__ import annotations

import gc
from typing import Any

_start_up_lists: list[list[Any]] = []  # lists that existed at the freeze (frozen: unlisted)
# None until these checks freeze; then how many objects their freeze holds (fewer as frozen
# objects die), and 0 once it was undone: never frozen again in this process.
_frozen_count: int | None = None


def freeze_start_up_objects() -> None:
    """Collect, then put every object that exists now out of the collector's reach. Once
    per process: a notebook's second set-up cell changes nothing."""
    global _frozen_count
    if _frozen_count is not None:
        return
    gc.unfreeze()  # whatever froze objects before (nothing does): they are listed below too
    gc.collect()
    _start_up_lists[:] = [o for o in gc.get_objects() if type(o) is list]
    gc.freeze()
    _frozen_count = gc.get_freeze_count()


def _only_our_freeze() -> bool:
    """Whether these checks' freeze still holds (less frozen objects that died since). Any
    other freeze (code that froze objects itself) is undone: every object is seen again."""
    global _frozen_count
    count = gc.get_freeze_count()
    if _frozen_count and 0 < count <= _frozen_count:
        _frozen_count = count
        return True
    if count or _frozen_count:
        see_every_object()
    return False


def collect() -> None:
    """Free reference cycles among the objects made since the freeze (all of them, if none)."""
    _only_our_freeze()  # someone else's freeze is undone before collecting
    gc.collect()


def see_every_object() -> None:
    """From now on the collector sees every object again (its lists and its collections)."""
    global _frozen_count
    gc.unfreeze()
    _start_up_lists.clear()
    if _frozen_count is not None:
        _frozen_count = 0


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
    return found + _start_up_lists if _only_our_freeze() else found
