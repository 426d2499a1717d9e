"""The course on a real JupyterHub, from the login page to feedback, in Debian's chromium.

JupyterHub from PyPI (the ``test`` extra), configurable-http-proxy from npm (``.ci/run``
installs it, as root), PAM login of real Unix users with passwords, JupyterHub's default
local process spawner, and the hub configuration README's hub section gives (its
``jupyterhub_config.py`` block is read from README and run, with this test's names and
paths). The hub admin's and the instructor's commands are README's, in its order; the
instructor's run as the instructor's Unix user. One scenario, step by step, with a
screenshot of each in the browser tests' artifacts folder:

a student logs in, finds only the Assignment List in the Nbgrader menu, fetches, validates
and submits in the Assignments tab; a second student
submits from the command line, with an answer that goes after a process of the
instructor's; the instructor collects, grades through the hub's grading service (another
user may not), and the second student's code ran as another uid and reached nothing of the
instructor's; the instructor releases feedback; the student fetches it and sees "(view
feedback)", which opens the pages; the instructor logs in and Formgrader shows the assignment and both
submissions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from tests.browser import conftest as browser_fixtures
from tests.browser.conftest import free_port
from tests.conftest import ASSIGNMENT, REPO, copy_course
from tests.hub.test_hub_flow import SOLVED, WRONG, Steps, answers, fill_in
from tests.hub.unix_users import (
    VENV_BIN,
    Runner,
    UnixUser,
    users_in_a_folder,
    why_unavailable,
)


def _why_no_hub() -> str | None:
    reason = why_unavailable()
    if reason is None and importlib.util.find_spec("jupyterhub") is None:
        reason = "needs jupyterhub (pip install -e '.[test]')"
    if reason is None and shutil.which("configurable-http-proxy") is None:
        reason = (
            "needs configurable-http-proxy (npm install -g configurable-http-proxy; .ci/run does)"
        )
    if reason is None and shutil.which("chpasswd") is None:
        reason = "needs chpasswd to give the users passwords for PAM"
    return reason


UNAVAILABLE = _why_no_hub()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"a real JupyterHub: {UNAVAILABLE}"),
]

# Fixtures shared with the browser tests (assigned, so pytest finds them here).
chromium_path = browser_fixtures.chromium_path
artifacts = browser_fixtures.artifacts
browser = browser_fixtures.browser

QUIZ = "02_quiz_what_del_frees"
TAB = "#nbgrader-assignment-list"
OWN = ":scope > .col-md-12 > "  # a row's own name and button, not its notebooks' or submissions'
README = (REPO / "README.md").read_text()
# The second student's first answer: reports the uid it runs as during grading and tries to
# signal a process of the instructor's, read that process's environment and the source.
PROBE = """q1 = "B"
import json, os, signal
probe = {{"uid": os.getuid()}}
for name, attempt in (
    ("signal", lambda: os.kill({victim}, signal.SIGTERM)),
    ("read its environment", lambda: open("/proc/{victim}/environ", "rb").read()),
    ("read the course's source", lambda: open("{source}").read()),
):
    try:
        attempt()
        probe[name] = "done"
    except OSError as error:
        probe[name] = type(error).__name__
print("PROBE " + json.dumps(probe))"""


def readme_hub_config() -> str:
    """README's ``jupyterhub_config.py`` block (the course's part of a hub's configuration)."""
    blocks = re.findall(r"```python\n(# jupyterhub_config\.py.*?)```", README, re.S)
    assert len(blocks) == 1, "README's hub section has one jupyterhub_config.py block"
    return blocks[0]


