"""examples/ci-workflow.yml: its shell steps, run as GitHub runs them, fail when a config fails.

The steps are taken out of the workflow and run by the shell GitHub would use for them
(`shell: bash` is `bash --noprofile --norc -eo pipefail {0}`; no shell is `bash -e {0}`), in a
folder laid out like a repository of experiments, with this cbrun on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, TINY, merge

WORKFLOW = ROOT / "examples" / "ci-workflow.yml"
SHELLS = {None: ["bash", "-e"], "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"]}
HOOK = "def explode(batch, logs):\n    raise RuntimeError('this run fails on purpose')\n"


def steps() -> dict[str, tuple[list[str], str]]:
    """Each `run:` step of the workflow's job: (the shell command GitHub uses, the script)."""
    [job] = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    default = job.get("defaults", {}).get("run", {}).get("shell")
    return {
        step["name"]: (SHELLS[step.get("shell", default)], step["run"])
        for step in job["steps"]
        if "run" in step
    }


def run_step(name: str, repo: Path) -> subprocess.CompletedProcess:
    shell, script = steps()[name]
    (repo / "step.sh").write_text(script)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        [*shell, "step.sh"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def repository(folder: Path, configs: dict[str, dict]) -> Path:
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "hooks.py").write_text(HOOK)
    for name, updates in configs.items():
        text = yaml.safe_dump(merge(TINY, {"experiment": {"name": name}, **updates}))
        (folder / "configs" / f"{name}.yaml").write_text(text)
    return folder


def test_every_run_step_fails_on_errors_inside_a_pipe_too():
    assert shutil.which("bash")
    for name, (shell, _) in steps().items():
        assert "pipefail" in shell, name


def test_validate_step_checks_every_config_and_fails_if_one_is_bad(tmp_path):
    repo = repository(tmp_path, {"a_bad": {"training": {"epochs": 0}}, "b_good": {}})
    result = run_step("Validate every config", repo)
    assert result.returncode == 1, result.stderr
    assert "a_bad.yaml" in result.stderr and "training.epochs" in result.stderr
    assert "configs/b_good.yaml: valid" in result.stderr  # checked after the bad one


def test_smoke_step_runs_every_config_and_fails_if_one_run_fails(tmp_path):
    broken = {"callbacks": [{"type": "lambda", "on_train_batch_end": "hooks:explode"}]}
    repo = repository(tmp_path, {"a_broken": broken, "b_fine": {}})
    result = run_step("Smoke-run every config", repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "::error file=configs/a_broken.yaml::" in result.stdout
    lines = (repo / "smoke-summary.jsonl").read_text().splitlines()
    statuses = {json.loads(line)["name"].split("/")[0]: json.loads(line) for line in lines}
    assert statuses["a_broken"]["status"] == "failed" and statuses["a_broken"]["exit_code"] == 1
    assert statuses["b_fine"]["status"] == "completed" and statuses["b_fine"]["exit_code"] == 0
    assert "b_fine" in result.stdout  # `cbrun runs smoke-runs` listed the runs
