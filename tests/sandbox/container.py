"""Run a command as root the way a platform's container runs it: without CAP_SYS_ADMIN (so
no namespace and no mount, as under Docker's default profile), and with ``--no-setuid``
also without the right to change uid.

    unshare --mount --propagation private -- python container.py [--no-setuid] -- CMD...

Containers keep their Python where any uid can run it (``/usr``); this machine's may live
under ``/root`` (mode 0700). So first, in this private mount namespace, each directory that
keeps "others" from the interpreter is covered by a tmpfs any uid can enter, and the
interpreter's own folders are bound back under it. Then the capabilities are dropped for
good (bounding and inheritable sets, through util-linux's ``setpriv``) and CMD is run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from autograder.sandbox.namespaces import _first_unsearchable, interpreter_paths, under


def make_interpreter_reachable() -> None:
    keeps = list(interpreter_paths())
    blocked = sorted({b for p in keeps if (b := _first_unsearchable(p)) and b != "/"})
    for cover in blocked:
        inside = [p for p in keeps if under(p, cover)]
        saved = tempfile.mkdtemp(prefix="container-keep-")
        for index, path in enumerate(inside):
            os.mkdir(f"{saved}/{index}")
            subprocess.run(["mount", "--bind", path, f"{saved}/{index}"], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", cover], check=True)
        for index, path in enumerate(inside):
            os.makedirs(path, mode=0o755, exist_ok=True)
            subprocess.run(["mount", "--bind", f"{saved}/{index}", path], check=True)
        # The binds under the tmpfs stand on their own: the saved ones (and their folders in
        # the host's /tmp) are not needed any more.
        for index in range(len(inside)):
            subprocess.run(["umount", f"{saved}/{index}"], check=True)
            os.rmdir(f"{saved}/{index}")
        os.rmdir(saved)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    make_interpreter_reachable()
    drop = ["sys_admin"] + (["setuid", "setgid"] if "--no-setuid" in options else [])
    caps = ",".join(f"-{cap}" for cap in drop)
    os.execvp("setpriv", ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *command])


if __name__ == "__main__":
    main(sys.argv[1:])
