"""The whole hostile corpus graded the way an attacker would want it graded (issue 18).

One module fixture starts, at the same time on this machine, as root:

* run A: a copy of the course with every hostile example (``tests/examples/hostile/`` and
  this folder's ``attacks/``: wrecking and reading the course's files, 300 forks, 8 GiB, a
  loop that ignores SIGINT, a thread that re-patches the checks) and three honest students,
  graded by ``autograder grade --workers 2``. Each example's golden result is checked here
  (tests/conftest.py's shared run grades only the few hostile examples its readers need);
* run B, its hostile neighbour: a second copy with the attacks that reach past their own
  kernel (the course's files, processes, memory), graded the same way at the same time; the
  two runs share the machine's uids, as two courses on one grading server do. A's honest
  students are graded beside B's attacks. (What acts inside its own kernel only, the cheats
  of ``tests/examples/hostile/`` and the thread that re-patches the checks, A grades; the
  sandbox's level changes nothing for them);
* run C: a third copy with the attacks but that thread, graded in a container's conditions
  (no CAP_SYS_ADMIN, so no namespaces: ``container.py``), where only permissions keep the
  kernels out of the course, and the loop that ignores SIGINT is killed without a process
  namespace;
* run D: a fork bomb and a memory bomb in slot 0 of a uid range of their own, then an honest
  student in the same slot, on one worker;
* run F: a container that does not even let root change uid: nothing may be graded;
* run G: a course whose kernels can never get their sandbox (their runtime dir belongs to
  someone else): every notebook is "not graded";
* a student's ``autograder check`` beside them.

Then run E, the control: the wrecking and reading examples graded with
``--sandbox=limits-only``, which really wreck and read their course, so the instruments
below (file hashes, a canary's content and access time) are shown to see an attack.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.course import Course
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.staging import largest_first
from autograder.release import release
from autograder.sandbox.policy import SandboxUnavailable
from autograder.sandbox.slots import acquire_slot
from tests.examples import EXAMPLES

from ..conftest import ASSIGNMENT, copy_course
from .kernels import root_only

pytestmark = [pytest.mark.slow, root_only]

ATTACKS = Path(__file__).with_name("attacks")
ATTACKING = load_examples(ATTACKS)  # files, processes, memory, signals, a thread in the kernel
HOSTILE = load_examples(EXAMPLES / "hostile") + ATTACKING
BY_NAME = {e.name: e for e in HOSTILE + load_examples(EXAMPLES / "submissions")}
HONEST = [BY_NAME[name] for name in ("passes-all", "blank", "fails-ex2-view-keeps-base")]
BOMBS = [BY_NAME["cheat-forks-300-processes"], BY_NAME["cheat-allocates-8-gib"]]
AFTER_BOMBS = BY_NAME["fails-ex2-view-keeps-base"]
IN_ITS_KERNEL = ("cheat-thread-repatches-checks",)  # the same under any sandbox: A grades it
PAST_ITS_KERNEL = [e for e in ATTACKING if e.name not in IN_ITS_KERNEL]
# The loop that ignores SIGINT only sleeps: its kill is A's (namespaces) and C's (none) to show.
NEIGHBOUR = [e for e in PAST_ITS_KERNEL if e.name != "cheat-ignores-interrupts"]
SANDBOXED_RUNS = {"A": HOSTILE + HONEST, "B": NEIGHBOUR}  # graded at the same time
CONTROL = [
    BY_NAME["cheat-wrecks-course-files"],
    BY_NAME["cheat-reads-source-notebooks"],
]  # read first
EXERCISES = "04_exercises_free_and_budget_memory"
QUIZ = "02_quiz_what_del_frees"
TESTS_ROOT = Path("/var/lib/autograder-sandbox-tests")  # not /tmp: kernels see their own
BOMB_BASE_UID = 64000  # run D's own uid range: its slot 0 is free whatever else runs
KERNEL_UIDS = [*range(61990, 62100), *range(63990, 64100)]
# Not in source/numpy_memory/: nbgrader's autograde copies the files beside the source notebooks
# (the assignment's data) into every student's graded folder, which the kernel works in.
CANARY_DIRS = ("source", "release", "submitted", "autograded")
UNCHANGED = ("source", "release", "submitted", "nbgrader_config.py")
GRADE = [sys.executable, "-m", "autograder"]
RUN_TIMEOUT = 840


@dataclass
class Run:
    name: str
    root: Path
    canary: str
    before: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)  # canary -> access time set
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    after: dict[str, str] = field(default_factory=dict)
    accessed: dict[str, float] = field(default_factory=dict)

    @property
    def report(self) -> dict:
        return json.loads((self.root / "grading-report" / ASSIGNMENT / "report.json").read_text())

    def students(self) -> dict[str, dict]:
        return {s["student"]: s for s in self.report["students"]}

    def output(self, student: str, grade_id: str, notebook: str = EXERCISES) -> str:
        path = self.root / "autograded" / student / "numpy_memory" / f"{notebook}.ipynb"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                return "".join(o.get("text", "") for o in cell.outputs)
        raise KeyError(grade_id)


def _fingerprint(root: Path) -> dict[str, str]:
    """A digest of every course file a grading run must never change (and of the gradebook's
    definition of the assignment: its cells, hidden tests included)."""
    found = {}
    for name in UNCHANGED:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            found[str(file.relative_to(root))] = hashlib.sha256(file.read_bytes()).hexdigest()
    try:
        with sqlite3.connect(f"file:{root / 'gradebook.db'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT name, source FROM source_cell ORDER BY name").fetchall()
    except sqlite3.DatabaseError as error:  # emptied by an attack
        rows = [str(error)]
    found["gradebook.db: source cells"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return found


def _course(
    template: Path,
    run: Run,
    students: list[Example],
    config: str = "",
    target: bool = False,
    sealed: bool = False,
) -> None:
    """A copy of the released course, its files as an instructor's umask leaves them
    (readable by anyone) unless ``sealed`` (as a course graded before is left), a canary in
    each folder a kernel must not read, and, when it is a ``target``, the marker the attack
    examples look for (they touch nothing else)."""
    shutil.copytree(template, run.root)
    course = Course(run.root)
    for example in students:
        write_submission(example, course)
    for folder in CANARY_DIRS:
        (run.root / folder).mkdir(parents=True, exist_ok=True)
        canary = run.root / folder / ".canary"
        canary.write_text(f"CANARY {run.canary}\n")
    if target:
        (run.root / ".hostile-test-target").touch()
    if config:
        with (run.root / "nbgrader_config.py").open("a") as file:
            file.write(config)
    for path in [run.root, *run.root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    if sealed:
        for name in ("source", "release", "submitted", "autograded", "gradebook.db"):
            os.chmod(run.root / name, 0o750 if (run.root / name).is_dir() else 0o640)
    run.before = _fingerprint(run.root)  # reads the canaries: before their access times are set
    old = time.time() - 3 * 24 * 3600  # relatime updates an access time older than a day
    for folder in CANARY_DIRS:
        os.utime(run.root / folder / ".canary", (old, old))
        run.stamps[folder] = os.stat(run.root / folder / ".canary").st_atime


def _start(run: Run, *options: str, wrap: list[str] | None = None) -> subprocess.Popen:
    command = [*GRADE, "--course-dir", str(run.root), "grade", "--quiet", *options]
    return subprocess.Popen(
        [*(wrap or []), *command], cwd=run.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _announced(run: Run, process: subprocess.Popen) -> None:
    """Wait for the run's first line: its sandbox is decided, and its course sealed."""
    assert process.stdout is not None
    run.stdout = process.stdout.readline().decode()


