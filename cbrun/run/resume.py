"""`cbrun train --resume RUN_DIR`: continue an interrupted, failed or killed run in place.

The run continues from its last saved state (cbrun/run/state.py): the model and optimizer (so the
learning rate and step counter), the epoch counter, the history, and the progress of early
stopping, best-only checkpoints and similar callbacks. CSV logs are appended from the next
epoch on, so no epoch is missing or written twice. `--set training.epochs=N` extends a run,
completed ones too; only settings that shape the epochs still to come may change.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import yaml

from cbrun.compute.distribution import make_strategy
from cbrun.core.console import Reporter, counted
from cbrun.core.errors import CbrunError
from cbrun.core.importing import imports_from_run
from cbrun.core.run_dir import (
    CONFIG_FILE,
    SpaceReserve,
    environment,
    refuse_links,
    utc_now,
    write_text_atomic,
)
from cbrun.experiment.config import load_config, resolved_dict
from cbrun.experiment.yaml_source import dump_yaml, format_path, split_key
from cbrun.inspect.compare import MISSING, config_differences
from cbrun.run.build import build_callbacks, build_dataset, import_keras
from cbrun.run.data_check import check_data
from cbrun.run.model_file import load_model_file
from cbrun.run.resumed_record import read_resumed_record
from cbrun.run.state import (
    RunLock,
    SavedState,
    continue_logs,
    keep_config,
    read_state,
    restore_variables,
)
from cbrun.run.stray_output import stdout_kept_clean
from cbrun.run.train import TrainResult, run

# What `--resume --set` may change: these shape only the epochs still to come.
EXTENDABLE = (
    "training.epochs",
    "training.state_every",
    "experiment.tags",
    "experiment.description",
)


@stdout_kept_clean  # stdout is for the run directory alone
def resume_run(
    run_dir: Path,
    overrides: list[str] | None = None,
    *,
    quiet: bool = False,
    unsafe: bool = False,
    allow_imports: bool = False,
    allow_changed_data: bool = False,
) -> TrainResult:
    """Continue training in `run_dir` from its last saved epoch.

    Args:
        run_dir: a run directory made by `cbrun train`.
        overrides: `KEY=VALUE` settings among EXTENDABLE, e.g. `training.epochs=20` to train
            a run (a completed one too) for longer.
        quiet: print nothing but errors.
        unsafe: load a saved model that holds Python code (Keras' safe mode off).
        allow_imports: import `module:function` code named in the run's saved config.
        allow_changed_data: go on with data files that changed since the run began (the
            resume record says what changed); refused otherwise.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        raise CbrunError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    _refuse_unextendable(overrides or [])
    lock = RunLock(run_dir).acquire()  # first: nothing is read while another process trains
    try:
        return _resume_locked(
            run_dir, overrides or [], lock, quiet, unsafe, allow_imports, allow_changed_data
        )
    except BaseException:
        lock.release()
        raise


def _resume_locked(
    run_dir: Path,
    overrides: list[str],
    lock: RunLock,
    quiet: bool,
    unsafe: bool,
    allow_imports: bool,
    allow_changed_data: bool,
) -> TrainResult:
    record = _resumable_record(run_dir, extending=bool(overrides))
    saved = read_state(run_dir)
    if saved is None:
        raise CbrunError(
            f"{run_dir}: no saved training state (state/latest.json): "
            + (
                "the run completed before cbrun kept a finished run's state, so it cannot "
                "be extended; train a new run with more epochs"
                if record.get("status") == "completed"
                else "the run stopped before training began; start it again with "
                "`cbrun train CONFIG`"
            )
        )
    _refuse_an_edited_config(run_dir, saved)
    data_changed = check_data(run_dir, record, allow_changed_data)
    SpaceReserve(run_dir).hold()  # a disk without room for the record: exit 2, nothing changed
    saved, changes = _extended(run_dir, saved, overrides)
    config, _ = load_config(run_dir / CONFIG_FILE)
    with imports_from_run(run_dir, allow_imports):
        strategy = make_strategy(config.distribution)
        dataset = build_dataset(config)
        callbacks = build_callbacks(config, run_dir, dataset)  # refuses imports before any work
        test_callbacks = build_callbacks(config, run_dir, dataset, phase="evaluate")
        continue_logs(callbacks)
        import_keras(config.experiment.seed, config.experiment.deterministic)
        with strategy.scope(), warnings.catch_warnings():
            if saved.epoch == 0:  # saved before the first step built the optimizer: nothing lost
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model = load_model_file(saved.model_path, unsafe=unsafe)
            restore_variables(model, saved)
        reporter = Reporter(quiet)
        reporter.attach_log(run_dir / "train.log")
        _mark_resumed(record, saved, changes, data_changed)
        record.update(
            experiment=config.experiment.name,
            epochs_planned=config.training.epochs,
            tags=list(config.experiment.tags),
        )
        return run(
            config,
            dataset,
            model,
            callbacks,
            test_callbacks,
            run_dir,
            record,
            reporter,
            saved,
            lock,
        )


def _refuse_an_edited_config(run_dir: Path, saved: SavedState) -> None:
    """A resume continues the run as it began: a changed config.yaml is refused, by name."""
    path = run_dir / CONFIG_FILE
    now = path.read_text(encoding="utf-8")
    if saved.config_yaml is None or now == saved.config_yaml:
        return
    try:
        before, after = yaml.safe_load(saved.config_yaml), yaml.safe_load(now)
    except yaml.YAMLError:
        before, after = None, None
    changes = (
        [
            f"{key}: {_shown(was)} -> {_shown(is_)}"
            for key, (was, is_) in config_differences([before, after]).items()
        ]
        if isinstance(before, dict) and isinstance(after, dict)
        else []
    )
    raise CbrunError(
        f"{path}: edited since the run began ({'; '.join(changes) or 'its text changed'}); "
        "--resume continues the run as it was configured",
        hint="put the file back as it was, or start a new run with `cbrun train CONFIG --set ...`",
    )


def _refuse_unextendable(overrides: list[str]) -> None:
    for override in overrides:
        key = override.partition("=")[0].strip()
        if not key or format_path(split_key(key, override)) not in EXTENDABLE:
            raise CbrunError(
                f"--set {override}: a resume may change only {', '.join(EXTENDABLE)}; "
                "anything else would not match the epochs already trained",
                hint="start a new run with `cbrun train CONFIG --set ...`",
            )


def _extended(
    run_dir: Path, saved: SavedState, overrides: list[str]
) -> tuple[SavedState, dict[str, list[Any]]]:
    """Apply `--set` overrides to the run's config.yaml; the state then holds the new text."""
    if not overrides:
        return saved, {}
    path = run_dir / CONFIG_FILE
    config, _ = load_config(path, overrides)
    if config.training.epochs <= saved.epoch:
        raise CbrunError(
            f"--set training.epochs={config.training.epochs}: the run has trained "
            f"{counted(saved.epoch, 'epoch')} already; give more to extend it"
        )
    text = dump_yaml(resolved_dict(config))
    before, after = yaml.safe_load(path.read_text(encoding="utf-8")), yaml.safe_load(text)
    changes = {key: [was, is_] for key, (was, is_) in config_differences([before, after]).items()}
    write_text_atomic(path, text)
    keep_config(saved, text)  # the state agrees at once, also if this resume fails early
    return dataclasses.replace(saved, config_yaml=text), changes


def _shown(value: Any) -> str:
    return "(absent)" if value == MISSING else json.dumps(value)


def _resumable_record(run_dir: Path, *, extending: bool) -> dict[str, Any]:
    record = read_resumed_record(run_dir)  # checked where a resume reads or extends it
    if record.get("status") == "completed" and not extending:
        raise CbrunError(
            f"{run_dir}: the run completed; there is nothing to resume",
            hint=f"to train it longer: cbrun train --resume {run_dir} --set training.epochs=N",
        )
    refuse_links(run_dir, "--resume")
    return record


def _mark_resumed(
    record: dict[str, Any],
    saved: SavedState,
    changes: dict[str, list[Any]],
    data_changed: list[str],
) -> None:
    """Note the resume in the record; drop the fields that described how the run stopped."""
    now = environment()
    record.setdefault("resumes", []).append(
        {
            "at": utc_now(),
            "from_epoch": saved.epoch,
            "changed": changes,  # key path -> [before, after], from --set
            "previous_status": record.get("status"),
            "previous_stop_reason": record.get("stop_reason"),
            "previous_test_metrics": record.get("test_metrics"),
            "command": now["command"],
            "pid": now["pid"],
            "host": now["host"],
            **({"data_changed": data_changed} if data_changed else {}),
        }
    )
    for key in ("error", "signal", "stop_reason", "resume_command", "test_metrics"):
        record.pop(key, None)
    record.update(status="running", ended_at=None, epochs_completed=saved.epoch)
