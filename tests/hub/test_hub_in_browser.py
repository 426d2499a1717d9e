"""The student's side of the hub flow in a real browser: JupyterLab served as a real student
user with the hub admin's student configuration, driven in Debian's chromium by Playwright.

The hub (users, exchange, student configuration) is test_hub_flow.py's ``hub`` fixture; the
browser fixtures are tests/browser/conftest.py's. The student sees an empty Assignments tab,
the instructor releases, the student fetches, validates the quiz, submits; the instructor
collects and finds the submission. Screenshots go to the browser tests' artifacts folder.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.course import ASSIGNMENT
from tests.browser import conftest as browser_fixtures
from tests.browser.conftest import LabServer, free_port, wait_until_up
from tests.hub import test_hub_flow as hub_flow
from tests.hub.test_hub_flow import SOLVED, Hub, answers, fill_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        hub_flow.UNAVAILABLE is not None,
        reason=f"hub flow in a browser, as a real student user: {hub_flow.UNAVAILABLE}",
    ),
]

# Fixtures shared with the other hub and browser tests (assigned, so pytest finds them here).
hub = hub_flow.hub
chromium_path = browser_fixtures.chromium_path
artifacts = browser_fixtures.artifacts
browser = browser_fixtures.browser
page = browser_fixtures.page

QUIZ = "02_quiz_what_del_frees"
TAB = "#nbgrader-assignment-list"
OWN = ":scope > .col-md-12 > "  # a row's own name and button, not its notebooks' or submissions'


@pytest.fixture
def student_lab(hub: Hub) -> Iterator[LabServer]:
    """JupyterLab run as the student user, in their home, with the hub's student config."""
    student = hub.solved
    server = LabServer(f"http://127.0.0.1:{free_port()}", secrets.token_hex(16), student.home)
    lab = [
        "python", "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
        f"--port={server.url.rsplit(':', 1)[1]}", f"--ServerApp.root_dir={student.home}",
        f"--IdentityProvider.token={server.token}", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    command = hub.runner.command(student, lab, hub.student_env())
    with (hub.base / "student-lab.log").open("w") as log:
        process = subprocess.Popen(command, cwd=student.home, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(server, process, 60)
            yield server
        finally:
            process.terminate()  # runuser passes it on to the server
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def open_assignment_list(page, server: LabServer) -> list[list]:
    """Nbgrader > Assignment List; returns the Nbgrader menu's entries as the student saw
    them: [command, label, visible]."""
    page.goto(f"{server.url}/lab?token={server.token}")
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click(timeout=60_000)
    menu = page.locator("#jp-mainmenu-nbgrader")
    menu.wait_for()
    entries = menu.locator(".lm-Menu-item").evaluate_all(
        "items => items.map(item => [item.dataset.command, item.innerText.trim(),"
        " item.checkVisibility()])"
    )
    print("Nbgrader menu (command, label, visible):", entries)
    menu.get_by_text("Assignment List", exact=True).click()
    page.locator(TAB).wait_for()
    return entries


def shot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=artifacts / name)
    print(f"screenshot: {artifacts / name}")


def test_student_fetches_validates_and_submits_in_jupyterlab(
    hub: Hub, student_lab: LabServer, page, artifacts: Path, tmp_path: Path
) -> None:
    student, tab = hub.solved, page.locator(TAB)
    steps = hub_flow.Steps()

    # 1. Before the release: only what a student uses, and an empty list (not an error).
    entries = open_assignment_list(page, student_lab)
    # The menu keeps an entry per nbgrader command; those of disabled plugins have no command
    # behind them, so Lumino hides them (no label, not rendered).
    offered = [label for command, label, visible in entries if visible]
    hidden = {command for command, label, visible in entries if not visible}
    assert offered == ["Assignment List"], entries
    assert {"nbgrader:open-formgrader", "nbgrader:open-create-assignment"} <= hidden, entries
    tab.locator("#released_assignments_list_placeholder").wait_for(timeout=30_000)
    assert "Error fetching courses!" not in tab.inner_text()
    assert tab.locator("#course_list_default").inner_text().strip() == "No courses found."
    shot(page, artifacts, "hub-0-before-release.png")
    steps.done(f"before the release: menu offers {offered}, 'There are no assignments to fetch'")

    # 2. The instructor releases; the refreshed tab lists the assignment with Fetch.
    hub.runner.ok(
        hub.instructor, ["autograder", "release", *hub.exchange_options()], cwd=hub.course
    )
    tab.locator("#refresh_assignments_list").click()
    released = tab.locator("#released_assignments_list .list_item")
    released.first.wait_for(timeout=30_000)
    assert released.count() == 1
    assert released.locator(".item_name").inner_text().strip() == ASSIGNMENT
    assert released.locator(".item_course").inner_text().strip() == hub.course_id
    assert tab.locator("#course_list_default").inner_text().strip() == hub.course_id
    fetch = released.locator(".item_status button")
    assert fetch.inner_text().strip() == "Fetch"
    text = tab.inner_text()
    assert "Error fetching courses!" not in text and "does not exist" not in text, text
    shot(page, artifacts, "hub-1-released-before-fetch.png")
    steps.done("released: the tab lists it with Fetch")

    # 3. Fetch: the row moves to the fetched list, the notebooks are in the student's home.
    fetch.click()
    fetched = tab.locator("#fetched_assignments_list > .list_item")
    fetched.first.wait_for(timeout=60_000)
    assert fetched.locator(OWN + ".item_name").inner_text().strip() == ASSIGNMENT
    submit = fetched.locator(OWN + ".item_status button", has_text="Submit")
    assert submit.count() == 1
    outbound = hub.exchange / hub.course_id / "outbound" / ASSIGNMENT
    names = sorted(path.name for path in outbound.glob("*.ipynb"))
    got = sorted((student.home / ASSIGNMENT).glob("*.ipynb"))
    assert [path.name for path in got] == names
    assert {path.stat().st_uid for path in got} == {student.uid}
    fetched.locator(".assignment-notebooks-link").click()  # show the notebooks
    notebook_rows = fetched.locator(".nested_list_item")
    notebook_rows.first.wait_for()
    assert sorted(notebook_rows.locator(".item_name").all_inner_texts()) == [
        name.removesuffix(".ipynb") for name in names
    ]
    assert notebook_rows.locator("button", has_text="Validate").count() == len(names)
    shot(page, artifacts, "hub-2-fetched.png")
    steps.done(f"fetched {len(got)} notebooks into {student.home / ASSIGNMENT}")

    # 4. The student answers (the bundled solved example), Validates the quiz in the tab.
    fill_in(student.home / ASSIGNMENT, answers([SOLVED], tmp_path), student)
    quiz = notebook_rows.filter(has_text=QUIZ)
    quiz.locator("button", has_text="Validate").click()
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=90_000)
    assert dialog.locator(".jp-Dialog-header").inner_text().strip() == "Validation Results"
    message = dialog.locator("#validation-message").inner_text()
    assert message.strip() == "Success! Your notebook passes all the tests.", message
    shot(page, artifacts, "hub-3-validate-quiz.png")
    dialog.get_by_role("button", name="Ok").click()
    dialog.wait_for(state="detached")
    assert "btn-success" in (quiz.locator("button").get_attribute("class") or "")
    steps.done(f"validated {QUIZ}: {message.strip()!r}")

    # 5. Submit: a row in the submitted list with the submission's timestamp.
    submit.click()
    submitted = tab.locator("#submitted_assignments_list > .list_item")
    submitted.first.wait_for(timeout=60_000)
    assert submitted.locator(OWN + ".item_name").inner_text().strip() == ASSIGNMENT
    stamps = submitted.locator(".nested_list_item .item_name").all_inner_texts()
    assert len(stamps) == 1 and stamps[0].strip().endswith("UTC"), stamps
    submitted_at = stamps[0].strip()
    assert tab.locator("#fetched_assignments_list > .list_item").count() == 1  # still there
    shot(page, artifacts, "hub-4-submitted.png")
    steps.done(f"submitted: the tab shows {submitted_at}")

    # 6. The submission is in the exchange's inbound, and collect brings it to submitted/.
    inbound = hub.exchange / hub.course_id / "inbound"
    mine = [path for path in inbound.iterdir() if path.name.startswith(f"{student.name}+")]
    assert len(mine) == 1 and f"+{ASSIGNMENT}+" in mine[0].name, mine
    assert (mine[0] / "timestamp.txt").read_text().strip() == submitted_at
    output = hub.runner.ok(
        hub.instructor, ["autograder", "collect", *hub.exchange_options()], cwd=hub.course
    )
    assert f"{student.name}: submitted {submitted_at}" in output, output
    collected = hub.course / "submitted" / student.name / ASSIGNMENT
    assert sorted(path.name for path in collected.glob("*.ipynb")) == names
    assert (collected / f"{QUIZ}.ipynb").read_bytes() == (
        student.home / ASSIGNMENT / f"{QUIZ}.ipynb"
    ).read_bytes()  # the answered quiz, as the student saved it
    steps.done(f"inbound {mine[0].name}; collected into {collected}")
