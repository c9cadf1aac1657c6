"""One real training with the five foundation callbacks, and what its run directory holds."""

import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbrun.core.run_dir import create_run_dir
from conftest import TINY, merge

EPOCHS = 4
CALLBACKS = [
    {"type": "early_stopping", "patience": 10},
    {
        "type": "model_checkpoint",
        "filepath": "checkpoints/epoch{epoch:02d}-{val_loss:.4f}.keras",
        "monitor": "val_loss",
        "save_best_only": True,
    },
    {"type": "csv_logger", "filename": "logs/epochs.csv"},
    {"type": "tensorboard", "log_dir": "tb"},
    {
        "type": "learning_rate_scheduler",
        "schedule": {
            "type": "step_decay",
            "initial_learning_rate": 0.02,
            "factor": 0.5,
            "step_size": 1,
        },
    },
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train once; every test below reads the same run directory."""
    from cbrun.run.train import train

    folder = tmp_path_factory.mktemp("run")
    config = folder / "experiment.yaml"
    data = merge(
        TINY,
        {
            "training": {"epochs": EPOCHS},
            "callbacks": CALLBACKS,
            "output": {"runs_dir": str(folder / "runs")},
        },
    )
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result = train(config, ["training.batch_size=16"], quiet=True)
    assert result.exit_code == 0, result.record.get("error")
    return result.run_dir


def read_json(path: Path):
    return json.loads(path.read_text())


def test_run_directory_is_named_after_the_experiment_and_time(run):
    assert run.parent.name == "tiny"
    datetime.strptime(run.name, "%Y%m%d-%H%M%S")


def test_run_directory_holds_every_artifact(run):
    for name in (
        "config.yaml",
        "overrides.yaml",
        "run.json",
        "history.csv",
        "history.json",
        "model.keras",
        "model_summary.txt",
        "eval.json",
        "train.log",
        "data.json",
        "logs/epochs.csv",
    ):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "overrides.yaml").read_text()) == ["training.batch_size=16"]
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["training"]["batch_size"] == 16
    assert resolved["compile"]["loss"] == "sparse_categorical_crossentropy"
    assert "Total params" in (run / "model_summary.txt").read_text()
    assert "epoch 4/4" in (run / "train.log").read_text()


def test_run_record_says_what_happened(run):
    record = read_json(run / "run.json")
    assert record["status"] == "completed"
    assert record["epochs_completed"] == EPOCHS == record["epochs_planned"]
    assert record["stop_reason"] == f"completed all {EPOCHS} epochs"
    assert record["seed"] == 1
    assert {"python", "tensorflow", "keras", "cbrun"} <= set(record["versions"])
    assert record["duration_seconds"] > 0
    assert record["started_at"] <= record["ended_at"]
    history = read_json(run / "history.json")
    best = min(history["val_loss"])
    assert record["monitors"]["val_loss"] == {
        "mode": "min",
        "best": pytest.approx(best),
        "best_epoch": history["val_loss"].index(best) + 1,
    }
    assert set(record["test_metrics"]) == {"loss", "accuracy"}


def test_csv_logger_writes_one_row_per_epoch_that_pandas_reads(run):
    frame = pd.read_csv(run / "logs" / "epochs.csv")
    assert list(frame["epoch"]) == list(range(EPOCHS))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(frame.columns)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(history["loss"], frame["loss"], rtol=1e-6)


def test_learning_rate_follows_the_step_decay_schedule(run):
    rates = read_json(run / "history.json")["learning_rate"]
    np.testing.assert_allclose(rates, [0.02 * 0.5**epoch for epoch in range(EPOCHS)], rtol=1e-6)


def test_best_only_checkpoints_are_written_exactly_when_val_loss_improves(run):
    val_loss = read_json(run / "history.json")["val_loss"]
    improved = [i for i, v in enumerate(val_loss) if v < min(val_loss[:i], default=math.inf)]
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == [f"epoch{i + 1:02d}-{val_loss[i]:.4f}.keras" for i in improved]
    assert read_json(run / "run.json")["checkpoints"]["best"] == f"checkpoints/{files[-1]}"


def test_best_checkpoint_holds_the_best_epoch_weights(run):
    import keras

    from cbrun.experiment.config import load_config
    from cbrun.run.build import build_dataset

    config, _ = load_config(run / "config.yaml")
    dataset = build_dataset(config)
    best = read_json(run / "run.json")["checkpoints"]["best"]
    model = keras.saving.load_model(run / best, safe_mode=True)
    loss = model.evaluate(*dataset.validation, batch_size=16, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(min(read_json(run / "history.json")["val_loss"]), abs=1e-5)


def test_tensorboard_event_files_hold_the_epoch_scalars(run):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = read_json(run / "history.json")
    for split, prefix in (("train", ""), ("validation", "val_")):
        events = EventAccumulator(str(run / "tb" / split), size_guidance={"tensors": 0})
        events.Reload()
        losses = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("epoch_loss")]
        np.testing.assert_allclose(losses, history[f"{prefix}loss"], rtol=1e-5)
    events = EventAccumulator(str(run / "tb" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    assert len(events.Tensors("epoch_learning_rate")) == EPOCHS


def test_eval_reproduces_the_test_metrics_train_wrote(run, cli):
    first = cli("eval", run)
    assert first.exit_code == 0, first.stderr
    again = cli("eval", run)
    written = [Path(first.stdout.strip()), Path(again.stdout.strip())]
    assert written[0] != written[1] and all(p.is_file() for p in written)  # nothing overwritten
    trained = read_json(run / "eval.json")["metrics"]
    for path in written:
        evaluated = read_json(path)
        assert evaluated["checkpoint"] == "model.keras" and evaluated["split"] == "test"
        assert evaluated["metrics"] == pytest.approx(trained, rel=1e-6)


def test_eval_of_the_best_checkpoint_on_validation_matches_its_val_loss(run, cli):
    result = cli("eval", run, "--checkpoint", "best", "--split", "validation")
    assert result.exit_code == 0, result.stderr
    metrics = read_json(Path(result.stdout.strip()))["metrics"]
    assert metrics["loss"] == pytest.approx(
        min(read_json(run / "history.json")["val_loss"]), abs=1e-5
    )


def test_eval_errors_are_user_errors(run, cli, tmp_path):
    assert "not a run directory" in cli("eval", tmp_path).stderr
    result = cli("eval", run, "--checkpoint", "nope.keras")
    assert result.exit_code == 2 and "checkpoint not found" in result.stderr


def test_a_second_run_in_the_same_second_gets_its_own_directory(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = create_run_dir(tmp_path, "exp", now)
    second = create_run_dir(tmp_path, "exp", now)
    assert (first.name, second.name) == ("20260102-030405", "20260102-030405-2")
