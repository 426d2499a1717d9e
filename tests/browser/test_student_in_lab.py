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
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()


def wait_until_idle(page, seconds: float) -> None:
    """Until the kernel has run every queued cell (no ``[*]`` prompt is left)."""
    deadline = time.monotonic() + seconds
    time.sleep(1)
    while time.monotonic() < deadline:
        busy = page.locator(".jp-InputPrompt", has_text="[*]").count()
        if busy == 0 and page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            return
        time.sleep(0.5)
    raise AssertionError(f"cells still running after {seconds:g} s")


def open_notebook(page, server, relative: str) -> None:
    page.goto(server.tree(relative))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)


def test_lesson_runs_and_shows_its_memory_plot(start_lab, page, course_folder, artifacts):
    server = start_lab(course_folder)
    open_notebook(page, server, f"{RELEASE}/01_lesson_free_large_arrays.ipynb")
    run_all_cells(page)
    wait_until_idle(page, 90)
    plot = page.locator(".jp-OutputArea-output img").last
    plot.scroll_into_view_if_needed()
    assert plot.is_visible()
    page.screenshot(path=artifacts / "lesson-memory-plot.png")
    print(f"screenshot: {artifacts / 'lesson-memory-plot.png'}")
    # The one error is the lesson's own: the traceback trap raises on purpose.
    errors = page.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert len(errors) == 1 and errors[0].rstrip().endswith("ValueError: bad values"), errors
