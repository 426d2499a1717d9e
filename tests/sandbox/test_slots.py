"""Slots (autograder.sandbox.slots): one per concurrent kernel, across processes."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys

import pytest

from autograder.sandbox import SandboxUnavailable
from autograder.sandbox.slots import acquire_slot, runtime_root


def test_concurrent_kernels_get_different_slots(tmp_path):
    root = runtime_root(tmp_path)
    first, fd = acquire_slot(root, 4)
    try:
        second, fd2 = acquire_slot(root, 4)  # another manager in this process
        os.close(fd2)
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "from autograder.sandbox.slots import acquire_slot\n"
                f"import pathlib; print(acquire_slot(pathlib.Path({str(root)!r}), 4)[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert second != first and int(other.stdout) != first
    finally:
        os.close(fd)
    assert stat.S_IMODE(root.stat().st_mode) in (0o700, 0o711)  # others cannot list it


def test_a_slot_in_use_is_refused_and_free_again_once_released(tmp_path):
    root = runtime_root(tmp_path)
    slot, fd = acquire_slot(root, 1)
    with pytest.raises(SandboxUnavailable, match="in use"):
        acquire_slot(root, 1)
    os.close(fd)
    again, fd = acquire_slot(root, 1, wanted=slot)
    os.close(fd)
    assert again == slot


def test_a_uid_is_locked_for_the_whole_machine_whatever_the_runtime_dir(tmp_path):
    """Two runs with different runtime dirs (two course copies, other settings) still never
    hold the same uid: its lock is named by the uid, in one directory for the machine."""
    first = runtime_root(tmp_path / "a")
    second = runtime_root(tmp_path / "b")
    base = 3_000_000 + 8 * random.randrange(100_000)  # uids no grading run on this machine uses
    slot, fd = acquire_slot(first, 4, base_uid=base)
    try:
        other, fd2 = acquire_slot(second, 4, base_uid=base)
        os.close(fd2)
        assert other != slot
        shifted, fd3 = acquire_slot(second, 4, base_uid=base + slot)  # same uid, other base
        os.close(fd3)
        assert base + slot + shifted != base + slot
    finally:
        os.close(fd)
