"""Find what still holds a NumPy buffer, and say how to let it go.

ndarrays are not tracked by the cyclic garbage collector, so
``gc.get_referrers`` cannot be asked who holds one. Instead we walk the places
a notebook keeps things, from the user's namespace down, and report every path
that ends at the buffer's owner or at a view of it:

* a variable, or a view (an array whose ``.base`` chain reaches the owner);
* a list, tuple, dict or set, an object's attribute, a function's closure or
  default arguments;
* Jupyter's output cache (``Out``, ``_``, ``__``, ``___``, ``_7``, the last
  result);
* the last exception's traceback, whose frames keep their local variables.

Each holder comes with its fix (:mod:`.advice`): code that runs as written in the notebook.
"""

from __future__ import annotations

import functools
import gc
import re
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from autograder.checks import collector
from autograder.checks.advice import (
    CACHE,
    CLASS_ATTRIBUTE,
    CLOSURE,
    FUNCTION_ATTRIBUTE,
    GENERATOR,
    Holder,
    Path,
    forget_last_error_fix,
    module_attribute_fix,
    quoted,
    removal,
    special,
)

MAX_DEPTH = 4
_MAX_ITEMS = 10_000  # per container: a huge list is searched in its first items only
_OUTPUT_CACHE_NAME = re.compile(r"^(_+|_\d+|_oh|Out)$")
_SKIP_NAMES = frozenset({"In", "_ih", "_dh", "exit", "quit", "get_ipython", "__builtins__"})


def buffer_owner(array: np.ndarray) -> np.ndarray:
    """The array that owns the memory ``array`` looks at (follows ``.base``)."""
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    return owner


def _reaches(value: Any, owner: Any) -> str | None:
    """'variable' if value is the owner (an array, or any object: a copy of its data), 'view'
    if its base chain reaches it."""
    if value is owner:
        return "variable"
    if isinstance(value, np.ndarray):
        base = value.base
        while isinstance(base, np.ndarray):
            if base is owner:
                return "view"
            base = base.base
    return None


def _function_children(value: types.FunctionType, where: str) -> Iterator[tuple[str, Any, str]]:
    for name, cell in zip(value.__code__.co_freevars, value.__closure__ or (), strict=False):
        try:
            yield f"{where} (closure variable {name!r})", cell.cell_contents, CLOSURE
        except ValueError:  # an empty cell
            continue
    for index, default in enumerate(value.__defaults__ or ()):
        yield f"{where} (default argument {index})", default, CLOSURE
    for name, default in (value.__kwdefaults__ or {}).items():
        yield f"{where} (default argument {name!r})", default, CLOSURE
    for name, item in list(vars(value).items()):
        if name != "__wrapped__":
            yield f"{where}.{name}", item, FUNCTION_ATTRIBUTE


