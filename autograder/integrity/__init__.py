"""Evidence that a submission tampered with its own grading, gathered where it cannot be forged.

A student's code runs in the same kernel as the hidden tests, so it can change how every
later cell runs: patch a check into a no-op, stop the memory tracer, add an IPython hook
that rewrites or silences the test cells. The grader does not take the kernel's word for
it. Three kinds of evidence, each an :class:`~.evidence.Evidence`:

* **A static read** of every cell the student wrote (:mod:`.static`:
  ``static.scanner.scan_code``, ``static.read.scan_notebook``), done in the grading process
  before the notebook runs: the kernel cannot touch it. It flags the *means* of tampering
  (assigning into ``np`` or ``checks``, ``sys.settrace``,
  ``get_ipython().ast_transformers``, ``exec`` of a hidden string, ...), never a wrong
  answer. Its rules are the tables of :mod:`.rules`.
* **A probe** (:mod:`.probe`: ``probe_code``, ``read_probe``, ``fingerprint``): a one-line
  call run silently in the kernel right after it starts and before each graded test cell.
  It checks the kernel's state against a fingerprint computed in the grading process from
  the same installed files. Its kernel side, :mod:`.kernel`, is the only part of this
  package the student's kernel imports, and the probe watches all of it.
* **A cell inspection** of the submitted notebook against the release
  (:mod:`.cells`: ``inspect_cells``), before nbgrader puts the locked cells back: edited,
  deleted, duplicated or moved locked cells, changed nbgrader metadata, another kernel.

Flag kinds (``evidence.FLAGS`` describes each): ``monkeypatch``,
``rebinds-protected-name``, ``ipython-hook``, ``trace-function``, ``tracker-tampering``,
``exits-kernel``, ``shell-or-network``, ``obfuscation``, ``fake-value``,
``edited-locked-cell``, ``deleted-graded-cell``, ``duplicated-cell``, ``moved-cell``,
``changed-metadata``, ``changed-kernelspec``, ``probe-failed``, ``probe-no-reply``.

Flags are for tampering with grading (the tracker, the checks, the shell, the kernel), not
for techniques. Code the exercises' text does not accept (``np.memmap``, ``mmap``,
``mmap_mode``, threads, writing or removing files) is found by the same static read but
named by ``evidence.TECHNIQUES``: ``untraced-memory``, ``threads``, ``files``. It fails the
tests of its own exercise with what to do instead (``autograder.pipeline.techniques``),
and is never a flag.

Honest code must never be flagged: ``globals().pop("readings")``, ``Out.clear()``,
``%xdel table``, ``np.random.default_rng(0)``, ``checks.holders_of("grid")``, plain
classes with ``self.x = ...`` all pass. The tests run the scanner over every example
submission and every solution cell of the course and require zero evidence.

This file imports nothing: the kernel imports :mod:`.kernel.entry`, and Python runs every
package ``__init__`` on the way.
"""
