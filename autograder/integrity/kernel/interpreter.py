"""The probe's checks of the interpreter, beyond the watched objects: the notebook's names,
tracemalloc, trace hooks, code of the notebook's running in other threads or waiting on the
event loop, and import hooks. Each check reports through ``add(problem)``."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Collection
from typing import Any

from autograder.integrity.kernel.describe import describe, registered
from autograder.integrity.kernel.trust import trusted_callable, trusted_type, under
from autograder.integrity.rules import PROTECTED_BUILTINS

Add = Callable[[str], None]

# Where the kernel's own threads and callbacks come from.
KERNEL_PACKAGES = (
    "IPython.",
    "ipykernel.",
    "jupyter_client.",
    "zmq.",
    "tornado.",
    "asyncio.",
    "concurrent.",
    "threading",
    "matplotlib",
    "traitlets.",
    "comm.",
    "debugpy.",
    "queue",
    "selectors",
)


def check_notebook_names(ns: dict, add: Add) -> None:
    """The modules the tests use are what the notebook calls them, and no builtin is hidden."""
    modules = sys.modules
    builtins = modules["builtins"]
    interactiveshell = modules["IPython.core.interactiveshell"]
    shell = getattr(interactiveshell.InteractiveShell, "_instance", None)
    for name, module_name in (("checks", "autograder.checks"), ("np", "numpy")):
        if name in ns and ns[name] is not modules.get(module_name):
            add(f"`{name}` in the notebook is not the module {module_name}")
    for name in PROTECTED_BUILTINS:
        if name not in ns:
            continue
        value = ns[name]
        if (
            name == "get_ipython"
            and type(value) is types.MethodType
            and value.__self__ is shell
            and (value.__func__ is interactiveshell.InteractiveShell.get_ipython)
        ):
            continue  # IPython puts it there
        if callable(
            value
        ):  # a string named `str` breaks a test; a function named `len` can pass one
            add(f"the notebook defines `{name}`, hiding the builtin for every later cell")
    if ns.get("__builtins__") is not builtins and ns.get("__builtins__") is not vars(builtins):
        add("the notebook's __builtins__ was replaced")


def check_tracemalloc(ns: dict, add: Add) -> None:
    """On once the checks are loaded, and never restarted since a track()."""
    checks = sys.modules.get("autograder.checks")
    tracemalloc = sys.modules.get("tracemalloc")
    tracked = vars(checks).get("_tracked") if checks is not None else None
    if tracemalloc is None or (ns.get("checks") is None and not tracked):
        return  # the set-up cell has not run
    if not tracemalloc.is_tracing():
        add("tracemalloc is not tracing: NumPy's memory is not being counted")
    elif type(tracked) is not dict:
        add("checks._tracked was replaced")
    else:
        label = restarted_since_tracked(checks, tracemalloc)
        if label is not None:
            add(
                f"tracemalloc was stopped and restarted after {label!r} was tracked (its traces were erased)"
            )


def restarted_since_tracked(checks: Any, tracemalloc: Any) -> str | None:
    """The label of an array tracked before tracemalloc was last restarted, if any.

    ``tracemalloc.stop()`` erases every trace, so the objects ``checks.track`` allocated
    while tracing (the integers of its record) lose their traceback. Objects the garbage
    collector tracks never report one on Python 3.11, and small integers are shared, so
    only large integers are asked.
    """
    for label, entry in list(vars(checks)["_tracked"].items()):
        numbers = [
            value
            for value in (
                getattr(entry, "nbytes", None),
                getattr(entry, "numpy_bytes_when_tracked", None),
            )
            if type(value) is int and not -5 <= value <= 256
        ]
        if numbers and all(tracemalloc.get_object_traceback(value) is None for value in numbers):
            return label
    return None


def check_trace_hooks(add: Add) -> None:
    """Trace, profile and monitoring hooks."""
    if sys.gettrace() is not None:
        add(f"a trace function is set: {describe(sys.gettrace())[:100]}")
    if sys.getprofile() is not None:
        add(f"a profile function is set: {describe(sys.getprofile())[:100]}")
    threading = sys.modules.get("threading")
    if threading is not None:
        for hook in ("_trace_hook", "_profile_hook"):
            if getattr(threading, hook, None) is not None:
                add(f"threading.{hook} is set: a trace or profile function for new threads")
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        for tool in range(6):
            if monitoring.get_tool(tool) is not None:
                add(f"sys.monitoring tool {tool} is in use")


def check_running_threads(ns: dict, add: Add, roots: tuple[str, ...]) -> None:
    """The notebook's code running in another thread."""
    threading = sys.modules.get("threading")
    if threading is None:
        return
    current = threading.get_ident()
    for ident, top in sys._current_frames().items():
        frame: types.FrameType | None = top
        while frame is not None and ident != current:
            globals_ = frame.f_globals
            name = globals_.get("__name__")
            if (
                globals_ is ns
                or name == "__main__"
                or (not registered(globals_, name) and not under(frame.f_code.co_filename, roots))
            ):
                add(f"a background thread runs code from the notebook ({frame.f_code.co_name})")
                break
            frame = frame.f_back
        frame = None


def check_new_threads(
    add: Add, roots: tuple[str, ...], threads_at_start: Collection[int | None] | None
) -> None:
    """Threads started since the kernel started, to run something of the notebook's: a
    Timer, a Thread subclass of its own, or a target that is not the kernel's code (a
    builtin such as setattr included: it can patch while the test cell runs)."""
    threading = sys.modules.get("threading")
    if threading is None or threads_at_start is None:
        return
    for thread in threading.enumerate():
        if thread.ident in threads_at_start:
            continue
        target = getattr(thread, "_target", None)
        untrusted = (
            isinstance(thread, threading.Timer)
            or not trusted_type(type(thread), roots)
            or (target is not None and not _kernel_code(target, roots))
        )
        if untrusted:
            add(f"a thread was started after the kernel: {thread.name} ({describe(target)[:80]})")


def _kernel_code(callback: Any, roots: tuple[str, ...]) -> bool:
    """Installed code of the kernel's own packages, and not a builtin (``setattr`` can patch)."""
    return type(
        getattr(callback, "__func__", callback)
    ) is not types.BuiltinFunctionType and trusted_callable(callback, KERNEL_PACKAGES, roots)


def check_event_loop(add: Add, roots: tuple[str, ...]) -> None:
    """Callbacks and tasks waiting on the kernel's event loop (call_later, create_task): they
    run between cells, after this probe."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    waiting = [*getattr(loop, "_scheduled", ()), *getattr(loop, "_ready", ())]
    for handle in waiting:
        if handle.cancelled():
            continue
        callback: Any = getattr(handle, "_callback", None)
        while type(callback).__name__ == "partial":
            callback = callback.func
        if not _kernel_code(callback, roots):
            add(f"a callback from the notebook waits on the event loop: {describe(callback)[:80]}")
    for task in asyncio.all_tasks(loop):
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and not under(code.co_filename, roots):
            add(f"a task from the notebook waits on the event loop: {code.co_name}")


def check_import_hooks(add: Add, roots: tuple[str, ...]) -> None:
    for finder in (*sys.meta_path, *sys.path_hooks):
        if type(finder) is types.FunctionType:
            trusted = trusted_callable(finder, ("",), roots)
        else:
            trusted = trusted_type(finder if isinstance(finder, type) else type(finder), roots)
        if not trusted:
            add(f"an import hook from the notebook: {describe(finder)[:100]}")
