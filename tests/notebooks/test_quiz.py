"""The quiz tests understanding, not test-taking: no option gives itself away by its form.

A well-known tell of a multiple-choice question is that the right answer is the longest,
most careful option. Here the key may be the longest option in at most a quarter of the
questions, the options of a question are of similar length, and the key is not always
the same letter. The solution cell, the hidden test and the options agree on the key.
"""

from __future__ import annotations

import re

import nbformat

from ..conftest import REPO

QUIZ = REPO / "source" / "numpy_memory" / "02_quiz_what_del_frees.ipynb"
_OPTION = re.compile(r"^- \*\*([A-D])\*\* (.+)$", re.MULTILINE)


def questions() -> dict[int, tuple[str, dict[str, str]]]:
    """Question number -> (its key, {letter: option text})."""
    cells = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nbformat.read(QUIZ, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade_id")
    }
    found = {}
    for name, source in cells.items():
        number = re.fullmatch(r"q(\d+)_question", name)
        if number is None:
            continue
        n = int(number.group(1))
        key = re.search(r'q\d+ = "([A-D])"', cells[f"q{n}_answer"]).group(1)  # type: ignore[union-attr]
        hidden = re.search(r'== "([A-D])"', cells[f"q{n}_test"]).group(1)  # type: ignore[union-attr]
        assert hidden == key, f"question {n}: the solution says {key}, the hidden test {hidden}"
        found[n] = (key, dict(_OPTION.findall(source)))
    return found


def test_every_question_has_four_options_and_a_key_among_them():
    found = questions()
    assert len(found) == 8
    for n, (key, options) in found.items():
        assert list(options) == ["A", "B", "C", "D"], n
        assert key in options


def test_the_longest_option_is_the_key_in_at_most_a_quarter_of_the_questions():
    found = questions()
    longest = [
        n
        for n, (key, options) in found.items()
        if len(options[key]) >= max(map(len, options.values()))
    ]
    assert len(longest) <= len(found) / 4, f"the key is the longest option in questions {longest}"


def test_the_options_of_a_question_are_of_similar_length():
    for n, (_, options) in questions().items():
        lengths = sorted(len(text) for text in options.values())
        assert lengths[0] >= lengths[-1] / 2, f"question {n}: {options}"


def test_the_key_is_not_always_the_same_letter():
    keys = [key for key, _ in questions().values()]
    assert max(keys.count(letter) for letter in "ABCD") <= len(keys) / 2, keys
