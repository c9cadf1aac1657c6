"""`sweep.search: optuna`: Optuna's seeded TPE sampler picks each trial; a pruner may stop it.

The study lives in the sweep directory as Optuna's journal file (`optuna.journal`), so
`cbrun sweep --resume` loads and continues it. Each trial is still a `cbrun train` process on
the local pool; the sweep reads the trial's `history.json` (rewritten after every epoch),
reports each epoch's value of the sweep metric to Optuna, and sends the process SIGTERM when
the pruner says so: the run is recorded `interrupted` and the trial `stopped`. A trial that
fails is kept in the study as FAIL with its error (user attribute `error`); `--resume` runs
that slot again with the same params.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbrun.core.errors import CbrunError
from cbrun.experiment.sweep_space import Distribution, Trial
from cbrun.sweeps.executors import (
    Resources,
    TrialJob,
    config_files,
    outcome,
    stop_trial,
    train_command,
)
from cbrun.sweeps.tune import _new_run_dir

STUDY_FILE = "optuna.journal"
STUDY_NAME = "cbrun"
POLL_SECONDS = 0.5
EXTRA_HINT = 'pip install "cbrun[optuna]"'

Finished = Callable[[int, dict[str, Any]], None]
Check = Callable[[Trial], None]


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise CbrunError(
            "sweep.search `optuna` needs Optuna, which is not installed", hint=EXTRA_HINT
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # cbrun prints each trial itself
    return optuna


def _encode(value: Any) -> Any:
    """A value Optuna's categorical distribution accepts (lists and dicts become JSON)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


class Space:
    """The sweep's keys as Optuna distributions: `random:` as they say, `grid:` categorical."""

    def __init__(self, optuna: Any, search: dict[str, Any]):
        dists = optuna.distributions
        self.distributions: dict[str, Any] = {}
        self.decoded: dict[str, dict[Any, Any]] = {}
        for key, values in search["grid"].items():
            self._categorical(dists, key, values)
        for key, text in search["random"].items():
            dist = Distribution.parse(text)
            if dist.name == "choice":
                self._categorical(dists, key, list(dist.args))
            elif dist.name == "randint":
                self.distributions[key] = dists.IntDistribution(*dist.args)
            else:
                low, high = map(float, dist.args)
                log = dist.name == "loguniform"
                self.distributions[key] = dists.FloatDistribution(low, high, log=log)

    def _categorical(self, dists: Any, key: str, values: list[Any]) -> None:
        self.decoded[key] = {_encode(value): value for value in values}
        self.distributions[key] = dists.CategoricalDistribution(list(self.decoded[key]))

    def encode(self, params: dict[str, Any]) -> dict[str, Any]:
        return {key: _encode(value) for key, value in params.items()}

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna's values as config values, in the sweep's key order."""
        return {
            key: self.decoded[key][params[key]] if key in self.decoded else params[key]
            for key in self.distributions
        }


def journal(sweep_dir: Path) -> Any:
    """Optuna's storage of the sweep's study: its journal file in the sweep directory."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(sweep_dir / STUDY_FILE)))


def study_seed(record: dict[str, Any]) -> int:
    search = record["search"]
    return search["seed"] if search.get("seed") is not None else record.get("seed", 0)


def make_study(optuna: Any, sweep_dir: Path, search: dict[str, Any], direction: str, seed: int):
    """The sweep's study, created or loaded from its journal file in the sweep directory."""
    if search["pruner"] == "median":
        # Like Ray's median stopping rule: judge a trial once 3 others have finished.
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    elif search["pruner"] == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    else:
        pruner = optuna.pruners.NopPruner()
    study = optuna.create_study(
        storage=journal(sweep_dir),
        study_name=STUDY_NAME,
        direction="maximize" if direction == "max" else "minimize",
        pruner=pruner,
        load_if_exists=True,
    )
    # Seeded, and reseeded past the trials a resumed study has: a sampler started afresh with
    # the same seed would draw the same first (random) points again.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return study


@dataclass
class _Running:
    """One trial process and what the sweep has told Optuna about it so far."""

    trial: Any
    job: TrialJob
    process: subprocess.Popen
    out: Any
    err: Any
    before: set[Path]
    run_dir: Path | None = None
    reported: set[int] = field(default_factory=set)
    pruned_at: int | None = None