def _container(*options: str) -> list[str]:
    script = str(Path(__file__).with_name("container.py"))
    unshare = ["unshare", "--mount", "--propagation", "private", "--"]
    return [*unshare, sys.executable, script, *options, "--"]


def _finish(run: Run, process: subprocess.Popen) -> None:
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    run.returncode = process.returncode
    run.stdout, run.stderr = run.stdout + stdout.decode(), stderr.decode()
    for folder in CANARY_DIRS:  # before the fingerprint, which reads them
        run.accessed[folder] = os.stat(run.root / folder / ".canary").st_atime
    run.after = _fingerprint(run.root)


@dataclass
class Runs:
    runs: dict[str, Run]
    check: subprocess.CompletedProcess
    stolen: dict[str, str]  # files the kernels left in the host's /tmp -> their content
    control_stolen: dict[str, str]  # the same, from the control run
    leftovers: list[str]  # processes of a kernel or check uid alive after every run ended


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    base = TESTS_ROOT / uuid.uuid4().hex[:8]
    base.mkdir(parents=True)
    os.chmod(TESTS_ROOT, 0o755)
    os.chmod(base, 0o755)
    started = time.time()
    try:
        yield _grade_everything(base, tmp_path_factory.mktemp("template"), started)
    finally:
        if not os.environ.get("AUTOGRADER_KEEP_HOSTILE_RUNS"):  # set it to read them after
            shutil.rmtree(base, ignore_errors=True)
        for path in Path("/tmp").glob("stolen-*.txt"):
            if path.stat().st_mtime >= started:
                path.unlink(missing_ok=True)


