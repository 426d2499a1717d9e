"""The suite's CPU recorder (tests/benchmarks/suite_cpu.py), on a two-test suite of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.benchmarks import suite_cpu

REPO = Path(__file__).resolve().parents[2]

# One test leaves behind a process that burns 0.5 s of CPU after its parent exits (as a
# command-line run's fork server and workers do); the other does nothing.
SUITE = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path

    BURN = (
        "import time, pathlib, sys\\n"
        "end = time.process_time() + 0.5\\n"
        "while time.process_time() < end: pass\\n"
        "pathlib.Path(sys.argv[1]).write_text('done')\\n"
    )

    def test_leaves_a_busy_orphan(tmp_path):
        done = tmp_path / "done"
        parent = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])"
        subprocess.run([sys.executable, "-c", parent, BURN, str(done)], check=True)
        while not done.exists():
            time.sleep(0.02)
        time.sleep(0.3)  # it exits: a zombie until the recorder reaps it

    def test_idle():
        pass
    """
)


def test_a_tests_orphans_cpu_is_recorded_as_that_tests(tmp_path: Path) -> None:
    (tmp_path / "test_two.py").write_text(SUITE)
    records = tmp_path / "records"
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SUITE_CPU_DIR": str(records),
    }
    plugin = "tests.benchmarks.suite_cpu"
    command = [sys.executable, "-m", "pytest", "-p", plugin, "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "--rootdir", str(tmp_path), str(tmp_path / "test_two.py")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [
        json.loads(line)
        for path in records.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    by_test = {line["test"].split("::")[-1]: line for line in lines}
    assert set(by_test) == {"test_leaves_a_busy_orphan", "test_idle"}
    assert by_test["test_leaves_a_busy_orphan"]["children"] >= 0.45  # the orphan's 0.5 s
    assert by_test["test_idle"]["children"] < 0.1
    table = suite_cpu.report(lines, top=5)
    assert table[0].startswith("2 tests: ")
    assert table[-1].startswith("| test_two.py | 2 | ")
