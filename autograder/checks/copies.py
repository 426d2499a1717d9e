"""Find copies of an array's data wherever the interpreter can reach them.

NumPy's byte count says *how much* memory is held, not *what* it holds: a library
that keeps arrays of its own (matplotlib keeps a copy of every image it shows) looks
like a copy, and a copy made before an array was tracked is invisible to it. So a
tracked array's content is fingerprinted when it is tracked, and a copy is what holds
the same data: an array of the same dtype and bytes, or a list or ``bytes`` of the
same values (``.tolist()``, ``.tobytes()``), made before or after tracking, by anyone.

The search starts from every object the garbage collector tracks and descends into
the containers it does not (a tuple or dict of arrays only), so names, containers,
closures, generator frames, caches, class and module attributes are all covered.
"""

from __future__ import annotations

import gc
import hashlib
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np

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


def _candidates(print_: Fingerprint) -> list[Any]:
    """Objects that could hold the data: arrays of its size, lists of its length, bytes of
    its size. A kernel refers to ~300,000 objects, so each pass is one comprehension."""
    lengths = {print_.size, print_.rows}
    tracked = gc.get_objects()
    found: list[Any] = [o for o in tracked if type(o) is list and len(o) in lengths]
    frontier = gc.get_referents(*[o for o in tracked if not _long_list_of_scalars(o)])
    del tracked
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:  # running functions' locals are not objects the collector tracks
        frontier += frame.f_locals.values()
        frame = frame.f_back
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
    found = []
    unique = {id(value): value for value in _candidates(print_)}
    for value in unique.values():
        if isinstance(value, np.ndarray):
            if _same_array(value, print_):
                found.append(value)
        elif _same_values(value, print_):
            found.append(value)
    return found
