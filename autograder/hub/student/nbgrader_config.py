"""nbgrader for the students of the NumPy memory course on a shared JupyterHub.

Written by `autograder hub student-config` into a Jupyter configuration folder every
student's server reads (README, "On a shared JupyterHub"). It tells the Assignments tab and
`nbgrader fetch_assignment` / `submit` / `fetch_feedback` which course to use and where the
exchange is. An instructor's course directory has its own nbgrader_config.py, read after this one.
"""

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

# `autograder hub student-config --course-id ... --exchange ...` rewrites these two lines.
c.CourseDirectory.course_id = "numpy-memory"
c.Exchange.root = "/srv/nbgrader/exchange"

# Submit as nbgrader does, then close the submission to other students (nbgrader leaves it
# 0777 in the shared inbound/): autograder.hub.exchange, "submissions nobody else can change".
c.ExchangeFactory.submit = "autograder.hub.nbgrader_exchange.PrivateSubmit"
