"""The example submissions the main job (``autograder demo``) and the tests grade, each named by
its outcome beside its golden result (the format: ``autograder/demo/examples.py``).

They hold answers (solutions, the quiz key, wrong answers marked wrong), so they live here, in
the repository, and never in the installed package (tests/project/test_packaging.py searches
the wheel); the sandbox hides ``tests/`` from student kernels.
"""

from pathlib import Path

from autograder.demo import example_folders

EXAMPLES = Path(__file__).parent
EXAMPLE_FOLDERS = tuple(example_folders(EXAMPLES.parent.parent))
