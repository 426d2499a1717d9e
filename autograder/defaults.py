"""Every default and limit of a grading run, in one place.

``nbgrader_config.py``, the command line and the Python API all read their defaults from
here; each option's help says what it does, this file says what it is set to and why.
Time limits are enforced from outside the kernel (:mod:`autograder.limits` says how);
the resource limits are the kernel's rlimits (:mod:`autograder.sandbox`).
"""

from __future__ import annotations

MiB = 2**20
GiB = 2**30

# -- time: enforced by the grading process, from outside the kernel -----------------------
CELL_TIMEOUT = 60  # seconds a cell may run
NOTEBOOK_TIMEOUT = 600  # seconds a notebook may run, kernel start to kill
# Seconds all of one student's notebooks may run together: two notebooks at their limit.
STUDENT_TIMEOUT = 1200
# Seconds an interrupted kernel has to answer before it is killed. Answering means raising
# KeyboardInterrupt and formatting its traceback: milliseconds for a loop in the student's
# own cell, but 2 to 5 s on a loaded 2-core machine for a wait inside threading.py with
# tracemalloc on (the assignment's set-up cell starts it). Killing a kernel that was about
# to answer costs the student the rest of the notebook, so the grace is generous.
INTERRUPT_GRACE = 10.0
# Seconds the kernel has to answer the grader's integrity probe (a few ms when it is idle).
PROBE_TIMEOUT = 10.0
# Seconds a kernel has to start and answer its first request, counted in the notebook's time.
# About 1.5 s on an idle machine, under 10 s on a loaded one; past this limit something is
# wrong with the machine (not the notebook, which has not run yet): the kernel is killed and
# the notebook is graded again by the next run.
KERNEL_STARTUP_TIMEOUT = 60
# The kernel's CPU rlimit is derived, never set: the notebook limit plus the grace plus this
# margin, times the machine's cores (threads can use them all at once), so that a long
# notebook ends as "timed out", not as "kernel died".
CPU_MARGIN = 30
# The largest CPU rlimit the sandbox sets: a limit beyond a day is a typo, not a plan.
MAX_CPU_SECONDS = 24 * 3600

# For the worst-case bound: seconds a grading run spends outside the notebooks' own runs
# (which the limits count, kernel start to kill): starting the workers, staging, the report,
# and nbgrader's steps around each notebook (sanitizing, saving grades). Grading 10 students
# of 2 notebooks on 2 cores (tests/benchmarks/bounded_run.py) spent 12 s in all there when the
# machine was idle, 32 s at a load average of 6; the allowance below is 70 s for that run.
RUN_OVERHEAD = 20.0
NOTEBOOK_OVERHEAD = 5.0

# -- the student's kernel ----------------------------------------------------------------------
# Its arguments, when graded and when a student checks: no history file; not the notebook's
# folder on sys.path (a submitted autograder/ folder must not shadow the package); plain
# tracebacks (IPython's default analyses every frame's source file with stack_data, which
# under tracemalloc took 5 s for one failed check, 0.04 s plain).
KERNEL_ARGUMENTS = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.ignore_cwd=True",
    "--InteractiveShell.xmode=Plain",
]
# Its rlimits, set by the sandbox's launcher.
# Address space: the exercises' largest array is 200 MiB, with its temporaries well under 1 GiB;
# NumPy, IPython and matplotlib map about 1 GiB of address space they never touch.
MEMORY_BYTES = 3 * GiB
MAX_PROCESSES = 64  # only with a dedicated uid (as root): RLIMIT_NPROC counts per user
MAX_FILE_BYTES = 512 * MiB
MAX_OPEN_FILES = 256

# -- the kernel's protection (autograder.sandbox.capabilities) ---------------------------------
# What an instructor may ask for (`autograder grade --sandbox`): "auto" is all the machine
# allows (as root at least a uid of the kernel's own, or nothing is graded); the others are
# that level or nothing ("uid-only" and "limits-only" are less than a root host allows, by
# choice, and say so before the run and in every row).
SANDBOX_CHOICES = ("auto", "full", "uid-only", "limits-only")

# -- what one notebook may be, and leave in its graded copy --------------------------------
MAX_NOTEBOOK_BYTES = 20 * MiB  # a submitted notebook larger than this is not graded
MAX_OUTPUT_BYTES = 2 * MiB  # past this, outputs are dropped (errors and stderr are kept)

# -- evidence read from outside the kernel -------------------------------------------------
RSS_DROP_FRACTION = 0.5  # a freed array's size that RSS should fall by (an observation only)
RSS_PEAK_ALLOWANCE = 32 * MiB  # peak RSS over an assert_peak_below budget that flags a cell

# -- where a run writes ---------------------------------------------------------------------
REPORT_DIR = "grading-report"  # under the course root, unless --report says otherwise

# -- on a shared JupyterHub (autograder.hub) --------------------------------------------------
HUB_COURSE_ID = "numpy-memory"  # the course students see in the Assignments tab
# nbgrader's own default is /usr/local/share/nbgrader/exchange; /srv is where a hub keeps data.
HUB_EXCHANGE_ROOT = "/srv/nbgrader/exchange"
# The grading service a hub admin runs as root (autograder.hub.grading_service): its socket.
HUB_GRADING_SOCKET = "/run/autograder/grading.sock"
