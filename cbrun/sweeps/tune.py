"""Trials as Ray Tune trials: a scheduler (ASHA, median stopping) may stop bad ones early, and
a Tune searcher (`optuna_tune`) may choose their points.

Each trial is still a `cbrun train` process. A Tune class trainable starts it, reads its
`run.json` (rewritten after every epoch) and reports the sweep's metric to Tune once per epoch.
When the scheduler stops a trial, Tune calls the trainable's `cleanup`, which sends the process
SIGTERM: `cbrun train` records an interrupted run with its finished epochs saved. A process
that fails raises in the trainable, so Tune (and its searcher) see an errored trial. Trials
are reported to the sweep when Tune has finished them all.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cbrun.sweeps.executors import (
    Report,
    Resources,
    TrialJob,
    import_ray,
    outcome,
    start_ray,
    stop_trial,
)
from cbrun.sweeps.executors import train_command as command_for

SCHEDULERS = ("asha", "median")
POLL_SECONDS = 0.5


def run_with_scheduler(
    jobs: list[TrialJob],
    resources: Resources,
    report: Report,
    *,
    scheduler: str,
    metric: str,
    direction: str,
    max_epochs: int,
    storage: Path,
) -> dict[str, Any]:
    """Run the trials as Tune trials under `scheduler`; `report` each outcome at the end."""
    finished, details = fit_trials(
        functools.partial(_job_of_trial, {job.index: job for job in jobs}),
        resources,
        param_space={"trial": {"grid_search": [job.index for job in jobs]}},  # tune.grid_search
        scheduler=scheduler,
        metric=metric,
        direction=direction,
        max_epochs=max_epochs,
        storage=storage,
    )
    for config, result in finished:
        report(config["trial"], result)
    return details


def fit_trials(
    job_for: Callable[[dict[str, Any]], TrialJob],
    resources: Resources,
    *,
    param_space: dict[str, Any],
    scheduler: str | None,
    metric: str,
    direction: str,
    max_epochs: int,
    storage: Path,
    search_alg: Any = None,
    num_samples: int = 1,
) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], dict[str, Any]]:
    """Fit Tune trials, each the `cbrun train` process of `job_for(its config)`, on Ray.

    `search_alg` (a Tune searcher) and `num_samples` choose the configs, or `param_space`
    alone does; `scheduler` (asha, median, or None for Tune's FIFO) may stop trials early.
    Returns each trial's config and outcome, and what sweep.json records about the backend.
    """
    ray = import_ray(local=resources.address is None)
    details = start_ray(ray, resources)
    try:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # so `verbose=0` silences Tune's tables
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # cbrun reports each trial
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

        chosen = None
        if scheduler == "asha":
            chosen = ASHAScheduler(
                time_attr="epoch", max_t=max_epochs, grace_period=1, stop_last_trials=False
            )
        elif scheduler == "median":
            chosen = MedianStoppingRule(time_attr="epoch", grace_period=1)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable(tune), job_for=job_for, metric=metric),
            {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=direction,
                scheduler=chosen,
                search_alg=search_alg,
                num_samples=num_samples,
                max_concurrent_trials=resources.workers,
            ),
            run_config=tune.RunConfig(
                storage_path=str(storage),
                name="tune",
                verbose=0,
                # A trial's checkpoint is its run directory: Tune saves none of its own.
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
            ),
        )
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the sweep directory
            results = tuner.fit()
        finished = [(result.config, _outcome_of(result, scheduler)) for result in results]
        return finished, details | {"scheduler": scheduler}
    finally:
        ray.shutdown()


class TrialProcessFailed(Exception):
    """A trial's `cbrun train` process failed: Tune records the trial as errored."""

    def __init__(self, outcome: dict[str, Any]):
        super().__init__(outcome)  # its only argument, so Ray can copy and pickle it
        self.outcome = outcome

    def __str__(self) -> str:
        return self.outcome.get("error") or f"exit code {self.outcome.get('exit_code')}"


def _outcome_of(result: Any, scheduler: str | None) -> dict[str, Any]:
    """A Tune trial's outcome as `cbrun sweep` reads it: the process's, or the scheduler's."""
    cause = getattr(result.error, "cause", result.error)  # Ray wraps the trainable's error
    if isinstance(cause, TrialProcessFailed):
        return cause.outcome
    last = result.metrics or {}
    return {
        "exit_code": last.get("exit_code"),
        "run_dir": last.get("run_dir"),
        "error": str(result.error) if result.error else last.get("error"),
        "stopped_by": None if "exit_code" in last else scheduler or "Ray Tune",
        "ray_node": last.get("ray_node"),
    }


def _job_of_trial(jobs: dict[int, TrialJob], config: dict[str, Any]) -> TrialJob:
    return jobs[config["trial"]]


def _trainable(tune: Any) -> type:
    """A Tune class trainable: one `cbrun train` process per trial, one step per epoch.

    Tune calls `cleanup` when the trial ends, also when the scheduler stops it early: the
    process then gets SIGTERM and time to record its interrupted run (Ray would SIGKILL it).
    """

    class CbrunTrial(tune.Trainable):
        def setup(self, config: dict[str, Any], job_for: Callable, metric: str) -> None:
            self.job, self.metric = job_for(config), metric
            self.before = set(Path(self.job.runs_dir).glob("*/*"))
            self.out = tempfile.TemporaryFile("w+")
            self.err = tempfile.TemporaryFile("w+")
            self.process = subprocess.Popen(
                command_for(self.job.configs, self.job.overrides, self.job.runs_dir),
                stdout=self.out,
                stderr=self.err,
                text=True,
                start_new_session=True,  # signals to Ray's worker group do not reach it
            )
            self.run_dir: Path | None = None
            self.reported = 0

        def step(self) -> dict[str, Any]:
            """Wait for the next epoch with the metric, or for the process to end."""
            import ray  # in the trial's Ray worker

            node = ray.get_runtime_context().get_node_id()
            while True:
                finished = self.process.poll() is not None
                self.run_dir = self.run_dir or _new_run_dir(self.job, self.before)
                record = _read(self.run_dir / "run.json") if self.run_dir else {}
                epochs = record.get("epochs_completed") or 0
                value = (record.get("last_metrics") or {}).get(self.metric)
                result = {"epoch": epochs, "run_dir": str(self.run_dir or ""), "ray_node": node}
                if value is not None:
                    result[self.metric] = value
                if finished:
                    self.out.seek(0)
                    self.err.seek(0)
                    final = result | outcome(
                        self.process.returncode, self.out.read(), self.err.read()
                    )
                    if final["exit_code"] != 0:
                        raise TrialProcessFailed(final)
                    return final | {"done": True}
                if epochs > self.reported and value is not None:
                    self.reported = epochs
                    return result
                time.sleep(POLL_SECONDS)

        def cleanup(self) -> None:
            stop_trial(self.process)
            self.out.close()
            self.err.close()

    return CbrunTrial


def _new_run_dir(job: TrialJob, before: set[Path]) -> Path | None:
    """The run directory this trial's process made: new, and with this trial's overrides."""
    for candidate in Path(job.runs_dir).glob("*/*"):
        overrides = candidate / "overrides.yaml"
        if candidate not in before and overrides.is_file():
            import yaml

            if yaml.safe_load(overrides.read_text()) == job.overrides:
                return candidate
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
