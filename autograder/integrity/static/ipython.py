"""Rules on the IPython shell and the notebook's namespace: ``get_ipython()`` only to run an
allowed magic (whose own code is read too), ``globals()`` read and popped, never written or
handed out."""

from __future__ import annotations

import ast
import re

from autograder.integrity.rules import (
    ALLOWED_MAGICS,
    NAMESPACE_READERS,
    NAMESPACE_SAFE_CONSUMERS,
    SHELL_MAGICS,
    TRACE_MAGICS,
)
from autograder.integrity.static.base import ScannerState
from autograder.integrity.static.syntax import const_str


def strip_timeit_options(text: str) -> str:
    return re.sub(r"^(\s*-(?:[nrp]\s*\S+|[tcqo])\b)*\s*", "", text)


class IPythonRules(ScannerState):
    def check_get_ipython(self, node: ast.Name) -> None:
        """Only ``get_ipython().run_line_magic/run_cell_magic`` of an allowed magic, as IPython writes it."""
        call = self.parent(node)
        method = (
            self.parent(call)
            if isinstance(call, ast.Call) and call.func is node and not call.args
            else None
        )
        invocation = self.parent(method) if isinstance(method, ast.Attribute) else None
        if not (
            isinstance(invocation, ast.Call)
            and isinstance(method, ast.Attribute)
            and invocation.func is method
        ):
            self.flag("ipython-hook", node, "uses the IPython shell object (get_ipython())")
            return
        args = invocation.args
        if method.attr in {"system", "getoutput"}:
            self.flag("shell-or-network", invocation, "runs a shell command (!)")
            return
        if (
            method.attr not in {"run_line_magic", "run_cell_magic"}
            or not args
            or invocation.keywords
        ):
            self.flag("ipython-hook", invocation, f"calls get_ipython().{method.attr}")
            return
        magic = const_str(args[0])
        strings = [const_str(arg) for arg in args[1:]]
        if magic is None or any(text is None for text in strings):
            self.flag("ipython-hook", invocation, "runs a magic with computed arguments")
            return
        if magic in SHELL_MAGICS:
            self.flag("shell-or-network", invocation, f"runs the %{magic} magic")
            return
        if magic in TRACE_MAGICS:
            self.flag("trace-function", invocation, f"runs the %{magic} magic")
            return
        if magic not in ALLOWED_MAGICS:
            self.flag("ipython-hook", invocation, f"runs the %{magic} magic")
            return
        line = strings[0] or ""
        if magic in {"time", "timeit"}:  # no variable expansion: the arguments are code
            for text in strings:
                self.scan_nested(
                    strip_timeit_options(text or "") if magic == "timeit" else text or ""
                )
            return
        # Other magics expand {expression} and $name in their line with the notebook's values.
        for expression in re.findall(r"\{([^{}]*)\}", line):
            self.scan_nested(expression)
        if magic == "capture" and len(strings) == 2:
            self.scan_nested(strings[1] or "")

    def check_namespace_use(self, node: ast.AST) -> None:
        """``globals()`` (or an alias of it) may be read and popped, not written or handed out."""
        parent = self.parent(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            return  # reads; writes are judged by check_subscript_store
        if isinstance(parent, ast.Compare):
            return
        if isinstance(parent, (ast.Assign, ast.NamedExpr)) and parent.value is node:
            return  # an alias: tracked
        if isinstance(parent, ast.Attribute) and parent.value is node:
            call = self.parent(parent)
            if parent.attr in NAMESPACE_READERS:
                return
            if parent.attr in {"update", "setdefault", "__setitem__"} and isinstance(
                call, ast.Call
            ):
                keys: list[str | None]
                if parent.attr == "update":
                    if call.args and not isinstance(call.args[0], ast.Dict):
                        self.flag(
                            "rebinds-protected-name",
                            call,
                            "updates the notebook's namespace from a computed mapping",
                        )
                        return
                    keys = [keyword.arg for keyword in call.keywords]
                    if call.args and isinstance(call.args[0], ast.Dict):
                        keys += [
                            const_str(key) if key is not None else None for key in call.args[0].keys
                        ]
                else:
                    keys = [const_str(arg) for arg in call.args[:1]]
                for key in keys:
                    if key is None:
                        self.flag(
                            "rebinds-protected-name",
                            call,
                            "writes the notebook's namespace under a computed name",
                        )
                    else:
                        self.check_binding(call, key)
                return
            self.flag(
                "rebinds-protected-name",
                parent,
                f"calls `{parent.attr}` on the notebook's namespace",
            )
            return
        if isinstance(parent, ast.Call) and node in parent.args:
            func = parent.func
            if isinstance(func, ast.Name) and func.id in NAMESPACE_SAFE_CONSUMERS:
                return
        if (
            isinstance(parent, (ast.comprehension, ast.For))
            and getattr(parent, "iter", None) is node
        ):
            return
        self.flag("obfuscation", node, "passes the notebook's namespace (globals()) around")
