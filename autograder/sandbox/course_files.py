"""The course's files, out of a kernel's reach by their permissions alone.

A kernel with a dedicated uid has no group and owns nothing of the course, so only the
"others" bits of a course file decide what it can do with it. :func:`seal` takes them off
each path the kernel must not see (the sandbox's ``hidden_paths``: ``source/``,
``release/``, the gradebook, ``submitted/``, ``autograded/``, the report, a platform's
copy): a directory without ``o+x`` cannot be entered, so one ``chmod`` of its top keeps out
everything under it, whatever the files inside allow. This holds where the mount namespace
that also hides those paths is not allowed (a container with Docker's default profile), and
behind it where it is.

It changes the modes of the instructor's own folders (``0755`` becomes ``0750``): they stay
readable by their owner and group, and nothing of the course is meant for other users of a
grading machine. The kernel works in a copy of its notebook's folder in its private dir
(:mod:`.kernel_manager`), so it never needs a path through them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from autograder.sandbox.policy import SandboxUnavailable

OTHERS = stat.S_IRWXO


def seal(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Take every permission of "others" off each existing path (symlinks followed to what
    they name); the paths changed. Raises SandboxUnavailable when a path cannot be sealed."""
    changed = []
    for path in paths:
        target = os.path.realpath(os.fspath(path))
        try:
            st = os.stat(target)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise SandboxUnavailable(f"cannot check the permissions of {target}: {error}") from None
        mode = stat.S_IMODE(st.st_mode)
        if not mode & OTHERS:
            continue
        try:
            os.chmod(target, mode & ~OTHERS)
        except OSError as error:  # a read-only mount: nothing to write through it, but reads
            raise SandboxUnavailable(
                f"{target} is readable by any user and its permissions cannot be changed "
                f"({error}); make it unreadable to others (chmod o-rwx) before grading"
            ) from None
        changed.append(target)
    return changed