def children(value: Any, where: str) -> Iterator[tuple[str, Any, str]]:
    """The things a value holds, each with the path a student would write and the kind of
    holder it is in ("" for a plain container or attribute)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            for index, item in enumerate(value.flat[:_MAX_ITEMS]):
                yield f"{where}.flat[{index}]", item, ""
        return
    if isinstance(value, (str, bytes, int, float, complex, bool, type(None), types.ModuleType)):
        return
    if isinstance(value, type):
        if value.__module__ == "__main__":  # a class the notebook defined: its attributes
            for name, item in list(vars(value).items()):
                if not name.startswith("__"):
                    yield f"{where}.{name}", item, CLASS_ATTRIBUTE
        return
    if isinstance(value, Mapping):
        for index, (key, item) in enumerate(list(value.items())):
            if index >= _MAX_ITEMS:
                return
            yield f"{where}[{key!r}]", item, ""
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value[:_MAX_ITEMS]):
            yield f"{where}[{index}]", item, ""
        return
    if isinstance(value, (set, frozenset)):
        for item in list(value)[:_MAX_ITEMS]:
            yield f"an item of {where}", item, ""
        return
    if isinstance(value, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)):
        frame = getattr(value, "gi_frame", None) or getattr(value, "cr_frame", None)
        frame = frame or getattr(value, "ag_frame", None)
        for name, item in list(frame.f_locals.items()) if frame is not None else ():
            yield f"{where} (its local variable {name!r})", item, GENERATOR
        return
    if isinstance(value, types.FunctionType):
        yield from _function_children(value, where)
        return
    if isinstance(value, memoryview):
        yield f"{where}.obj", value.obj, ""
        return
    if isinstance(value, types.MethodType):
        yield f"{where}.__self__", value.__self__, ""
        return
    if hasattr(value, "cache_clear") and hasattr(value, "__wrapped__"):  # functools caches
        wrapped = value.__wrapped__
        # The C cache refers to every cached key and result directly (and to its dict).
        for item in gc.get_referents(value):
            if item is not wrapped and not isinstance(item, (dict, types.FunctionType)):
                yield f"{where} (its cache)", item, CACHE
        if isinstance(wrapped, types.FunctionType):
            yield from _function_children(wrapped, where)
        return
    if isinstance(value, functools.partial):
        for index, item in enumerate(value.args):
            yield f"{where} (partial argument {index})", item, CLOSURE
        for name, item in value.keywords.items():
            yield f"{where} (partial argument {name!r})", item, CLOSURE
        return
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        for name, item in list(attributes.items()):
            yield f"{where}.{name}", item, ""


def _walk(
    path: Path, owner: Any, seen: set[int], kind: str = "", kind_where: str = ""
) -> Iterator[tuple[str, Path, str, str]]:
    """Yield (relation, path, holder kind, where that holder is) for every path from the
    last value of ``path`` to the owner."""
    where, value = path[-1]
    relation = _reaches(value, owner)
    if relation:
        yield relation, path, kind, kind_where
        return
    if len(path) > MAX_DEPTH or id(value) in seen:
        return
    seen.add(id(value))
    for child_where, child, child_kind in children(value, where):
        yield from _walk(
            (*path, (child_where, child)),
            owner,
            seen,
            kind or child_kind,
            kind_where if kind else (where if child_kind else ""),
        )


def describe_path(relation: str, path: Path, label: str, kind: str, kind_where: str) -> Holder:
    """The holder at the end of ``path``, with the fix for it."""
    where = path[-1][0]
    if kind in (GENERATOR, CACHE, CLOSURE, FUNCTION_ATTRIBUTE, CLASS_ATTRIBUTE):
        words, fixes = special(kind, where, kind_where)
    else:
        kind, words, fixes = removal(path, relation, label)
    return Holder(kind, f"`{where}`", words, fixes)


def current_shell() -> Any:
    """The running IPython shell, or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        return None
    return get_ipython()


def notebook_namespace(shell: Any = None) -> dict[str, Any]:
    """The notebook's variables: IPython's ``user_ns``, or ``__main__``'s outside a kernel."""
    shell = shell if shell is not None else current_shell()
    if shell is not None:
        return shell.user_ns
    return vars(sys.modules["__main__"])


def _output_cache_holders(shell: Any, owner: Any, label: str) -> list[Holder]:
    """Jupyter's output cache: a cell whose last expression showed the array."""
    places: list[str] = []
    namespace = shell.user_ns
    for name, value in list(namespace.items()):
        if _OUTPUT_CACHE_NAME.match(name) and name not in ("Out", "_oh") and _reaches(value, owner):
            places.append(name)
    output_history = (
        getattr(shell.history_manager, "output_hist", {}) if shell.history_manager else {}
    )
    for number, value in list(output_history.items()):
        if _reaches(value, owner):
            places.append(f"Out[{number}]")
    hook = shell.displayhook
    for name in ("_", "__", "___"):
        if _reaches(getattr(hook, name, None), owner) and name not in places:
            places.append(f"displayhook.{name}")
    last = getattr(shell, "last_execution_result", None)
    if last is not None and _reaches(getattr(last, "result", None), owner):
        places.append("the last cell's result")
    if not places:
        return []
    if label.isidentifier() and _reaches(namespace.get(label), owner):
        fixes: tuple[str, ...] = (f"%xdel {label}",)
        how = (
            f"Use {quoted(fixes[0])} instead of `del {label}`: it removes the name and every "
            "cached copy."
        )
    else:
        cached = next((place for place in places if place.startswith("Out[")), "_")
        name = label if label.isidentifier() else "tmp"
        fixes = (f"{name} = {cached}\n%xdel {name}",)
        how = (
            "The name is already gone, so get the array back and delete it properly: "
            f"{quoted(fixes[0])}. Next time use `%xdel` instead of `del`."
        )
    fix = (
        "a cell whose last line showed the array stored it in the output cache, which `del` "
        f"does not clear. {how} End a line with `;` or use print() to show an array without "
        "caching it."
    )
    return [Holder("Jupyter's output cache", ", ".join(places), fix, fixes)]


