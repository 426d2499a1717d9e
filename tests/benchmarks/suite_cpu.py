"""Where the test suite's CPU goes: a pytest plugin that records each test's CPU time with
everything it started, and a report of it by module.

The suite is CPU-bound (both cores busy ~92% of a run), so a test's wall time says little
about what it costs: a test that waits on a time limit is cheap, a fixture that grades a
corpus on two workers is dear. Each pytest process (each xdist worker) makes itself the
subreaper of what it starts (:func:`tests.benchmarks.cpu_time.adopt_orphans`), so the kernels
and workers of a run, and whatever a command-line run leaves behind, reach its
``RUSAGE_CHILDREN`` when they end; after each test it reaps the orphans it adopted and writes
one line: the test, its wall time, its own CPU and its descendants'.

    .venv/bin/python -m pytest -p tests.benchmarks.suite_cpu    # records (from the repository)
    .venv/bin/python tests/benchmarks/suite_cpu.py              # the report

Records go to ``$SUITE_CPU_DIR`` (default ``/tmp/suite-cpu``); remove it between runs. What
this does not see: a process that outlives the session (its CPU goes to the test that reaps
its parent), and CPU a forked worker used before a later test reaped it (the fork server of
in-process runs lives as long as its pytest worker). Being the subreaper changes one thing
the tests can see: an orphan waits as a zombie of the pytest process until the end of its
test instead of being reaped by init at once, so a test that counts a uid's processes right
after a kill may fail under this plugin (run D of tests/sandbox/test_hostile_runs.py did).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from multiprocessing import popen_fork
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # run as a script

from tests.benchmarks.cpu_time import adopt_orphans, self_and_children_cpu_seconds  # noqa: E402

RECORDS = Path(os.environ.get("SUITE_CPU_DIR", "/tmp/suite-cpu"))


def _owned_pids() -> set[int]:
    """Children some live Popen object (subprocess's or multiprocessing's) will wait for:
    their exit status is their owner's, not this plugin's."""
    kinds = (subprocess.Popen, popen_fork.Popen)
    return {o.pid for o in gc.get_objects() if isinstance(o, kinds) and o.pid}


def reap_orphans() -> None:
    """Wait for the zombies among this process's children that no Popen object owns.

    Not ``cpu_time.reap_adopted``, which waits for every child it was not told of: here a
    module fixture's server is a child that outlives its test, and is not waited for."""
    owned = _owned_pids()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.pid not in owned and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


def pytest_configure(config: pytest.Config) -> None:
    adopt_orphans()
    RECORDS.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    config._suite_cpu_file = (RECORDS / f"{worker}-{os.getpid()}.jsonl").open("a")  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    config._suite_cpu_file.close()  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    started = time.monotonic()
    own, children = self_and_children_cpu_seconds()
    yield
    reap_orphans()
    own_after, children_after = self_and_children_cpu_seconds()
    line = {
        "test": item.nodeid,
        "wall": round(time.monotonic() - started, 3),
        "self": round(own_after - own, 3),
        "children": round(children_after - children, 3),
    }
    out = item.config._suite_cpu_file  # type: ignore[attr-defined]
    out.write(json.dumps(line) + "\n")
    out.flush()


# -- the report ------------------------------------------------------------------------------


def by_module(records: list[dict[str, Any]]) -> list[tuple[str, int, float, float]]:
    """(module, tests, wall s, CPU s) per test module, the dearest first."""
    modules: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for record in records:
        row = modules[record["test"].split("::", 1)[0]]
        row[0] += 1
        row[1] += record["wall"]
        row[2] += record["self"] + record["children"]
    rows = [(module, int(n), wall, cpu) for module, (n, wall, cpu) in modules.items()]
    return sorted(rows, key=lambda row: -row[3])


def report(records: list[dict[str, Any]], top: int) -> list[str]:
    rows = by_module(records)
    cpu = sum(row[3] for row in rows)
    lines = [
        f"{len(records)} tests: {cpu:.0f} CPU s in {sum(row[2] for row in rows):.0f} s of test time",
        "",
        "| module | tests | test time s | CPU s | share |",
        "| --- | --- | --- | --- | --- |",
    ]
    for module, n, wall, module_cpu in rows[:top]:
        lines.append(f"| {module} | {n} | {wall:.1f} | {module_cpu:.1f} | {module_cpu / cpu:.0%} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--top", type=int, default=25, help="modules shown (default 25)")
    args = parser.parse_args(argv)
    records = [
        json.loads(line)
        for path in sorted(args.records.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    if not records:
        print(
            f"No records in {args.records}: run the suite with -p tests.benchmarks.suite_cpu first."
        )
        return 1
    print("\n".join(report(records, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
