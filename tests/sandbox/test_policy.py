"""What a kernel is allowed (autograder.sandbox.policy), checked from inside a real kernel."""

from __future__ import annotations

import json
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

from autograder import defaults
from autograder.sandbox.policy import THREAD_VARS, hidden_from_students

from .kernels import ROOT, GiB


def test_an_over_size_allocation_is_a_memory_error_and_the_kernel_goes_on(kernel):
    kernel.ok("import numpy as np")
    big = kernel.run("a = np.ones(2 * 2**30 // 8)")  # 2 GiB against a 1 GiB limit
    assert big.error is not None and big.error.startswith("MemoryError"), big.error
    assert kernel.ok("b = np.ones(100 * 2**20 // 8); print(b.nbytes)").strip() == str(100 * 2**20)


def test_the_limits_are_set_in_the_kernel(kernel):
    limits = json.loads(
        kernel.ok(
            "import resource, json\n"
            "print(json.dumps({n: resource.getrlimit(getattr(resource, n)) for n in\n"
            "  ['RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_CORE', 'RLIMIT_NPROC']}))"
        )
    )
    assert limits["RLIMIT_AS"] == [GiB, GiB]
    assert limits["RLIMIT_CPU"][0] == 120
    assert limits["RLIMIT_FSIZE"] == [64 * 2**20] * 2
    assert limits["RLIMIT_NOFILE"] == [defaults.MAX_OPEN_FILES] * 2
    assert limits["RLIMIT_CORE"] == [0, 0]
    if ROOT:
        assert limits["RLIMIT_NPROC"] == [defaults.MAX_PROCESSES] * 2
    too_big = kernel.run("open('big.bin', 'wb').write(b'x' * (65 * 2**20))")
    assert too_big.error is not None and "File too large" in too_big.error, too_big.error
    kernel.ok("import os; os.remove('big.bin')")


def test_blas_threads_are_pinned_and_malloc_returns_memory(kernel):
    env = json.loads(kernel.ok("import os, json; print(json.dumps(dict(os.environ)))"))
    for name in THREAD_VARS:
        assert env.get(name) == "1", name
    assert env.get("MALLOC_MMAP_THRESHOLD_") == "131072"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    home = Path(env["HOME"])
    assert home == kernel.km.private_dir / "home"
    assert Path(env["IPYTHONDIR"]).is_relative_to(home)
    assert Path(env["MPLCONFIGDIR"]).is_relative_to(home)
    assert "SANDBOX_TEST_SECRET" not in env  # the grader's environment is not passed on
    assert kernel.ok("import numpy, autograder; print('imported')").strip() == "imported"


def test_the_course_configuration_hides_the_instructors_side(repo):
    """nbgrader_config.py wires hidden_from_students into every sandboxed kernel."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(repo)).load_config()
    hidden = config.SandboxedKernelManager.hidden_paths
    assert hidden == hidden_from_students(repo)
    for name in ("source", "gradebook.db", "submitted", "tests", defaults.REPORT_DIR):
        assert str(repo / name) in hidden, name
    report = Path("/elsewhere/report")
    assert hidden_from_students(repo, report)[-1] == str(report)
