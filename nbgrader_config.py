"""nbgrader's configuration for this course: the repository root is the course directory.

Run nbgrader from the repository root, as an instructor would:
    nbgrader generate_assignment numpy_memory --force
    nbgrader autograde numpy_memory
    nbgrader generate_feedback numpy_memory
    nbgrader export
"""

from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.db_url = f"sqlite:///{ROOT / 'gradebook.db'}"

# Student notebooks are executed with the kernel of the Python that runs nbgrader,
# so `import autograder` in the notebooks finds this package.
c.Execute.timeout = 60
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
