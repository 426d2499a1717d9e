"""What holds the most memory among the notebook's variables, whatever form it takes.

When an array is gone but the memory the notebook holds did not come back, its data is
kept in another form: an ``io.BytesIO``, text (``json.dumps``), ``pickle`` bytes, an
``array.array``, a ``bytearray`` inside an object, a dict of chunks. The tracer says how
much is held, not where; this walk finds where: every notebook variable is sized with what
it holds (through containers, attributes, closures, generators, caches, as
:mod:`.references` walks them), and the variables that hold much are named, down to the
one entry or attribute that holds almost all of it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autograder.checks.advice import Holder, Path, a_noun, special
from autograder.checks.memory import describe_bytes
from autograder.checks.references import (
    MAX_DEPTH,
    buffer_owner,
    children,
    describe_path,
    notebook_variables,
)

_MAX_VISITS = 200_000  # objects sized per search: a bounded cost, whatever the notebook keeps
_DOMINANT = 0.9  # a part holding this share of its container is named instead of it


@dataclass
class _Sized:
    path: Path
    size: int
    kind: str = ""
    kind_where: str = ""
    parts: list[_Sized] = field(default_factory=list)


def _own_size(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return 0  # its buffer is counted once, at its owner (see _sized)
    try:
        return sys.getsizeof(value)  # bytes, str, BytesIO, array.array: buffer included
    except Exception:  # an object whose __sizeof__ fails: count nothing rather than fail
        return 0


class _Walk:
    def __init__(self, min_part: int):
        self.seen: set[int] = set()
        self.visits = 0
        self.min_part = min_part

    def sized(self, path: Path, kind: str = "", kind_where: str = "") -> _Sized:
        where, value = path[-1]
        node = _Sized(path, 0, kind, kind_where)
        if isinstance(value, np.ndarray):  # a view is worth its whole buffer: it keeps it
            owner = buffer_owner(value)
            if id(owner) not in self.seen:
                self.seen.add(id(owner))
                node.size = owner.nbytes
        if id(value) in self.seen or self.visits >= _MAX_VISITS:
            return node
        self.seen.add(id(value))
        self.visits += 1
        node.size += _own_size(value)
        if len(path) > MAX_DEPTH:
            return node
        parts, seen_parts = 0, 0
        for child_where, child, child_kind in children(value, where):
            seen_parts += 1
            part = self.sized(
                (*path, (child_where, child)),
                kind or child_kind,
                kind_where if kind else (where if child_kind else ""),
            )
            parts += part.size
            if part.size >= self.min_part:
                node.parts.append(part)
        length = len(value) if isinstance(value, (list, tuple, dict)) else 0
        if length > seen_parts > 0:  # only the first items were sized: scale the rest
            parts += parts * (length - seen_parts) // seen_parts
        node.size += parts
        return node


def _holder(node: _Sized, label: str) -> Holder:
    """The variable, entry or attribute that holds the memory, and how to let it go."""
    while node.parts:
        biggest = max(node.parts, key=lambda part: part.size)
        if biggest.size < _DOMINANT * node.size:
            break
        node = biggest
    where, value = node.path[-1]
    what = f"`{where}` ({a_noun(type(value).__name__)} holding {describe_bytes(node.size)})"
    if node.kind:
        words, fixes = special(node.kind, where, node.kind_where)
        return Holder("", what, words, fixes)
    holder = describe_path("variable", node.path, label, "", "")
    return Holder("", what, holder.fix, holder.fixes)


def largest_holders(
    min_bytes: int, label: str, *, new_names: frozenset[str] = frozenset(), limit: int = 3
) -> list[Holder]:
    """The notebook variables that hold at least ``min_bytes`` each, largest first, those in
    ``new_names`` (bound since the array was tracked) before the others."""
    walk = _Walk(min_part=max(min_bytes // 4, 1))
    variables = notebook_variables()
    # Newest first: an object two names share is counted for the one bound last.
    sized = [walk.sized(((name, value),)) for name, value in reversed(variables)]
    big = [node for node in sized if node.size >= min_bytes]
    big.sort(key=lambda node: (node.path[0][0] not in new_names, -node.size))
    return [_holder(node, label) for node in big[:limit]]
