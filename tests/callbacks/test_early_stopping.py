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


def test_restored_best_weights_are_recorded_and_labelled_honestly(make_config, runs_dir, cli):
    """model.keras holds the best epoch's weights: run.json, show and the report say which,
    and the test metrics (of model.keras) match that epoch's validation score's model."""
    import keras
    import numpy as np

    # Barely separable classes, a wide layer and a high learning rate overfit within two
    # epochs: val_loss is lowest early and rises (1.24 at epoch 1, 1.57 at 6 on our machine).
    config = make_config(
        {
            "data": {"separation": 0.3},
            "model": {"units": [128]},
            "compile": {"optimizer": {"learning_rate": 0.05}},
            "training": {"epochs": 6},
            "callbacks": [{"type": "early_stopping", "patience": 10, "restore_best_weights": True}],
        }
    )
    assert cli("train", config, "--quiet").exit_code == 0
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    best = int(np.argmin(history["val_loss"])) + 1
    assert best < 6
    assert record["model_epoch"] == best == record["monitors"]["val_loss"]["best_epoch"]
    assert record["model_weights"].startswith(f"weights of epoch {best} of 6, the best `val_loss`")
    assert record["model_metrics"]["val_loss"] == history["val_loss"][best - 1]

    # model.keras scores the validation split as that epoch did
    from cbrun.experiment.config import load_config
    from cbrun.run.build import build_dataset

    dataset = build_dataset(load_config(run / "config.yaml")[0])
    model = keras.saving.load_model(run / "model.keras")
    val_loss = model.evaluate(*dataset.validation, verbose=0, return_dict=True)["loss"]
    assert abs(val_loss - history["val_loss"][best - 1]) < 1e-4

    shown = cli("show", run).stdout
    assert f"model.keras (epoch {best})" in shown and "last epoch (6)" in shown
    assert f"weights of epoch {best} of 6" in shown
    report = (run / "report.html").read_text()
    assert f"model.keras (epoch {best})" in report
