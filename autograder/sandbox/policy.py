"""What a student kernel is allowed: its rlimits, its environment, what it must not see.

* Limits (all modes): address space (RLIMIT_AS: an over-size NumPy allocation raises a
  catchable ``MemoryError``), CPU seconds, file size, open files, no core dumps; the
  process count (RLIMIT_NPROC) only with a dedicated uid, because the kernel counts it
  per real uid (set on the grader's own uid it would count, and break on, all of the
  grader user's threads). Defaults: :mod:`autograder.defaults`.
* Environment (all modes): a short allow-list of the grader's variables (PATH, PYTHONPATH,
  locale, ``JPY_*``, ``NBGRADER_*``, ``AUTOGRADER_*``, ...; no tokens or credentials),
  BLAS/OpenMP threads pinned to 1 and ``MALLOC_ARENA_MAX=2`` (RLIMIT_AS counts virtual
  memory: glibc's per-thread arenas alone reserve ~600 MiB in an idle kernel here),
  ``MALLOC_MMAP_THRESHOLD_=131072`` (a freed large array leaves RSS, which the grader
  measures from outside), and HOME, IPYTHONDIR, MPLCONFIGDIR, JUPYTER_*, XDG_*, TMPDIR in
  the kernel's own private directory (not the notebook's folder, so that nbgrader's
  autograded folder stays clean; the directory is deleted after the kernel).
* What to hide: :func:`hidden_from_students` (a course directory's instructor side).

How much of the rest applies (a dedicated uid, namespaces) depends on the machine and the
instructor's choice: :mod:`autograder.sandbox.capabilities` decides it once per run.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from autograder import defaults
from autograder.defaults import GiB, MiB
from autograder.limits import TimeLimits

TOKEN_VAR = "AUTOGRADER_SANDBOX_TOKEN"  # in every kernel's environment: finds its orphans

# Names of the grader's environment variables a kernel may see (plus these prefixes).
ENV_ALLOWED = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONWARNINGS",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "SOURCE_DATE_EPOCH",
    }
)
ENV_ALLOWED_PREFIXES = ("LC_", "JPY_", "NBGRADER_", "AUTOGRADER_")

THREAD_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
)

# Kernels run as 62000 + slot, the sandbox's checks as 61996-61999. (Before uids were locked
# machine-wide, kernels ran from 61000 with per-directory slot locks: a new range keeps an
# older grader still running on the same machine from sharing uids it does not lock.)
DEFAULT_BASE_UID = 62000


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be applied on this system."""


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = defaults.MEMORY_BYTES
    # A last line behind the wall-clock limits the grader enforces (autograder.limits).
    cpu_seconds: int = TimeLimits().cpu_seconds
    max_processes: int = defaults.MAX_PROCESSES
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_open_files: int = defaults.MAX_OPEN_FILES

    def rlimits(self, *, dedicated_uid: bool) -> list[tuple[int, int, int]]:
        """(resource, soft, hard) for the launcher. NPROC only with a dedicated uid."""
        limits = [
            (resource.RLIMIT_AS, self.memory_bytes, self.memory_bytes),
            # SIGXCPU at the soft limit (kills the kernel), SIGKILL one second later.
            (resource.RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1),
            # Python ignores SIGXFSZ: an over-size write raises OSError(EFBIG).
            (resource.RLIMIT_FSIZE, self.max_file_bytes, self.max_file_bytes),
            (resource.RLIMIT_NOFILE, self.max_open_files, self.max_open_files),
            (resource.RLIMIT_CORE, 0, 0),  # SIGXCPU would otherwise dump core in the cwd
        ]
        if dedicated_uid:
            limits.append((resource.RLIMIT_NPROC, self.max_processes, self.max_processes))
        return limits

    def summary(self, *, dedicated_uid: bool) -> str:
        parts = [
            f"address space {_size(self.memory_bytes)}",
            f"CPU {self.cpu_seconds} s",
        ]
        if dedicated_uid:
            parts.append(f"{self.max_processes} processes")
        parts += [f"files {_size(self.max_file_bytes)}", f"{self.max_open_files} open files"]
        return ", ".join(parts)


