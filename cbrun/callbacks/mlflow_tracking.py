"""Track a run in MLflow: config as params, each epoch's metrics, status, records and the model.

MLflow is an optional extra (`pip install "cbrun[mlflow]"`): this module never imports it at
import time, and a config that names the callback without MLflow installed fails when it is
checked. The MLflow run id is kept in the run directory (`mlflow.json`), so `--resume`
continues the same MLflow run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import read_json, write_json_atomic
from cbrun.data.base import split_size, take
from cbrun.registry import callbacks

EXTRA_HINT = 'pip install "cbrun[mlflow]"'
RUN_FILE = "mlflow.json"
# The run directory's records, logged as artifacts at the end (those that exist).
RECORDS = (
    "run.json",
    "config.yaml",
    "overrides.yaml",
    "history.csv",
    "history.json",
    "data.json",
    "model_summary.txt",
    "eval.json",
    "train.log",
    "report.html",
)
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
PARENT_TAG = "mlflow.parentRunId"  # how MLflow nests a run under another (a sweep's)


def mlflow_installed() -> bool:
    """Whether MLflow can be imported, found without importing it (validation stays fast)."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        return False


def default_tracking_uri(runs_dir: Path) -> str:
    """MLflow's own default store (SQLite, since MLflow 3.7), beside the runs directory."""
    return f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"


def default_artifact_location(runs_dir: Path) -> str:
    """Where experiments made in the default store keep their artifacts: beside it too."""
    return (runs_dir / "mlartifacts").resolve().as_uri()


class MlflowParams(FitOnlyParams):
    """Track the run in MLflow: config as params, metrics per epoch, status, artifacts, model.

    Logs the resolved config flattened to dotted params (`compile.optimizer.learning_rate`),
    every epoch's metrics with the epoch as step, tags (`cbrun.run_dir`, `cbrun.status`,
    `cbrun.stop_reason`, `cbrun.git_commit`), and at the end the run directory's records and
    plots as artifacts and the model. The MLflow run ends FINISHED, FAILED or KILLED as the
    cbrun run ends completed, failed or interrupted; `--resume` continues the same MLflow run.
    Needs `pip install "cbrun[mlflow]"`.
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["mlflow"]
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (a server, or a database such as sqlite:///mlflow.db). "
        "Default: sqlite:///<runs_dir>/mlflow.db, artifacts in <runs_dir>/mlartifacts/.",
    )
    experiment_name: str | None = Field(
        None, description="MLflow experiment (made if missing). Default: experiment.name."
    )
    run_name: str | None = Field(
        None, description="MLflow run name. Default: <experiment>/<run directory name>."
    )
    log_models: bool = Field(True, description="Log the final model.keras as an MLflow model.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on the run.")
    parent_run_id: str | None = Field(
        None, description="Nest the run under this MLflow run (`cbrun sweep` sets it)."
    )

    @model_validator(mode="after")
    def _needs_mlflow(self) -> MlflowParams:
        if not mlflow_installed():
            raise ValueError(
                f"the mlflow callback needs MLflow, which is not installed: {EXTRA_HINT}"
            )
        return self

    def output_paths(self) -> list[str]:
        return [RUN_FILE]


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config data as dotted keys; list items by index, lists of scalars as JSON."""
    flat: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat |= flatten(value, f"{prefix}{key}.")
    elif isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        for index, value in enumerate(data):
            flat |= flatten(value, f"{prefix}{index}.")
    else:
        flat[prefix[:-1]] = data if isinstance(data, str) else json.dumps(data)
    return flat


def import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise CbrunError(
            "the mlflow callback needs MLflow, which is not installed", hint=EXTRA_HINT
        ) from None
    return mlflow