def _grade_everything(base: Path, template_parent: Path, started: float) -> Runs:
    template = copy_course(template_parent / "course")
    release(Course(template))
    runs = {name: Run(name, base / name, secrets.token_hex(12)) for name in "ABCDEFG"}
    # A and B as courses graded before (sealed); C as the instructor left it, world-readable:
    # its run seals it before any kernel starts, and starts first, so that no other run's
    # attacks see it unsealed. Courses that are no target carry no marker.
    for name, students in SANDBOXED_RUNS.items():
        _course(template, runs[name], students, target=True, sealed=True)
    _course(template, runs["C"], [*PAST_ITS_KERNEL, BY_NAME["passes-all"]], target=True)
    bombs_config = f"\nc.SandboxedKernelManager.base_uid = {BOMB_BASE_UID}\n"
    _course(template, runs["D"], [*BOMBS, AFTER_BOMBS], bombs_config)
    _course(template, runs["F"], [BY_NAME["passes-all"]])
    foreign = base / "someone-elses-runtime-dir"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    _course(
        template,
        runs["G"],
        [BY_NAME["passes-all"]],
        f"\nc.SandboxedKernelManager.runtime_root = {str(foreign)!r}\n",
    )
    student = base / "student"
    student.mkdir()
    shutil.copy(template / "source" / "numpy_memory" / f"{QUIZ}.ipynb", student)

    timing = ("--cell-timeout", "10")
    processes = {"C": _start(runs["C"], "--workers", "2", *timing, wrap=_container())}
    _announced(runs["C"], processes["C"])
    processes |= {
        "A": _start(runs["A"], "--workers", "2", *timing),
        "B": _start(runs["B"], "--workers", "2", *timing),
        "D": _start(runs["D"], "--workers", "1", *timing),
        "F": _start(runs["F"], "--workers", "1", wrap=_container("--no-setuid")),
        "G": _start(runs["G"], "--workers", "1"),
    }
    check = subprocess.run(
        [*GRADE, "check", f"{QUIZ}.ipynb"], cwd=student, capture_output=True, text=True, timeout=600
    )
    for name, process in processes.items():
        _finish(runs[name], process)
    stolen = _stolen(started)
    leftovers = _orphans_of(KERNEL_UIDS)
    # The control, last: as root with limits only, its attacks reach every course that
    # carries the marker, so the others lose theirs first (and were measured already).
    for name in "ABC":
        (runs[name].root / ".hostile-test-target").unlink()
    _course(template, runs["E"], CONTROL, target=True)
    # The reader first, then the wrecker: graded at once, the wrecker's empty gradebook could
    # stop the run before the reader's kernel started, and nothing would be read.
    for attack in reversed(CONTROL):
        options = ("--workers", "1", "--sandbox=limits-only", "--student", attack.name)
        _finish(runs["E"], _start(runs["E"], *options))
    control = {path: text for path, text in _stolen(started).items() if path not in stolen}
    return Runs(runs, check, stolen, control, leftovers)


def _orphans_of(uids: list[int]) -> list[str]:
    """Processes of these uids that no run owns: a run holds a uid's machine-wide lock while a
    kernel (or its clean-up) uses it, so a process still alive while this test holds that lock
    was left behind. Another run grading on this machine at the same time is not counted."""
    found = [
        p
        for p in psutil.process_iter(["uids", "name"])
        if p.info["uids"] and p.info["uids"].real in uids
    ]
    orphans = []
    for process in found:
        uid = process.info["uids"].real
        try:  # the uid's own lock, as a run takes it (slot 0 of a base uid of uid)
            _, lock = acquire_slot(Path("/nonexistent"), 1, wanted=0, base_uid=uid)
        except SandboxUnavailable:  # a live run's kernel: its run will clean it up
            continue
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                orphans.append(
                    f"{process.pid} {process.info['name']} uid {process.info['uids'].real}"
                )
        except psutil.NoSuchProcess:
            pass
        finally:
            os.close(lock)
    return orphans


