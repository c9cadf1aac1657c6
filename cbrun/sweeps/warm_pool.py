"""Warm sweep workers on this machine: long-lived processes that train one trial after another.

Each worker (`cbrun/sweeps/worker.py`) imports TensorFlow once; a trial then costs what its
training costs, not a new interpreter and a TensorFlow import. A trial's stdout and stderr go
to files of its own, read back into the same outcome a fresh process gives (`outcome`). A
worker that dies in a trial is recorded as the trial's failure and replaced for the next one.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from cbrun.sweeps.executors import Resources, TrialJob, outcome, run_trial, warm_workers

WORKER_COMMAND = [sys.executable, "-m", "cbrun.sweeps.worker"]
CLOSE_SECONDS = 30


class WarmWorker:
    """One worker process and its pipes; `run(job)` trains a trial there."""

    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile("w+")  # its own stderr, outside any trial
        self.process = subprocess.Popen(
            WORKER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.retired = False

    @property
    def alive(self) -> bool:
        return not self.retired and self.process.poll() is None

    def run(self, job: TrialJob) -> dict[str, Any]:
        """The trial's outcome, as `run_trial` gives it for a fresh process."""
        with tempfile.TemporaryDirectory(prefix="cbrun-trial-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {
                "configs": job.configs,
                "overrides": job.overrides,
                "runs_dir": job.runs_dir,
                "stdout": str(out),
                "stderr": str(err),
            }
            reply = self._ask(request)
            started = err.exists()  # the worker opened the trial's files
            stdout, stderr = _read(out), _read(err)
        if reply is None:
            return self._died(stdout, stderr, started) | {"worker_pid": self.process.pid}
        self.retired = bool(reply.get("retire"))
        return outcome(reply["exit_code"], stdout, stderr) | {"worker_pid": self.process.pid}

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request and read its reply; None if the worker died first."""
        try:
            self.process.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            line = self.process.stdout.readline()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        return json.loads(line) if line.strip() else None

    def _died(self, stdout: str, stderr: str, started: bool) -> dict[str, Any]:
        """The outcome of a trial whose worker ended under it (os._exit, a signal, a crash),
        or before it (then the worker's own stderr, e.g. a failed import, says why)."""
        code = self.process.wait()
        if not started:
            self.log.seek(0)
            stderr = self.log.read()
        how = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        lines = [line for line in stderr.splitlines() if line.strip()]
        when = "during the trial" if started else "before the trial started"
        error = f"the trial's worker process {how} {when} (it is replaced)"
        result = outcome(code, stdout, stderr)
        result["error"] = f"{error}: {lines[-1]}" if lines else error
        return result

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """End of input ends the worker; kill it if it does not end in time (timeout 0: now)."""
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        if timeout > 0:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]
        self.log.close()


class WarmPool:
    """Warm workers shared by the pool's threads: at most one per thread, started on demand."""

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue[WarmWorker] = queue.SimpleQueue()
        self._all: list[WarmWorker] = []
        self._lock = threading.Lock()

    def run(self, job: TrialJob) -> dict[str, Any]:
        if needs_fresh_process(job):
            return run_trial(job.configs, job.overrides, job.runs_dir)
        worker = self._take()
        try:
            return worker.run(job)
        finally:
            if worker.alive:
                self._idle.put(worker)
            else:
                self._forget(worker)

    def start_one(self) -> WarmPool:
        """Start a worker now, before any trial is sent: its interpreter and TensorFlow import
        then overlap the sweep's own start (checking every trial, making the sweep dir)."""
        self._idle.put(self._started())
        return self

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """End every worker; `timeout` 0 kills them now (a sweep that failed its checks)."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close(timeout)

    def _take(self) -> WarmWorker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._started()

    def _started(self) -> WarmWorker:
        worker = WarmWorker()
        with self._lock:
            self._all.append(worker)
        return worker

    def _forget(self, worker: WarmWorker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.close()


def start_early(resources: Resources, search: str | None) -> WarmPool | None:
    """A pool with one warm worker started now, when `cbrun sweep` starts, if its flags leave
    the trials to warm workers on this machine; None otherwise. The worker's interpreter and
    TensorFlow import (2-3 s, the first trial's wait) then overlap the sweep's own imports and
    checks. The sweep ends it (`runner.sweep_command`), unused if the config asks for Optuna."""
    if resources.backend != "local" or not warm_workers(search, resources):
        return None
    return WarmPool().start_one()


def needs_fresh_process(job: TrialJob) -> bool:
    """A trial that splits the CPU into logical devices: TensorFlow allows that once a process."""
    from cbrun.experiment.config import load_config  # not at the top: `cbrun sweep` imports
    # this module before anything heavy, to start a worker first

    try:
        config, _ = load_config([Path(path) for path in job.configs], job.overrides)
    except Exception:  # the trial reports its own error wherever it runs
        return False
    return bool(config.distribution.cpu_devices)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class TrialActor:
    """A Ray actor that keeps a warm worker on its node and trains the trials sent to it."""

    def __init__(self) -> None:
        self.pool = WarmPool()

    def run(self, job: TrialJob) -> dict[str, Any]:
        import ray

        return self.pool.run(job) | {"ray_node": ray.get_runtime_context().get_node_id()}

    def close(self) -> None:
        self.pool.close()


def run_on_ray_actors(ray: Any, jobs: list[TrialJob], resources: Any, report: Any) -> None:
    """One reused actor per worker slot, each given the next trial when it finishes one; an
    actor that dies is recorded as its trial's failure and replaced."""
    actor_class = ray.remote(
        num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial, max_restarts=0
    )(TrialActor)
    waiting = list(jobs)
    running: dict[Any, tuple[int, Any]] = {}
    actors = [actor_class.remote() for _ in range(ray_slots(ray, resources, len(jobs)))]

    def give(actor: Any) -> None:
        job = waiting.pop(0)
        running[actor.run.remote(job)] = (job.index, actor)

    try:
        for actor in actors:
            if waiting:
                give(actor)
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            index, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:
                result = {"exit_code": None, "run_dir": None, "error": str(error)}
                actors.remove(actor)
                ray.kill(actor)
                actor = actor_class.remote()
                actors.append(actor)
            report(index, result)
            if waiting:
                give(actor)
    finally:
        closing = [actor.close.remote() for actor in actors]
        ray.wait(closing, num_returns=len(closing), timeout=CLOSE_SECONDS)


def ray_slots(ray: Any, resources: Any, trials: int) -> int:
    """How many actors: `workers` if given, else as many as the cluster's CPUs and GPUs hold
    (actors keep their resources while they live, so never more than fit)."""
    total = ray.cluster_resources()
    fits = [trials]
    if resources.cpus_per_trial:
        fits.append(int(total.get("CPU", 0) / resources.cpus_per_trial + 1e-9))
    if resources.gpus_per_trial:
        fits.append(int(total.get("GPU", 0) / resources.gpus_per_trial + 1e-9))
    if resources.workers:
        fits.append(resources.workers)
    return max(1, min(fits))
