"""What stops a grading run as a whole: importable without the grading machinery (the command
line catches them for every command, ``autograder check`` included)."""


class GradingError(RuntimeError):
    """The grading run itself cannot go on (not one student's problem)."""


class SandboxRefused(GradingError):
    """The run's sandbox cannot be applied here: nothing was graded."""
