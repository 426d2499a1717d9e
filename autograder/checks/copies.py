"""Find copies of an array's data wherever the interpreter can reach them.

NumPy's byte count says *how much* memory is held, not *what* it holds: a library
that keeps arrays of its own (matplotlib keeps a copy of every image it shows) looks
like a copy, and a copy made before an array was tracked is invisible to it. So a
tracked array's content is fingerprinted when it is tracked, and a copy is what holds
the same data: an array of the same dtype and bytes, or a list or ``bytes`` of the
same values (``.tolist()``, ``.tobytes()``), made before or after tracking, by anyone.

The search starts from every object the garbage collector tracks and descends into
the containers it does not (a tuple or dict of arrays only), so names, containers,
closures, generator frames, caches, class and module attributes are all covered. That
search is skipped when the tracer shows that nothing large enough to hold the data exists
(:func:`_no_room_for_an_array_or_bytes`).
"""

from __future__ import annotations

import gc
import hashlib
import sys
import tracemalloc
from dataclasses import dataclass
from operator import itemgetter
from types import FrameType
from typing import Any

import numpy as np

from autograder.checks import collector
from autograder.checks.memory import _raw_traces

_SAMPLES = 64  # values a list must match (a list is compared by samples, not digested)
_MIN_BYTES = 64 * 1024  # below this a "copy" is not worth a student's points
_CONTAINERS = frozenset({tuple, list, dict, set, frozenset})
_BYTES = frozenset({bytes, bytearray})
_MAX_DEPTH = 8  # untracked containers inside untracked containers


