"""Where trials run: warm workers on a local pool or on reused Ray actors, or fresh processes.

By default trials run in warm workers (`cbrun/sweeps/warm_pool.py`): long-lived processes
that import TensorFlow once and train one trial after another, each in its own run directory,
with Keras' session cleared and the process-wide settings a run changes put back first
(`cbrun/run/process_state.py`), so a trial's results are those of a fresh process. On Ray,
each worker slot is a reused actor that keeps such a worker on its node.
`Resources(fresh_processes=True)` (`cbrun sweep --fresh-processes`) runs every trial as a
fresh `python -m cbrun train` process instead (on Ray, one Ray task per trial), as Ray Tune
schedulers and Optuna searches always do.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cbrun.core.errors import CbrunError

if TYPE_CHECKING:
    from cbrun.sweeps.warm_pool import WarmPool

RAY_OBJECT_STORE_BYTES = 80 * 1024 * 1024  # trials return a few lines; Ray's minimum is 75 MiB

Report = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class TrialJob:
    """What one trial process needs: the config files, its overrides, and where runs go."""

    index: int
    configs: list[str]
    overrides: list[str]
    runs_dir: str


@dataclass(frozen=True)
class Resources:
    """How trials are scheduled: how many at once, and what each asks Ray for."""

    workers: int | None = None
    backend: str = "local"
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    scheduler: str | None = None
    fresh_processes: bool = False  # local pool: a new `cbrun train` process per trial


def config_files(record: dict[str, Any]) -> list[str]:
    """A sweep's experiment files, later ones merged over earlier ones (older sweeps: one)."""
    return list(record.get("configs") or [record["config"]])


def run_trial(configs: list[str], overrides: list[str], runs_dir: str) -> dict[str, Any]:
    """Train one trial in a fresh `cbrun train` process; returns its exit code, run dir, error."""
    command = train_command(configs, overrides, runs_dir)
    done = subprocess.run(command, capture_output=True, text=True)  # inherits CUDA_VISIBLE_DEVICES
    return outcome(done.returncode, done.stdout, done.stderr)