_FRAMEWORK_MODULES = (
    "IPython.",
    "ipykernel.",
    "asyncio.",
    "tornado.",
    "traitlets.",
    "zmq.",
    "autograder.",
)


def _student_frame(frame: types.FrameType) -> bool:
    """A function frame of the student's own code: not a module-level (notebook) frame,
    whose variables are the notebook's and are reported as such, nor the kernel's."""
    module = str(frame.f_globals.get("__name__", ""))
    return frame.f_locals is not frame.f_globals and not module.startswith(_FRAMEWORK_MODULES)


def _traceback_holders(shell: Any, owner: Any) -> list[Holder]:
    """Frames of the last exception keep their local variables alive."""
    tracebacks = [getattr(sys, "last_traceback", None)]
    last_exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if last_exc is not None:
        tracebacks.append(last_exc.__traceback__)
    if shell is not None:
        tracebacks.append(getattr(getattr(shell, "InteractiveTB", None), "tb", None))
    found: list[str] = []
    seen: set[int] = set()
    for tb in tracebacks:
        while tb is not None:
            frame = tb.tb_frame
            if id(frame) not in seen and _student_frame(frame):
                seen.add(id(frame))
                function = frame.f_code.co_name
                for name, value in list(frame.f_locals.items()):
                    for _relation, path, _kind, _where in _walk(((name, value),), owner, set()):
                        found.append(f"`{path[-1][0]}` in {function}()")
            tb = tb.tb_next
    if not found:
        return []
    fixes = (forget_last_error_fix(notebook_namespace(shell)),)
    fix = (
        "the last uncaught error's traceback keeps the local variables of the failing function "
        f"alive, until another error replaces it. Run {quoted(fixes[0])} to drop it, and catch "
        "errors you expect with try/except."
    )
    return [Holder("an exception's traceback", ", ".join(sorted(set(found))), fix, fixes)]


def find_holders(
    owner: Any,
    label: str,
    namespace: dict[str, Any] | None = None,
    ignore: tuple[Any, ...] = (),
) -> list[Holder]:
    """Everything we can name that keeps ``owner`` (a buffer-owning array, or any object:
    a copy of an array's data) alive.

    ``namespace`` defaults to the notebook's variables (IPython's ``user_ns``).
    """
    shell = current_shell()
    holders: list[Holder] = []
    if shell is not None:
        holders += _output_cache_holders(shell, owner, label)
    # `%xdel name` removes every name bound to the array too: no separate advice for them.
    xdel = any("%xdel" in fix for holder in holders for fix in holder.fixes)
    seen: set[int] = set()
    for name, value in notebook_variables(namespace):
        if xdel and value is owner:
            continue
        for relation, path, kind, kind_where in _walk(((name, value),), owner, seen):
            holders.append(describe_path(relation, path, label, kind, kind_where))
    holders += _traceback_holders(shell, owner)
    return holders or _module_holders(owner) or _unnamed_holders(owner, ignore)


