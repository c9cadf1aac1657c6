"""Run a sweep: validate every trial, run them, keep `sweep.json` current, rank and report."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cbrun.core.background_imports import BackgroundImports
from cbrun.core.console import counted, format_number, make_console
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.run_dir import (
    RUN_RECORD,
    Stopwatch,
    create_run_dir,
    read_json,
    utc_now,
    write_json_atomic,
    write_text_atomic,
)
from cbrun.experiment.config import load_config
from cbrun.experiment.data_checks import read_by_validate, read_data
from cbrun.experiment.sweep_space import (
    PRUNERS,
    SEARCHES,
    SweepSection,
    Trial,
    expand,
    parse_grid_flag,
    parse_random_flag,
    probe_trials,
)
from cbrun.sweeps.executors import (
    Resources,
    TrialJob,
    config_files,
    execute,
    import_ray,
    warm_workers,
)
from cbrun.sweeps.hparams import HPARAMS_MODULES
from cbrun.sweeps.mlflow_parent import end_parent_run, start_parent_run
from cbrun.sweeps.plot import PLOT_MODULES
from cbrun.sweeps.record import SWEEP_RECORD, read_sweep_record
from cbrun.sweeps.tune import SCHEDULERS

if TYPE_CHECKING:
    from cbrun.sweeps.warm_pool import WarmPool

FINISHED = ("completed", "stopped")  # stopped: ended early by a Ray Tune scheduler
SUMMARY_CSV = "summary.csv"
PLOT_FILE = "metric_vs_params.png"
KEPT = ("trial", "params", "attempts", "optuna_trial")  # what a trial's new result keeps


@dataclass
class SweepResult:
    sweep_dir: Path
    record: dict[str, Any]
    exit_code: int


def start_sweep(
    config_paths: Path | list[Path],
    overrides: list[str],
    sweep: SweepSection,
    resources: Resources,
    runs_dir: Path | None = None,
    warm: WarmPool | None = None,
) -> SweepResult:
    """Expand `sweep` over the config, check every trial, then run them in a new sweep dir
    (`warm`: a pool of warm workers already started, which the caller closes)."""
    config, _ = load_config(config_paths, overrides)
    _check_search(sweep.checked().model_dump(), resources)
    trials = expand(sweep, config.experiment.seed)
    paths = [config_paths] if isinstance(config_paths, Path) else config_paths
    configs = [str(path.resolve()) for path in paths]
    # Optuna picks its points as it runs: check every key at each of its values or ends.
    checked = probe_trials(sweep) if sweep.search == "optuna" else trials
    max_epochs = _validate_trials(configs, overrides, checked)
    parent = Path(runs_dir or config.output.runs_dir).resolve() / config.experiment.name
    sweep_dir = create_run_dir(parent, "sweeps")
    record = {
        "status": "running",
        "experiment": config.experiment.name,
        "config": configs[0],
        "configs": configs,  # later ones merged over earlier ones, as `cbrun train` does
        "overrides": list(overrides),
        "metric": sweep.metric,
        "direction": sweep.resolved_direction,
        "search": sweep.model_dump(mode="json"),
        "seed": sweep.seed if sweep.seed is not None else config.experiment.seed,
        "max_epochs": max_epochs,
        "started_at": utc_now(),
        "trials": [
            {"trial": t.name, "params": t.params, "status": "pending", "attempts": 0}
            for t in trials
        ],
    }
    try:
        record["overrides"] += start_parent_run(config, parent.parent, sweep_dir, record)
    except BaseException:
        shutil.rmtree(sweep_dir, ignore_errors=True)  # nothing ran: leave no sweep behind
        raise
    return _run(sweep_dir, record, resources, warm)


def resume_sweep(
    sweep_dir: Path, resources: Resources, warm: WarmPool | None = None
) -> SweepResult:
    """Run again every trial of `sweep_dir` that did not complete; completed ones are kept."""
    record = read_sweep_record(sweep_dir)  # any damage: exit 2 naming the key, before anything
    _check_search(record["search"], resources)
    trials = [Trial(i, item["params"]) for i, item in enumerate(record["trials"])]
    todo = [t for t in trials if record["trials"][t.index]["status"] not in FINISHED]
    _validate_trials(config_files(record), record["overrides"], todo)
    record["status"] = "running"
    return _run(sweep_dir, record, resources, warm)


def _check_search(search: dict[str, Any], resources: Resources) -> None:
    """An optuna search has Optuna (and on Ray, Ray Tune) installed, and one pruning side:
    sweep.pruner on the local pool, Ray Tune's --scheduler on Ray (exit 2 otherwise)."""
    if search.get("search") != "optuna":
        return
    if resources.backend == "ray" and search.get("pruner", "none") != "none":
        raise CbrunError(
            f"sweep.pruner `{search['pruner']}` prunes trials on the local pool; on Ray, "
            "Ray Tune's scheduler prunes them",
            hint="drop sweep.pruner (--pruner none) and add --scheduler median or asha",
        )
    from cbrun.sweeps.optuna_search import import_optuna

    import_optuna()
    if resources.backend == "ray":
        _import_tune("sweep.search `optuna` with --backend ray")


