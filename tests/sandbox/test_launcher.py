"""The launcher script (autograder.sandbox.launcher), run as the kernel manager runs it."""

from __future__ import annotations

import ast
import json
import os
import resource
import subprocess
import sys

from autograder.sandbox.launcher import EXIT_FAILED
from autograder.sandbox.namespaces import LAUNCHER, launcher_command

from .kernels import ROOT

REPORT = (
    "import json, os, resource\n"
    "status = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
    "print(json.dumps([os.getpid(), os.getcwd(), resource.getrlimit(resource.RLIMIT_NOFILE),"
    " status['NoNewPrivs'].strip()]))"
)


def test_the_launcher_imports_only_the_standard_library():
    """Nothing from this package or site-packages: it runs with -I -S before the kernel."""
    tree = ast.parse(LAUNCHER.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import in the launcher"
            imported.add(node.module.split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names), imported - set(
        sys.stdlib_module_names
    )


def test_the_launcher_applies_the_plan_and_execs_the_kernel_in_place(tmp_path):
    plan = {"rlimits": [[resource.RLIMIT_NOFILE, 100, 100]], "nnp": True, "cwd": str(tmp_path)}
    proc = subprocess.Popen(
        launcher_command([sys.executable, "-I", "-c", REPORT], plan),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    pid, cwd, nofile, no_new_privs = json.loads(out)
    assert pid == proc.pid  # one process from launch to kernel: km.provisioner.pid stays true
    assert cwd == str(tmp_path) and nofile == [100, 100] and no_new_privs == "1"


def test_a_step_that_fails_stops_the_launch(tmp_path):
    plan = {"cwd": str(tmp_path / "missing"), "nnp": True}
    done = subprocess.run(
        launcher_command([sys.executable, "-c", "print('kernel ran')"], plan),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == EXIT_FAILED
    assert done.stdout == ""
    assert done.stderr.startswith("autograder sandbox: FileNotFoundError"), done.stderr


def test_modules_in_the_working_dir_or_pythonpath_do_not_replace_the_launchers(tmp_path):
    for name in ("json", "ctypes", "resource", "os", "socket"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit(99)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        launcher_command([sys.executable, "-I", "-c", "print('kernel ran')"], {"nnp": True}),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env,
    )
    assert (done.returncode, done.stdout) == (0, "kernel ran\n"), done.stderr


def test_the_kernel_can_read_and_run_the_launcher_inside_its_namespace(kernel):
    """As the kernel's own uid, inside its mount namespace: the script is where the plan
    says, readable, and a nested launch works (and grants nothing: uid 0 is refused)."""
    inner = [sys.executable, "-I", "-c", "import os, resource; print(os.getuid())\n" + REPORT]
    lower = launcher_command(inner, {"rlimits": [[resource.RLIMIT_NOFILE, 100, 100]]})
    escalate = launcher_command(inner, {"uid": 0})
    out = kernel.ok(
        "import json, os, subprocess\n"
        f"print(os.access({str(LAUNCHER)!r}, os.R_OK))\n"
        f"for argv in {json.dumps([lower, escalate])}:\n"
        "    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)\n"
        "    print(json.dumps([done.returncode, done.stdout, done.stderr]))"
    )
    readable, lowered, refused = out.strip().splitlines()
    assert readable == "True"
    code, stdout, stderr = json.loads(lowered)
    assert code == 0, stderr
    uid, report = stdout.strip().splitlines()
    assert int(uid) == (kernel.km.kernel_uid if ROOT else os.getuid())
    assert json.loads(report)[2] == [100, 100]
    code, stdout, stderr = json.loads(refused)
    assert code == EXIT_FAILED and stdout == "", stderr
    assert stderr.startswith("autograder sandbox: PermissionError"), stderr