@dataclass(frozen=True)
class Fingerprint:
    """What an array held: enough to recognise its data again, in any container."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    digest: bytes
    positions: tuple[int, ...]  # flat indices of the sampled values
    values: tuple[Any, ...]  # the values there, as Python numbers

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1


def _digest(flat: np.ndarray) -> bytes:
    # An ndarray is a buffer; NumPy's stubs do not declare __buffer__ for every array type.
    contiguous: Any = np.ascontiguousarray(flat)
    return hashlib.blake2b(memoryview(contiguous).cast("B")).digest()


def fingerprint(array: np.ndarray) -> Fingerprint:
    flat = array.reshape(-1)
    positions = tuple(sorted({int(i) for i in np.linspace(0, max(flat.size - 1, 0), _SAMPLES)}))
    values = tuple(flat[list(positions)].tolist()) if flat.size else ()
    return Fingerprint(array.dtype.str, array.shape, array.nbytes, _digest(flat), positions, values)


_SCALARS = (float, int, complex, str, bool, np.generic)


def _long_list_of_scalars(value: Any) -> bool:
    """A long list of numbers (``.tolist()``) holds no array: not worth opening."""
    return (
        type(value) is list
        and len(value) >= 256
        and all(isinstance(item, _SCALARS) for item in value[:: len(value) // 16])
    )


def _subclasses(kind: type) -> set[type]:
    found: set[type] = {kind}
    subclasses: list[type] = kind.__subclasses__()
    for sub in subclasses:
        found |= _subclasses(sub)
    return found


def _lists(print_: Fingerprint) -> list[Any]:
    """Lists of the data's length or number of rows (``.tolist()``, ``list(array)``): every
    list is an object the collector tracks, so one pass over them finds all."""
    lengths = {print_.size, print_.rows}
    return [o for o in collector.lists() if len(o) in lengths]


def _arrays_and_bytes(print_: Fingerprint) -> list[Any]:
    """Buffer owners and ``bytes`` of the data's size. The collector tracks neither, so they
    are found among the referents of the ~60,000 objects it does track (~300,000 in a
    kernel), each pass one comprehension."""
    collector.see_every_object()  # the notebook's namespace is among the frozen ones
    tracked = gc.get_objects()
    frontier = gc.get_referents(*[o for o in tracked if not _long_list_of_scalars(o)])
    del tracked
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:  # running functions' locals are not objects the collector tracks
        frontier += frame.f_locals.values()
        frame = frame.f_back
    found: list[Any] = []
    arrays: dict[int, np.ndarray] = {}
    array_types = _subclasses(np.ndarray)  # a set lookup is 8x faster than isinstance here
    for _depth in range(_MAX_DEPTH):
        for value in [v for v in frontier if type(v) in array_types]:
            while isinstance(value.base, np.ndarray):
                value = value.base
            if value.nbytes == print_.nbytes:
                arrays[id(value)] = value
        found += [v for v in frontier if type(v) in _BYTES and len(v) == print_.nbytes]
        # A container the collector does not track holds only untracked things (arrays,
        # bytes): its contents are not among the referents yet.
        opened = [v for v in frontier if type(v) in _CONTAINERS and not gc.is_tracked(v)]
        if not opened:
            break
        frontier = gc.get_referents(*opened)
    return found + list(arrays.values())


def _no_room_for_an_array_or_bytes(print_: Fingerprint) -> bool:
    """True when the tracer shows that no array or ``bytes`` can hold the data now.

    The memory under such a copy is one allocation of at least the data's size: a NumPy
    buffer, or the ``bytes``, ``bytearray``, ctypes or ``array.array`` buffer an array was
    made over. If the tracer holds no allocation that large, there is no such copy, provided
    it has seen every allocation since the array was tracked: it was not restarted (the
    fingerprint's tuple of values, made when the array was tracked, still has its trace; a
    restart erases every trace), and no memory it cannot see was mapped (``mmap``, which
    ``np.memmap`` and shared memory use, was never imported). The search it spares costs
    about 0.1 s in a kernel. (``get_object_traceback`` finds no trace for an instance of a
    plain class on Python 3.11, hence the tuple.)
    """
    if "mmap" in sys.modules or tracemalloc.get_object_traceback(print_.values) is None:
        return False
    return max(map(itemgetter(1), _raw_traces()), default=0) < print_.nbytes


def _same_array(value: np.ndarray, print_: Fingerprint) -> bool:
    """A candidate array (a buffer owner of the right size) with the same dtype and bytes."""
    return value.dtype.str == print_.dtype and _digest(value.reshape(-1)) == print_.digest


def _same_values(value: Any, print_: Fingerprint) -> bool:
    """A list (flat, or nested as ``.tolist()`` makes it) or bytes holding the data."""
    if isinstance(value, (bytes, bytearray)):  # candidates have the array's byte size
        return hashlib.blake2b(value).digest() == print_.digest
    if not isinstance(value, list) or not value:
        return False
    items: list[Any] | _Flat
    if len(value) == print_.size > 1:
        items = value
    elif len(value) == print_.rows and len(print_.shape) > 1 and isinstance(value[0], list):
        items = _Flat(value, print_.size // print_.rows)
    else:
        return False
    try:
        return all(items[i] == v for i, v in zip(print_.positions, print_.values, strict=True))
    except (IndexError, TypeError):
        return False


class _Flat:
    """Index a list of equal-length lists (a 2-D ``.tolist()``) as if it were flat."""

    def __init__(self, rows: list[Any], width: int):
        self.rows, self.width = rows, width

    def __getitem__(self, index: int) -> Any:
        row = self.rows[index // self.width]
        return row[index % self.width] if isinstance(row, list) else row


def find_copies(print_: Fingerprint) -> list[Any]:
    """Every live array, list or bytes object that holds the fingerprinted data."""
    if print_.nbytes < _MIN_BYTES:
        return []
    candidates = _lists(print_)
    if not _no_room_for_an_array_or_bytes(print_):
        candidates += _arrays_and_bytes(print_)
    found = []
    unique = {id(value): value for value in candidates}
    for value in unique.values():
        if isinstance(value, np.ndarray):
            if _same_array(value, print_):
                found.append(value)
        elif _same_values(value, print_):
            found.append(value)
    return found
