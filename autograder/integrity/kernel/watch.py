"""What the probe watches, and the one walk over it.

The same functions run in the grading process (to compute the fingerprint) and in the
kernel (to compare the kernel with it): they describe the same objects the same way in
both, as long as both run the same installed files. The kernel imports this module at
the first probe, right after it starts (before any student code, and before tracemalloc
runs, so the import costs nothing later), and keeps the state it found there, once that
state matches the grading process's fingerprint, whose digest every probe carries.

:func:`walk` visits the watch list; :func:`snapshot` (descriptions, for the fingerprint
and the first probe) and :func:`watched` (identities, for every later probe) are built on it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from autograder.integrity.kernel.describe import describe, flatten, is_same

# The probe's own code, watched whole: patching any function of it is seen.
KERNEL_MODULES = tuple(
    f"autograder.integrity.kernel.{name}"
    for name in ("describe", "watch", "trust", "interpreter", "shell", "entry")
)

# Modules whose every attribute is watched, and single attributes ("Class.method") of others.
FULL_MODULES = (
    "autograder.checks",
    "autograder.checks.advice",
    "autograder.checks.copies",
    "autograder.checks.memory",
    "autograder.checks.messages",
    "autograder.checks.references",
    "autograder.checks.sizes",
    "tracemalloc",
    "_tracemalloc",
    "gc",
    "IPython.core.inputtransformer2",
    *KERNEL_MODULES,
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SHELL_METHODS = _names(
    "run_cell run_cell_async _run_cell run_code run_ast_nodes showtraceback _showtraceback "
    "showsyntaxerror transform_cell transform_ast should_run_async excepthook _get_exc_info "
    "run_line_magic run_cell_magic var_expand del_var set_custom_exc user_expressions "
    "get_ipython _tee init_io"
)
_PARTIAL: dict[str, tuple[str, ...]] = {
    "numpy": _names(
        "ones zeros empty full array asarray ascontiguousarray copy concatenate shares_memory "
        "may_share_memory allclose array_equal isclose dot ndarray arange linspace subtract "
        "divide multiply add sqrt float64 uint8 mean std sum min max frombuffer ones_like "
        "zeros_like empty_like dtype generic floating integer random lib"
    ),
    "numpy.random": _names("default_rng Generator"),
    "numpy.lib": _names("tracemalloc_domain"),
    "builtins": _names(
        "len sum isinstance issubclass type id getattr hasattr setattr delattr print float "
        "int str bool range globals locals vars AssertionError Exception BaseException object "
        "super exec eval compile __import__ repr dict list tuple set frozenset min max abs "
        "round any all callable iter next sorted enumerate zip map filter hash format "
        "memoryview bytes bytearray"
    ),
    "weakref": _names("ref proxy finalize WeakMethod"),
    "_weakref": _names("ref proxy getweakrefcount"),
    "psutil": _names("Process.memory_info Process.__init__ Process._init Process.oneshot"),
    "sys": _names(
        "gettrace getprofile settrace setprofile _current_frames _getframe getsizeof exc_info "
        "audit addaudithook"
    ),
    "threading": _names(
        "gettrace getprofile settrace setprofile get_ident enumerate Thread Thread.run "
        "Thread.start Timer"
    ),
    "hashlib": _names("sha1"),
    "json": _names("dumps loads"),
    "ipykernel.zmqshell": (
        "ZMQInteractiveShell",
        *(f"ZMQInteractiveShell.{name}" for name in _SHELL_METHODS),
        "ZMQDisplayPublisher.publish",
    ),
    "ipykernel.ipkernel": tuple(
        f"IPythonKernel.{name}"
        for name in _names(
            "do_execute execute_request dispatch_shell _publish_execute_input send_response "
            "_publish_status"
        )
    ),
    "ipykernel.displayhook": tuple(
        f"ZMQShellDisplayHook.{name}"
        for name in _names(
            "__call__ start_displayhook write_output_prompt compute_format_data "
            "write_format_data update_user_ns fill_exec_result log_output finish_displayhook "
            "check_for_underscore quiet"
        )
    ),
    "ipykernel.iostream": _names(
        "OutStream.write OutStream.flush OutStream._flush OutStream.writelines "
        "OutStream._schedule_flush IOPubThread.send_multipart IOPubThread.schedule "
        "BackgroundSocket.send_multipart BackgroundSocket.send"
    ),
    "ipykernel.compiler": tuple(
        f"XCachingCompiler.{name}"
        for name in _names("__call__ ast_parse cache get_code_name format_code_name compiler_flags")
    ),
    "IPython.core.events": _names("EventManager.trigger EventManager.register"),
    "IPython.core.prefilter": _names(
        "PrefilterManager.prefilter_lines PrefilterManager.prefilter_line"
    ),
    "jupyter_client.session": _names("Session.send Session.serialize Session.sign Session.msg"),
    "contextlib": _names(
        "contextmanager _GeneratorContextManager.__enter__ _GeneratorContextManager.__exit__ "
        "_GeneratorContextManager.__init__"
    ),
}
# module -> ((path, path split at its dots), ...): a tuple, so the watch list cannot be edited
PARTIAL = tuple(
    (module, tuple((path, tuple(path.split("."))) for path in paths))
    for module, paths in _PARTIAL.items()
)
del _PARTIAL
WATCHED_MODULES = (*FULL_MODULES, *(module for module, _ in PARTIAL))

MISSING = object()  # the attribute is gone
NOT_LOADED = object()  # its module (or a lazy submodule on the way) is not imported here


def lookup(module_name: str, parts: tuple[str, ...]) -> Any:
    """The object at ``module_name:parts``, NOT_LOADED or MISSING."""
    value = sys.modules.get(module_name)
    if value is None:
        return NOT_LOADED
    for part in parts:
        if type(value) is types.ModuleType:
            namespace = vars(value)
            if part not in namespace:
                submodule = f"{value.__name__}.{part}"
                return NOT_LOADED if submodule not in sys.modules else MISSING
            value = namespace[part]
        else:
            try:
                value = getattr(value, part)
            except Exception:
                return MISSING
    return value


def walk(
    on_module: Callable[[str, dict[str, Any]], None], on_value: Callable[[str, str, Any], None]
) -> None:
    """Visit the watch list: ``on_module(name, namespace)`` for each loaded module watched
    whole, then ``on_value(module, path, value)`` for each of its names (dunders aside) and
    each single attribute (the value may be NOT_LOADED or MISSING).

    It runs before every test cell with tracemalloc on, where every allocation costs a
    traceback: it builds no key and copies no namespace.
    """
    modules = sys.modules
    for module_name in FULL_MODULES:
        module = modules.get(module_name)
        if module is None:
            continue
        namespace = vars(module)
        on_module(module_name, namespace)
        for key, value in namespace.items():
            if not (key[:2] == "__" and key[-2:] == "__" and len(key) > 4):
                on_value(module_name, key, value)
    for module_name, paths in PARTIAL:
        for path, parts in paths:
            on_value(module_name, path, lookup(module_name, parts))


def snapshot() -> dict[str, str]:
    """{"module:path": description} of every watched object this process has loaded."""
    found: dict[str, str] = {}
    builtins = sys.modules["builtins"]

    def module(module_name: str, namespace: dict[str, Any]) -> None:
        names = ",".join(sorted(namespace)).encode()
        found[f"{module_name}:*names"] = hashlib.sha1(names).hexdigest()[:16]
        found[f"{module_name}:*builtins"] = (
            "builtins"
            if namespace.get("__builtins__") in (vars(builtins), builtins)
            else repr(type(namespace.get("__builtins__")))
        )

    def value(module_name: str, path: str, item: Any) -> None:
        if item is not NOT_LOADED:
            found[f"{module_name}:{path}"] = "missing" if item is MISSING else describe(item)

    walk(module, value)
    return found


def digest(found: Mapping[str, str]) -> str:
    return hashlib.sha1(json.dumps(found, sort_keys=True).encode()).hexdigest()


Watched = tuple[list[str], list[int], list[Any]]


def watched(keys: bool = True) -> Watched:
    """Every watched object, flattened: (keys, where each key starts in the list, the list).
    Without ``keys``, the list alone (the per-probe path: as few allocations as possible)."""
    names: list[str] = []
    starts: list[int] = []
    flat: list[Any] = []

    def module(module_name: str, namespace: dict[str, Any]) -> None:
        if keys:
            names.append(f"{module_name}:*names")
            starts.append(len(flat))
        flat.append(len(namespace))
        flat.extend(namespace)
        flat.append(namespace.get("__builtins__"))

    def value(module_name: str, path: str, item: Any) -> None:
        if keys:
            names.append(f"{module_name}:{path}")
            starts.append(len(flat))
        if item is NOT_LOADED or item is MISSING:
            flat.append(item)
        else:
            flatten(item, flat)

    walk(module, value)
    return names, starts, flat


def differences(baseline: Watched) -> list[str]:
    """The watched keys whose objects differ from the ``baseline`` (the first probe's)."""
    keys, starts, before = baseline
    now = watched(keys=False)[2]
    if len(now) == len(before) and all(map(is_same, now, before)):
        return []
    keys_now, starts_now, now = watched()
    changed = []
    ends = [*starts[1:], len(before)]
    index_now = {key: i for i, key in enumerate(keys_now)}
    ends_now = [*starts_now[1:], len(now)]
    for i, key in enumerate(keys):
        j = index_now.get(key)
        if j is None:
            changed.append(key)
            continue
        old, new = before[starts[i] : ends[i]], now[starts_now[j] : ends_now[j]]
        if len(old) != len(new) or not all(map(is_same, old, new)):
            changed.append(key)
    return changed


def describe_key(key: str) -> str:
    """The current description of a watched key ("module:path"), for a report."""
    module_name, _, path = key.partition(":")
    if path.startswith("*"):
        return "its names" if path == "*names" else "its builtins"
    value = lookup(module_name, tuple(path.split(".")))
    return "missing" if value in (MISSING, NOT_LOADED) else describe(value)
