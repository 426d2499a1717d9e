"""The probe's checks of IPython and the kernel: the shell's parts are IPython's own classes
with their own methods, and nothing of the notebook's hooks into how a cell is read, run,
displayed or reported. Each check reports through ``add(problem)``."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import Any

from autograder.integrity.kernel.describe import describe, is_same
from autograder.integrity.kernel.trust import overrides, trusted_callable, trusted_type

Add = Callable[[str], None]


@functools.cache
def kernel_defaults() -> dict[str, Any]:
    """Computed once, at the first probe: IPython's default input transformers, and the code
    of the closure IPython uses to copy a cell's output into its history."""
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.core.interactiveshell import InteractiveShell

    default = TransformerManager()
    tee = vars(InteractiveShell)["_tee"]
    return {
        "transformers": {
            name: list(getattr(default, name))
            for name in ("cleanup_transforms", "line_transforms", "token_transformers")
        },
        "tee_codes": tuple(
            const
            for const in getattr(tee, "__wrapped__", tee).__code__.co_consts
            if type(const) is types.CodeType
        ),
    }


def _teed(stream: Any, item: Any) -> bool:
    """IPython's own capture of the cell's output (a ``write`` it puts on the stream)."""
    if type(item) is not types.FunctionType or item.__code__ not in kernel_defaults()["tee_codes"]:
        return False
    closure = item.__closure__ or ()
    names = item.__code__.co_freevars
    write = (
        closure[names.index("original_write")].cell_contents if "original_write" in names else None
    )
    return (
        type(write) is types.MethodType
        and write.__self__ is stream
        and write.__func__ is getattr(type(stream), "write", None)
    )


def check_shell(ns: dict, add: Add, roots: tuple[str, ...]) -> None:
    interactiveshell = sys.modules["IPython.core.interactiveshell"]
    shell = getattr(interactiveshell.InteractiveShell, "_instance", None)
    if shell is None:
        add("no IPython shell")
        return
    check_shell_parts(shell, add)
    check_shell_hooks(shell, ns, add, roots)


def check_shell_parts(shell: Any, add: Add) -> None:
    """The shell, the kernel, the display hook, ... are of IPython's classes, and no instance
    replaces a method of its class."""
    expected_types = (
        (shell, "ipykernel.zmqshell", "ZMQInteractiveShell"),
        (shell.kernel, "ipykernel.ipkernel", "IPythonKernel"),
        (shell.displayhook, "ipykernel.displayhook", "ZMQShellDisplayHook"),
        (shell.display_pub, "ipykernel.zmqshell", "ZMQDisplayPublisher"),
        (shell.compile, "ipykernel.compiler", "XCachingCompiler"),
        (shell.input_transformer_manager, "IPython.core.inputtransformer2", "TransformerManager"),
        (shell.events, "IPython.core.events", "EventManager"),
        (sys.stdout, "ipykernel.iostream", "OutStream"),
        (sys.stderr, "ipykernel.iostream", "OutStream"),
        (shell.kernel.session, "jupyter_client.session", "Session"),
        (shell.prefilter_manager, "IPython.core.prefilter", "PrefilterManager"),
    )
    for obj, module_name, class_name in expected_types:
        module = sys.modules.get(module_name)
        if module is None or type(obj) is not vars(module).get(class_name):
            add(
                f"{module_name}.{class_name} was replaced by {type(obj).__module__}.{type(obj).__qualname__}"
            )
            continue
        replaced = overrides(obj, {"write": _teed})
        if replaced:
            add(f"methods of the {class_name} were replaced on the instance: {', '.join(replaced)}")


def check_shell_hooks(shell: Any, ns: dict, add: Add, roots: tuple[str, ...]) -> None:
    """The namespace, display and exception hooks, input and AST transformers, prefilters
    and event callbacks are IPython's own."""
    if shell.user_ns is not ns:
        add("the shell's namespace is not the notebook's")
    if sys.displayhook is not shell.displayhook:
        add(f"sys.displayhook was replaced: {describe(sys.displayhook)[:80]}")
    if sys.excepthook != shell.excepthook:
        add(f"sys.excepthook was replaced: {describe(sys.excepthook)[:80]}")
    if shell.input_transformers_post:
        add(
            f"input transformers were added: {[describe(t)[:60] for t in shell.input_transformers_post]}"
        )
    manager = shell.input_transformer_manager
    for name, default in kernel_defaults()["transformers"].items():
        current = getattr(manager, name)
        if len(current) != len(default) or not all(map(is_same, current, default)):
            add(
                f"IPython's input transformers ({name}) were changed: {[describe(t)[:60] for t in current]}"
            )
    if shell.ast_transformers:
        add(f"AST transformers were added: {[describe(t)[:60] for t in shell.ast_transformers]}")
    if shell.custom_exceptions:
        add(f"a custom exception handler was set for {shell.custom_exceptions!r}")
    prefilter = shell.prefilter_manager
    for item in [*prefilter.transformers, *prefilter.checkers]:
        if not type(item).__module__.startswith("IPython.") or not trusted_type(type(item), roots):
            add(f"an IPython prefilter from the notebook: {describe(item)[:80]}")
    prefixes = ("IPython.", "ipykernel.", "matplotlib_inline.", "matplotlib.")
    for event, callbacks in list(shell.events.callbacks.items()):
        for callback in callbacks:
            if not trusted_callable(callback, prefixes, roots):
                add(f"an IPython {event!r} callback from the notebook: {describe(callback)[:80]}")
