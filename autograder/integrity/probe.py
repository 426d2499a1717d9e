"""The probe, on the grading side: the line the grader runs in the kernel before each test
cell (:func:`probe_code`), what it compares the kernel against (:func:`fingerprint`), and
what its reply means (:func:`read_probe`).

The probe checks the kernel's state (the check functions' code, NumPy's and the builtins'
callables, tracemalloc, IPython's hooks, trace functions, threads) against a fingerprint
computed here from the same installed files: the first run, before any student code, must
match the fingerprint's digest (carried as a literal), and every later run must find the
very objects the first one found. It is the kernel's word, but a kernel that lies must
first have been made to lie, by code the static read sees, or by obfuscation, which it
flags too. The kernel's side is :mod:`autograder.integrity.kernel`.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import secrets
import warnings

from autograder.integrity.evidence import Evidence
from autograder.integrity.kernel.entry import PROBE_PREFIX
from autograder.integrity.kernel.watch import WATCHED_MODULES, digest, snapshot

__all__ = [
    "PROBE_PREFIX",
    "fingerprint",
    "fingerprint_digest",
    "new_nonce",
    "probe_code",
    "read_probe",
]


@functools.cache
def _fingerprint() -> tuple[str, str]:
    for module in WATCHED_MODULES:
        importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = snapshot()
    return json.dumps(found, sort_keys=True), digest(found)


def fingerprint() -> dict:
    """What the probe compares the kernel against, computed here, in the grading process,
    from the same installed files ("module:attribute" -> description). Cached."""
    return json.loads(_fingerprint()[0])


def fingerprint_digest() -> str:
    """The digest of :func:`fingerprint` that every probe carries as a literal."""
    return _fingerprint()[1]


def new_nonce() -> str:
    """A fresh, unguessable token for one probe run."""
    return secrets.token_hex(12)


def probe_code(nonce: str) -> str:
    """The source the grader runs in the kernel (``store_history=False``) before a test cell.

    It prints exactly one line, ``AUTOGRADER-PROBE <nonce> <json list of problems>``, and
    nothing to stderr. It binds no name in the notebook (it is one call), touches neither
    ``Out`` nor ``_`` nor ``In`` (its last statement is an ``if``, so nothing is displayed),
    allocates no NumPy memory and keeps no reference to the notebook's values. It carries
    the digest of the grading process's :func:`fingerprint` as a literal.

    Run it once right after the kernel starts, before any cell: that first run records the
    kernel's state and checks it against the fingerprint (a few hundred ms, once); later
    runs compare with it (a few ms). The cell is kept tiny on purpose: with tracemalloc on,
    IPython takes about 4 ms per kilobyte of cell source.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", nonce):
        raise ValueError("the nonce must be 8 to 64 letters, digits, '-' or '_'")
    return (
        "if True:\n"
        f"    __import__('autograder.integrity.kernel.entry', None, None, ['_kernel_probe'])._kernel_probe("
        f"globals(), {nonce!r}, {fingerprint_digest()!r})\n"
    )


def read_probe(stdout_text: str, nonce: str, cell: str) -> list[Evidence]:
    """The evidence in a probe's stdout: none when the kernel is as expected.

    No line with the nonce, several, or one that does not parse: ``probe-no-reply`` (the
    output was swallowed or forged, or the probe did not run). Each problem the probe
    reports: ``probe-failed``.
    """
    prefix = f"{PROBE_PREFIX} {nonce} "
    replies = [line for line in stdout_text.splitlines() if nonce in line]
    if len(replies) != 1 or not replies[0].startswith(prefix):
        seen = (
            "no reply"
            if not replies
            else f"{len(replies)} lines mention the nonce: {replies[0][:120]!r}"
        )
        return [
            Evidence(
                "probe-no-reply",
                cell,
                f"the probe before this cell gave no well-formed reply ({seen})",
            )
        ]
    try:
        problems = json.loads(replies[0][len(prefix) :])
    except ValueError:
        problems = None
    if not isinstance(problems, list) or not all(isinstance(item, str) for item in problems):
        return [
            Evidence(
                "probe-no-reply", cell, f"the probe's reply is malformed: {replies[0][:160]!r}"
            )
        ]
    return [
        Evidence(
            "probe-failed", cell, f"before this cell, the kernel's state was changed: {problem}"
        )
        for problem in problems
    ]
