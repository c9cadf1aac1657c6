"""reduce_lr_on_plateau, terminate_on_nan, backup_and_restore and swap_ema_weights on real runs."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import run_dirs, tensorboard_scalars, train_tiny

PLATEAU = {
    "type": "reduce_lr_on_plateau",
    "monitor": "loss",
    "min_delta": 10.0,  # the loss (about 1) never improves by 10: every epoch is a plateau
    "patience": 1,
    "factor": 0.5,
    "cooldown": 2,
    "min_lr": 0.002,
}
# Epoch 1 sets the best loss; a reduction ends epochs 2, 4 and 6 (patience 1, then 2 epochs of
# cooldown), each showing from the next epoch on; the third would give 0.00125 < min_lr.
PLATEAU_RATES = [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.002]


def read_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def plateau_run(tmp_path_factory):
    """7 epochs with reduce_lr_on_plateau, CSV, TensorBoard and two backup_and_restore folders."""
    return train_tiny(
        tmp_path_factory.mktemp("plateau"),
        {
            "compile": {"optimizer": {"learning_rate": 0.01}},
            "training": {"epochs": len(PLATEAU_RATES), "batch_size": 64},
            "callbacks": [
                PLATEAU,
                {"type": "csv_logger"},
                {"type": "tensorboard"},
                {"type": "backup_and_restore", "backup_dir": "kept", "delete_checkpoint": False},
                {"type": "backup_and_restore", "backup_dir": "deleted"},
            ],
        },
    ).run_dir


def test_reduce_lr_on_plateau_lowers_the_rate_epoch_by_epoch(plateau_run):
    history = read_json(plateau_run / "history.json")
    np.testing.assert_allclose(history["learning_rate"], PLATEAU_RATES, rtol=1e-6)


def test_reductions_show_in_csv_and_tensorboard(plateau_run):
    csv = pd.read_csv(plateau_run / "log.csv")
    np.testing.assert_allclose(csv["learning_rate"], PLATEAU_RATES, rtol=1e-6)
    scalars = tensorboard_scalars(plateau_run / "tensorboard" / "train", "epoch_learning_rate")
    np.testing.assert_allclose(scalars, PLATEAU_RATES, rtol=1e-6)


def test_backup_and_restore_keeps_the_last_epoch_when_asked(plateau_run):
    import keras

    kept = plateau_run / "kept"
    assert sorted(p.name for p in kept.iterdir()) == [
        "latest.weights.h5",
        "training_metadata.json",
    ]
    assert read_json(kept / "training_metadata.json")["epoch"] == len(PLATEAU_RATES)
    model = keras.saving.load_model(plateau_run / "model.keras")
    final = [w.copy() for w in model.get_weights()]
    model.load_weights(kept / "latest.weights.h5")
    for restored, expected in zip(model.get_weights(), final, strict=True):
        np.testing.assert_array_equal(restored, expected)


def test_backup_and_restore_deletes_its_backup_by_default(plateau_run):
    assert not (plateau_run / "deleted").exists()


def test_terminate_on_nan_stops_at_the_first_nan_loss(tmp_path):
    # SGD at 1e12 overflows the weights within a few batches; the loss turns NaN. What the
    # run then is comes from training.on_non_finite (here `stop`: the last saved model stays).
    result = train_tiny(
        tmp_path,
        {
            "compile": {"optimizer": {"name": "sgd", "learning_rate": 1e12}},
            "training": {"epochs": 5, "on_non_finite": "stop"},
            "callbacks": [{"type": "terminate_on_nan"}],
        },
    )
    record = read_json(result.run_dir / "run.json")
    assert record["status"] == "completed"
    assert record["epochs_completed"] == 0 and record["model_epoch"] == 0
    assert re.fullmatch(
        r"non-finite loss \((nan|inf)\) at epoch 1 batch \d+: stopped \(training.on_non_finite: "
        r"stop\); the model is the one saved after epoch 0",
        record["stop_reason"],
    )
    assert all(np.isfinite(v) for v in record["test_metrics"].values())


@pytest.mark.parametrize("swap", [True, False])
def test_swap_ema_weights_validates_with_the_averaged_weights(tmp_path, cli, swap):
    """The final model holds the EMA weights; with the swap, validation used them too."""
    callbacks = [{"type": "swap_ema_weights"}] if swap else []
    run = train_tiny(
        tmp_path,
        {
            "compile": {"optimizer": {"use_ema": True, "ema_momentum": 0.9}},
            "training": {"epochs": 2},
            "callbacks": callbacks,
        },
    ).run_dir
    assert cli("eval", run, "--split", "validation").exit_code == 0
    (evaluation,) = run.glob("eval-validation-*.json")
    final_model_val_loss = read_json(evaluation)["metrics"]["loss"]
    last_epoch_val_loss = read_json(run / "history.json")["val_loss"][-1]
    if swap:
        assert last_epoch_val_loss == pytest.approx(final_model_val_loss, rel=1e-5)
    else:  # validation saw the raw weights, which differ from the average
        assert last_epoch_val_loss != pytest.approx(final_model_val_loss, rel=1e-3)


def test_lambda_hook_that_cannot_be_imported_fails_before_training(make_config, cli, runs_dir):
    config = make_config(
        {"callbacks": [{"type": "lambda", "on_epoch_end": "no_such_module_here:hook"}]}
    )
    result = cli("train", config)
    assert result.exit_code == 2
    assert (
        "callbacks[0] (lambda): on_epoch_end: cannot import `no_such_module_here`" in result.stderr
    )
    assert run_dirs(runs_dir) == []


def test_lambda_needs_at_least_one_hook(make_config, cli):
    result = cli("validate", make_config({"callbacks": [{"type": "lambda"}]}))
    assert result.exit_code == 2
    assert "callbacks[0]: give at least one hook: on_epoch_begin, on_epoch_end" in result.stderr
