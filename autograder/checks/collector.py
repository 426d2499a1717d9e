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
  the freeze (unless the notebook froze or thawed objects itself: then every object is seen
  again), and a search that needs every object calls :func:`see_every_object` first.

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
# None until these checks freeze; True while their freeze holds; False once it was undone:
# never frozen again in this process.
_frozen: bool | None = None
# A list made just after the freeze: a later gc.freeze() (the notebook's) freezes it too, and
# it leaves gc.get_objects(). (gc.get_freeze_count walks every frozen object: 4 ms a call.)
_made_after: list[list[Any]] = []


def freeze_start_up_objects() -> None:
    """Collect, then put every object that exists now out of the collector's reach. Once
    per process: a notebook's second set-up cell changes nothing."""
    global _frozen
    if _frozen is not None:
        return
    gc.unfreeze()  # whatever froze objects before (nothing does): they are listed below too
    gc.collect()
    _start_up_lists[:] = [o for o in gc.get_objects() if type(o) is list]
    gc.freeze()
    _made_after[:] = [[]]
    _frozen = True


def collect() -> None:
    """Free reference cycles among the objects made since the freeze (all of them, if none).

    A freeze the notebook made itself is left for now: it can only keep more memory held,
    and a check that fails collects every object before it says so."""
    gc.collect()


def see_every_object() -> None:
    """From now on the collector sees every object again (its lists and its collections)."""
    global _frozen
    gc.unfreeze()
    _start_up_lists.clear()
    if _frozen is not None:
        _frozen = False


def collect_every_object() -> bool:
    """A full collection, frozen objects included: before a check fails. False when nothing
    was frozen (the collection already done was full, so looking again changes nothing)."""
    was_frozen = bool(gc.get_freeze_count())
    see_every_object()
    if was_frozen:
        gc.collect()
    return was_frozen


def lists() -> list[list[Any]]:
    """Every list alive: those the collector lists, and those frozen at the start. A freeze
    (or thaw) by anyone else is undone first: every object is seen again."""
    found = [o for o in gc.get_objects() if type(o) is list]
    frozen = gc.get_freeze_count()
    if _frozen and frozen and any(o is _made_after[0] for o in found):
        return found + _start_up_lists  # ours alone: the list made after it is still listed
    if not frozen and not _frozen:
        return found  # nothing frozen
    see_every_object()
    return [o for o in gc.get_objects() if type(o) is list]