def notebook_variables(namespace: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """The notebook's own variables, without IPython's (In, Out, _5, exit...)."""
    return [
        (name, value)
        for name, value in list(
            (namespace if namespace is not None else notebook_namespace()).items()
        )
        if not (name.startswith("__") or name in _SKIP_NAMES or _OUTPUT_CACHE_NAME.match(name))
    ]


def _module_holders(owner: Any) -> list[Holder]:
    """An attribute set on an imported module (`np.saved = grid`): one level deep only."""
    found = []
    namespace = notebook_namespace()
    for module_name, module in list(sys.modules.items()):
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if _reaches(value, owner):
                fixes = (module_attribute_fix(namespace, module_name, name),)
                fix = f"a module keeps it for as long as the kernel runs: {quoted(fixes[0])}."
                found.append(Holder("module attribute", f"`{module_name}.{name}`", fix, fixes))
    return found


def _describe_referrer(referrer: Any) -> str | None:
    if isinstance(referrer, types.FrameType):
        if referrer.f_globals.get("__name__", "").startswith(_FRAMEWORK_MODULES):
            return None  # the kernel's or the checks' own frame, looking at the array now
        return (
            f"the local variables of a function that has not finished: {referrer.f_code.co_name}()"
        )
    if isinstance(referrer, types.CellType):
        return "a closure variable of a function no notebook variable refers to"
    kind = type(referrer).__name__
    return f"a {kind} that no notebook variable reaches (a library's or an object's internals)"


def _unnamed_holders(owner: Any, ignore: tuple[Any, ...] = ()) -> list[Holder]:
    """What the garbage collector says refers to the array, when no path from the
    notebook's names was found. Arrays are not tracked by the collector, so this sees
    only holders that are (dicts, lists, frames, closures...), and only one step back."""
    collector.see_every_object()  # a frozen object (a module's dict) may be the one
    ignored = {id(value) for value in ignore}
    places = sorted(
        {
            text
            for referrer in gc.get_referrers(owner)
            if id(referrer) not in ignored and (text := _describe_referrer(referrer))
        }
    )
    if not places:
        return []
    fix = (
        "find what you stored it in (a list or dict kept by another object, a thread, a "
        "callback) and remove it there; restarting the kernel frees everything."
    )
    return [Holder("unnamed holder", "; ".join(places), fix)]


_MAX_CYCLE = 1_000  # objects followed back from the array before giving up


def _ours(referrer: Any) -> bool:
    """A frame of the kernel or of the checks, looking at the object right now."""
    return isinstance(referrer, types.FrameType) and str(
        referrer.f_globals.get("__name__", "")
    ).startswith(_FRAMEWORK_MODULES)


def held_only_by_a_cycle(owner: Any) -> bool:
    """Whether only a reference cycle that nothing else reaches holds ``owner``: garbage
    the collector will free when it next runs. Found without running it (which would free
    them): the objects that refer to the array, and to those, back until the group is
    closed, must have no reference from outside the group, as the collector itself decides.
    """
    collector.see_every_object()  # the referrers of frozen objects are not listed otherwise
    group: dict[int, Any] = {}
    pending = [referrer for referrer in gc.get_referrers(owner) if not _ours(referrer)]
    while pending:
        item = pending.pop()
        if id(item) in group:
            continue
        if isinstance(item, (types.FrameType, types.ModuleType)) or len(group) >= _MAX_CYCLE:
            return False  # a running function, a module: reachable, not garbage
        group[id(item)] = item
        pending += [
            referrer
            for referrer in gc.get_referrers(item)
            if referrer is not group and referrer is not pending and not _ours(referrer)
        ]
    if not group:
        return False
    del pending, item
    inside: dict[int, int] = {}
    for referent in gc.get_referents(*group.values()):
        inside[id(referent)] = inside.get(id(referent), 0) + 1
    # Each item's count: the references from inside the group, plus three of this
    # function's own (the dict `group`, the loop's variable, getrefcount's argument).
    return all(sys.getrefcount(item) - 3 == inside.get(id(item), 0) for item in group.values())


def forget_last_error() -> None:
    """Drop the last exception and its traceback (and the locals it keeps alive)."""
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    shell = current_shell()
    if shell is not None and getattr(shell, "InteractiveTB", None) is not None:
        shell.InteractiveTB.tb = None
    # In a kernel the failed cell's frames are left in a reference cycle (IPython's run_code
    # frame holds the cell's result, which holds the exception): only the collector frees them.
    collector.collect()
