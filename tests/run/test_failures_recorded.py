"""A run that fails says so in run.json, keeps what it saved, and logs the traceback."""

from __future__ import annotations

import json
import re

import pandas as pd

from conftest import run_dirs

HOOKS = """
def fail_in_epoch_2(epoch, logs):
    if epoch == 1:
        raise RuntimeError("hook failed on purpose in epoch 2")


def fail_in_test(logs):
    raise ValueError("evaluation hook failed on purpose")
"""


def only_run(runs_dir):
    [run] = run_dirs(runs_dir)
    return run, json.loads((run / "run.json").read_text())


# The learning rate jumps from 0.01 to 100 at epoch 3: plain SGD on a regression diverges.
DIVERGING = {
    "data": {"type": "synthetic_regression", "samples": 200, "features": 8, "classes": None},
    "compile": {"optimizer": {"name": "sgd", "learning_rate": 0.01}},
    "training": {"epochs": 5, "batch_size": 8},
    "callbacks": [
        {
            "type": "learning_rate_scheduler",
            "schedule": {"type": "piecewise_constant", "boundaries": [2], "values": [0.01, 100.0]},
        },
        {"type": "model_checkpoint", "filepath": "checkpoints/epoch{epoch:02d}.keras"},
    ],
}


def test_non_finite_loss_fails_the_run_and_keeps_earlier_checkpoints(make_config, cli, runs_dir):
    result = cli("train", make_config(DIVERGING))
    assert result.exit_code == 1
    run, record = only_run(runs_dir)
    assert record["status"] == "failed"
    assert re.fullmatch(r"non-finite loss at epoch 3 batch \d+", record["stop_reason"])
    assert record["error"]["type"] == "NonFiniteLoss"
    assert record["epochs_completed"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch01.keras",
        "epoch02.keras",
    ]
    assert len(pd.read_csv(run / "history.csv")) == 2
    assert "non-finite loss at epoch 3" in result.stderr and "Traceback" not in result.stderr


def test_a_declared_terminate_on_nan_stops_but_the_run_still_fails(make_config, cli, runs_dir):
    """terminate_on_nan ends training; `training.on_non_finite` (default `fail`) records it."""
    callbacks = [*DIVERGING["callbacks"], {"type": "terminate_on_nan"}]
    result = cli("train", make_config({**DIVERGING, "callbacks": callbacks}))
    assert result.exit_code == 1
    run, record = only_run(runs_dir)
    assert record["status"] == "failed" and record["error"]["type"] == "NonFiniteLoss"
    assert re.fullmatch(r"non-finite loss at epoch 3 batch \d+", record["stop_reason"])
    assert not (run / "eval.json").exists()  # no NaN model is evaluated


def test_an_exception_in_a_callback_fails_the_run_with_its_type_and_message(
    make_config, cli, runs_dir, tmp_path
):
    (tmp_path / "failing_hooks_fit.py").write_text(HOOKS)
    config = make_config(
        {
            "training": {"epochs": 4},
            "callbacks": [
                {"type": "csv_logger"},
                {"type": "lambda", "on_epoch_end": "failing_hooks_fit:fail_in_epoch_2"},
            ],
        }
    )
    result = cli("train", config)
    assert result.exit_code == 1
    run, record = only_run(runs_dir)
    assert record["status"] == "failed"
    assert record["error"] == {
        "type": "RuntimeError",
        "message": "hook failed on purpose in epoch 2",
    }
    assert "Traceback" not in result.stderr
    log = (run / "train.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: hook failed on purpose in epoch 2" in log
    assert len(pd.read_csv(run / "log.csv")) == 2  # what the callbacks wrote stays


def test_an_exception_in_the_final_evaluation_fails_the_run(make_config, cli, runs_dir, tmp_path):
    (tmp_path / "failing_hooks_test.py").write_text(HOOKS)
    config = make_config(
        {
            "callbacks": [
                {
                    "type": "lambda",
                    "phases": ["evaluate"],
                    "on_test_end": "failing_hooks_test:fail_in_test",
                }
            ]
        }
    )
    result = cli("train", config)
    assert result.exit_code == 1
    run, record = only_run(runs_dir)
    assert record["status"] == "failed"
    assert record["error"]["type"] == "ValueError"
    assert record["epochs_completed"] == 2
    assert (run / "model.keras").is_file()  # saved before the evaluation failed
    assert "ValueError: evaluation hook failed on purpose" in (run / "train.log").read_text()
