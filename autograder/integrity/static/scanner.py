"""The static read of one cell: :func:`scan_code`, and the :class:`Scanner` that does it."""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping

from autograder.integrity.evidence import Evidence
from autograder.integrity.static.bindings import BindingRules
from autograder.integrity.static.imports import ImportRules
from autograder.integrity.static.ipython import IPythonRules
from autograder.integrity.static.syntax import parse, transform
from autograder.integrity.static.uses import UseRules


class Scanner(ImportRules, BindingRules, UseRules, IPythonRules):
    """Every rule, over one cell's syntax tree."""

    def run(self, tree: ast.Module) -> list[Evidence]:
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
        self.bind_imports(tree)
        self.collect_aliases(tree)
        self.visit(tree)
        return self.evidence

    def scan_nested(self, source: str) -> None:
        """Code run by a magic (%time, %timeit, %%capture, {expansions}) runs in the notebook too."""
        if not source.strip():
            return
        inner = scan_code(
            source,
            self.cell,
            strict=self.strict,
            imports=self.imports,
            module_names=self.module_names,
            future_flags=self.future_flags,
        )
        for evidence in inner:
            if evidence not in self.evidence:
                self.evidence.append(evidence)


def scan_code(
    source: str,
    cell: str,
    *,
    strict: bool = True,
    imports: Mapping[str, str] | None = None,
    module_names: Collection[str] = (),
    future_flags: int = 0,
) -> list[Evidence]:
    """The static read of one student cell: what it does that could change the grading.

    ``source`` is the cell as written (IPython syntax: magics, ``!``, ``?``). ``imports``
    maps names that imports elsewhere in the notebook bind to what they refer to, and
    ``module_names`` says which of them are whole modules (see :func:`collect_imports`):
    anything imported is protected. ``strict`` (a notebook with graded cells) also forbids
    the grader's internals (``checks.track``, ``autograder.checks.memory``...), which the lesson
    uses openly. A cell that does not parse is not evidence: it will just fail.
    """
    try:
        python = transform(source)
    except Exception:  # IPython cannot transform it: the kernel will not run it either
        return []
    tree = parse(python, future_flags)
    if tree is None:
        return []
    return Scanner(python, cell, imports or {}, module_names, strict, future_flags).run(tree)
