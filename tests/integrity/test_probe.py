"""The probe: its one line, its reply, its fingerprint, and what it sees in a live kernel."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator

import pytest
from jupyter_client.manager import start_new_kernel

from autograder.integrity import probe
from autograder.integrity.evidence import Evidence
from autograder.integrity.kernel.watch import FULL_MODULES, KERNEL_MODULES
from autograder.integrity.probe import new_nonce, probe_code, read_probe
from tests.conftest import CellRun, Kernel, collect_into

# --------------------------------------------------------------------------------------
# The probe's line and its reply
# --------------------------------------------------------------------------------------


def test_read_probe_parses_replies_and_rejects_forgeries() -> None:
    nonce = "a1b2c3d4e5f6"
    assert read_probe(f"hello\nAUTOGRADER-PROBE {nonce} []\n", nonce, "ex1_freed_test") == []
    failed = read_probe(f'AUTOGRADER-PROBE {nonce} ["x was changed", "y"]\n', nonce, "c")
    assert [(e.flag, e.cell) for e in failed] == [("probe-failed", "c"), ("probe-failed", "c")]
    for text in (
        "",
        "AUTOGRADER-PROBE 000000000000 []\n",  # an old reply, printed by the student
        f"AUTOGRADER-PROBE {nonce} []\nAUTOGRADER-PROBE {nonce} []\n",
        f"AUTOGRADER-PROBE {nonce} not json\n",
        f"AUTOGRADER-PROBE {nonce} {{}}\n",
        f"prefix AUTOGRADER-PROBE {nonce} []\n",
    ):
        assert [e.flag for e in read_probe(text, nonce, "c")] == ["probe-no-reply"], text


def test_probe_code_is_one_small_statement() -> None:

    code = probe_code("abcdef123456")
    tree = ast.parse(code)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.If)  # nothing is displayed
    assert len(code) < 300  # IPython takes ~4 ms per KB of cell when tracemalloc runs
    assert probe.fingerprint_digest() in code
    with pytest.raises(ValueError):
        probe_code("bad nonce; import os")


def test_fingerprint_watches_the_checks_numpy_and_ipython() -> None:
    fingerprint = probe.fingerprint()
    for key in (
        "autograder.checks:assert_freed",
        "autograder.checks.memory:numpy_bytes",
        "autograder.checks.references:find_holders",
        "autograder.checks.messages:CheckFailed",
        "autograder.checks.sizes:largest_holders",
        "numpy:ones",
        "numpy:allclose",
        "numpy.random:default_rng",
        "builtins:isinstance",
        "tracemalloc:take_snapshot",
        "gc:callbacks",
        "psutil:Process.memory_info",
        "ipykernel.zmqshell:ZMQInteractiveShell.run_cell",
        "ipykernel.ipkernel:IPythonKernel.do_execute",
    ):
        assert key in fingerprint, key
    assert fingerprint["autograder.checks:assert_freed"].startswith(
        "function autograder.checks.assert_freed "
    )

    for module in KERNEL_MODULES:  # the probe's own code, watched whole
        assert module in FULL_MODULES
        assert f"{module}:*names" in fingerprint, module
    assert fingerprint["autograder.integrity.kernel.entry:_kernel_probe"].startswith("function ")


def test_the_kernel_side_imports_nothing_of_the_grading_side() -> None:
    """The kernel imports only autograder.integrity.kernel (and the rules' tables): no
    nbformat, no static read, no IPython input transformer at import time."""
    code = (
        "import sys\n"
        "import autograder.integrity.kernel.entry\n"
        "print(sorted(m for m in sys.modules if m.startswith(('nbformat', 'nbgrader', "
        "'autograder.integrity.static', 'autograder.integrity.cells', "
        "'autograder.integrity.probe', 'IPython'))))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]", found


# --------------------------------------------------------------------------------------
# In a live kernel: one kernel for the module, each scenario undoing what it did
# --------------------------------------------------------------------------------------


class ProbedKernel(Kernel):
    def probe(self, cell: str) -> list[Evidence]:
        """Run the probe as the executor does (no history, nothing displayed)."""
        nonce = new_nonce()
        run = CellRun()
        self.client.execute_interactive(
            probe_code(nonce), store_history=False, output_hook=collect_into(run), timeout=60
        )
        assert run.stderr == "" and run.error is None, (run.stderr, run.error)
        return read_probe(run.stdout, nonce, cell)


@pytest.fixture(scope="module")
def probed() -> Iterator[ProbedKernel]:
    """A kernel whose first probe ran before anything else, as the executor runs it."""
    manager, client = start_new_kernel(kernel_name="python3")
    kernel = ProbedKernel(manager, client)
    try:
        assert kernel.probe("kernel start") == []
        yield kernel
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_probe_sees_the_probe_itself_patched(probed: ProbedKernel) -> None:
    """Its private functions need no list: every module of its kernel side is watched whole."""
    probed.ok(
        "import autograder.integrity.kernel.interpreter as _inside\n"
        "_saved = _inside.check_trace_hooks\n"
        "_inside.check_trace_hooks = lambda add: None"
    )
    patched = probed.probe("after the patch")
    probed.ok("_inside.check_trace_hooks = _saved\ndel _inside, _saved")
    assert [e.flag for e in patched] == ["probe-failed"]
    assert "autograder.integrity.kernel.interpreter.check_trace_hooks" in patched[0].detail
    assert probed.probe("after the undo") == []


def test_probe_sees_threads_and_the_event_loop(probed: ProbedKernel) -> None:
    """A thread or a callback started to patch later: never a pass."""
    probed.ok(
        "import threading\n"
        "import sys\n_timer = threading.Timer(600, setattr, (sys, 'ps9', '> '))\n"
        "_timer.daemon = True\n"
        "_timer.start()"
    )
    timer = probed.probe("after a timer")
    probed.ok("_timer.cancel()\n_timer.join()\ndel _timer")
    ended = probed.probe("after the timer ended")
    probed.ok(
        "import asyncio, sys\n"
        "_later = asyncio.get_running_loop().call_later(600, setattr, sys, 'ps9', '> ')"
    )
    later = probed.probe("after call_later")
    probed.ok("_later.cancel()\ndel _later")
    cancelled = probed.probe("after the callback was cancelled")
    assert [e.flag for e in timer] == ["probe-failed"] and "thread" in timer[0].detail
    assert ended == [] and cancelled == []
    assert [e.flag for e in later] == ["probe-failed"] and "event loop" in later[0].detail


def test_probe_sees_a_replaced_print_and_swallowed_output(probed: ProbedKernel) -> None:
    """Runs last: it leaves the kernel's output broken."""
    probed.ok("import builtins\n_print = builtins.print\nbuiltins.print = lambda *a, **k: None")
    after_print = probed.probe("after print")
    probed.ok("builtins.print = _print")
    probed.run("import io, sys\nsys.stdout = io.StringIO()")
    after_stdout = probed.probe("after stdout")
    probed.run("import sys\nsys.stdout = sys.__stdout__")
    terminal = probed.probe("stdout to the terminal")
    assert after_print and {e.flag for e in after_print} == {"probe-failed"}
    assert any("builtins.print" in e.detail for e in after_print)
    assert [e.flag for e in after_stdout] == ["probe-no-reply"]
    assert [e.flag for e in terminal] == ["probe-no-reply"]
