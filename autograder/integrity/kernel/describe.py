"""How the probe stands for an object: a text (:func:`describe`, equal in every process that
runs the same installed files) and a list of identities (:func:`flatten`, cheap to rebuild
and compare in the kernel)."""

from __future__ import annotations

import hashlib
import sys
import types
from typing import Any

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement, not by C code
FUNCTION_KINDS = (types.FunctionType, types.MethodType, staticmethod, classmethod, property)
SIMPLE = (int, float, str, bool, bytes, complex, type(None))
_code_digests: dict[int, tuple[types.CodeType, str]] = {}


class _NoDispatcher:
    pass


try:
    from numpy import _ArrayFunctionDispatcher  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older NumPy
    _ArrayFunctionDispatcher = _NoDispatcher


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def is_same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and type(a) in SIMPLE and a == b)


# -- code ----------------------------------------------------------------------------------------


def _feed_const(value: Any, h: Any) -> None:
    kind = type(value)
    if kind is types.CodeType:
        _feed_code(value, h)
    elif kind is tuple or kind is list:
        h.update(b"(")
        for item in value:
            _feed_const(item, h)
        h.update(b")")
    elif kind is frozenset or kind is set:  # set order varies with the hash seed
        h.update(("{" + ",".join(sorted(repr(item) for item in value)) + "}").encode())
    else:
        h.update(repr(value).encode("utf-8", "backslashreplace"))
    h.update(b";")


