"""Rules on names, calls and attributes read: the code a cell runs that the static read
cannot see, protected modules handed around, and what each module's attributes may be
used for (tracemalloc only read, no trace hooks, no shell, ...)."""

from __future__ import annotations

import ast

from autograder.integrity.kernel.describe import is_dunder
from autograder.integrity.rules import (
    CHECKS_PUBLIC,
    FRAME_ATTRS,
    GC_ALLOWED,
    GC_HOOKS,
    KNOWN_SUBMODULES,
    MODULE_SAFE_CONSUMERS,
    MUTATORS,
    OS_EXIT,
    OS_FILE_WRITES,
    OS_SHELL_PREFIXES,
    OS_WRITES,
    PICKLE_LOADERS,
    SAFE_DUNDER_ATTRS,
    SAFE_DUNDER_NAMES,
    SYS_ALLOWED,
    SYS_HOOKS,
    SYS_TRACE,
    THREADING_TRACE,
    TRACEMALLOC_READ,
    UNTRACED_NUMPY,
)
from autograder.integrity.static.base import ScannerState
from autograder.integrity.static.syntax import (
    chain_root,
    const_str,
    is_get_ipython_call,
    is_namespace_call,
)


class UseRules(ScannerState):
    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "clear_refs" in node.value:
            self.flag(
                "tracker-tampering",
                node,
                "names /proc/.../clear_refs, which resets the peak memory the grader reads",
            )

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name = node.id
        if is_dunder(name) and name not in SAFE_DUNDER_NAMES:
            self.flag("obfuscation", node, f"uses `{name}`")
        elif name in {"exec", "eval", "compile"}:
            self.flag("obfuscation", node, f"uses {name}(), whose code the static read cannot see")
        elif name == "breakpoint":
            self.flag("trace-function", node, "starts the debugger")
        elif name in {"exit", "quit"}:
            self.flag("exits-kernel", node, f"calls {name}()")
        elif name == "get_ipython":
            self.check_get_ipython(node)
        elif name in self.namespace_aliases:
            self.check_namespace_use(node)
        elif name in {"setattr", "delattr"}:
            self.check_setattr(node)
        elif self.is_module(name):
            self.check_module_value(node, name)

    def check_module_value(self, node: ast.AST, what: str) -> None:
        """A protected module used as a value: passed to a function, stored, returned.

        The function it is passed to can then patch it under another name.
        """
        parent = self.parent(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return
        if isinstance(parent, (ast.Assign, ast.NamedExpr)) and parent.value is node:
            return  # an alias: tracked by collect_aliases
        if isinstance(parent, ast.Compare):
            return
        if isinstance(parent, ast.Call) and node in parent.args:
            func = parent.func
            if isinstance(func, ast.Name) and func.id in MODULE_SAFE_CONSUMERS:
                return
            if (
                isinstance(func, ast.Name)
                and func.id in {"getattr", "setattr", "delattr", "vars"}
                and parent.args[0] is node
            ):
                return  # judged on their own
        self.flag("obfuscation", node, f"passes the module `{what}` around as a value")

    def check_setattr(self, node: ast.Name) -> None:
        call = self.parent(node)
        if not (isinstance(call, ast.Call) and call.func is node):
            self.flag("obfuscation", node, f"uses {node.id} as a value")
            return
        if len(call.args) < 2:
            return
        target, name = call.args[0], const_str(call.args[1])
        protected = self.protected_target(target)
        if protected is not None:
            self.flag("monkeypatch", call, f"{node.id} on `{protected}`")
        elif is_get_ipython_call(chain_root(target)):
            self.flag("ipython-hook", call, f"{node.id} on the IPython shell")
        elif self.is_namespace(target):
            self.flag("rebinds-protected-name", call, f"{node.id} on the notebook's namespace")
        elif name is None:
            self.flag("obfuscation", call, f"{node.id} with a computed attribute name")
        elif is_dunder(name) or name in FRAME_ATTRS:
            self.flag("obfuscation", call, f"{node.id} of `{name}`")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id == "getattr" and len(node.args) >= 2:
                name = const_str(node.args[1])
                if name is None:
                    self.flag("obfuscation", node, "getattr with a computed attribute name")
                else:
                    if (is_dunder(name) and name not in SAFE_DUNDER_ATTRS) or name in FRAME_ATTRS:
                        self.flag("obfuscation", node, f"getattr of `{name}`")
                    parent = self.parent(node)
                    if not (isinstance(parent, ast.Attribute) and parent.value is node):
                        self.check_attribute_use(node, self.chain(node))
            elif func.id == "vars" and node.args:
                protected = self.protected_target(node.args[0])
                if protected is not None:
                    self.flag(
                        "obfuscation", node, f"reaches the namespace of `{protected}` with vars()"
                    )
            elif func.id == "type" and len(node.args) == 3:
                self.flag("obfuscation", node, "creates a class with type(name, bases, namespace)")
            elif func.id == "open":
                self.check_open(node)
        elif isinstance(func, ast.Attribute) and func.attr in MUTATORS:
            receiver = self.chain(func.value)
            target = self.protected_target(func.value)
            if (
                target is not None
                and receiver
                and len(receiver) > 1
                and not target.startswith("numpy")
            ):
                self.flag("monkeypatch", node, f"changes the contents of `{target}` ({func.attr})")
        for keyword in node.keywords:
            if keyword.arg == "mmap_mode" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is None
            ):
                self.flag(
                    "untraced-memory",
                    node,
                    "loads with mmap_mode: a file mapped into memory, which the tracer does not count",
                )
            if keyword.arg == "allow_pickle" and not (
                isinstance(keyword.value, ast.Constant) and not keyword.value.value
            ):
                self.flag("obfuscation", node, "loads pickled data, which can run any code")
        if is_namespace_call(node):
            self.check_namespace_use(node)
        self.generic_visit(node)

    def check_open(self, node: ast.Call) -> None:
        mode: ast.AST | None = node.args[1] if len(node.args) > 1 else None
        for keyword in node.keywords:
            if keyword.arg == "mode":
                mode = keyword.value
        if mode is None:
            return
        text = const_str(mode)
        if text is None or set(text) & set("wax+"):
            self.flag("files", node, "opens a file for writing")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            if (
                is_dunder(node.attr) and node.attr not in SAFE_DUNDER_ATTRS
            ) or node.attr in FRAME_ATTRS:
                self.flag("obfuscation", node, f"reaches `{node.attr}`")
            parent = self.parent(node)
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                parts = self.chain(node)
                self.check_attribute_use(node, parts)
                target = self.resolve(parts)
                if target in KNOWN_SUBMODULES:
                    self.check_module_value(node, ".".join(parts or []))
        self.generic_visit(node)

    def check_attribute_use(self, node: ast.AST, parts: list[str] | None) -> None:
        """Judge a use of ``a.b.c`` (the whole chain) by the rules of the module it starts in."""
        target = self.resolve(parts)
        if target is None:
            return
        pieces = target.split(".")
        top, rest = pieces[0], pieces[1:]
        attr = rest[0] if rest else None
        if attr is None:
            return
        if top == "tracemalloc" and attr not in TRACEMALLOC_READ:
            self.flag(
                "tracker-tampering",
                node,
                f"uses tracemalloc.{attr}: only reading the tracer is allowed",
            )
        elif top == "gc" and attr not in GC_ALLOWED:
            self.flag(
                "trace-function" if attr in GC_HOOKS else "tracker-tampering",
                node,
                f"uses gc.{attr}",
            )
        elif top == "sys" and attr not in SYS_ALLOWED:
            if attr in SYS_TRACE:
                self.flag("trace-function", node, f"uses sys.{attr}")
            elif attr == "exit":
                self.flag("exits-kernel", node, "calls sys.exit")
            elif attr in SYS_HOOKS:
                self.flag("ipython-hook", node, f"uses sys.{attr}")
            else:
                self.flag("obfuscation", node, f"reaches interpreter internals (sys.{attr})")
        elif top == "os":
            if attr in OS_EXIT:
                self.flag("exits-kernel", node, f"calls os.{attr}")
            elif attr.startswith(OS_SHELL_PREFIXES) or attr in OS_WRITES:
                self.flag("shell-or-network", node, f"calls os.{attr}")
            elif attr in OS_FILE_WRITES:
                self.flag("files", node, f"calls os.{attr}")
        elif top == "threading" and attr in THREADING_TRACE:
            self.flag("trace-function", node, f"uses threading.{attr}")
        elif top == "numpy" and pieces[-1] in UNTRACED_NUMPY:
            self.flag(
                "untraced-memory",
                node,
                f"uses {target}: a file mapped into memory, which the tracer does not count",
            )
        elif top in ("pickle", "_pickle") and attr in PICKLE_LOADERS:
            self.flag("obfuscation", node, f"uses {target}: unpickling runs any code it names")
        elif top == "IPython" and not target.startswith(
            ("IPython.display", "IPython.core.display")
        ):
            self.flag("ipython-hook", node, f"reaches IPython internals ({target})")
        elif top == "autograder" and self.strict:
            if attr == "checks" and (len(rest) < 2 or rest[1] in CHECKS_PUBLIC):
                return
            self.flag("tracker-tampering", node, f"uses the grader's internals ({target})")

    # -- IPython -------------------------------------------------------------------------