def _validate_trials(configs: list[str], overrides: list[str], trials: list[Trial]) -> int:
    """Check every trial's config before any runs, and its data as `cbrun validate` does
    (once per distinct data setting): the first bad one names the trial and the key.

    Returns the most epochs any trial trains (where an early-stopping scheduler's rungs end).
    """
    epochs = 1
    data_read: set[str] = set()
    for trial in trials:
        try:
            config, document = load_config(
                [Path(c) for c in configs], overrides + trial.overrides()
            )
            key = _data_key(config)
            if read_by_validate(config) and key not in data_read:
                read_data(config, document, config_dir=Path(configs[0]).resolve().parent)
                data_read.add(key)
        except CbrunError as error:
            raise CbrunError(
                f"{trial.name} ({_params_text(trial.params)}): {error.message}", hint=error.hint
            ) from None
        epochs = max(epochs, config.training.epochs)
    return epochs


def _data_key(config: Any) -> str:
    """What the data checks depend on: the data, the seed that splits it, the class weights
    and the compile settings judged against the task (not the optimizer)."""
    compile_settings = config.compile.model_dump(mode="json", exclude={"optimizer"})
    return json.dumps(
        [
            config.data.model_dump(mode="json"),
            config.experiment.seed,
            config.training.model_dump(mode="json", include={"class_weight"}),
            compile_settings,
        ],
        sort_keys=True,
        default=str,
    )


def _run(
    sweep_dir: Path, record: dict[str, Any], resources: Resources, warm: WarmPool | None = None
) -> SweepResult:
    console = make_console(stderr=True)
    items = record["trials"]
    todo = [i for i, item in enumerate(items) if item["status"] not in FINISHED]
    record["backend"] = {
        "name": resources.backend,
        "workers": resources.workers,
        "address": resources.address,
        "cpus_per_trial": resources.cpus_per_trial,
        "gpus_per_trial": resources.gpus_per_trial,
        "scheduler": resources.scheduler,
        "warm_workers": warm_workers(record["search"].get("search"), resources),
    }
    console.print(
        f"[bold]cbrun sweep[/] {record['experiment']}: {len(todo)} of "
        f"{counted(len(items), 'trial')} to run on {resources.backend}; {sweep_dir}"
    )
    jobs = []
    for index in todo:
        items[index].update(status="running", attempts=items[index]["attempts"] + 1)
        overrides = record["overrides"] + Trial(index, items[index]["params"]).overrides()
        jobs.append(TrialJob(index, config_files(record), overrides, str(sweep_dir)))
    write_json_atomic(sweep_dir / SWEEP_RECORD, record)
    clock = Stopwatch()
    summaries = BackgroundImports(PLOT_MODULES + HPARAMS_MODULES)  # while trials run, this
    summaries.start()  # process only waits

    def finished(index: int, outcome: dict[str, Any]) -> None:
        # A fresh entry, so nothing (an old error, say) is left over from an earlier attempt.
        kept = {k: items[index][k] for k in KEPT if k in items[index]}
        result = _trial_result(sweep_dir, outcome, record["metric"], record["direction"])
        item = items[index] = kept | result
        if outcome.get("ray_node"):
            item["ray_node"] = outcome["ray_node"]  # the Ray node the trial ran on
        if outcome.get("worker_pid"):
            item["worker_pid"] = outcome["worker_pid"]  # the warm worker that trained it
        done = sum(1 for i in todo if items[i]["status"] != "running")
        shown = (
            f"{record['metric']} {format_number(item['metric'])}"
            if item.get("metric") is not None
            else item.get("error") or item.get("note", "")
        )
        console.print(f"{item['trial']} {item['status']} ({done}/{len(todo)})  {shown}")
        write_json_atomic(sweep_dir / SWEEP_RECORD, record)

    interrupted = False
    try:
        if record["search"].get("search") == "optuna" and resources.backend == "ray":
            from cbrun.sweeps.optuna_tune import run_study_on_ray

            record["backend"] |= run_study_on_ray(sweep_dir, record, todo, resources, finished)
        elif record["search"].get("search") == "optuna":
            from cbrun.sweeps.optuna_search import run_study

            def check(trial: Trial) -> None:
                _validate_trials(config_files(record), record["overrides"], [trial])

            record["backend"] |= run_study(sweep_dir, record, todo, resources, finished, check)
        elif resources.scheduler:
            from cbrun.sweeps.tune import run_with_scheduler

            record["backend"] |= run_with_scheduler(
                jobs,
                resources,
                finished,
                scheduler=resources.scheduler,
                metric=record["metric"],
                direction=record["direction"],
                max_epochs=record.get("max_epochs", 1),
                storage=sweep_dir,
            )
        else:
            record["backend"] |= execute(jobs, resources, finished, warm)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for item in items:
            if item["status"] == "running":
                item["status"] = "interrupted"
        failed = any(item["status"] not in FINISHED for item in items)
        status = "interrupted" if interrupted else "failed" if failed else "completed"
        record.update(status=status, ended_at=utc_now(), duration_seconds=clock.seconds())
        record["ranking"] = [item["trial"] for item in _ranked(items, record["direction"])]
        write_json_atomic(sweep_dir / SWEEP_RECORD, record)
    write_text_atomic(sweep_dir / SUMMARY_CSV, _summary_csv(record))
    summaries.wait()
    _plot(sweep_dir, record, console)
    _hparams(sweep_dir, record, console)
    if record.get("mlflow"):
        end_parent_run(sweep_dir, record)
    console.print(_summary_table(record))
    if interrupted:
        console.print(f"interrupted; run the rest with: cbrun sweep --resume {sweep_dir}")
        return SweepResult(sweep_dir, record, 130)
    return SweepResult(sweep_dir, record, 1 if failed else 0)


