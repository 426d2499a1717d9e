"""The main job (`autograder demo`) stops as `autograder grade` does: a scheduler's or a
terminal's SIGTERM ends it within seconds with one paragraph saying what was graded, and
leaves nothing it started, not a process and not a file in the temporary directory."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.demo.examples import Example, load_examples

from ..conftest import ASSIGNMENT, copy_course
from ..grading import stopped_run

pytestmark = pytest.mark.slow


def _write_examples(folder: Path, examples: list[Example]) -> Path:
    """The examples as the demo reads them: one TOML file each."""
    folder.mkdir()
    for example in examples:
        cells = "\n".join(f"{key} = {json.dumps(src)}" for key, src in example.cells.items())
        (folder / f"{example.name}.toml").write_text(
            f"description = {json.dumps(example.description)}\n"
            f"notebooks = {json.dumps(list(example.notebooks))}\n\n[cells]\n{cells}\n"
        )
    assert [e.name for e in load_examples(folder)] == sorted(e.name for e in examples)
    return folder


def test_sigterm_stops_the_demo_cleanly(tmp_path, short_tmp):
    course = Course(copy_course(tmp_path / "course"), assignment=ASSIGNMENT)
    sandbox = stopped_run.own_sandbox(course)
    asleep = stopped_run.sleepers("passes-quiz-demo", 5)
    examples = _write_examples(tmp_path / "examples", asleep)
    options = ["--examples", str(examples), "--workers", "2"]
    run = stopped_run.Run(
        course, tmp_path / "demo" / "report", sandbox, options, demo=True, temporary=short_tmp
    )
    process = run.start()
    run.wait_until_recorded(process, 1)
    stopped = run.stop(process, signal.SIGTERM)
    again = "The demo starts from a clean workspace: run it again to grade every example."
    stopped_run.check_stopped_cleanly(run, stopped, len(asleep), signal.SIGTERM, again)
    assert not list(short_tmp.iterdir())  # multiprocessing's folder (the fork server's socket)