def _feed_code(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    names = (
        code.co_name,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )
    h.update(repr(names).encode())
    for const in code.co_consts:
        _feed_const(const, h)


def code_digest(code: types.CodeType) -> str:
    """A digest of what a code object does (not where it was compiled). Cached: code is immutable."""
    cached = _code_digests.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    h = hashlib.sha1()
    _feed_code(code, h)
    digest = h.hexdigest()[:16]
    _code_digests[id(code)] = (code, digest)
    return digest


def registered(globals_dict: Any, module_name: Any) -> bool:
    """Whether a function's globals are the namespace of the module it says it comes from."""
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    return module is not None and getattr(module, "__dict__", None) is globals_dict


# -- describe --------------------------------------------------------------------------------------


def describe(value: Any, depth: int = 0) -> str:
    """A text that changes when ``value`` is replaced or its code changes, equal in every process."""
    kind = type(value)
    if value is None or kind in (bool, int, float, complex):
        return repr(value)
    if kind is str or kind is bytes:
        if len(value) <= 80:
            return repr(value)
        data = value if kind is bytes else value.encode("utf-8", "backslashreplace")
        return f"{kind.__name__}#{hashlib.sha1(data).hexdigest()[:12]}"
    if kind is types.FunctionType:
        return _describe_function(value, depth)
    if kind is types.BuiltinFunctionType:
        owner = value.__self__
        owner_name = (
            owner.__name__ if isinstance(owner, types.ModuleType) else type(owner).__qualname__
        )
        return f"builtin {getattr(value, '__module__', None)}.{value.__qualname__} of {owner_name}"
    if kind is types.MethodType:
        return (
            f"method of {type(value.__self__).__qualname__}: {describe(value.__func__, depth + 1)}"
        )
    if kind is types.ModuleType:
        registered_ = "registered" if sys.modules.get(value.__name__) is value else "unregistered"
        return f"module {value.__name__} {registered_}"
    if kind is staticmethod or kind is classmethod:
        return f"{kind.__name__}({describe(value.__func__, depth + 1)})"
    if kind is property:
        parts = (describe(f, depth + 1) for f in (value.fget, value.fset, value.fdel))
        return "property(" + ",".join(parts) + ")"
    if isinstance(value, type):
        return _describe_class(value, depth)
    if kind in (tuple, list, set, frozenset, dict):
        return _describe_container(value, depth)
    return _describe_object(value, depth)


def _describe_function(value: types.FunctionType, depth: int) -> str:
    module = value.__module__
    text = (
        f"function {module}.{value.__qualname__} {code_digest(value.__code__)}"
        f" globals={'module' if registered(value.__globals__, module) else 'other'}"
    )
    if depth >= 2:
        return text
    if value.__defaults__:
        text += " defaults=" + describe(value.__defaults__, depth + 1)
    if value.__kwdefaults__:
        text += " kwdefaults=" + ",".join(
            f"{key}={describe(item, depth + 1)}"
            for key, item in sorted(value.__kwdefaults__.items())
        )
    if value.__closure__:
        cells = []
        for cell in value.__closure__:
            try:
                cells.append(describe(cell.cell_contents, depth + 1))
            except ValueError:
                cells.append("empty")
        text += " closure=[" + ",".join(cells) + "]"
    wrapped = value.__dict__.get("__wrapped__")
    if wrapped is not None:
        text += " wraps=" + describe(wrapped, depth + 1)
    return text


def _describe_class(value: type, depth: int) -> str:
    name = f"{value.__module__}.{value.__qualname__}"
    if not value.__flags__ & HEAPTYPE:
        return f"type {name} static"
    if depth >= 2:
        return f"class {name}"
    members = [
        f"{key}={describe(member, depth + 1)}"
        for key, member in sorted(vars(value).items())
        if isinstance(member, FUNCTION_KINDS)
    ]
    bases = ",".join(f"{base.__module__}.{base.__qualname__}" for base in value.__bases__)
    return f"class {name}({bases}) metaclass={type(value).__qualname__} " + "; ".join(members)


def _describe_container(value: Any, depth: int) -> str:
    kind = type(value)
    if kind is dict:
        return "dict"
    if kind is set or kind is frozenset:
        items = sorted(describe(item, depth + 1) for item in list(value)[:50])
        return f"{kind.__name__}{{" + ", ".join(items) + "}"
    if depth >= 3:
        return f"{kind.__name__}[{len(value)}]"
    return f"{kind.__name__}[" + ", ".join(describe(item, depth + 1) for item in value[:20]) + "]"


def _describe_object(value: Any, depth: int) -> str:
    kind = type(value)
    text = f"object {kind.__module__}.{kind.__qualname__}"
    kind_name = kind.__name__
    if kind_name == "ufunc":
        text += f" {value.__name__}"
    elif kind_name == "_ArrayFunctionDispatcher":
        implementation = describe(getattr(value, "_implementation", None), depth + 1)
        text += f" {value.__qualname__} impl={implementation}"
    elif kind_name == "cython_function_or_method":
        text += f" {value.__module__}.{value.__qualname__}"
    elif kind_name == "DomainFilter":
        text += f" inclusive={value.inclusive} domain={value.domain}"
    elif kind_name == "Pattern":
        text += f" {value.pattern!r}"
    instance_dict = getattr(value, "__dict__", None)
    if type(instance_dict) is dict:
        replaced = sorted(
            key
            for key, item in instance_dict.items()
            if callable(item) and callable(getattr(kind, key, None))
        )
        if replaced:
            text += " overrides=" + ",".join(replaced)
    return text


# -- flatten -------------------------------------------------------------------------------------


def flatten(value: Any, out: list[Any], depth: int = 0) -> None:
    """Append the objects whose identity stands for ``value`` and its code to ``out``.

    A later probe flattens the watched objects again and compares the two lists object by
    object (``is``). Building and comparing them allocates next to nothing, which matters:
    with tracemalloc on, every allocation in the kernel costs a traceback.
    """
    append = out.append
    kind = type(value)
    append(value)
    if kind is types.FunctionType:
        append(value.__code__)
        append(value.__defaults__)
        append(value.__globals__)
        kwdefaults = value.__kwdefaults__
        if kwdefaults:
            for key, item in kwdefaults.items():
                append(key)
                append(item)
        closure = value.__closure__
        if closure and depth < 2:
            for cell in closure:
                try:
                    contents = cell.cell_contents
                except ValueError:
                    contents = None
                if isinstance(contents, type):
                    append(contents)
                else:
                    flatten(contents, out, depth + 1)
        wrapped = value.__dict__.get("__wrapped__")
        if wrapped is not None and depth < 2:
            flatten(wrapped, out, depth + 1)
    elif kind is types.MethodType:
        out[-1] = kind
        append(type(value.__self__))
        flatten(value.__func__, out, depth + 1)
    elif kind is staticmethod or kind is classmethod:
        flatten(value.__func__, out, depth + 1)
    elif kind is property:
        flatten(value.fget, out, depth + 1)
        flatten(value.fset, out, depth + 1)
        flatten(value.fdel, out, depth + 1)
    elif isinstance(value, type):
        if value.__flags__ & HEAPTYPE and depth < 2:
            append(value.__bases__)
            for key, member in vars(value).items():
                if isinstance(member, FUNCTION_KINDS):
                    append(key)
                    flatten(member, out, depth + 1)
    elif kind is tuple or kind is list:
        append(len(value))
        if depth < 3:
            for item in value[:20]:
                flatten(item, out, depth + 1)
    elif kind is _ArrayFunctionDispatcher:
        flatten(value._implementation, out, depth + 1)
    elif kind is not types.ModuleType and kind not in SIMPLE:
        instance_dict = getattr(value, "__dict__", None)
        if type(instance_dict) is dict:
            for key, item in instance_dict.items():
                if callable(item) and callable(getattr(kind, key, None)):
                    append(key)