def _trial_result(
    sweep_dir: Path, outcome: dict[str, Any], metric: str, direction: str
) -> dict[str, Any]:
    """A trial's status, run dir, error and metric, read from the run directory it made."""
    result: dict[str, Any] = {
        "status": "failed",
        "exit_code": outcome["exit_code"],
        "metric": None,
        "metric_epoch": None,
    }
    run_dir = Path(outcome["run_dir"]) if outcome.get("run_dir") else None
    if run_dir is None or not (run_dir / RUN_RECORD).is_file():
        result["error"] = outcome.get("error") or "the trial made no run directory"
        if run_dir is not None:
            result["error"] += (
                f" (its run directory {run_dir} is not visible here: on a cluster the runs "
                "directory must be on storage every node shares)"
            )
        return result
    run = read_json(run_dir / RUN_RECORD)
    if outcome.get("stopped_by") and run.get("status") == "interrupted":
        return _stopped_result(run_dir, sweep_dir, run, metric, outcome["stopped_by"])
    result["run_dir"] = _relative(run_dir, sweep_dir)
    result["duration_seconds"] = run.get("duration_seconds")
    result["status"] = "completed" if run.get("status") == "completed" else "failed"
    if result["status"] == "failed":
        error = run.get("error") or {}
        message = ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part)
        result["error"] = message or outcome.get("error")
        return result
    value, epoch, note = _metric(run_dir, run, metric, direction)
    result.update(metric=value, metric_epoch=epoch)
    if note:
        result["note"] = note
    return result


def _stopped_result(
    run_dir: Path, sweep_dir: Path, run: dict[str, Any], metric: str, scheduler: str
) -> dict[str, Any]:
    """A trial the scheduler ended early: its metric is the one of its last finished epoch."""
    epochs = run.get("epochs_completed")
    return {
        "status": "stopped",
        "exit_code": None,
        "metric": (run.get("last_metrics") or {}).get(metric),
        "metric_epoch": epochs,
        "run_dir": _relative(run_dir, sweep_dir),
        "duration_seconds": run.get("duration_seconds"),
        "note": f"stopped by {scheduler} after {epochs} epoch(s)",
    }


def _relative(run_dir: Path, sweep_dir: Path) -> str:
    return (
        str(run_dir.relative_to(sweep_dir)) if run_dir.is_relative_to(sweep_dir) else str(run_dir)
    )


