"""As a student would, in JupyterLab in a real browser: the lesson, the exercises with
nbgrader's Validate button, the quiz, and a feedback page."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_course

pytestmark = pytest.mark.slow
RELEASE = "release/numpy_memory"


@pytest.fixture
def course_folder(tmp_path) -> Path:
    """A course as JupyterLab serves it: this course's config and its released notebooks."""
    root = copy_course(tmp_path / "course")
    shutil.copytree(REPO / RELEASE, root / RELEASE)
    return root


def run_all_cells(page) -> None:
    """Run > Run All Cells, until the kernel has taken the first code cell (a click made
    while the kernel is still connecting can be lost)."""
    first = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator("li[data-command='runmenu:run-all']").click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if first.inner_text().strip() not in ("[ ]:", ""):
                return
            time.sleep(0.5)
    raise AssertionError("Run All Cells did not start the notebook")


def wait_until_idle(page, seconds: float) -> None:
    """Until the kernel has run every queued cell (no ``[*]`` prompt is left)."""
    deadline = time.monotonic() + seconds
    time.sleep(1)
    while time.monotonic() < deadline:
        busy = page.locator(".jp-InputPrompt", has_text="[*]").count()
        if (
            busy == 0
            and page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"cells still running after {seconds:g} s")


def open_notebook(page, server, relative: str) -> None:
    page.goto(server.tree(relative))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    # The kernel has started and answered (the status bar names it and says Idle).
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)


def test_lesson_runs_and_shows_its_memory_plot(start_lab, page, course_folder, artifacts):
    server = start_lab(course_folder)
    open_notebook(page, server, f"{RELEASE}/01_lesson_free_large_arrays.ipynb")
    run_all_cells(page)
    plot = page.locator(".jp-OutputArea-output img").last
    plot.wait_for(state="attached", timeout=120_000)  # the last cell draws it
    wait_until_idle(page, 30)
    plot.scroll_into_view_if_needed()
    assert plot.is_visible()
    assert plot.evaluate("img => img.naturalWidth") > 0  # a decoded picture, not a broken link
    page.screenshot(path=artifacts / "lesson-memory-plot.png")
    print(f"screenshot: {artifacts / 'lesson-memory-plot.png'}")
    # The one error is the lesson's own: the traceback trap raises on purpose.
    errors = page.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert len(errors) == 1 and errors[0].rstrip().endswith("ValueError: bad values"), errors


def type_into_cell(page, index: int, code: str) -> None:
    editor = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)


def test_exercises_validate_a_right_and_a_wrong_answer(start_lab, page, course_folder, artifacts):
    server = start_lab(course_folder)
    open_notebook(page, server, f"{RELEASE}/04_exercises_free_and_budget_memory.ipynb")
    type_into_cell(page, 3, "grid = np.ones((1000, 1000))")  # exercise 1, right
    type_into_cell(page, 5, "grid_nbytes = grid.nbytes\ndel grid")
    type_into_cell(page, 10, "first_1000 = readings[:1000]\ndel readings")  # exercise 2: a view
    page.keyboard.press("Escape")
    page.keyboard.press("Control+S")
    run_all_cells(page)
    wait_until_idle(page, 60)
    page.get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=90_000)
    page.screenshot(path=artifacts / "exercises-validate.png")
    print(f"screenshot: {artifacts / 'exercises-validate.png'}")
    text = dialog.inner_text()
    assert "VALIDATION FAILED" in text.upper() or "failed" in text.lower(), text
    assert "first_1000" in text and "view" in text  # exercise 2's check says what holds it
    assert "size in bytes" not in text and "'grid'" not in text  # exercise 1 passed
    # The failure starts at the student's test line: none of the checks' own frames.
    assert "autograder/checks" not in text and "site-packages" not in text, text


def test_quiz_opens(start_lab, page, course_folder, artifacts):
    server = start_lab(course_folder)
    open_notebook(page, server, f"{RELEASE}/02_quiz_what_del_frees.ipynb")
    assert page.locator(".jp-MarkdownOutput h2", has_text="Question 8").count() == 1
    page.screenshot(path=artifacts / "quiz.png")
    print(f"screenshot: {artifacts / 'quiz.png'}")
