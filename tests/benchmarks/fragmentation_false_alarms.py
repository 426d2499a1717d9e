"""How often resident memory would have accused an honest student, and how often it does now.

Grades the instructor's full solution 20 times, each preceded by a different heap-fragmenting
cell (``tests/grading/alternatives/fragmenting.py``), with ``autograder grade``. For each notebook it
prints, per ``assert_freed`` test, whether the kernel's resident memory (read from outside)
fell by half the array's size, which the old rule required: every "no" is a false alarm that
rule would have raised (a flag, and the test scored 0). Then the score, status and flags the
notebook gets now, where resident memory is only an observation beside other evidence.

    .venv/bin/python tests/benchmarks/fragmentation_false_alarms.py [--workers 2]

Exit code 1 if any honest notebook lost a point or was flagged.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from autograder.course import Course  # noqa: E402
from autograder.demo.examples import write_submission  # noqa: E402
from autograder.grading.run import grade  # noqa: E402
from autograder.release import release  # noqa: E402
from tests.conftest import copy_course  # noqa: E402
from tests.grading.alternatives.fragmenting import (  # noqa: E402
    EXERCISES,
    SNIPPETS,
    fragmented_example,
    instructor_cell,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    source = REPO / "source" / "numpy_memory" / f"{EXERCISES}.ipynb"
    allocate = instructor_cell(source, "ex1_allocate")
    examples = [fragmented_example(name, snippet, allocate) for name, snippet in SNIPPETS]
    with tempfile.TemporaryDirectory() as folder:
        course = Course(copy_course(Path(folder) / "course"))
        release(course)
        for example in examples:
            write_submission(example, course)
        run = grade(course, workers=options.workers, progress=False, plots=False)
    old_alarms = unfair = 0
    print(f"{'notebook':<40} {'old rule: RSS fell?':<28} {'score':>6}  status  flags")
    for student in sorted([s.to_json() for s in run.students], key=lambda s: s["student"]):
        notebook = next(n for n in student["notebooks"] if n["notebook"] == EXERCISES)
        alarms = {o["cell"] for o in notebook.get("observations", [])}
        freed_tests = [
            c["grade_id"] for c in notebook["cells"] if c["grade_id"].endswith("freed_test")
        ]
        fell = " ".join(f"{t.split('_')[0]}:{'no' if t in alarms else 'yes'}" for t in freed_tests)
        score = sum(c["score"] for c in notebook["cells"])
        out_of = sum(c["max_score"] for c in notebook["cells"])
        old_alarms += bool(alarms)
        unfair += score < out_of or bool(notebook["flags"])
        print(
            f"{student['student']:<40} {fell:<28} {score:>3g}/{out_of:g}  {notebook['status']}"
            f"  {' '.join(notebook['flags']) or '-'}"
        )
    total = len(run.students)
    print(
        f"\nthe old rule would have flagged {old_alarms} of {total} honest notebooks; "
        f"now {unfair} of {total} lose a point or are flagged"
    )
    return 1 if unfair else 0


if __name__ == "__main__":
    sys.exit(main())
