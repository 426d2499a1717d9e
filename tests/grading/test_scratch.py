"""The folders a cluster worker keeps: removed when used up, and, when the worker was killed,
by the next sweep; never while a live process holds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading import scratch

HOLD = """
import sys, time
from pathlib import Path
from autograder.grading.scratch import Scratch
print(Scratch(sys.argv[1], Path(sys.argv[2])).path, flush=True)
time.sleep(120)
"""


def _held_by_another_process(kind: str, parent: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, kind, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


@pytest.mark.parametrize("kind", scratch.KINDS)
def test_a_folder_in_use_is_kept_and_one_a_killed_process_left_is_swept(tmp_path, kind):
    process, folder = _held_by_another_process(kind, tmp_path)
    try:
        (folder / "solutions.ipynb").write_text("{}")
        assert folder.name.startswith(f"autograder-{kind}-")
        assert scratch.sweep(tmp_path) == []
        assert (folder / "solutions.ipynb").exists()
    finally:
        process.kill()  # SIGKILL: nothing of the process's own runs
        process.wait()
        process.stdout.close()
    assert folder.exists()  # what a killed worker leaves
    assert scratch.sweep(tmp_path) == [folder]
    assert not folder.exists()


def test_a_scratch_folder_is_gone_after_its_block_and_held_during_it(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with scratch.scratch_folder("task") as folder:
        (folder / "gradebook.db").write_text("")
        assert not scratch.left_behind(folder)
        assert scratch.sweep() == []
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_leaves_other_folders_alone(tmp_path):
    staging = tmp_path / f"{scratch.STAGING}abcd1234"  # made, not yet locked and renamed
    unrelated = tmp_path / "autograder-wheel-abcd1234"
    for folder in (staging, unrelated):
        folder.mkdir()
    link = tmp_path / "autograder-task-link"
    link.symlink_to(unrelated)
    made = {staging, unrelated, link}
    if os.geteuid() == 0:  # another user's folder, left behind or not, is theirs to remove
        theirs = tmp_path / "autograder-course-theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        made.add(theirs)
    assert scratch.sweep(tmp_path) == []
    assert set(tmp_path.iterdir()) == made
