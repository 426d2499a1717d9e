"""The probe's side in the student's kernel: the only part of the grader the kernel imports.

:mod:`.entry` is what the probe's one line calls (``_kernel_probe``). It compares the watched
objects (:mod:`.watch`, described by :mod:`.describe`) with the grading process's
fingerprint, then checks what a watch list cannot see: the interpreter (:mod:`.interpreter`:
the notebook's names, tracemalloc, trace hooks, threads, the event loop, import hooks) and
IPython (:mod:`.shell`). :mod:`.trust` tells installed code from the notebook's.

Every module here is watched whole by the probe itself (``watch.FULL_MODULES``): a student
who patches any of its functions is seen. They import nothing from the grading side but
:mod:`autograder.integrity.rules` (plain tables). This file imports nothing: Python runs it
before any submodule.
"""
