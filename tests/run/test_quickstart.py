"""The README's promise: the quickstart reaches a test accuracy of at least 0.95 on digits."""

import json

from conftest import ROOT, run_dirs


def test_quickstart_trains_to_the_accuracy_the_readme_states(cli, runs_dir):
    result = cli("train", ROOT / "configs" / "quickstart.yaml", "--quiet", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    assert result.stdout.strip() == str(run)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["test_metrics"]["accuracy"] >= 0.95
