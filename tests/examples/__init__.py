"""The example submissions the main job (``autograder demo``) and the tests grade, each named by
its outcome beside its golden result (the format: ``autograder/demo/examples.py``).

They hold answers (solutions, the quiz key, wrong answers marked wrong), so they live here, in
the repository, and never in the installed package (tests/project/test_packaging.py searches
the wheel); the sandbox hides ``tests/`` from student kernels.
"""

import os
from pathlib import Path

from autograder.demo import example_folders
from autograder.demo.examples import Example, load_examples

EXAMPLES = Path(__file__).parent
EXAMPLE_FOLDERS = tuple(example_folders(EXAMPLES.parent.parent))

# As root, tests/sandbox/test_hostile_runs.py grades every hostile example in its run A (fully
# sandboxed, through the command line, beside the attacks and honest students) and checks each
# one's golden result. The shared run of tests/conftest.py then grades only the hostile
# examples the tests reading it need (two for the one-worker rerun, a flagged quiz and
# exercises notebook for the class view); without root, run A does not run, and it grades all.
HOSTILE_IN_RUN_A = os.geteuid() == 0
SHARED_HOSTILE = (
    "cheat-ast-transformer-passes-asserts",
    "cheat-custom-exception-handler",
    "cheat-quiz-answer-equals-anything",
)


def in_shared_run(example: Example, folder: Path) -> bool:
    """Whether tests/conftest.py's shared run grades this example of ``folder``."""
    return folder.name != "hostile" or not HOSTILE_IN_RUN_A or example.name in SHARED_HOSTILE


def shared_run_examples() -> list[Example]:
    """Every example the shared run grades."""
    return [
        example
        for folder in EXAMPLE_FOLDERS
        for example in load_examples(folder)
        if in_shared_run(example, folder)
    ]
