"""Rules on imports: modules that are evidence by themselves, names an import rebinds, and
the aliases (``x = np``, ``g = globals()``) that make another name protected too."""

from __future__ import annotations

import ast
import functools
import importlib.util
import os

from autograder.integrity.kernel.trust import installed_roots, under
from autograder.integrity.rules import (
    DEFAULT_MODULE_NAMES,
    IMPORT_FLAGS,
    KNOWN_SUBMODULES,
    PICKLE_LOADERS,
    PROTECTED_BUILTINS,
    TYPES_ALLOWED,
)
from autograder.integrity.static.base import ScannerState
from autograder.integrity.static.syntax import import_bindings, is_namespace_call


@functools.cache
def installed(top: str) -> bool:
    """Whether the top-level module ``top`` comes with Python or the environment's packages
    (looked up in the grading process, without importing anything)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or ())
    roots = installed_roots()
    return bool(places) and all(
        under(os.path.realpath(place), roots) or under(place, roots) for place in places
    )


class ImportRules(ScannerState):
    def bind_imports(self, tree: ast.AST) -> None:
        """Every name the cell's imports bind is protected, wherever in the cell it is used."""
        for node, name, target, whole_module in import_bindings(tree):
            self.check_import_binding(node, name, target)
            self.targets[name] = target
            self.imports[name] = target
            if whole_module:
                self.module_names.add(name)

    def collect_aliases(self, tree: ast.AST) -> None:
        """``x = np`` or ``r = np.random`` make x and r protected too; ``g = globals()`` a namespace."""
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                name, value = node.targets[0].id, node.value
            elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                name, value = node.target.id, node.value
            else:
                continue
            if is_namespace_call(value):
                self.namespace_aliases.add(name)
                continue
            target = self.protected_target(value)
            if target is not None and name not in self.targets:
                self.targets[name] = target
                self.imports[name] = target
                parts = self.chain(value) or []
                if (len(parts) == 1 and self.is_module(parts[0])) or target in KNOWN_SUBMODULES:
                    self.module_names.add(name)

    def check_import_binding(self, node: ast.AST, name: str, target: str) -> None:
        canonical = DEFAULT_MODULE_NAMES.get(name)
        if canonical is not None and target != canonical:
            self.flag(
                "rebinds-protected-name", node, f"binds the protected name `{name}` to {target}"
            )
        elif name in PROTECTED_BUILTINS:
            self.flag("rebinds-protected-name", node, f"an import shadows the builtin `{name}`")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module_use(node, alias.name, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.flag("obfuscation", node, "a relative import")
            return
        if module == "__future__":
            if any(alias.name == "barry_as_FLUFL" for alias in node.names):
                self.flag("obfuscation", node, "changes how later cells parse (barry_as_FLUFL)")
            return
        for alias in node.names:
            if alias.name == "*":
                if module.split(".")[0] not in {"numpy", "math"}:
                    self.flag(
                        "rebinds-protected-name",
                        node,
                        f"`from {module} import *` can rebind any name",
                    )
                self.check_module_use(node, module, None)
            else:
                self.check_module_use(node, module, alias.name)

    def check_module_use(self, node: ast.AST, module: str, member: str | None) -> None:
        """Imports of modules that are evidence by themselves, and of forbidden members."""
        top = module.split(".")[0]
        what = module + (f".{member}" if member else "")
        if top in IMPORT_FLAGS and not (top == "types" and member in TYPES_ALLOWED):
            self.flag(IMPORT_FLAGS[top], node, f"imports {what}")
        elif top and not installed(top):
            self.flag(
                "obfuscation",
                node,
                f"imports `{top}`, which is not an installed module: code the static read "
                "cannot see (a file submitted or written next to the notebook?)",
            )
        elif top == "IPython" and not (
            what.startswith(("IPython.display", "IPython.core.display"))
        ):
            self.flag("ipython-hook", node, f"imports IPython internals ({what})")
        elif top in ("pickle", "_pickle") and member in PICKLE_LOADERS:
            self.flag("obfuscation", node, f"imports {what}: unpickling runs any code it names")
        else:
            self.check_attribute_use(node, what.split("."))

    # -- bindings ------------------------------------------------------------------------
