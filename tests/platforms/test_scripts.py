"""The shell scripts the platforms run: valid bash, and a results file even when the grader
cannot start."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from autograder.platforms import gradescope, prairielearn

SCRIPTS = {
    "setup.sh": gradescope.setup_sh("3.11.7"),
    "run_autograder": gradescope.RUN_AUTOGRADER,
    "run_grader": prairielearn.RUN_GRADER,
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_bash_with_a_shebang(name, tmp_path):
    script = tmp_path / name
    script.write_text(SCRIPTS[name])
    assert SCRIPTS[name].startswith("#!/usr/bin/env bash\n")
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_setup_installs_the_pinned_set_and_the_shipped_wheel_on_the_tested_python():
    """setup.sh's installs: uv pinned, CPython of exactly the given version, then the pins and
    the wheel with --no-deps (nothing resolved on the image); no other download."""
    script = gradescope.setup_sh("3.11.7")
    installs = [line for line in script.splitlines() if " install " in line]
    assert f"uv=={gradescope.UV}" in installs[1] and "--no-deps" in installs[1]
    assert installs[2].endswith("uv python install 3.11.7")
    pip = [line for line in installs if "uv pip install" in line]
    assert len(pip) == 2 and all("--no-deps" in line for line in pip)
    assert "--only-binary :all:" in script and "-r requirements.txt" in script
    assert "--python 3.11.7 --python-preference only-managed" in script
    assert not any(word in script for word in ("curl", "wget", "conda", "http"))
    assert "python3.11" not in installs[0]  # not apt's 3.11.0


def run_script(text: str, root: Path, env_root: str) -> dict:
    script = root / "script"
    script.write_text(text)
    script.chmod(0o755)
    env = {**os.environ, "AUTOGRADER_BIN": "/bin/false", "AUTOGRADER_ROOT": env_root}
    subprocess.run([str(script)], env=env, capture_output=True, check=False)
    return json.loads((root / "results" / "results.json").read_text())


def test_run_autograder_writes_results_when_the_grader_cannot_start(tmp_path, gradescope_schema):
    results = run_script(gradescope.RUN_AUTOGRADER, tmp_path, str(tmp_path))
    gradescope_schema.validate(results)
    assert "could not grade" in results["output"]


def test_run_grader_writes_results_and_exits_0_when_the_grader_cannot_start(
    tmp_path, prairielearn_schema
):
    """grader-host (apps/grader-host/src/index.ts, runJob) reads results/results.json only when
    the entrypoint exits 0; any other exit shows the student "Unknown error; please contact
    course staff" (elements/pl-external-grader-results). So the fallback must exit 0."""
    script = tmp_path / "run_grader"
    script.write_text(prairielearn.RUN_GRADER)
    script.chmod(0o755)
    env = {**os.environ, "AUTOGRADER_BIN": "/bin/false", "AUTOGRADER_ROOT": str(tmp_path)}
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    prairielearn_schema.validate(results)
    assert results["gradable"] is False and "could not start" in results["message"]


def test_run_grader_exits_non_zero_only_when_it_could_not_write_results(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    script = tmp_path / "run_grader"
    script.write_text(prairielearn.RUN_GRADER)
    script.chmod(0o755)
    root = tmp_path / "not-a-folder" / "grade"  # nothing can be written under a file
    env = {**os.environ, "AUTOGRADER_BIN": "/bin/false", "AUTOGRADER_ROOT": str(root)}
    assert subprocess.run([str(script)], env=env, capture_output=True).returncode != 0


def test_gradescope_run_without_material_still_writes_results(tmp_path, gradescope_schema, capsys):
    assert gradescope.run_gradescope(tmp_path) == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    gradescope_schema.validate(results)
    assert "THE GRADER FAILED" in capsys.readouterr().out


def test_prairielearn_run_without_material_still_writes_results(tmp_path, prairielearn_schema):
    assert prairielearn.run_prairielearn(tmp_path) == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    prairielearn_schema.validate(results)
    assert prairielearn.run_prairielearn(tmp_path / "missing" / "x") == 0  # results/ is made


def test_prairielearn_run_that_cannot_write_results_says_so(tmp_path, capsys):
    (tmp_path / "results").write_text("a file where the folder should be")
    assert prairielearn.run_prairielearn(tmp_path) == 1
    assert "COULD NOT WRITE THE RESULTS" in capsys.readouterr().out


def test_cli_verbs_reach_their_platform():
    from autograder.cli import build_parser

    args = build_parser().parse_args(["gradescope", "run", "/tmp/root"])
    assert (args.run.__name__, args.action, args.root) == ("_gradescope", "run", Path("/tmp/root"))
    args = build_parser().parse_args(["prairielearn", "build", "--out", "q", "--image", "me/g:1"])
    assert (args.run.__name__, args.action, args.image) == ("_prairielearn", "build", "me/g:1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prairielearn", "build", "--timeout", "700"], "at most 600 s"),
        (["gradescope", "build", "--memory", "512M"], "choose a larger container"),
    ],
)
def test_cli_refuses_a_container_that_cannot_work_before_building(argv, message, tmp_path, capsys):
    from autograder.cli import main

    from ..conftest import REPO

    assert main(["--course-dir", str(REPO), *argv, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
