"""nbgrader's configuration for this course: the repository root is the course directory.

Run nbgrader from the repository root, as an instructor would:
    nbgrader generate_assignment numpy_memory --force
    nbgrader autograde numpy_memory
    nbgrader generate_feedback numpy_memory
    nbgrader export

`autograder grade` loads this same file, so both paths run the same protected pipeline.
"""

from pathlib import Path

from autograder import defaults, pipeline
from autograder.sandbox.policy import hidden_from_students

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.db_url = f"sqlite:///{ROOT / 'gradebook.db'}"

# nbgrader's own steps, with ours where they must go (the order, and why: autograder.pipeline).
# The release says which assignment each notebook is and what its exercises are (autograder.exercises).
c.GenerateAssignment.preprocessors = pipeline.RELEASE_STEPS
c.Autograde.sanitize_preprocessors = pipeline.SANITIZE_STEPS
c.Autograde.autograde_preprocessors = pipeline.AUTOGRADE_STEPS
# A graded cell a student deleted is put back (and run), not silently scored 0.
c.OverwriteCells.add_missing_cells = True

# Time limits, enforced from outside the kernel (defaults: autograder.defaults; how: autograder.limits).
# Past a limit the cell is interrupted, and killed if it has not answered within the grace.
c.ProtectedExecute.timeout = defaults.CELL_TIMEOUT  # seconds per cell
c.ProtectedExecute.notebook_timeout = defaults.NOTEBOOK_TIMEOUT  # seconds per notebook
c.ProtectedExecute.student_timeout = defaults.STUDENT_TIMEOUT  # seconds per student, all notebooks
c.ProtectedExecute.interrupt_grace = defaults.INTERRUPT_GRACE  # seconds to answer an interrupt
# Limits on every student kernel (autograder.sandbox); as root it also runs as an
# unprivileged user with no network and cannot see the instructor's files.
# The kernel's arguments (and why): autograder.defaults.KERNEL_ARGUMENTS.
c.ProtectedExecute.extra_arguments = defaults.KERNEL_ARGUMENTS
c.SandboxedKernelManager.hidden_paths = hidden_from_students(ROOT)

# On a shared JupyterHub (README, "On a shared JupyterHub"; autograder.hub): the course id
# students see and the exchange folder assignments are released to and submitted into (a hub
# admin creates it: `autograder hub exchange PATH`). Set both to your hub's, and give students
# the same two with `autograder hub student-config`. nbgrader records a submission after the
# due date as late (AssignLatePenalties above); to score a late notebook 0, uncomment the last line.
c.CourseDirectory.course_id = defaults.HUB_COURSE_ID
c.Exchange.root = defaults.HUB_EXCHANGE_ROOT
# Collect a submission only from a folder its student owns (inbound/ is writable by everyone).
c.ExchangeFactory.collect = "autograder.hub.nbgrader_exchange.OwnedCollect"
# c.LateSubmissionPlugin.penalty_method = "zero"

# What students see (autograder.student): feedback never shows hidden tests (nbgrader's
# #917, #1363). Validate keeps nbgrader's own Execute (Validator.preprocessors is not
# configurable); `autograder check` runs the same visible tests under the grader's protections.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from autograder.student.redact import HideHiddenTests  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
