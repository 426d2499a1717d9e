"""The scanner's state while it reads one cell, and what every rule asks of it.

:class:`ScannerState` knows what the names of the cell refer to (imports, aliases,
``globals()`` kept in a variable, the function being read) and records evidence. The rule
mixins (:mod:`.imports`, :mod:`.bindings`, :mod:`.uses`, :mod:`.ipython`) build on it, and
:class:`~.scanner.Scanner` combines them.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping

from autograder.integrity.evidence import Evidence
from autograder.integrity.rules import DEFAULT_MODULE_NAMES, DISPLAY_LIBRARIES, KNOWN_SUBMODULES
from autograder.integrity.static.syntax import attribute_chain, is_namespace_call, quoted_line


class ScannerState(ast.NodeVisitor):
    """Walks one cell's syntax tree and records what it does to protected things."""

    def __init__(
        self,
        source: str,
        cell: str,
        imports: Mapping[str, str],
        module_names: Collection[str],
        strict: bool,
        future_flags: int,
    ):
        self.lines = source.splitlines()
        self.cell = cell
        self.strict = strict
        self.future_flags = future_flags
        self.evidence: list[Evidence] = []
        self.imports = dict(imports)  # names bound by imports anywhere in the notebook
        self.targets: dict[str, str] = dict(DEFAULT_MODULE_NAMES)  # name -> dotted target
        self.targets.update(imports)
        self.module_names: set[str] = set(module_names)  # names bound to whole modules
        self.namespace_aliases: set[str] = set()
        self.parents: dict[int, ast.AST] = {}
        self.scopes: list[set[str]] = [set()]  # names declared global, per function scope
        self.depth = 0  # function and class bodies entered
        self.local_names: list[set[str]] = []  # per function: its own variables

    # -- recording -------------------------------------------------------------------------
    def flag(self, kind: str, node: ast.AST, what: str) -> None:
        line = quoted_line(self.lines, node)
        evidence = Evidence(kind, self.cell, f"{what}: `{line}`" if line else what)
        if evidence not in self.evidence:
            self.evidence.append(evidence)

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(id(node))

    def chain(self, node: ast.AST) -> list[str] | None:
        return attribute_chain(node, self.namespace_aliases)

    # -- what a name or chain refers to ------------------------------------------------------
    def resolve(self, parts: list[str] | None) -> str | None:
        """The dotted target of a chain whose root is an imported or protected name (and not
        a local variable of the function being read)."""
        if not parts or parts[0] not in self.targets:
            return None
        if self.local_names and parts[0] in self.local_names[-1]:
            return None
        return ".".join([self.targets[parts[0]], *parts[1:]])

    def protected_target(self, node: ast.AST) -> str | None:
        """The dotted path of the protected thing ``node`` refers to, if it refers to one:
        anything the notebook imports (but plotting and table display settings), the
        modules grading relies on, and their aliases."""
        target = self.resolve(self.chain(node))
        if target is None or target.split(".")[0] in DISPLAY_LIBRARIES:
            return None
        return target

    def is_module(self, name: str) -> bool:
        """Whether ``name`` is bound to a whole module (not to a function imported from one)."""
        if name not in self.targets or (self.local_names and name in self.local_names[-1]):
            return False
        target = self.targets[name]
        return name in self.module_names or "." not in target or target in KNOWN_SUBMODULES

    def is_namespace(self, node: ast.AST) -> bool:
        return is_namespace_call(node) or (
            isinstance(node, ast.Name) and node.id in self.namespace_aliases
        )

    # -- rules one mixin calls in another (each is defined by exactly one mixin) -------------
    def check_binding(self, node: ast.AST, name: str, value: ast.AST | None = None) -> None:
        raise NotImplementedError  # .bindings

    def check_attribute_use(self, node: ast.AST, parts: list[str] | None) -> None:
        raise NotImplementedError  # .uses

    def check_get_ipython(self, node: ast.Name) -> None:
        raise NotImplementedError  # .ipython

    def check_namespace_use(self, node: ast.AST) -> None:
        raise NotImplementedError  # .ipython

    def scan_nested(self, source: str) -> None:
        raise NotImplementedError  # .scanner: code a magic runs, read as a cell of its own