@dataclass(frozen=True)
class Mode:
    """What a kernel gets (a level of :data:`capabilities.LEVELS`, with what it lacks)."""

    dedicated_uid: bool  # the kernel runs as base_uid + slot
    namespaces: str | None  # "root", "user" (unprivileged user namespace) or None
    missing: tuple[str, ...] = ()  # what is not applied, each with its reason

    @property
    def isolated(self) -> bool:
        return self.namespaces is not None


@dataclass(frozen=True)
class Sandbox:
    """What is asked for one kernel; :mod:`capabilities` says how much of it applies here."""

    limits: Limits = Limits()
    hidden_paths: tuple[Path, ...] = ()
    base_uid: int = DEFAULT_BASE_UID  # kernels run as base_uid + slot, checks just below it

    def __post_init__(self) -> None:
        paths = (
            (self.hidden_paths,) if isinstance(self.hidden_paths, str | Path) else self.hidden_paths
        )
        object.__setattr__(self, "hidden_paths", tuple(Path(p) for p in paths))
        if not 1000 <= self.base_uid < 2**31 - 4096:
            raise ValueError(f"base_uid must be a uid from 1000 on, not {self.base_uid}")

    def uid_for(self, slot: int) -> int:
        return self.base_uid + slot

    def kernel_env(
        self,
        base: Mapping[str, str],
        private_dir: Path,
        token: str,
        passthrough: Iterable[str] = (),
        slot: int = 0,
    ) -> dict[str, str]:
        """The kernel's environment: an allow-list of ``base`` plus the sandbox's settings."""
        keep = ENV_ALLOWED | set(passthrough)
        env = {k: v for k, v in base.items() if k in keep or k.startswith(ENV_ALLOWED_PREFIXES)}
        env.update(forced_env(private_dir, token, slot))
        return env


def allowed_env(base: Mapping[str, str]) -> dict[str, str]:
    """Only the allow-listed names of ``base`` (no prefixes): for helper processes."""
    return {k: v for k, v in base.items() if k in ENV_ALLOWED}


def forced_env(private_dir: Path, token: str, slot: int = 0) -> dict[str, str]:
    """What every kernel gets whatever its kernelspec says: applied after the kernelspec's env."""
    home = private_dir / "home"
    env = dict.fromkeys(THREAD_VARS, "1")
    env.update(
        {
            "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "HOME": str(home),
            "IPYTHONDIR": str(home / ".ipython"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
            "TMPDIR": str(private_dir / "tmp"),
            "USER": f"student{slot}",
            "LOGNAME": f"student{slot}",
            TOKEN_VAR: token,
        }
    )
    return env


def per_kernel_names(env: Mapping[str, str]) -> set[str]:
    """The names of ``env`` a kernel gets for itself (its private dir, token, slot; the
    grader's ``JPY_``, ``NBGRADER_`` and ``AUTOGRADER_`` settings of the moment; PATH, read
    only when it runs a program): everything else is read as a process starts."""
    one, other = forced_env(Path("/a"), "a", 0), forced_env(Path("/b"), "b", 1)
    names = {name for name in one if one[name] != other[name]} | {"PATH"}
    return names | {name for name in env if name.startswith(("JPY_", "NBGRADER_", "AUTOGRADER_"))}


def startup_env(env: Mapping[str, str]) -> dict[str, str]:
    """What of a kernel's environment a process reads as it starts and imports (the
    allocator's, BLAS's, Python's and the locale's settings): the fork server starts with
    it, and serves only kernels whose environment has the same (see :mod:`.forked`)."""
    per_kernel = per_kernel_names(env)
    return {name: value for name, value in env.items() if name not in per_kernel}


def hidden_from_students(root: Path, *extra: Path) -> list[str]:
    """What a student kernel must not see, read or change of a course directory: the
    instructor's notebooks (also in .git), the released ones, the gradebook, everyone's
    submissions and graded copies, the tests (solutions), and the grading reports."""
    names = [
        "source",
        "release",
        ".git",
        "gradebook.db",
        "submitted",
        "autograded",
        "feedback",
        "tests",
        defaults.REPORT_DIR,
        "grading-demo",
    ]
    return [str(root / name) for name in names] + [str(path) for path in extra]
