"""The course directory, as the steps of nbgrader's pipeline find it."""

from __future__ import annotations

from typing import Any


def find_coursedir(configurable: Any) -> Any:
    """nbgrader's CourseDirectory, from a preprocessor (its parent is the exporter,
    whose parent is the converter that holds the course directory)."""
    node = configurable
    while node is not None:
        if getattr(node, "coursedir", None) is not None:
            return node.coursedir
        node = getattr(node, "parent", None)
    return None
