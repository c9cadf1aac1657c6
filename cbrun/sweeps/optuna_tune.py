"""`sweep.search: optuna` on `--backend ray`: Ray Tune's `OptunaSearch` picks each trial.

The space is the local Optuna sweep's (`Space`), the sampler the same seeded TPE, and the study
the same journal file in the sweep directory, which `OptunaSearch` loads and tells. Tune runs
each trial as a `cbrun train` process (`fit_trials`), and its scheduler (`--scheduler asha` or
`median`) is the pruning side: Ray's searcher then tells the study a stopped trial's last
reported value, as COMPLETE. A failed trial is FAIL. Trials are reported when Tune is done.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from cbrun.experiment.sweep_space import Trial
from cbrun.sweeps.executors import Resources, TrialJob, config_files, import_ray
from cbrun.sweeps.optuna_search import (
    STUDY_NAME,
    Finished,
    Space,
    fail_abandoned,
    import_optuna,
    journal,
    make_study,
    study_details,
    study_seed,
)
from cbrun.sweeps.tune import fit_trials


def run_study_on_ray(
    sweep_dir: Path,
    record: dict[str, Any],
    todo: list[int],
    resources: Resources,
    finished: Finished,
) -> dict[str, Any]:
    """Run the slots `todo` of `record["trials"]` as Tune trials chosen by `OptunaSearch`.

    A slot that already has params (a failed or interrupted trial being resumed) is evaluated
    again at that point first; the others get new points. Returns what sweep.json keeps.
    """
    import_ray(local=resources.address is None)  # first: it decides how Ray is imported
    optuna = import_optuna()
    from ray.tune.search.optuna import OptunaSearch

    search, items = record["search"], record["trials"]
    seed = study_seed(record)
    study = make_study(optuna, sweep_dir, search, record["direction"], seed)
    fail_abandoned(optuna, study)
    known = len(study.trials)
    space = Space(optuna, search)
    slots = sorted(todo, key=lambda slot: not items[slot]["params"])  # resumed points first
    searcher = OptunaSearch(
        space=space.distributions,
        metric=record["metric"],
        mode=record["direction"],
        points_to_evaluate=[space.encode(items[s]["params"]) for s in slots if items[s]["params"]],
        sampler=study.sampler,  # TPE, seeded past the trials the study already has
        study_name=STUDY_NAME,
        storage=journal(sweep_dir),
    )
    base = TrialJob(-1, config_files(record), record["overrides"], str(sweep_dir))
    results, details = fit_trials(
        functools.partial(_job_at, space, base),
        resources,
        param_space={},
        search_alg=searcher,
        num_samples=len(slots),
        scheduler=resources.scheduler,
        metric=record["metric"],
        direction=record["direction"],
        max_epochs=record.get("max_epochs", 1),
        storage=sweep_dir,
    )
    # The study numbers its trials in the order Tune asked for them: slot by slot.
    asked = sorted(study.get_trials(deepcopy=False)[known:], key=lambda trial: trial.number)
    for slot, trial in zip(slots, asked, strict=False):
        match = next((pair for pair in results if _params(pair[0], space) == trial.params), None)
        if match is None:
            continue  # Tune never ran it (the sweep was stopped): left running, so interrupted
        results.remove(match)
        items[slot].update(params=space.decode(trial.params), optuna_trial=trial.number)
        finished(slot, match[1])
    pruner = f"Ray Tune's {resources.scheduler}" if resources.scheduler else "none"
    return (
        details
        | study_details(optuna, study, seed, pruner)
        | {"search_alg": "ray.tune.search.optuna.OptunaSearch"}
    )


def _job_at(space: Space, base: TrialJob, config: dict[str, Any]) -> TrialJob:
    """The trial process of a point `OptunaSearch` suggested (its values as Optuna keeps them)."""
    overrides = base.overrides + Trial(base.index, space.decode(config)).overrides()
    return TrialJob(base.index, base.configs, overrides, base.runs_dir)


def _params(config: dict[str, Any], space: Space) -> dict[str, Any]:
    return {key: config.get(key) for key in space.distributions}
