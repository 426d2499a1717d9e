"""The class page of the bundled examples, opened from disk in a real browser: per exercise a
full-marks bar and a bar per cause, as long as its count says, with an example message."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_the_class_page_in_chromium(graded_examples, page, artifacts):
    _, run, _ = graded_examples
    view = json.loads(run.report_path.read_text())["class"]
    page.goto((run.report_dir / "class.html").as_uri())
    assert page.title() == "What to teach next week: numpy_memory"
    sections = page.locator("section.exercise")
    assert sections.count() == len(view["exercises"]) == 15  # 8 questions, 7 exercises
    ex2 = next(row for row in view["exercises"] if row["key"] == "ex2")
    section = page.locator("section#exercise-04_exercises_free_and_budget_memory-ex2")
    section.scroll_into_view_if_needed()
    assert "Exercise 2: keep a small piece, free the large array" in section.inner_text()
    full = section.locator("tr.full-marks")
    assert f"full marks: {ex2['full_marks']} of {ex2['students']}" in full.inner_text()
    # Each cause's bar is as wide as its count, against the students counted.
    track = full.locator(".bar").bounding_box()
    for cause in ex2["causes"]:
        row = section.locator("tr.cause", has_text=cause["cause"]).first
        assert row.locator("td.count").inner_text().strip() == str(cause["students"])
        filled = row.locator(".bar span").bounding_box()
        assert filled["width"] == pytest.approx(
            track["width"] * cause["students"] / ex2["students"], abs=1.5
        )
        assert row.locator("pre").inner_text().startswith(cause["example"]["message"][:40])
    assert "a view" in section.inner_text() and "kept arrays alive" in section.inner_text()
    assert "Counted apart:" in section.inner_text() and "flagged" in section.inner_text()
    # Across the assignment: what kept arrays alive, and which limits broke.
    overall = page.locator("table.overall.holder")
    assert overall.locator("tr.cause", has_text="the output cache").count() == 1
    assert page.locator("table.overall.limit tr.cause", has_text="a leak").count() == 1
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.goto((run.report_dir / "class.html").as_uri())
    shot = artifacts / "class-page.png"
    page.screenshot(path=shot, full_page=False)
    section.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "class-page-ex2.png", full_page=False)
    print(f"screenshots: {shot}, {artifacts / 'class-page-ex2.png'}")