def stop_trial(process: subprocess.Popen, timeout: float = 120) -> None:
    """SIGTERM a trial process, so `cbrun train` records its interrupted run; kill if stuck."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def train_command(configs: list[str], overrides: list[str], runs_dir: str) -> list[str]:
    command = [sys.executable, "-m", "cbrun", "train", *configs, "--quiet", "--runs-dir", runs_dir]
    for override in overrides:
        command += ["--set", override]
    return command


def outcome(exit_code: int, stdout: str, stderr: str) -> dict[str, Any]:
    """What a finished `cbrun train` process said: exit code, run dir (stdout), error (stderr)."""
    printed = stdout.strip().splitlines()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    last_line = ([line for line in stderr.splitlines() if line.strip()] or [None])[-1]
    return {
        "exit_code": exit_code,
        "run_dir": printed[-1] if printed else None,
        "error": errors[-1].removeprefix("error: ") if errors else last_line,
    }


def warm_workers(search: str | None, resources: Resources) -> bool:
    """Whether trials run in warm workers: grid and random search without a Tune scheduler."""
    return not (resources.fresh_processes or resources.scheduler or search == "optuna")


def execute(
    jobs: list[TrialJob], resources: Resources, report: Report, warm: WarmPool | None = None
) -> dict[str, Any]:
    """Run every job with the chosen backend, `report(index, outcome)` as each one finishes;
    returns what sweep.json records about the backend (for Ray, the cluster's address).
    `warm`: a local pool of warm workers already started, which the caller closes."""
    if resources.backend == "ray":
        return _run_on_ray(jobs, resources, report)
    _run_locally(jobs, resources, report, warm)
    return {}


def _run_locally(
    jobs: list[TrialJob], resources: Resources, report: Report, given: WarmPool | None
) -> None:
    """Up to `workers` trials at a time, in warm workers (of `given`, if a pool is given) or
    fresh processes (the threads only wait on the processes)."""
    from cbrun.sweeps.warm_pool import WarmPool

    warm = None if resources.fresh_processes else given or WarmPool()
    pool = ThreadPoolExecutor(max_workers=resources.workers or 1)
    try:
        futures = {
            (
                pool.submit(warm.run, job)
                if warm
                else pool.submit(run_trial, job.configs, job.overrides, job.runs_dir)
            ): job.index
            for job in jobs
        }
        for future in as_completed(futures):
            report(futures[future], future.result())
    finally:  # on Ctrl-C, trials not started yet are dropped; running ones finish or stop
        pool.shutdown(wait=True, cancel_futures=True)
        if warm and warm is not given:
            warm.close()


def _run_on_ray(jobs: list[TrialJob], resources: Resources, report: Report) -> dict[str, Any]:
    """Reused Ray actors with warm workers (`warm_pool.run_on_ray_actors`), or with
    `fresh_processes` one Ray task per trial; each with its CPU/GPU request, at most
    `workers` at once if given."""
    ray = import_ray(local=resources.address is None)
    details = start_ray(ray, resources)
    try:
        if not resources.fresh_processes:
            from cbrun.sweeps.warm_pool import run_on_ray_actors

            run_on_ray_actors(ray, jobs, resources, report)
            return details
        task = ray.remote(
            num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial, max_retries=0
        )(_run_trial_on_a_node)
        waiting = list(jobs)
        running: dict[Any, int] = {}
        limit = resources.workers or len(jobs)
        while waiting or running:
            while waiting and len(running) < limit:
                job = waiting.pop(0)
                running[task.remote(job.configs, job.overrides, job.runs_dir)] = job.index
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                index = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as error:
                    outcome = {"exit_code": None, "run_dir": None, "error": str(error)}
                report(index, outcome)
        return details
    finally:
        ray.shutdown()


def _run_trial_on_a_node(config: str, overrides: list[str], runs_dir: str) -> dict[str, Any]:
    """`run_trial` in a Ray task; the outcome also names the Ray node that ran it."""
    import ray

    return run_trial(config, overrides, runs_dir) | {
        "ray_node": ray.get_runtime_context().get_node_id()
    }


def import_ray(local: bool = False) -> Any:
    """Import Ray; for a private local instance, make Ray use the loopback address only."""
    if local:
        # Ray advertises and binds the machine's address unless clusters are disabled, in
        # which case every Ray server listens on 127.0.0.1 (read when Ray is first imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise CbrunError(
            "--backend ray needs Ray, which is not installed",
            hint='pip install "cbrun[ray]"',
        ) from None
    return ray


def start_ray(ray: Any, resources: Resources) -> dict[str, Any]:
    """Connect to `address`, or start a private local instance reachable only on loopback;
    returns the cluster's address for sweep.json."""
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if resources.address:
            ray.init(address=resources.address, **quiet)
            return {"ray_address": ray.get_runtime_context().gcs_address, "ray_started_here": False}
        cpus = max(1, round((resources.workers or os.cpu_count() or 1) * resources.cpus_per_trial))
        ray.init(
            address="local",
            num_cpus=cpus,
            num_gpus=None if resources.gpus_per_trial else 0,
            include_dashboard=False,
            object_store_memory=RAY_OBJECT_STORE_BYTES,
            **quiet,
        )
    except ConnectionError as error:
        raise CbrunError(f"--address {resources.address}: cannot connect to Ray: {error}") from None
    address = ray.get_runtime_context().gcs_address
    if not address.startswith("127.0.0.1:"):
        ray.shutdown()
        raise CbrunError(
            f"the local Ray instance listens on {address}, not only on loopback: Ray was "
            "imported before cbrun could restrict it",
            hint="set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing ray, or pass --address",
        )
    return {"ray_address": address, "ray_started_here": True}
