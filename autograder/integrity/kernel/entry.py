"""The probe in the kernel: :func:`_kernel_probe`, what the probe's one line calls.

It prints exactly one line, ``AUTOGRADER-PROBE <nonce> <json list of problems>``. The first
run, before any student code, checks the watched objects against the grading process's
fingerprint and records them; every later run finds the very objects the first one found,
then checks what the watch list cannot see (:func:`check_kernel`).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable

from autograder.integrity.kernel.interpreter import (
    check_event_loop,
    check_import_hooks,
    check_new_threads,
    check_notebook_names,
    check_running_threads,
    check_trace_hooks,
    check_tracemalloc,
)
from autograder.integrity.kernel.shell import check_shell, kernel_defaults
from autograder.integrity.kernel.trust import installed_roots
from autograder.integrity.kernel.watch import (
    WATCHED_MODULES,
    Watched,
    describe_key,
    differences,
    digest,
    snapshot,
    watched,
)

PROBE_PREFIX = "AUTOGRADER-PROBE"


class _FirstProbe:
    """What the first probe found in this kernel. One instance, whose attributes change: this
    module is watched whole, and a watched name must keep its object."""

    baseline: Watched | None = None
    digest: str | None = None
    threads: frozenset[int | None] | None = None


_first = _FirstProbe()


def _kernel_probe(ns: dict, nonce: str, expected_digest: str) -> None:
    """Run in the kernel by :func:`autograder.integrity.probe.probe_code`: print the one reply line."""
    problems: list[str] = []
    try:
        if _first.baseline is None:
            _record_start(expected_digest, problems.append)
        elif _first.digest != expected_digest:
            problems.append(
                "the probe's record of the kernel at start does not match this fingerprint"
            )
        else:
            for key in differences(_first.baseline):
                problems.append(
                    f"{key.replace(':', '.')} was changed (now: {describe_key(key)[:100]})"
                )
        check_kernel(ns, problems.append)
    except BaseException as error:  # the probe must answer, whatever the kernel did to it
        problems.append(f"the probe could not finish: {type(error).__name__}: {error}"[:300])
    sys.stdout.write(f"{PROBE_PREFIX} {nonce} {json.dumps(problems)}\n")
    sys.stdout.flush()


def _record_start(expected_digest: str, add: Callable[[str], None]) -> None:
    """The first run, before any student code: imports, and a full description. Its warnings
    are silenced; later runs touch no warnings state (resetting the filters would let a
    warning already shown once reach a test cell's stderr again)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in WATCHED_MODULES:
            __import__(module)
        if digest(snapshot()) != expected_digest:
            add(
                "the watched code differs from the grading process's fingerprint at the "
                "first probe (the probe must run right after the kernel starts, before any cell)"
            )
            return
        _first.baseline, _first.digest = watched(), expected_digest
        _first.threads = frozenset(t.ident for t in sys.modules["threading"].enumerate())
        kernel_defaults()


def check_kernel(ns: dict, add: Callable[[str], None]) -> None:
    """Everything but the watched code: the notebook's names, tracing, hooks, threads."""
    roots = installed_roots()
    check_notebook_names(ns, add)
    check_tracemalloc(ns, add)
    check_trace_hooks(add)
    check_running_threads(ns, add, roots)
    check_new_threads(add, roots, _first.threads)
    check_event_loop(add, roots)
    check_import_hooks(add, roots)
    check_shell(ns, add, roots)
