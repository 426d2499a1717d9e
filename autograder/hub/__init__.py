"""The course on a shared JupyterHub, through nbgrader's exchange (README, "On a shared JupyterHub").

* :mod:`autograder.hub.exchange`: the exchange folder a hub admin creates, and its checks;
* :mod:`autograder.hub.student_config`: the configuration students' servers load (shipped in
  ``autograder/hub/student/``) and the command that installs it;
* :mod:`autograder.hub.instructor`: release to the exchange, collect, return feedback.
"""


class HubError(RuntimeError):
    """A hub set-up problem a person must fix; the message says how."""
