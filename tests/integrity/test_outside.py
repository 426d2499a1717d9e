"""What the grading process reads from outside the kernel (autograder.integrity.outside)."""

from __future__ import annotations

import subprocess
import time

import psutil

from autograder.integrity.outside import tree_rss


def test_the_tree_rss_is_the_kernels_and_everything_it_started():
    """The same figure psutil gives (each process's resident memory, summed over the tree),
    from one pass over /proc; None for a process that is gone."""
    shell = subprocess.Popen(["bash", "-c", "sleep 60 & (sleep 60 & wait) & wait"])
    try:
        process = psutil.Process(shell.pid)
        deadline = time.monotonic() + 10
        while len(process.children(recursive=True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = [process, *process.children(recursive=True)]
        assert len(tree) == 4  # bash, sleep, a subshell and its sleep
        expected = sum(p.memory_info().rss for p in tree)
        assert tree_rss(shell.pid) == expected
        assert tree_rss(tree[-1].pid) == tree[-1].memory_info().rss  # a leaf: itself only
    finally:
        for p in psutil.Process(shell.pid).children(recursive=True):
            p.kill()
        shell.kill()
        shell.wait()
    assert tree_rss(shell.pid) is None and tree_rss(None) is None
