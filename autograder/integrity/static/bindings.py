"""Rules on bindings: names the tests rely on rebound, attributes and items of protected
objects assigned or deleted, and what function and class definitions bind."""

from __future__ import annotations

import ast

from autograder.integrity.kernel.describe import is_dunder
from autograder.integrity.rules import (
    DEFAULT_MODULE_NAMES,
    EXIT_EXCEPTIONS,
    FAKE_DUNDERS,
    FRAME_ATTRS,
    PROTECTED_BUILTINS,
    SYS_LAST,
    VALUE_TYPES,
)
from autograder.integrity.static.base import ScannerState
from autograder.integrity.static.syntax import (
    chain_root,
    const_str,
    function_locals,
    inert,
    is_get_ipython_call,
    namespace_lookup,
)


class BindingRules(ScannerState):
    def binds_global(self, name: str) -> bool:
        return self.depth == 0 or name in self.scopes[-1]

    def check_binding(self, node: ast.AST, name: str, value: ast.AST | None = None) -> None:
        if not self.binds_global(name):
            return
        canonical = DEFAULT_MODULE_NAMES.get(name)
        if canonical is not None:
            if value is not None and self.resolve(self.chain(value)) == canonical:
                return  # np = numpy: the same module
            self.flag("rebinds-protected-name", node, f"rebinds `{name}`, which the tests use")
        elif name in PROTECTED_BUILTINS and not inert(value):
            self.flag(
                "rebinds-protected-name", node, f"shadows the builtin `{name}` for every later cell"
            )

    def check_target(self, target: ast.AST, value: ast.AST | None, *, delete: bool = False) -> None:
        if isinstance(target, ast.Name):
            if not delete:
                self.check_binding(target, target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.check_target(element, None, delete=delete)
        elif isinstance(target, ast.Starred):
            self.check_target(target.value, None, delete=delete)
        elif isinstance(target, ast.Attribute):
            self.check_attribute_store(target, delete)
        elif isinstance(target, ast.Subscript):
            self.check_subscript_store(target, delete)

    def check_attribute_store(self, target: ast.Attribute, delete: bool) -> None:
        verb = "deletes" if delete else "assigns"
        root = chain_root(target)
        protected = self.protected_target(target.value)
        if protected is None and isinstance(root, ast.Name) and root is not target.value:
            protected = self.protected_target(root)  # sys.modules["numpy"].ones = ...
        if protected is not None:
            if protected == "sys" and target.attr in SYS_LAST and not delete:
                return  # what Jupyter does with an uncaught error, and what forget_last_error undoes
            self.flag("monkeypatch", target, f"{verb} `{protected}.{target.attr}`")
        elif is_get_ipython_call(root):
            self.flag("ipython-hook", target, f"{verb} an attribute of the IPython shell")
        elif (
            isinstance(root, ast.Call)
            and isinstance(root.func, ast.Name)
            and root.func.id == "type"
        ):
            self.flag(
                "monkeypatch", target, f"{verb} an attribute of a class reached through type()"
            )
        elif is_dunder(target.attr) or target.attr in FRAME_ATTRS:
            self.flag("obfuscation", target, f"{verb} the attribute `{target.attr}`")
        elif (lookup := namespace_lookup(target.value, self.namespace_aliases)) and lookup[
            1
        ] is None:
            self.flag("obfuscation", target, f"{verb} an attribute of a global chosen at run time")

    def check_subscript_store(self, target: ast.Subscript, delete: bool) -> None:
        container = target.value
        if self.is_namespace(container):
            if delete:
                return  # del globals()["x"] only unbinds a name
            key = const_str(target.slice)
            if key is None:
                self.flag(
                    "rebinds-protected-name",
                    target,
                    "writes the notebook's namespace under a computed name",
                )
            else:
                self.check_binding(target, key)
            return
        protected = self.protected_target(container)
        if protected is not None:
            self.flag(
                "monkeypatch",
                target,
                f"{'deletes from' if delete else 'writes into'} `{protected}`",
            )
        elif is_get_ipython_call(chain_root(container)):
            self.flag("ipython-hook", target, "writes into the IPython shell's state")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.check_target(target, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_target(node.target, None)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None or not isinstance(node.target, ast.Name):
            self.check_target(node.target, node.value)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.check_target(target, None, delete=True)
        self.generic_visit(node)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.check_target(node.target, None)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self.check_target(item.optional_vars, None)
        self.generic_visit(node)

    visit_AsyncWith = visit_With

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.check_target(node.target, node.value)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.check_binding(node, node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.scopes[-1].update(node.names)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            self.check_binding(node, node.name)
            for decorator in node.decorator_list:
                self.visit(decorator)
            if node.returns is not None:
                self.visit(node.returns)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self.depth += 1
        self.scopes.append(set())
        self.local_names.append(function_locals(node))
        for statement in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(statement)
        self.local_names.pop()
        self.scopes.pop()
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.check_binding(node, node.name)
        for base in node.bases:
            parts = self.chain(base) or []
            target = self.resolve(parts) or ""
            if (parts and len(parts) == 1 and parts[0] in VALUE_TYPES) or target.startswith(
                "numpy."
            ):
                self.flag("fake-value", node, f"class {node.name} subclasses {'.'.join(parts)}")
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self.flag("fake-value", node, f"class {node.name} has a metaclass")
        for statement in node.body:
            names: list[str] = []
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [statement.name]
            elif isinstance(statement, ast.Assign):
                names = [t.id for t in statement.targets if isinstance(t, ast.Name)]
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                names = [statement.target.id]
            for name in names:
                if name in FAKE_DUNDERS:
                    self.flag("fake-value", statement, f"class {node.name} defines {name}")
        for item in [*node.bases, *node.keywords, *node.decorator_list]:
            self.visit(item)
        self.depth += 1  # a class body binds class attributes, not globals
        self.scopes.append(set())
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        self.depth -= 1

    def visit_Raise(self, node: ast.Raise) -> None:
        exception = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exception, ast.Name) and exception.id in EXIT_EXCEPTIONS:
            self.flag("exits-kernel", node, f"raises {exception.id}")
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.check_binding(node, node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.check_binding(node, node.name)

    # -- expressions ---------------------------------------------------------------------
