"""Run every student kernel contained: resource limits, a clean environment, and (as root)
a dedicated uid with no network, hidden instructor files and a read-only file system; the
same for every kernel of a run, or the kernel is not started.

nbgrader runs kernels through :class:`SandboxedKernelManager`
(``c.Execute.kernel_manager_class = "autograder.sandbox.SandboxedKernelManager"``); each
one is started by a small launcher script that applies the sandbox, then execs the kernel.
One module per concern:

* :mod:`.policy`: what a kernel is allowed (rlimits, environment, what to hide);
* :mod:`.capabilities`: the run's protection, decided once by a check no student can
  disturb, and the line that says so;
* :mod:`.course_files`: the course's files unreadable to a kernel's uid by their permissions;
* :mod:`.namespaces`: the plan the launcher carries out (mounts, kept interpreter paths);
* :mod:`.launcher`: the script itself, standard library only;
* :mod:`.slots`: one slot (and uid) per concurrent kernel, locked machine-wide;
* :mod:`.cleanup`: the kernel's working copy, and killing what it left (its own uid only);
* :mod:`.kernel_manager`: the jupyter_client adapters.
"""

from __future__ import annotations

from autograder.sandbox.kernel_client import PromptKernelClient
from autograder.sandbox.kernel_manager import SandboxedKernelManager
from autograder.sandbox.policy import SandboxUnavailable

__all__ = ["PromptKernelClient", "SandboxUnavailable", "SandboxedKernelManager"]
