"""Telling installed code (the standard library, site-packages, this package) from code the
notebook made: the probe trusts the first and reports the second."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Mapping
from typing import Any

from autograder.integrity.kernel.describe import registered


@functools.cache
def installed_roots() -> tuple[str, ...]:
    """Where installed code lives: the standard library, site-packages, this package."""
    import os
    import sysconfig

    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    package = os.path.dirname(os.path.abspath(__file__))  # autograder/integrity/kernel
    roots |= {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.dirname(package)),  # the autograder package, not the course
    }
    found = {os.path.join(root, "") for root in roots} | {
        os.path.join(os.path.realpath(root), "") for root in roots
    }
    return (*sorted(found), "<frozen ")


def under(path: Any, roots: tuple[str, ...]) -> bool:
    return isinstance(path, str) and path.startswith(roots)


def trusted_type(kind: type, roots: tuple[str, ...]) -> bool:
    """A class defined by installed code, not by the notebook."""
    module = sys.modules.get(getattr(kind, "__module__", None) or "")
    if module is None or module.__name__ == "__main__":
        return False
    path = getattr(module, "__file__", None)
    return path is None or under(path, roots)


def trusted_callable(item: Any, prefixes: tuple[str, ...], roots: tuple[str, ...]) -> bool:
    """Installed code from one of the ``prefixes`` packages, not the notebook's."""
    func = getattr(item, "__func__", item)
    if type(func) is types.FunctionType:
        module = func.__module__ or ""
        return (
            module.startswith(prefixes)
            and registered(func.__globals__, module)
            and under(func.__code__.co_filename, roots)
        )
    if type(func) is types.BuiltinFunctionType:
        return True  # C code: a notebook cannot make any
    return type(func).__module__.startswith(prefixes) and trusted_type(type(func), roots)


def overrides(obj: Any, allowed: Mapping[str, Any] | None = None) -> list[str]:
    """Methods of ``obj``'s class that ``obj`` replaces with something of its own."""
    found = []
    kind = type(obj)
    for key, item in list(vars(obj).items()):
        method = getattr(kind, key, None)
        if type(method) is not types.FunctionType:
            continue
        if type(item) is types.MethodType and item.__self__ is obj and item.__func__ is method:
            continue
        if allowed and key in allowed and allowed[key](obj, item):
            continue
        found.append(key)
    return found
