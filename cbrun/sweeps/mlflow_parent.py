"""A sweep whose config has an `mlflow` callback is a parent MLflow run; each trial a child.

The sweep makes the parent run in the callback's store before any trial starts (the default
store is the one beside the sweep's runs directory, not inside the sweep directory), and gives
every trial `--set callbacks.N.tracking_uri=...` and `callbacks.N.parent_run_id=...`. At the
end the parent gets the sweep's status, the best value of its metric and the sweep's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cbrun.callbacks.mlflow_tracking import (
    PARENT_TAG,
    STATUS,
    default_artifact_location,
    default_tracking_uri,
    flatten,
    import_mlflow,
)

SWEEP_FILES = ("sweep.json", "summary.csv", "metric_vs_params.png")


def mlflow_callback(config: Any) -> tuple[int, Any] | None:
    """The index and params of the config's `mlflow` callback, if it has one."""
    for index, params in enumerate(config.callbacks):
        if params.type == "mlflow":
            return index, params
    return None


def start_parent_run(config: Any, runs_dir: Path, sweep_dir: Path, record: dict) -> list[str]:
    """Make the parent run; record it in `record["mlflow"]`; return the trials' overrides."""
    found = mlflow_callback(config)
    if found is None:
        return []
    index, params = found
    import_mlflow()
    from mlflow.tracking import MlflowClient

    uri = params.tracking_uri or default_tracking_uri(runs_dir)
    client = MlflowClient(tracking_uri=uri)
    name = params.experiment_name or config.experiment.name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None if params.tracking_uri else default_artifact_location(runs_dir)
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    tags = {
        "cbrun.sweep_dir": str(sweep_dir.resolve()),
        "cbrun.experiment": config.experiment.name,
        "cbrun.status": "running",
        "mlflow.source.name": "cbrun sweep",
        **params.tags,
    }
    if params.parent_run_id:
        tags[PARENT_TAG] = params.parent_run_id
    run = client.create_run(
        experiment_id, run_name=f"{name}/sweeps/{sweep_dir.name}", tags=tags
    ).info.run_id
    search = flatten({"sweep": record["search"]})
    for key, value in search.items():
        client.log_param(run, key, value[:6000])
    record["mlflow"] = {"tracking_uri": uri, "run_id": run}
    return [
        f"callbacks.{index}.tracking_uri={json.dumps(uri)}",
        f"callbacks.{index}.parent_run_id={json.dumps(run)}",
    ]


def end_parent_run(sweep_dir: Path, record: dict[str, Any]) -> None:
    """The sweep's status, its best metric and its files on the parent run."""
    import_mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=record["mlflow"]["tracking_uri"])
    run = record["mlflow"]["run_id"]
    client.update_run(run, status="RUNNING")  # a resumed sweep goes on in the same run
    client.set_tag(run, "cbrun.status", record["status"])
    by_name = {item["trial"]: item for item in record["trials"]}
    top = by_name[record["ranking"][0]] if record.get("ranking") else None
    if top is not None and top.get("metric") is not None:  # the ranking puts the best first
        client.log_metric(run, f"best_{record['metric']}", top["metric"])
        client.set_tag(run, "cbrun.best_trial", top["trial"])
    for name in SWEEP_FILES:
        if (sweep_dir / name).is_file():
            client.log_artifact(run, str(sweep_dir / name))
    client.set_terminated(run, STATUS.get(record["status"], "FAILED"))
