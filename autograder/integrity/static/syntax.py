"""Reading a cell as the kernel would: IPython's rewrite, the parse, and small AST helpers."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Collection, Iterator


def transform(source: str) -> str:
    """The Python source IPython would run for ``source`` (magics, ``!``, ``?`` rewritten)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


BARRY_FLAG = 0x400000  # __future__.barry_as_FLUFL.compiler_flag


def parse(source: str, future_flags: int = 0) -> ast.Module | None:
    """The cell's syntax tree as the kernel would compile it; None when it does not parse.

    A ``from __future__ import barry_as_FLUFL`` in an earlier cell changes how IPython
    parses the later ones (``<>``): ``future_flags`` carries it, and a cell that only
    parses with it is parsed with it (a student cannot hide code behind a parse error).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like
        for flags in dict.fromkeys((future_flags, future_flags | BARRY_FLAG)):
            try:
                return compile(
                    source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | flags, dont_inherit=True
                )
            except (SyntaxError, ValueError):
                continue
    return None


def quoted_line(source_lines: list[str], node: ast.AST) -> str:
    number = getattr(node, "lineno", None)
    if number is None or not 0 < number <= len(source_lines):
        return ""
    text = source_lines[number - 1].strip()
    return text if len(text) <= 160 else text[:157] + "..."


def const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def attribute_chain(node: ast.AST, namespaces: Collection[str] = ()) -> list[str] | None:
    """``np.random.default_rng`` -> ['np', 'random', 'default_rng'].

    Also through a constant ``getattr``, a walrus, and a lookup of the notebook's namespace
    with a constant key (``globals()["np"].ones`` is ``np.ones``; ``namespaces`` names the
    variables known to hold ``globals()``).
    """
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and const_str(node.args[1]) is not None
        ):
            parts.append(const_str(node.args[1]))  # type: ignore[arg-type]
            node = node.args[0]
        elif isinstance(node, ast.NamedExpr):
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        else:
            lookup = namespace_lookup(node, namespaces)
            if lookup is None or lookup[1] is None:
                return None
            parts.append(lookup[1])
            return parts[::-1]


def namespace_lookup(
    node: ast.AST, namespaces: Collection[str] = ()
) -> tuple[ast.AST, str | None] | None:
    """For ``globals()["x"]`` or ``globals().get("x")``: (the lookup, "x" or None if computed)."""

    def is_namespace(value: ast.AST) -> bool:
        return is_namespace_call(value) or (isinstance(value, ast.Name) and value.id in namespaces)

    if isinstance(node, ast.Subscript) and is_namespace(node.value):
        return node, const_str(node.slice)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"get", "pop", "setdefault"}
        and is_namespace(node.func.value)
        and node.args
    ):
        return node, const_str(node.args[0])
    return None


def chain_root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def inert(value: ast.AST | None) -> bool:
    """A literal (``str = "abc"``): shadowing a builtin with it breaks a test, never passes one."""
    if isinstance(value, (ast.Constant, ast.JoinedStr)):
        return True
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return all(inert(item) for item in value.elts)
    if isinstance(value, ast.Dict):
        return all(inert(item) for item in [*value.keys, *value.values] if item is not None)
    if isinstance(value, ast.BinOp):
        return inert(value.left) and inert(value.right)
    if isinstance(value, ast.UnaryOp):
        return inert(value.operand)
    return False


def function_locals(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """The plain variables of a function: its parameters and what it assigns, not what it
    declares global nor what it imports (an imported name stays protected)."""
    arguments = node.args
    names = {
        argument.arg
        for argument in [
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            *([arguments.vararg] if arguments.vararg else []),
            *([arguments.kwarg] if arguments.kwarg else []),
        ]
    }
    declared: set[str] = set()
    body = node.body if isinstance(node.body, list) else [node.body]
    pending: list[ast.AST] = list(body)
    while pending:
        item = pending.pop()
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
            continue  # its own scope
        if isinstance(item, ast.Lambda):
            continue
        if isinstance(item, (ast.Global, ast.Nonlocal)):
            declared.update(item.names)
        elif isinstance(item, (ast.Import, ast.ImportFrom)):
            declared.update((alias.asname or alias.name).split(".")[0] for alias in item.names)
        elif isinstance(item, ast.Name) and isinstance(item.ctx, ast.Store):
            names.add(item.id)
        pending.extend(ast.iter_child_nodes(item))
    return names - declared


def is_get_ipython_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
    )


def is_namespace_call(node: ast.AST) -> bool:
    """``globals()``, ``locals()`` or ``vars()`` without an argument: the notebook's namespace."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"globals", "locals", "vars"}
        and not node.args
        and not node.keywords
    )


def import_bindings(tree: ast.AST | None) -> Iterator[tuple[ast.AST, str, str, bool]]:
    """What the imports of ``tree`` bind: (the import, the name, its dotted target, whether
    the name is a whole module). ``from m import *`` and relative imports bind nothing known."""
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                yield node, name, alias.name if alias.asname else name, True
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if alias.name != "*":
                    yield node, alias.asname or alias.name, f"{node.module}.{alias.name}", False