def _metric(
    run_dir: Path, run: dict[str, Any], metric: str, direction: str
) -> tuple[Any, Any, str | None]:
    """The best epoch's value of a history metric, or a `test_` metric from the test split."""
    name = metric.removeprefix("test_")
    if metric.startswith("test_") and name in run.get("test_metrics", {}):
        return run["test_metrics"][name], None, None
    history = read_json(run_dir / "history.json")
    values = [(v, i + 1) for i, v in enumerate(history.get(metric, [])) if not math.isnan(v)]
    if not values:
        names = [k for k in history if k != "epoch"] + [
            f"test_{k}" for k in run.get("test_metrics", {})
        ]
        return None, None, f"no `{metric}` in this run; it has: {', '.join(names)}"
    # Ties go to the first epoch that reached the value, as in run.json's `monitors`.
    value, epoch = (min if direction == "min" else max)(values, key=lambda pair: pair[0])
    return value, epoch, None


def _ranked(items: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Completed trials best first, then trials stopped early, then the rest in trial order."""
    sign = -1 if direction == "max" else 1
    scored = [item for item in items if item.get("metric") is not None]
    scored.sort(key=lambda item: (item["status"] != "completed", sign * item["metric"]))
    return scored + [item for item in items if item.get("metric") is None]


def _summary_csv(record: dict[str, Any]) -> str:
    keys = list(record["trials"][0]["params"]) if record["trials"] else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "trial", "status", record["metric"], "epoch", *keys, "run_dir"])
    for rank, item in enumerate(_ranked(record["trials"], record["direction"]), start=1):
        writer.writerow(
            [
                rank if item.get("metric") is not None else "",
                item["trial"],
                item["status"],
                item.get("metric", ""),
                item.get("metric_epoch", ""),
                *(item["params"].get(k) for k in keys),
                item.get("run_dir", ""),
            ]
        )
    return buffer.getvalue()


def _summary_table(record: dict[str, Any]) -> Table:
    items = record["trials"]
    keys = list(items[0]["params"]) if items else []
    title = (
        f"sweep {record['experiment']}: {record['status']}, "
        f"ranked by {record['metric']} ({record['direction']})"
    )
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("trial", no_wrap=True)
    table.add_column("status", min_width=9)
    table.add_column(record["metric"], justify="right", min_width=len(record["metric"]))
    short = [key.rsplit(".", 1)[-1] for key in keys]
    for key, name in zip(keys, short, strict=True):
        table.add_column(name if short.count(name) == 1 else key, min_width=min(len(name), 14))
    table.add_column("run (or error)")
    for rank, item in enumerate(_ranked(items, record["direction"]), start=1):
        has_metric = item.get("metric") is not None
        table.add_row(
            str(rank) if has_metric else "",
            item["trial"],
            item["status"],
            format_number(item["metric"]) if has_metric else "-",
            *(_value_text(item["params"][k]) if k in item["params"] else "-" for k in keys),
            Path(item["run_dir"]).name if item.get("run_dir") else _clip(item.get("error") or ""),
        )
    return table


def _plot(sweep_dir: Path, record: dict[str, Any], console: Console) -> None:
    from cbrun.sweeps.plot import plot_metric

    try:
        plot_metric(record, sweep_dir / PLOT_FILE)
    except CbrunError as error:
        console.print(f"[yellow]no plot:[/] {error.render()}")


def _hparams(sweep_dir: Path, record: dict[str, Any], console: Console) -> None:
    """TensorBoard's HParams dashboard of the trials (`cbrun board SWEEP_DIR` shows it)."""
    try:
        from cbrun.sweeps.hparams import write_hparams

        write_hparams(sweep_dir, record)
    except (ImportError, OSError, ValueError, TypeError, CbrunError) as error:  # sweep is done
        console.print(f"[yellow]no HParams summaries:[/] {type(error).__name__}: {error}")


def _import_tune(what: str = "--scheduler") -> None:
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise CbrunError(
            f"{what} needs Ray Tune, which is not installed", hint='pip install "cbrun[ray]"'
        ) from None


def _clip(text: str, width: int = 30) -> str:
    """The first line of `text`, cut to `width` characters (sweep.json has all of it)."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_value_text(value)}" for key, value in params.items())


def _value_text(value: Any) -> str:
    return format_number(value) if isinstance(value, float) else str(value)


def plan_search(
    config_paths: Path | list[Path],
    overrides: list[str],
    grid: list[str],
    random: list[str],
    trials: int | None = None,
    metric: str | None = None,
    direction: str | None = None,
    search: str | None = None,
    pruner: str | None = None,
) -> SweepSection:
    """The config's `sweep:` section with the command's flags merged in (flags win per key)."""
    config, _ = load_config(config_paths, overrides)
    section = config.sweep or SweepSection()
    for flag, value, choices in (("search", search, SEARCHES), ("pruner", pruner, PRUNERS)):
        if value is not None and value not in choices:
            raise CbrunError(
                f"--{flag}: `{value}` is not one of: {', '.join(choices)}."
                f"{did_you_mean(value, choices)}"
            )
    section.search = search or section.search  # type: ignore[assignment]
    section.pruner = pruner or section.pruner  # type: ignore[assignment]
    section.grid = section.grid | dict(parse_grid_flag(flag) for flag in grid)
    section.random = section.random | dict(parse_random_flag(flag) for flag in random)
    if trials is not None:
        section.trials = trials
    if metric is not None:
        section.metric = metric
    if direction is not None:
        if direction not in ("min", "max"):
            raise CbrunError(f"--direction: expected `min` or `max`, got `{direction}`")
        section.direction = direction
    try:
        return SweepSection.model_validate(section.model_dump())
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        key = ".".join(map(str, problem["loc"]))
        raise CbrunError(f"sweep.{key}: {problem['msg'].removeprefix('Value error, ')}") from None


def sweep_command(
    config_paths: list[Path] | None,
    overrides: list[str],
    search: dict[str, Any],
    resources: Resources,
    runs_dir: Path | None = None,
    resume: Path | None = None,
    warm: WarmPool | None = None,
) -> SweepResult:
    """`cbrun sweep`: a new sweep from a config and flags, or `--resume` of an earlier one.
    `warm`: the pool `warm_pool.start_early` started with the command; this ends it (killed
    at once if the sweep fails before its trials run)."""
    try:
        result = _sweep(config_paths, overrides, search, resources, runs_dir, resume, warm)
    except BaseException:
        if warm:
            warm.close(timeout=0)
        raise
    if warm:
        warm.close()
    return result


def _sweep(
    config_paths: list[Path] | None,
    overrides: list[str],
    search: dict[str, Any],
    resources: Resources,
    runs_dir: Path | None,
    resume: Path | None,
    warm: WarmPool | None,
) -> SweepResult:
    if resources.backend not in ("local", "ray"):
        raise CbrunError(f"--backend: expected `local` or `ray`, got `{resources.backend}`")
    if resources.address and resources.backend != "ray":
        raise CbrunError("--address names a Ray cluster: add --backend ray")
    if resources.scheduler not in (None, *SCHEDULERS):
        raise CbrunError(f"--scheduler: expected one of {', '.join(SCHEDULERS)}")
    if resources.scheduler and resources.backend != "ray":
        raise CbrunError("--scheduler uses Ray Tune: add --backend ray")
    if resources.backend == "ray":
        import_ray(local=resources.address is None)  # a missing extra fails before any trial
    if resources.scheduler:
        _import_tune()
    if resume is None:
        if not config_paths:
            raise CbrunError("give an experiment file, or --resume SWEEP_DIR")
        plan = plan_search(config_paths, overrides, **search)
        warm = _kept(warm, plan.search, resources)
        return start_sweep(config_paths, overrides, plan, resources, runs_dir, warm)
    given = [f"--{k}" for k, v in search.items() if v] + (["--set"] if overrides else [])
    if given or runs_dir is not None:
        flags = ", ".join(given + (["--runs-dir"] if runs_dir else []))
        raise CbrunError(
            f"--resume runs the trials stored in {resume / SWEEP_RECORD}; drop {flags}"
        )
    record = read_sweep_record(resume)
    given_files = [str(path.resolve()) for path in config_paths or []]
    if given_files and given_files != config_files(record):
        raise CbrunError(
            f"--resume {resume}: that sweep is of {' '.join(config_files(record))}, not "
            f"{' '.join(map(str, config_paths or []))}"
        )
    warm = _kept(warm, record["search"].get("search"), resources)
    return resume_sweep(resume, resources, warm)


def _kept(warm: WarmPool | None, search: str | None, resources: Resources) -> WarmPool | None:
    """`warm` if the search runs on warm workers; otherwise (Optuna) it is killed unused."""
    if warm and not warm_workers(search, resources):
        warm.close(timeout=0)
        return None
    return warm
