"""Imports that cost a process seconds of start-up and serve nothing here.

jsonschema (imported by nbformat, so by every process that reads a notebook) imports
``rfc3987_syntax`` when it is installed, and that module builds a Lark grammar for the
``iri`` and ``iri-reference`` formats as it is imported: about a second of CPU in the
command line, in every grading worker and in a student's ``autograder check``. Formats are
only checked when a ``FormatChecker`` is given, and neither nbformat, nbgrader nor this
package gives one.

``import nbgrader`` (which ``import nbgrader.api`` runs first) loads its four Jupyter server
extensions (the formgrader, the assignment and course lists, validation: jupyter_server's
handlers, tornado, the exchange), about a second of CPU in every grading worker, the command
line and a student's ``autograder check``, none of which serves web pages. Jupyter finds the
extensions through ``nbgrader``'s entry points, in its own server process, which never calls
this.

:func:`skip_unused` is called before the first import of jsonschema and nbgrader
(``autograder.cli``, ``autograder.pipeline``); never in a student's kernel, which imports
what it likes.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

UNUSED = ("rfc3987_syntax",)


def skip_unused() -> None:
    """Make ``import`` of :data:`UNUSED` fail with ImportError (which jsonschema expects of
    an optional dependency), unless jsonschema or the module itself is imported already; and
    ``import nbgrader`` skip its server extensions, unless it is imported already."""
    if "jsonschema" not in sys.modules:
        for name in UNUSED:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    _nbgrader_without_its_server_extensions()


def _nbgrader_without_its_server_extensions() -> None:
    """Make ``nbgrader`` the package without running its ``__init__`` (which imports the
    server extensions and names them for Jupyter): its submodules import as usual, and the
    first use of a name only ``__init__`` defines runs it after all."""
    if "nbgrader" in sys.modules:
        return
    spec = importlib.util.find_spec("nbgrader")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return  # not installed here: the import will say so where it is needed
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def run_init_on_first_use(name: str) -> Any:
        if name.startswith("__") or importlib.util.find_spec(f"nbgrader.{name}") is not None:
            raise AttributeError(name)  # a submodule: the import system loads it
        del vars(package)["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    vars(package)["__getattr__"] = run_init_on_first_use  # PEP 562: for names it lacks
    sys.modules["nbgrader"] = package
    from nbgrader._version import __version__  # what `nbgrader --version` prints

    package.__version__ = __version__  # type: ignore[attr-defined]