def _stolen(since: float) -> dict[str, str]:
    """What the reading attack left in the host's /tmp (where a kernel's /tmp is the host's)."""
    return {
        str(path): path.read_text(errors="replace")
        for path in Path("/tmp").glob("stolen-*.txt")
        if path.stat().st_mtime >= since
    }


# -- the two runs at once, fully sandboxed -----------------------------------------------------


def _ran(notebook: dict) -> bool:
    """A kernel ran it (not a notebook left out, nor a lesson, which has nothing to grade)."""
    return notebook["status"] != "ungradable" and notebook["max_score"] > 0


@pytest.mark.parametrize("name", SANDBOXED_RUNS)
def test_every_notebook_of_both_runs_was_fully_sandboxed(runs: Runs, name: str) -> None:
    run = runs.runs[name]
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.stdout.splitlines()[0]
    assert first.startswith("Sandbox fully applied: student kernels run as a dedicated uid")
    assert run.report["sandbox"]["level"] == "full"
    notebooks = [n for s in run.report["students"] for n in s["notebooks"] if _ran(n)]
    assert len(notebooks) >= len(SANDBOXED_RUNS[name])
    for notebook in notebooks:
        assert notebook["sandbox_level"] == "full", notebook
        assert notebook["sandbox"].startswith("Sandbox fully applied: student kernels run as uid")
    table = run.stdout.splitlines()
    rows = [line for line in table if line.split() and line.split()[0] in run.students()]
    assert rows and all(row.rstrip().endswith("full") for row in rows), rows


@pytest.mark.parametrize("name", ["A", "B", "C", "D"])
def test_no_course_file_changed_and_no_kernel_read_one(runs: Runs, name: str) -> None:
    run = runs.runs[name]
    assert run.after == run.before
    assert run.accessed == run.stamps  # no canary was opened: its access time stayed
    for student in run.students():
        for path in (run.root / "autograded" / student).rglob("*.ipynb"):
            assert run.canary not in path.read_text(), path
    assert not any(run.canary in text for text in runs.stolen.values())
    assert run.canary not in (run.root / "grading-report" / ASSIGNMENT / "report.json").read_text()


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_the_attacks_reached_nothing(runs: Runs, name: str) -> None:
    run = runs.runs[name]
    wrecked = run.output("cheat-wrecks-course-files", "ex7_convert")
    assert wrecked.startswith("wrecked 0 course files, refused "), wrecked
    assert int(wrecked.split()[-2]) > 0  # it did find the courses, and was refused
    assert run.output("cheat-reads-source-notebooks", "ex7_convert") == "read 0 course files\n"
    forked = run.output("cheat-forks-300-processes", "ex7_convert")
    assert 0 < int(forked.split()[1]) < 64, forked  # the uid's process limit held


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_every_example_keeps_its_golden_result(runs: Runs, name: str) -> None:
    students = runs.runs[name].students()
    submitted = (runs.runs[name].root / "submitted").iterdir()
    assert students.keys() == {p.name for p in submitted if not p.name.startswith(".")}
    wrong = {}
    for example in [e for e in HOSTILE + HONEST if e.name in students]:
        report = students[example.name]
        submitted = [
            n
            for n in report["notebooks"]
            if n["cells"] and (not example.notebooks or n["notebook"] in example.notebooks)
        ]
        problems = [
            f"{cell['grade_id']}: {cell['score']} ({cell['status']}: {cell['message'][:80]})"
            for notebook in submitted
            for cell in notebook["cells"]
            if cell["score"] != example.expected_score(cell["grade_id"], cell["max_score"])
        ]
        statuses = {n["status"] for n in submitted}
        if example.status not in statuses:
            problems.append(f"status {sorted(statuses)}, expected {example.status}")
        flags = {flag for n in submitted for flag in n["flags"]}
        if not set(example.flags) <= flags or (flags and not example.flags):
            problems.append(f"flags {sorted(flags)}, expected {list(example.flags)}")
        if not all(e["detail"] for n in submitted for e in n["evidence"]):
            problems.append("evidence without a detail for the instructor")
        if problems:
            wrong[example.name] = problems
    assert wrong == {}


def test_a_students_check_beside_the_runs_was_sandboxed_too(runs: Runs) -> None:
    assert runs.check.returncode == 0, runs.check.stdout + runs.check.stderr


