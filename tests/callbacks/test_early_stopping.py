"""Early stopping stops at the epoch its patience implies, and run.json says why."""

import json

from conftest import run_dirs


def test_stops_when_validation_loss_stops_improving(make_config, runs_dir, cli):
    # A learning rate of 1e-9 freezes the weights: val_loss moves less than min_delta, so epoch 1
    # sets the best value and the next `patience` epochs do not improve on it.
    config = make_config(
        {
            "compile": {"optimizer": {"learning_rate": 1e-9}},
            "training": {"epochs": 10},
            "callbacks": [{"type": "early_stopping", "patience": 2, "min_delta": 0.01}],
        }
    )
    result = cli("train", config, "--quiet")
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    assert record["epochs_completed"] == 3
    assert record["stop_reason"].startswith("early_stopping: `val_loss` did not improve")
    assert "stopped after epoch 3" in record["stop_reason"]


def test_start_from_epoch_delays_monitoring(make_config, runs_dir, cli):
    config = make_config(
        {
            "compile": {"optimizer": {"learning_rate": 1e-9}},
            "training": {"epochs": 10},
            "callbacks": [
                {"type": "early_stopping", "patience": 1, "min_delta": 0.01, "start_from_epoch": 3}
            ],
        }
    )
    assert cli("train", config, "--quiet").exit_code == 0
    (run,) = run_dirs(runs_dir)
    # Epochs 1-3 are not monitored; epoch 4 sets the best, epoch 5 fails to improve: stop.
    assert json.loads((run / "run.json").read_text())["epochs_completed"] == 5
