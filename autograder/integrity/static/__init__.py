"""The static read: every cell the student wrote, read in the grading process before it runs.

:mod:`.read` reads a notebook (:func:`~.read.scan_notebook`), :mod:`.scanner` one cell
(:func:`~.scanner.scan_code`). The scanner's rules are split by what they judge:
:mod:`.imports` (imports and aliases), :mod:`.bindings` (names and stores, definitions),
:mod:`.uses` (names, calls and attributes read), :mod:`.ipython` (the shell, magics and
the notebook's namespace); :mod:`.syntax` holds the parse and the AST helpers.
"""
