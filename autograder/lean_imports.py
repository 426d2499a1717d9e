"""Imports that cost a process seconds of start-up and serve nothing here.

jsonschema (imported by nbformat, so by every process that reads a notebook) imports
``rfc3987_syntax`` when it is installed, and that module builds a Lark grammar for the
``iri`` and ``iri-reference`` formats as it is imported: about a second of CPU in the
command line, in every grading worker and in a student's ``autograder check``. Formats are
only checked when a ``FormatChecker`` is given, and neither nbformat, nbgrader nor this
package gives one. :func:`skip_unused` is called before the first import of jsonschema
(``autograder.cli``, ``autograder.pipeline``); never in a student's kernel, which imports
what it likes.
"""

from __future__ import annotations

import sys

UNUSED = ("rfc3987_syntax",)


def skip_unused() -> None:
    """Make ``import`` of :data:`UNUSED` fail with ImportError (which jsonschema expects of
    an optional dependency), unless jsonschema or the module itself is imported already."""
    if "jsonschema" in sys.modules:
        return
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