def readme_commands(who: str) -> list[str]:
    """The commands of README's hub section block that starts with ``# <who>``."""
    section = README.split("## On a shared JupyterHub", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        if block.startswith(f"# {who}"):
            lines = [line.split("  #")[0].strip() for line in block.splitlines()]
            return [line for line in lines if line and not line.startswith("#")]
    raise AssertionError(f"README's hub section has no block starting with '# {who}'")


@dataclass(frozen=True)
class RealHub:
    url: str
    base: Path
    runner: Runner
    instructor: UnixUser
    students: tuple[UnixUser, UnixUser]
    passwords: dict[str, str]
    course: Path
    exchange: Path
    student_etc: Path
    course_id: str
    socket: Path
    log: Path
    victim: psutil.Process  # a process of the instructor's

    def student_env(self) -> dict[str, str]:
        return {"JUPYTER_CONFIG_PATH": str(self.student_etc)}


def _hub_config(
    base: Path, ports: tuple[int, int, int], users: set[str], names: dict[str, str]
) -> str:
    """This test's hub: PAM, the local process spawner, then README's block, with this
    test's instructor, course and paths in place of README's."""
    port, hub_port, api_port = ports
    course = readme_hub_config()
    for readme, here in names.items():
        assert readme in course, readme
        course = course.replace(readme, here)
    return f"""
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.pid_file = "{base / "proxy.pid"}"
c.JupyterHub.db_url = "sqlite:///{base / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = "{base / "cookie_secret"}"
c.JupyterHub.pid_file = "{base / "jupyterhub.pid"}"
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["{VENV_BIN / "jupyterhub-singleuser"}"]
c.Spawner.environment = {{"PATH": "{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.JupyterHub.cleanup_servers = True
{course}
"""


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"jupyterhub exited:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.5)
    raise AssertionError(f"the hub did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def real_hub() -> Iterator[RealHub]:
    with users_in_a_folder("agr", ("i", "s1", "s2")) as (base, token, users):
        yield from _hub_for(base, token, users)


def _hub_for(base: Path, token: str, users: list[UnixUser]) -> Iterator[RealHub]:
    """Everything but the users: the course, the admin's commands, the hub itself."""
    hub: subprocess.Popen | None = None
    sleeper: subprocess.Popen | None = None
    try:
        passwords = {user.name: secrets.token_urlsafe(12) for user in users}
        subprocess.run(
            ["chpasswd"], input="".join(f"{u}:{p}\n" for u, p in passwords.items()),
            text=True, check=True,
        )  # fmt: skip
        instructor = users[0]
        course_id = f"numpy-memory-{token}"
        exchange, student_etc = base / "exchange", base / "etc-jupyter-students"
        config_copy = base / "etc-autograder" / "nbgrader_config.py"
        # The instructor's course: this repository's, with the hub's course id and exchange
        # set in its nbgrader_config.py (README: the block at its end), private to them.
        course = copy_course(instructor.home / "course")
        text = (course / "nbgrader_config.py").read_text()
        text = text.replace("= defaults.HUB_COURSE_ID", f"= {course_id!r}")
        text = text.replace("= defaults.HUB_EXCHANGE_ROOT", f"= {str(exchange)!r}")
        (course / "nbgrader_config.py").write_text(text)
        subprocess.run(
            ["chown", "-R", f"{instructor.name}:{instructor.name}", str(course)], check=True
        )
        course.chmod(0o700)
        # The hub admin's commands, README's, in its order (pip install is this venv's).
        names = {  # the admin copies the course's configuration (with its course id) for root
            "/path/to/this/repository/nbgrader_config.py": str(course / "nbgrader_config.py"),
            "/srv/nbgrader/exchange": str(exchange),
            "/etc/jupyter/numpy-memory-students": str(student_etc),
            "--course-id numpy-memory": f"--course-id {course_id}",
            "/path/to/this/repository": str(REPO),
            "/etc/autograder/nbgrader_config.py": str(config_copy),
        }
        for command in readme_commands("The hub admin")[1:]:
            for readme, here in names.items():
                command = command.replace(readme, here)
            subprocess.run(command, shell=True, check=True, capture_output=True,
                           env={"PATH": f"{VENV_BIN}:/usr/bin:/bin"})  # fmt: skip
        ports = (free_port(), free_port(), free_port())
        config = base / "jupyterhub_config.py"
        socket_path = base / "run" / "grading.sock"
        hub_names = {
            '"instructor": "/home/instructor/course"': f'"{instructor.name}": "{course}"',
            "/etc/jupyter/numpy-memory-students": str(student_etc),
            "/run/autograder/grading.sock": str(socket_path),
            "/etc/autograder/nbgrader_config.py": str(config_copy),
        }
        config.write_text(_hub_config(base, ports, set(passwords), hub_names))
        runner = Runner(base / "stash")
        log = base / "jupyterhub.log"
        with log.open("w") as output:
            hub = subprocess.Popen(
                runner.reach([str(VENV_BIN / "jupyterhub"), "-f", str(config)]),
                cwd=base,
                env={"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{ports[0]}"
        _wait_for(f"{url}/hub/login", hub, log, 120)
        sleeper, victim = instructors_process(runner, instructor, base)
        yield RealHub(
            url, base, runner, instructor, (users[1], users[2]), passwords, course, exchange,
            student_etc, course_id, socket_path, log, victim,
        )  # fmt: skip
    finally:
        if sleeper is not None:
            sleeper.kill()  # runuser; the sleep itself goes with the instructor's user
            sleeper.wait()
        if hub is not None:
            hub.terminate()  # JupyterHub stops the users' servers, the service and the proxy
            try:
                hub.wait(60)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait()
        with contextlib.suppress(OSError, ValueError):
            proxy = int((base / "proxy.pid").read_text())
            subprocess.run(["kill", str(proxy)], capture_output=True)


def instructors_process(
    runner: Runner, instructor: UnixUser, cwd: Path
) -> tuple[subprocess.Popen, psutil.Process]:
    """A process of the instructor's (``sleep``), for a student's code to go after."""
    started = subprocess.Popen(runner.command(instructor, ["sleep", "3600"], {}), cwd=cwd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["uids", "name"]):
            if process.info["uids"].real == instructor.uid and process.info["name"] == "sleep":
                return started, process
        time.sleep(0.2)
    raise AssertionError("the instructor's sleep did not start")


class Shots:
    """Screenshots, each with the time it was taken since the test began."""

    def __init__(self, folder: Path, steps: Steps) -> None:
        self.folder, self.steps = folder, steps

    def take(self, page, name: str, what: str) -> None:
        page.screenshot(path=self.folder / name)
        self.steps.done(f"{what} [screenshot {name}]")


def log_in(browser, hub: RealHub, user: UnixUser):
    """A fresh browser context, through the hub's login page; returns the page, in Lab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").fill(user.name)
    page.locator("#password_input").fill(hub.passwords[user.name])
    page.locator("#login_submit").click()
    page.wait_for_url(f"**/user/{user.name}/lab**", timeout=300_000)
    page.get_by_role("menuitem", name="Nbgrader", exact=True).wait_for(timeout=120_000)
    return page


def open_from_nbgrader_menu(page, label: str) -> list[str]:
    """Open ``label`` from the Nbgrader menu; returns the labels the menu showed. (The menu
    keeps an entry per nbgrader command; those of disabled plugins have no command behind
    them, so Lumino does not render them.)"""
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    menu = page.locator("#jp-mainmenu-nbgrader")
    menu.wait_for()
    shown = menu.locator(".lm-Menu-item").evaluate_all(
        "items => items.filter(item => item.checkVisibility()).map(item => item.innerText.trim())"
    )
    menu.get_by_text(label, exact=True).click()
    return shown


def test_a_course_on_a_real_hub(real_hub: RealHub, browser, artifacts: Path, tmp_path: Path):
    hub, steps = real_hub, Steps()
    shots = Shots(artifacts, steps)
    student, other = hub.students
    instructor_commands = readme_commands("The instructor")

    def instructor(command: str) -> str:
        env = {"AUTOGRADER_GRADING_SOCKET": str(hub.socket)}  # where this test's service listens
        return hub.runner.ok(hub.instructor, command.split(), cwd=hub.course, env=env, timeout=900)

    # 1. The instructor's set-up and release, README's first commands, as the instructor.
    assert instructor_commands[:2] == [
        "autograder hub instructor-config",
        "autograder release --exchange",
    ], instructor_commands
    for command in instructor_commands[:2]:
        instructor(command)
    steps.done("instructor: instructor-config, release --exchange")

    # 2. The student logs in through the hub's login page (PAM) and opens the Assignments tab.
    page = log_in(browser, hub, student)
    shots.take(page, "realhub-1-student-logged-in.png", f"{student.name} logged in, in Lab")
    # The students' configuration: of nbgrader's menu, only what a student uses.
    assert open_from_nbgrader_menu(page, "Assignment List") == ["Assignment List"]
    tab = page.locator(TAB)
    released = tab.locator("#released_assignments_list .list_item")
    released.first.wait_for(timeout=60_000)
    assert released.locator(".item_name").inner_text().strip() == ASSIGNMENT
    released.locator(".item_status button").click()  # Fetch
    fetched = tab.locator("#fetched_assignments_list > .list_item")
    fetched.first.wait_for(timeout=60_000)
    shots.take(page, "realhub-2-fetched.png", "fetched in the Assignments tab")

    # 3. Answers (the solved example), Validate the quiz, Submit.
    fill_in(student.home / ASSIGNMENT, answers([SOLVED], tmp_path), student)
    fetched.locator(".assignment-notebooks-link").click()
    quiz = fetched.locator(".nested_list_item").filter(has_text=QUIZ)
    quiz.locator("button", has_text="Validate").click()
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=180_000)
    message = dialog.locator("#validation-message").inner_text().strip()
    assert message == "Success! Your notebook passes all the tests.", message
    shots.take(page, "realhub-3-validated.png", f"validated the quiz: {message!r}")
    dialog.get_by_role("button", name="Ok").click()
    dialog.wait_for(state="detached")
    fetched.locator(OWN + ".item_status button", has_text="Submit").click()
    submitted = tab.locator("#submitted_assignments_list > .list_item")
    submitted.first.wait_for(timeout=60_000)
    stamp = submitted.locator(".nested_list_item .item_name").first.inner_text().strip()
    shots.take(page, "realhub-4-submitted.png", f"submitted at {stamp}")

    # 4. The second student, from a terminal: fetch, answer (wrong quiz answers, and a first
    #    answer that goes after a process of the instructor's), submit.
    env = hub.student_env()
    hub.runner.ok(other, ["nbgrader", "fetch_assignment", ASSIGNMENT], env=env)
    victim = hub.victim
    source = hub.course / "source" / ASSIGNMENT / f"{QUIZ}.ipynb"
    answered = answers([SOLVED, WRONG], tmp_path)
    answered["q1_answer"] = PROBE.format(victim=victim.pid, source=source)
    fill_in(other.home / ASSIGNMENT, answered, other)
    hub.runner.ok(other, ["nbgrader", "submit", ASSIGNMENT], env=env)
    steps.done(f"{other.name} fetched and submitted with nbgrader's commands")

    # 5. The instructor: collect, grade through the grading service, release feedback.
    assert instructor_commands[2:] == [
        "autograder collect",
        "autograder hub grade",
        "autograder feedback --exchange",
    ], instructor_commands
    collected = instructor(instructor_commands[2])
    assert f"{student.name}: submitted {stamp}" in collected, collected
    # Another user asking the service to grade the instructor's course is refused.
    refused = hub.runner.run(
        student, ["autograder", "--course-dir", str(hub.course), "hub", "grade"],
        env={"AUTOGRADER_GRADING_SOCKET": str(hub.socket)},
    )  # fmt: skip
    assert refused.returncode == 2 and f"{student.name} may not grade" in refused.stdout, refused
    graded = instructor(instructor_commands[3] + " --quiet")
    assert "each student kernel runs as a dedicated uid" in graded, graded
    assert "Not protected" not in graded
    # What the second student's code saw while it was graded: not the instructor's uid, and
    # nothing of the instructor's (the service copied the results back as the instructor's).
    quiz = hub.course / "autograded" / other.name / ASSIGNMENT / f"{QUIZ}.ipynb"
    assert quiz.stat().st_uid == hub.instructor.uid
    outputs = [o.get("text", "") for c in nbformat.read(quiz, as_version=4).cells
               if c.cell_type == "code" for o in c.outputs]  # fmt: skip
    (line,) = [text for text in outputs if text.startswith("PROBE ")]
    probe = json.loads(line.removeprefix("PROBE "))
    steps.done(f"kernel uid {probe['uid']}, instructor uid {hub.instructor.uid}: {probe}")
    assert probe["uid"] not in (hub.instructor.uid, 0), probe
    assert probe["signal"] in ("ProcessLookupError", "PermissionError"), probe
    assert probe["read its environment"] in ("FileNotFoundError", "PermissionError"), probe
    assert probe["read the course's source"] in ("FileNotFoundError", "PermissionError"), probe
    assert victim.is_running() and victim.status() != psutil.STATUS_ZOMBIE
    released_feedback = instructor(instructor_commands[4])
    assert "Released feedback to 2 students (8 pages" in released_feedback, released_feedback
    steps.done("instructor: collect, hub grade (the grading service), feedback --exchange")

    # 6. The student: Fetch Feedback, then "(view feedback)" opens the pages.
    tab.locator("#refresh_assignments_list").click()
    fetch_feedback = submitted.locator(OWN + ".item_status button", has_text="Fetch Feedback")
    fetch_feedback.wait_for(timeout=60_000)
    fetch_feedback.click()
    view = submitted.locator(".nested_list_item a", has_text="(view feedback)")
    view.wait_for(timeout=60_000)
    shots.take(page, "realhub-5-view-feedback.png", "the Assignments tab offers (view feedback)")
    view.click()
    listing = page.locator(".jp-DirListing-item", has_text=f"{QUIZ}.html")
    listing.wait_for(timeout=60_000)
    names = page.locator(".jp-DirListing-item .jp-DirListing-itemText").all_inner_texts()
    assert sorted(n.strip() for n in names) == sorted(
        f"{p.stem}.html" for p in (hub.course / "release" / ASSIGNMENT).glob("*.ipynb")
    ), names
    listing.dblclick()
    feedback = page.frame_locator("iframe").last
    feedback.get_by_text("Test cell", exact=False).first.wait_for(timeout=60_000)
    shots.take(page, "realhub-6-feedback-page.png", f"opened {QUIZ}.html from the folder")

    # 7. The instructor logs in: Formgrader lists the assignment and both submissions.
    page = log_in(browser, hub, hub.instructor)
    offered = open_from_nbgrader_menu(page, "Formgrader")
    assert {"Formgrader", "Assignment List"} <= set(offered), offered
    formgrader = page.frame_locator("iframe").last
    row = formgrader.locator("tr", has_text=ASSIGNMENT).first
    row.wait_for(timeout=120_000)
    shots.take(
        page, "realhub-7-formgrader.png", "Formgrader (a JupyterLab tab) lists the assignment"
    )
    row.get_by_role("link", name="2", exact=True).click()  # its number of submissions
    for user in hub.students:
        formgrader.locator("tr", has_text=user.name).first.wait_for(timeout=60_000)
    shots.take(page, "realhub-8-formgrader-submissions.png", "Formgrader: both submissions")
