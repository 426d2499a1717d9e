"""Root isolation (autograder.sandbox.namespaces): a dedicated uid, no network, hidden paths,
a read-only file system, a private /proc and /tmp; checked from inside the shared kernel."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest

from autograder.sandbox.namespaces import interpreter_paths, launch_plan
from autograder.sandbox.policy import DEFAULT_BASE_UID, Mode, Sandbox

from .kernels import root_only


@root_only
def test_the_kernel_runs_as_an_unprivileged_uid(kernel):
    ids = json.loads(
        kernel.ok("import os, json; print(json.dumps([os.getuid(), os.geteuid(), os.getgroups()]))")
    )
    assert ids[0] != 0 and ids[1] != 0 and ids[2] == []
    assert ids[0] == kernel.km.kernel_uid == DEFAULT_BASE_UID + kernel.km.slot
    # and its own Python, not a fallback standard library it could not read as that uid
    stdlib = kernel.ok("import json, os; print(os.path.realpath(json.__file__))").strip()
    assert stdlib.startswith(os.path.realpath(sys.base_prefix))


@root_only
def test_the_kernel_has_no_network(kernel):
    out = kernel.ok(
        "import socket, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2); print('connected')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, round(time.monotonic() - t, 2))\n"
        "print(sorted(n for _, n in socket.if_nameindex()))"
    )
    first, names = out.strip().splitlines()
    assert first.split()[0] != "connected" and float(first.split()[1]) < 1.0, out
    assert names == "['lo']"


@root_only
def test_hidden_paths_cannot_be_read(kernel, course):
    out = kernel.ok(
        "import os\n"
        f"for path in [{str(course / 'secret' / 'answers.txt')!r}, {str(course / 'gradebook.db')!r},\n"
        f"             {str(course / 'visible' / 'readable.txt')!r}]:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
        f"print(os.listdir({str(course / 'secret')!r}) if os.access({str(course / 'secret')!r}, os.R_OK) else 'no listing')"
    )
    assert "hidden" not in out, out
    lines = out.strip().splitlines()
    assert lines[0] in ("FileNotFoundError", "PermissionError")
    assert lines[1] == "PermissionError"
    assert lines[2] == "anyone may read this"  # the same kind of file, not hidden: readable
    assert lines[3] in ("[]", "no listing")


@root_only
def test_the_kernel_cannot_write_outside_its_working_dir(kernel, course):
    out = kernel.ok(
        "import os, sys\n"
        f"for d in [{str(course / 'outside')!r}, {str(course)!r}, sys.prefix, '/etc']:\n"
        "    try:\n"
        "        open(os.path.join(d, 'planted.txt'), 'w').write('x'); print('wrote', d)\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
        "open('result.txt', 'w').write('mine'); print(open('data.txt').read())"
    )
    assert "wrote" not in out, out
    assert out.strip().splitlines()[-1] == "the student's data"
    assert not (course / "outside" / "planted.txt").exists()
    # Its working dir is a copy of the folder, in its private dir: the folder is untouched.
    assert not (course / "work" / "result.txt").exists()


@root_only
def test_the_kernel_sees_only_its_own_processes_and_an_empty_tmp(kernel):
    out = kernel.ok(
        "import os\n"
        "print(len({int(p) for p in os.listdir('/proc') if p.isdigit()} - {os.getpid()}))\n"
        "print(os.listdir('/tmp'))"
    )
    others, tmp = out.strip().splitlines()
    assert int(others) < 5  # its own helper processes at most, not the host's
    # Empty, but for the way to the kernel's own Python when that lives under /tmp.
    kept = {
        Path(p).relative_to("/tmp").parts[0] for p in interpreter_paths() if p.startswith("/tmp/")
    }
    assert sorted(ast.literal_eval(tmp)) == sorted(kept)  # os.listdir's order is the disk's


# ------------------------------------------------------------- the plan itself
ROOT_MODE = Mode(True, "root")


def test_a_working_dir_inside_a_hidden_dir_is_covered_then_put_back(course):
    """The plan (built here, applied by the launcher) covers the hidden dir first and binds
    the working dir back on top: the kernel sees its folder and nothing beside it."""
    sandbox = Sandbox(hidden_paths=(course,))
    plan = launch_plan(
        sandbox,
        mode=ROOT_MODE,
        cwd=course / "work",
        private_dir=None,
        mask_file=None,
        uid=DEFAULT_BASE_UID,
    )
    ops = [tuple(op[:2]) for op in plan["ops"]]
    cover, put_back = ops.index(("mask", str(course))), ops.index(("bind", str(course / "work")))
    assert cover < put_back
    assert str(course / "work") in plan["writable"] and str(course) not in plan["writable"]
    assert plan["uid"] == DEFAULT_BASE_UID and plan["nnp"] is True


def test_the_working_dir_or_the_python_cannot_be_hidden(course):
    for hidden, cwd in ((course / "work", course / "work"), (Path(interpreter_paths()[0]), None)):
        with pytest.raises(ValueError, match="cannot hide"):
            launch_plan(
                Sandbox(hidden_paths=(hidden,)),
                mode=ROOT_MODE,
                cwd=cwd,
                private_dir=None,
                mask_file=None,
                uid=None,
            )