def run_study(
    sweep_dir: Path,
    record: dict[str, Any],
    todo: list[int],
    resources: Resources,
    finished: Finished,
    check: Check,
) -> dict[str, Any]:
    """Run the slots `todo` of `record["trials"]` as Optuna trials, `workers` at a time.

    A slot that already has params (a failed or interrupted trial being resumed) runs again
    with them; the others get new ones from the sampler. `check(trial)` validates a trial's
    config before it runs (a CbrunError fails just that trial). Returns what sweep.json keeps.
    """
    optuna = import_optuna()
    search, items = record["search"], record["trials"]
    seed = study_seed(record)
    study = make_study(optuna, sweep_dir, search, record["direction"], seed)
    space = Space(optuna, search)
    fail_abandoned(optuna, study)
    pruner = search["pruner"]
    queue, running = list(todo), {}
    try:
        while queue or running:
            while queue and len(running) < (resources.workers or 1):
                slot = queue.pop(0)
                trial, started = _start(study, space, record, slot, check, sweep_dir)
                if isinstance(started, _Running):
                    running[slot] = started
                else:  # its config is invalid: failed without running
                    finished(slot, started)
                    _tell(optuna, study, items[slot], trial)
            time.sleep(POLL_SECONDS)
            for slot, trial in list(running.items()):
                if _poll(trial, record["metric"]) and trial.process.poll() is None:
                    trial.process.send_signal(signal.SIGTERM)  # the pruner said so
                if trial.process.poll() is None:
                    continue
                del running[slot]
                result = _outcome(trial)
                if trial.pruned_at is not None:
                    result["stopped_by"] = f"Optuna's {pruner} pruner"
                finished(slot, result)
                _tell(optuna, study, items[slot], trial.trial)
    finally:
        for trial in running.values():  # Ctrl-C: let each process record its interrupted run
            stop_trial(trial.process)
    return study_details(optuna, study, seed, pruner)


def study_details(optuna: Any, study: Any, seed: int, pruner: str) -> dict[str, Any]:
    """What sweep.json records about the study: its file, sampler, pruner and best trial."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return {
        "study": STUDY_FILE,
        "study_name": STUDY_NAME,
        "sampler": f"TPESampler(seed={seed})",
        "pruner": pruner,
        **({"best_optuna_trial": study.best_trial.number} if complete else {}),
    }


def _start(study, space, record, slot, check, sweep_dir) -> tuple[Any, _Running | dict]:
    """Ask Optuna for the slot's trial and start its process (or say why it cannot run)."""
    item = record["trials"][slot]
    if item["params"]:  # a resumed slot: the same point again, as a new Optuna trial
        study.enqueue_trial(space.encode(item["params"]), skip_if_exists=False)
    trial = study.ask(space.distributions)
    item["params"] = space.decode(trial.params)
    item["optuna_trial"] = trial.number
    trial.set_user_attr("cbrun_trial", item["trial"])
    try:
        check(Trial(slot, item["params"]))
    except CbrunError as error:
        return trial, {"exit_code": 2, "run_dir": None, "error": error.message}
    overrides = record["overrides"] + Trial(slot, item["params"]).overrides()
    job = TrialJob(slot, config_files(record), overrides, str(sweep_dir))
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    before = set(Path(job.runs_dir).glob("*/*"))
    process = subprocess.Popen(
        train_command(job.configs, job.overrides, job.runs_dir),
        stdout=out,
        stderr=err,
        text=True,
        start_new_session=True,  # the sweep decides when a trial stops (Ctrl-C included)
    )
    return trial, _Running(trial, job, process, out, err, before)


def _poll(trial: _Running, metric: str) -> bool:
    """Report the epochs finished since the last poll; True if the pruner stops the trial."""
    trial.run_dir = trial.run_dir or _new_run_dir(trial.job, trial.before)
    if trial.run_dir is None or trial.pruned_at is not None:
        return False
    try:
        history = json.loads((trial.run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return False
    for step, value in enumerate(history.get(metric, []), start=1):
        if step in trial.reported or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        trial.reported.add(step)
        trial.trial.report(value, step)
        if trial.trial.should_prune():
            trial.pruned_at = step
            return True
    return False


def _outcome(trial: _Running) -> dict[str, Any]:
    trial.out.seek(0)
    trial.err.seek(0)
    result = outcome(trial.process.returncode, trial.out.read(), trial.err.read())
    trial.out.close()
    trial.err.close()
    return result


def _tell(optuna: Any, study: Any, item: dict[str, Any], trial: Any) -> None:
    """Tell Optuna how the trial ended: its metric, pruned, or failed with its error."""
    states = optuna.trial.TrialState
    if item.get("run_dir"):
        trial.set_user_attr("run_dir", item["run_dir"])
    if item["status"] == "completed" and item.get("metric") is not None:
        study.tell(trial, item["metric"])
    elif item["status"] == "stopped":
        study.tell(trial, state=states.PRUNED)
    else:
        trial.set_user_attr("error", item.get("error") or item.get("note") or item["status"])
        study.tell(trial, state=states.FAIL)


def fail_abandoned(optuna: Any, study: Any) -> None:
    """Trials left RUNNING by a sweep that was stopped are kept as FAIL, saying so."""
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, frozen._trial_id)
        trial.set_user_attr("error", "the sweep stopped while this trial ran")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
