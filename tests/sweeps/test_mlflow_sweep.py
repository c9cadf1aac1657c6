"""A sweep with an `mlflow` callback is one parent MLflow run with a child run per trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


def test_sweep_is_a_parent_run_with_one_child_per_trial(make_config, cli, runs_dir):
    config = make_config({"callbacks": [{"type": "mlflow", "log_models": False}]})
    result = cli(
        "sweep", config, "--grid", "compile.optimizer.learning_rate=0.01,0.001", "--workers", "2"
    )
    assert result.exit_code == 0, result.stderr
    sweep_dir = Path(result.stdout.strip().splitlines()[-1])
    record = json.loads((sweep_dir / "sweep.json").read_text())
    # One store for the sweep and its trials: beside the runs directory, not in the sweep's.
    assert record["mlflow"]["tracking_uri"] == f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"
    assert not (sweep_dir / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=record["mlflow"]["tracking_uri"])
    experiment = client.get_experiment_by_name("tiny")
    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    parent = runs.pop(record["mlflow"]["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"tiny/sweeps/{sweep_dir.name}"
    assert parent.data.tags["cbrun.status"] == "completed"
    assert parent.data.params["sweep.metric"] == "val_loss"
    top = next(t for t in record["trials"] if t["trial"] == record["ranking"][0])
    assert parent.data.metrics["best_val_loss"] == pytest.approx(top["metric"])
    assert parent.data.tags["cbrun.best_trial"] == top["trial"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "sweep.json",
        "summary.csv",
    }

    assert len(runs) == 2  # the children
    by_dir = {Path(run.data.tags["cbrun.run_dir"]): run for run in runs.values()}
    for item in record["trials"]:
        child = by_dir[(sweep_dir / item["run_dir"]).resolve()]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert float(child.data.params["compile.optimizer.learning_rate"]) == pytest.approx(
            item["params"]["compile.optimizer.learning_rate"]
        )
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert min(m.value for m in history) == pytest.approx(item["metric"])
