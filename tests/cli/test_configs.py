"""Every example in configs/ validates and passes a smoke run."""

import json

import pytest

from conftest import ROOT, run_dirs

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_is_a_quickstart_and_at_least_two_more_examples():
    names = [path.name for path in CONFIGS]
    assert "quickstart.yaml" in names and len(names) >= 3


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_example_validates(config, cli):
    result = cli("validate", config)
    assert result.exit_code == 0, result.stderr
    assert "experiment:" in result.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_example_passes_a_smoke_run(config, cli, runs_dir):
    result = cli("train", config, "--smoke", "--quiet", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["smoke"] is True
    assert record["epochs_completed"] == 1
    assert record["data"]["samples"]["train"] <= 256