@callbacks.register("mlflow", MlflowParams)
def mlflow_tracking(params: MlflowParams, ctx: BuildContext) -> Any:
    import keras

    mlflow = import_mlflow()
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its database set-up chatter
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    runs_dir = ctx.run_dir.parent.parent
    uri = params.tracking_uri or default_tracking_uri(runs_dir)
    experiment = params.experiment_name or ctx.config.experiment.name
    run_file = Path(ctx.path(RUN_FILE))

    class MlflowTracking(keras.callbacks.Callback):
        """Starts (or resumes) the MLflow run at train begin; `on_run_end` ends it.

        cbrun calls `on_run_end(record)` once run.json is final, whatever ended the run, so
        the MLflow status is the cbrun status (Keras skips `on_train_end` when fit raises).
        """

        def __init__(self) -> None:
            super().__init__()
            self.client: Any = None
            self.run_id: str | None = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            if self.run_id is not None:
                return
            self.client = MlflowClient(tracking_uri=uri)
            if run_file.is_file():  # a resumed cbrun run: the same MLflow run goes on
                self.run_id = read_json(run_file)["run_id"]
                self.client.update_run(self.run_id, status="RUNNING")
                return
            run = self.client.create_run(
                self._experiment_id(),
                run_name=params.run_name or f"{experiment}/{ctx.run_dir.name}",
                tags=self._start_tags(),
            )
            self.run_id = run.info.run_id
            write_json_atomic(
                run_file,
                {
                    "tracking_uri": uri,
                    "experiment_id": run.info.experiment_id,
                    "run_id": self.run_id,
                },
            )
            items = [Param(k, v[:6000]) for k, v in flatten(_config_data(ctx.config)).items()]
            for start in range(0, len(items), 100):  # MLflow takes 100 params per batch
                self.client.log_batch(self.run_id, params=items[start : start + 100])

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._log_metrics(logs or {}, step=epoch + 1)

        def on_run_end(self, record: dict[str, Any]) -> None:
            if self.run_id is None:  # training never began
                return
            test = {f"test_{k}": v for k, v in (record.get("test_metrics") or {}).items()}
            self._log_metrics(test, step=record.get("epochs_completed") or 0)
            tags = {
                "cbrun.status": record.get("status", ""),
                "cbrun.stop_reason": str(record.get("stop_reason", ""))[:5000],
                "cbrun.epochs_completed": str(record.get("epochs_completed", 0)),
            }
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            for name in RECORDS:
                if (ctx.run_dir / name).is_file():
                    self.client.log_artifact(self.run_id, str(ctx.run_dir / name))
            if (ctx.run_dir / "plots").is_dir():
                self.client.log_artifacts(self.run_id, str(ctx.run_dir / "plots"), "plots")
            if params.log_models and record.get("status") == "completed":
                self._log_model()
            self.client.set_terminated(self.run_id, STATUS.get(record.get("status"), "FAILED"))

        def _experiment_id(self) -> str:
            found = self.client.get_experiment_by_name(experiment)
            if found is not None:
                return found.experiment_id
            location = None if params.tracking_uri else default_artifact_location(runs_dir)
            try:
                return self.client.create_experiment(experiment, artifact_location=location)
            except mlflow.exceptions.MlflowException:  # made meanwhile by another trial
                found = self.client.get_experiment_by_name(experiment)
                if found is None:
                    raise
                return found.experiment_id

        def _start_tags(self) -> dict[str, str]:
            recorded = _read_record(ctx.run_dir)
            tags = {
                "cbrun.run_dir": str(ctx.run_dir.resolve()),
                "cbrun.experiment": ctx.config.experiment.name,
                "cbrun.status": "running",
                "mlflow.source.name": "cbrun train",
            }
            if recorded.get("git_commit"):
                tags["cbrun.git_commit"] = tags["mlflow.source.git.commit"] = recorded["git_commit"]
            if ctx.config.experiment.description:
                tags["mlflow.note.content"] = ctx.config.experiment.description
            if params.parent_run_id:
                tags[PARENT_TAG] = params.parent_run_id
            return tags | dict(params.tags)

        def _log_metrics(self, values: dict[str, Any], step: int) -> None:
            now = int(time.time() * 1000)
            metrics = []
            for key, value in values.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(number):  # MLflow stores NaN, but charts and ranking choke
                    metrics.append(Metric(key, number, now, step))
            if metrics:
                self.client.log_batch(self.run_id, metrics=metrics)

        def _log_model(self) -> None:
            """An MLflow Keras model with a signature from a few training samples, and the
            requirements named (MLflow would otherwise infer them in a subprocess)."""
            import mlflow.keras
            import tensorflow as tf
            from mlflow.models import infer_signature

            sample = take(ctx.dataset.train, np.arange(min(5, split_size(ctx.dataset.train))))[0]
            signature = infer_signature(sample, self.model.predict(sample, verbose=0))
            requirements = [f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"]
            mlflow.set_tracking_uri(uri)
            with mlflow.start_run(run_id=self.run_id):
                mlflow.keras.log_model(
                    self.model, name="model", signature=signature, pip_requirements=requirements
                )

    return MlflowTracking()


def _config_data(config: Any) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    if data.get("sweep") is None:
        data.pop("sweep", None)
    return data


def _read_record(run_dir: Path) -> dict[str, Any]:
    try:
        return read_json(run_dir / "run.json")
    except CbrunError:
        return {}