def test_nothing_of_any_kernel_or_check_outlived_the_runs(runs: Runs) -> None:
    assert runs.leftovers == []


# -- the container's case: no namespaces ------------------------------------------------------


def test_without_namespaces_the_uid_and_the_permissions_still_apply(runs: Runs) -> None:
    run = runs.runs["C"]
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.stdout.splitlines()[0]
    assert first.startswith("Sandbox uid-only (all this machine allows)"), first
    assert "this machine does not allow namespaces" in first
    notebooks = [n for s in run.report["students"] for n in s["notebooks"] if _ran(n)]
    assert notebooks and all(n["sandbox_level"] == "uid-only" for n in notebooks)
    for folder in ("source", "release", "submitted", "autograded", "grading-report"):
        assert (run.root / folder).stat().st_mode & 0o007 == 0, folder  # sealed
    assert (run.root / "gradebook.db").stat().st_mode & 0o007 == 0


# -- bombs in slot 0, then an honest student ----------------------------------------------------


def test_bombs_in_slot_0_cost_the_honest_student_after_them_nothing(runs: Runs) -> None:
    run = runs.runs["D"]
    assert run.returncode == 0, run.stderr[-3000:]
    sizes = {
        e.name: sum(p.stat().st_size for p in (run.root / "submitted" / e.name).rglob("*.ipynb"))
        for e in [*BOMBS, AFTER_BOMBS]
    }
    assert largest_first(sizes)[-1] == AFTER_BOMBS.name  # graded last, on the one worker
    students = run.students()
    for example in [*BOMBS, AFTER_BOMBS]:
        notebook = next(
            n for n in students[example.name]["notebooks"] if n["notebook"] == EXERCISES
        )
        assert f"run as uid {BOMB_BASE_UID}," in notebook["sandbox"]  # slot 0, each time
        assert notebook["status"] == example.status, notebook["reason"]
        for cell in notebook["cells"]:
            assert cell["score"] == example.expected_score(cell["grade_id"], cell["max_score"])
    assert "forked" in run.output(BOMBS[0].name, "ex7_convert")


# -- when the sandbox cannot be applied --------------------------------------------------------


def test_a_machine_that_allows_no_uid_of_their_own_grades_nothing(runs: Runs) -> None:
    run = runs.runs["F"]
    assert run.returncode == 3
    assert "Nothing was graded: the sandbox cannot be applied here: a student kernel" in run.stderr
    assert "--sandbox=limits-only" in run.stderr
    assert not (run.root / "autograded" / "passes-all").exists()
    assert not (run.root / "grading-report" / ASSIGNMENT / "report.json").exists()
    assert run.after == run.before


def test_kernels_that_cannot_get_their_sandbox_are_not_graded_and_said_so(runs: Runs) -> None:
    run = runs.runs["G"]
    assert run.returncode == 3, run.stderr[-2000:]
    assert "Sandbox fully applied" in run.stdout.splitlines()[0]  # the machine allows it
    assert "NOT GRADED: 2 notebooks of 1 student" in run.stderr
    assert "passes-all / 04_exercises_free_and_budget_memory: sandbox unavailable:" in run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("passes-all"))
    assert "not graded" in row and row.rstrip().endswith("NOT APPLIED"), row
    report = run.students()["passes-all"]
    graded = [n for n in report["notebooks"] if n["cells"]]
    assert graded and all(n["status"] == "not graded" for n in graded)
    assert all(c["score"] == 0 and c["status"] == "not run" for n in graded for c in n["cells"])
    assert not (run.root / "grading-report" / ASSIGNMENT / "students" / "passes-all.json").exists()
    assert not any((run.root / "autograded").rglob("*.ipynb"))  # no code of it ran


# -- the control: with the sandbox lowered, the same attacks work ------------------------------


def test_the_control_run_shows_the_attacks_and_the_instruments_work(runs: Runs) -> None:
    """Lowered by choice, the same attacks wreck and read the course: the gradebook they empty
    even stops the run (its report cannot be made), exactly what the sandbox prevents."""
    run = runs.runs["E"]
    first = run.stdout.splitlines()[0]
    assert first.startswith("Sandbox lowered by the instructor (--sandbox=limits-only)"), first
    assert run.after != run.before  # the course was wrecked
    assert run.accessed != run.stamps  # its canaries were read
    assert any(run.canary in text for text in runs.control_stolen.values())  # and copied out
