"""The mlflow callback, read back from a real local SQLite store with MLflow's own client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

HOOKS = """
import os, signal

def fail_in_epoch_2(epoch, logs):
    if epoch == 1:
        raise RuntimeError("hook failed on purpose in epoch 2")

def terminate_at_batch_10(batch, logs, seen=[0]):
    seen[0] += 1
    if seen[0] == 10:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def cbrun_runs(runs_dir):
    """The run directories, as `cbrun runs` finds them (the artifact store is not one)."""
    from cbrun.inspect.runs import find_runs

    return find_runs(runs_dir)


def store(runs_dir):
    return MlflowClient(tracking_uri=f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}")


def only_mlflow_run(runs_dir):
    client = store(runs_dir)
    experiment = client.get_experiment_by_name("tiny")
    [run] = client.search_runs([experiment.experiment_id])
    return client, run


def artifact_paths(client, run_id, path=None):
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def test_a_run_is_tracked_with_params_metrics_tags_artifacts_and_model(make_config, cli, runs_dir):
    config = make_config(
        {
            "training": {"epochs": 3},
            "callbacks": [{"type": "mlflow", "tags": {"team": "vision"}}],
        }
    )
    result = cli("train", config)
    assert result.exit_code == 0, result.stderr
    [run_dir] = cbrun_runs(runs_dir)
    client, run = only_mlflow_run(runs_dir)
    assert json.loads((run_dir / "mlflow.json").read_text())["run_id"] == run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"tiny/{run_dir.name}"

    params = run.data.params
    assert params["compile.optimizer.learning_rate"] == "0.01"
    assert params["model.units"] == "[16]"
    assert params["data.type"] == "synthetic_classification"
    assert params["callbacks.0.type"] == "mlflow"

    history = json.loads((run_dir / "history.json").read_text())
    for name in ("loss", "val_loss", "accuracy", "learning_rate"):
        logged = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in logged] == [1, 2, 3]
        assert [m.value for m in logged] == pytest.approx(history[name])
    record = json.loads((run_dir / "run.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(record["test_metrics"]["accuracy"])

    tags = run.data.tags
    assert tags["cbrun.run_dir"] == str(run_dir.resolve())
    assert tags["cbrun.status"] == "completed"
    assert tags["cbrun.stop_reason"] == "completed all 3 epochs"
    assert tags["team"] == "vision"
    assert tags["cbrun.epochs_completed"] == "3"
    if record["git_commit"]:
        assert tags["cbrun.git_commit"] == record["git_commit"]

    artifacts = artifact_paths(client, run.info.run_id)
    for name in ("run.json", "config.yaml", "history.csv", "train.log", "report.html"):
        assert name in artifacts
    assert "plots/loss.png" in artifacts
    # Artifacts live beside the store, not in the working directory.
    assert (runs_dir / "mlartifacts").is_dir()

    # The model: an MLflow Keras model that loads back and predicts like the run's model.
    import keras
    import numpy as np

    [model_info] = client.search_logged_models([run.info.experiment_id])
    assert model_info.source_run_id == run.info.run_id
    uri = f"models:/{model_info.model_id}"
    signature = mlflow.models.get_model_info(uri).signature
    assert signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 8)
    loaded = mlflow.keras.load_model(uri)
    original = keras.saving.load_model(run_dir / "model.keras")
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), original.predict(x, verbose=0))


def test_a_failed_run_ends_failed_in_mlflow(make_config, cli, runs_dir, tmp_path):
    (tmp_path / "mlflow_hooks.py").write_text(HOOKS)
    config = make_config(
        {
            "training": {"epochs": 4},
            "callbacks": [
                {"type": "mlflow"},
                {"type": "lambda", "on_epoch_end": "mlflow_hooks:fail_in_epoch_2"},
            ],
        }
    )
    assert cli("train", config).exit_code == 1
    client, run = only_mlflow_run(runs_dir)
    assert run.info.status == "FAILED"
    assert run.data.tags["cbrun.status"] == "failed"
    assert "hook failed on purpose in epoch 2" in run.data.tags["cbrun.stop_reason"]
    # The failing hook comes after mlflow in the list: epoch 2's metrics were logged first.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert "run.json" in artifact_paths(client, run.info.run_id)
    assert not client.search_logged_models([run.info.experiment_id])  # no model of a failure


def test_an_interrupted_run_is_killed_and_its_resume_continues_the_same_mlflow_run(
    make_config, cli, runs_dir, tmp_path
):
    (tmp_path / "mlflow_hooks.py").write_text(HOOKS)
    config = make_config(
        {
            "training": {"epochs": 5},  # 4 batches per epoch: SIGTERM in epoch 3
            "callbacks": [
                {"type": "mlflow", "log_models": False},
                {"type": "lambda", "on_train_batch_end": "mlflow_hooks:terminate_at_batch_10"},
            ],
        }
    )
    assert cli("train", config).exit_code == 143
    [run_dir] = cbrun_runs(runs_dir)
    client, run = only_mlflow_run(runs_dir)
    assert run.info.status == "KILLED"
    assert run.data.tags["cbrun.status"] == "interrupted"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]

    resumed = cli("train", "--resume", run_dir, "--allow-imports")
    assert resumed.exit_code == 0, resumed.stderr
    client, again = only_mlflow_run(runs_dir)  # still one MLflow run
    assert again.info.run_id == run.info.run_id
    assert again.info.status == "FINISHED"
    assert again.data.tags["cbrun.status"] == "completed"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert steps == [1, 2, 3, 4, 5]
    history = json.loads((run_dir / "history.json").read_text())
    logged = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.value for m in logged] == pytest.approx(history["val_loss"])


def test_without_mlflow_installed_validate_names_the_extra(make_config, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what Python does for a missing module
    result = cli("validate", make_config({"callbacks": [{"type": "mlflow"}]}))
    assert result.exit_code == 2
    assert "experiment.yaml:" in result.stderr and "callbacks[0]" in result.stderr
    assert 'needs MLflow, which is not installed: pip install "cbrun[mlflow]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_the_module_and_validate_do_not_import_mlflow(make_config):
    config = make_config({"callbacks": [{"type": "mlflow"}]})
    code = (
        "import sys\n"
        "from cbrun.cli import main\n"
        f"sys.argv = ['cbrun', 'validate', {str(config)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'mlflow' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
