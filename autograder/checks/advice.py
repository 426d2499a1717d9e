"""How to let go of what holds an array: words for the student, and the code to run.

Every fix a failure message proposes is code that runs, as written, in the notebook where
the student is: it names the holder by the path a student would type (`results['raw']`,
`model.weights`), removes an entry only from a container that can lose one (a tuple
cannot: the tuple itself goes), and calls functions by the names the notebook imported
(`forget_last_error()` after `from autograder.checks import forget_last_error`,
`checks.forget_last_error()` after `from autograder import checks`).
``tests/checks/test_advice.py`` runs each one in a kernel and proves the array is then freed.
"""

from __future__ import annotations

import ast
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Kinds of holder a path passes through (references._children tags them); the first decides.
GENERATOR, CACHE, CLOSURE, FUNCTION_ATTRIBUTE, CLASS_ATTRIBUTE = (
    "paused generator",
    "function cache",
    "closure",
    "function attribute",
    "class attribute",
)


@dataclass(frozen=True)
class Holder:
    """One thing that keeps the buffer alive, and how to let it go."""

    kind: str  # variable, view, container, attribute, closure, output cache, traceback, ...
    where: str  # how a student would write it: `cache['x']`, `Out[7]`, ...
    fix: str  # in words; each of ``fixes`` appears in it, in backticks
    fixes: tuple[str, ...] = ()  # code that frees it, each one on its own (lines: steps)

    def describe(self) -> str:
        return f"{self.kind} {self.where}: {self.fix}" if self.kind else f"{self.where}: {self.fix}"


def quoted(fix: str) -> str:
    """A fix as a message writes it: `line`, or `first line` then `second line`."""
    return " then ".join(f"`{line}`" for line in fix.splitlines())


def either(fixes: tuple[str, ...]) -> str:
    """`first` (or `second`)."""
    first, *others = fixes
    return quoted(first) + "".join(f" (or {quoted(other)})" for other in others)


def a_noun(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _module_name_in(namespace: Mapping[str, Any], module: str) -> str | None:
    """A notebook name bound to ``module``, if any."""
    target = sys.modules.get(module)
    return next(
        (
            name
            for name, value in list(namespace.items())
            if value is target and target and not name.startswith("_")
        ),
        None,
    )


def call_in_notebook(namespace: Mapping[str, Any], module: str, function: str) -> str:
    """Code that calls ``module.function()`` under the names the notebook has for it."""
    target = getattr(sys.modules.get(module), function, None)
    for name, value in list(namespace.items()):
        if target is not None and value is target and not name.startswith("_"):
            return f"{name}()"
    alias = _module_name_in(namespace, module)
    if alias is not None:
        return f"{alias}.{function}()"
    package, _, last = module.rpartition(".")
    if package:
        return f"from {package} import {last}\n{last}.{function}()"
    return f"import {module}\n{module}.{function}()"


def forget_last_error_fix(namespace: Mapping[str, Any]) -> str:
    return call_in_notebook(namespace, "autograder.checks", "forget_last_error")


def collect_fix(namespace: Mapping[str, Any]) -> str:
    return call_in_notebook(namespace, "gc", "collect")


def module_attribute_fix(namespace: Mapping[str, Any], module: str, name: str) -> str:
    alias = _module_name_in(namespace, module)
    return f"del {alias}.{name}" if alias else f"import {module}\ndel {module}.{name}"


# A path from a notebook name to the array: (where, value) of every object on the way, the
# notebook's variable first, the array (or its view) last.
Path = tuple[tuple[str, Any], ...]


def special(kind: str, where: str, owner_where: str) -> tuple[str, tuple[str, ...]]:
    """Words and fixes where a function, generator, cache or class holds it."""
    fixes: tuple[str, ...]
    if kind == GENERATOR:
        fixes = (f"{owner_where}.close()", f"del {owner_where}")
        return (
            "a paused generator keeps its local variables alive until it finishes. Run it to "
            f"the end, or {either(fixes)}.",
            fixes,
        )
    if kind == CACHE:
        fixes = (f"{owner_where}.cache_clear()",)
        return (
            f"a function cache keeps every result it returned. Call {quoted(fixes[0])}, or do "
            "not cache functions that return large arrays.",
            fixes,
        )
    if kind == CLOSURE:
        fixes = (f"del {owner_where}",)
        return (
            f"the function keeps it: delete that function ({quoted(fixes[0])}) or stop it from "
            "capturing the array.",
            fixes,
        )
    fixes = (f"del {where}", f"{where} = None")
    if kind == FUNCTION_ATTRIBUTE:
        return f"an attribute stored on a function keeps it: {either(fixes)}.", fixes
    return (
        f"a class attribute keeps it, for as long as the class exists: {either(fixes)}.",
        fixes,
    )


def _changeable(container: Any) -> bool:
    """Whether an entry can be removed from ``container`` by the path to it."""
    if isinstance(container, (list, dict)):
        return True
    if isinstance(container, (tuple, frozenset, set, Mapping, memoryview, types.MethodType)):
        return False
    return isinstance(getattr(container, "__dict__", None), dict)


def _written(where: str) -> bool:
    """Whether a path is code (a dict key whose repr is not, `d[<object at 0x...>]`, is not)."""
    try:
        ast.parse(where, mode="eval")
    except SyntaxError:
        return False
    return True


def removal(path: Path, relation: str, label: str) -> tuple[str, str, tuple[str, ...]]:
    """(kind, words, fixes) for a plain path: a variable, a view, an entry, an attribute."""
    fixes: tuple[str, ...]
    if len(path) > 1 and isinstance(path[-2][1], memoryview):
        view = path[-2][0]
        fixes = (f"{view}.release()",)
        return (
            "memoryview",
            f"`{view}` is a memoryview of it (access to its buffer from C), which keeps the "
            f"buffer until it is released: {quoted(fixes[0])}.",
            fixes,
        )
    # Walk up past containers that cannot lose an entry (a tuple, a frozenset...).
    steps = len(path)
    while steps > 1 and not (_changeable(path[steps - 2][1]) and _written(path[steps - 1][0])):
        steps -= 1
    where = path[steps - 1][0]
    what = "a view of it" if relation == "view" else "it"
    if steps < len(path):  # the holder to remove is an immutable container of it
        what = f"{a_noun(type(path[steps - 1][1]).__name__)} that holds {what}"
    if steps == 1 and relation == "view" and steps == len(path):
        fixes = (f"{where} = {where}.copy()", f"del {where}")
        return (
            "view",
            f"`{where}` is a view that shares the buffer of '{label}'. Keep an independent copy "
            f"instead ({quoted(fixes[0])}), or {quoted(fixes[1])} when you are done with it.",
            fixes,
        )
    if steps == 1:
        fixes = (f"del {where}", f"{where} = None")
        return "variable", f"the name `{where}` still refers to {what}: {either(fixes)}.", fixes
    container = path[steps - 2]
    if isinstance(container[1], (list, dict)):
        fixes = (f"del {where}", f"{container[0]}.clear()")
        return (
            "container",
            f"a container holds {what}: remove the entry ({quoted(fixes[0])}) or clear the "
            f"container ({quoted(fixes[1])}).",
            fixes,
        )
    fixes = (f"del {where}", f"{where} = None")
    return "attribute", f"the attribute `{where}` still refers to {what}: {either(fixes)}.", fixes
