"""What the integrity checks report: an :class:`Evidence` record, and the :data:`FLAGS` it
names, or the :data:`TECHNIQUES` it names.

Every part of :mod:`autograder.integrity` (the static read, the cell inspection, the probe)
and the grading process's own observations speak this one vocabulary, so the instructor's
report and the student's messages describe a flag the same way wherever it was raised.

Flags are for what tampers with grading: the tracker, the checks, the shell, the kernel.
A flagged notebook is reported to the instructor, and every test after the evidence is
distrusted. Techniques are code the exercises' text says is not accepted (np.memmap,
threads, files): a technique fails the tests of the exercise it is used in, with words
that teach the accepted way, and is neither a flag nor a reason to distrust anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

FLAGS: dict[str, str] = {
    "monkeypatch": "changes an attribute or the contents of a protected module or object "
    "(numpy, the checks, tracemalloc, gc, builtins, sys, os, ... or anything imported)",
    "rebinds-protected-name": "binds a name the tests rely on (checks, np, isinstance, ...) "
    "to something else, or writes the notebook's namespace through globals()/vars()",
    "ipython-hook": "reaches into IPython (get_ipython(), a magic that changes the shell, "
    "IPython internals): transformers, custom exception handlers, event callbacks",
    "trace-function": "installs a trace, profile or audit hook, or a callback the "
    "interpreter calls in the middle of the tests (gc.callbacks, a debugger)",
    "tracker-tampering": "touches the memory tracker or the checks' internals: tracemalloc "
    "other than reading, checks.track, private checks/autograder names, gc.get_objects, "
    "the peak-memory counter",
    "exits-kernel": "kills or stops the kernel (os._exit, sys.exit, exit(), signals, ctypes, "
    "faulthandler)",
    "shell-or-network": "runs a shell command or another process, opens a network connection, "
    "or changes the process (!cmd, %%bash, subprocess, socket, os.system, os.chdir)",
    "obfuscation": "runs code the static read cannot see (exec, eval, compile, __import__, "
    "importlib, pickle.loads), reaches objects through dunder attributes or computed names, "
    "or passes a protected module around as a value",
    "fake-value": "defines a value that lies about its type or its comparisons (a subclass of "
    "str/int/float/an ndarray, __class__, __instancecheck__, __array_function__, a metaclass)",
    "edited-locked-cell": "a locked or test cell's source differs from both the release and "
    "the instructor's version",
    "deleted-graded-cell": "a cell of the release (graded or locked) is missing",
    "duplicated-cell": "a grade_id appears more than once",
    "moved-cell": "the release's cells are in another order",
    "changed-metadata": "the nbgrader metadata of a cell changed (grade, locked, solution, "
    "points, cell type) or names a grade_id the release does not have",
    "changed-kernelspec": "the notebook asks for another kernel",
    "probe-failed": "the probe found the kernel's state changed (see the detail)",
    "probe-no-reply": "the probe printed no well-formed reply: its output was swallowed, "
    "rewritten, or the probe did not run",
    # Seen from outside the kernel by the grading process (autograder.pipeline.protected_execute):
    "rss-over-budget": "assert_peak_below passed, but the kernel's resident memory peaked "
    "above the budget during the test: memory the tracer does not see held the data",
}


# Code the exercises do not accept: what the student reads when a test of the exercise that
# uses it scores 0 for it (the accepted way, in words).
TECHNIQUES: dict[str, str] = {
    "untraced-memory": "np.memmap, mmap and np.load(..., mmap_mode=...) keep data in a file "
    "mapped into memory. Its pages take RAM all the same while you use them, but the memory "
    "tracer does not count them, so the exercise's memory cannot be measured. Use ordinary "
    "NumPy arrays: read one block at a time, keep only running totals (a count, a sum, a sum "
    "of squares), and drop each block before reading the next (lesson 03, section 5).",
    "threads": "A thread runs beside the tests, so what it holds, and when, cannot be measured "
    "against the exercise's checks. Do the work in the function itself, one step after "
    "another.",
    "files": "Moving data into a file is not what the exercise measures. Keep the data in "
    "ordinary arrays and need less of it at once: one block at a time, in place, a smaller "
    "dtype (lesson 03).",
}


@dataclass(frozen=True)
class Evidence:
    """One thing seen that a fair submission does not do."""

    flag: str  # a key of FLAGS, or of TECHNIQUES (then it is not a flag: see the module)
    cell: str  # the grade_id, "cell 12" (1-based) for cells without one, or "notebook"
    detail: str  # for the instructor: what was seen, quoting the offending line

    @property
    def is_technique(self) -> bool:
        """Code the exercises do not accept, rather than evidence of tampering."""
        return self.flag in TECHNIQUES

    def describe(self) -> str:
        return f"[{self.flag}] {self.cell}: {self.detail}"
