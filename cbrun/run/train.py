"""`cbrun train`: validate, build, fit, evaluate, and record everything in a fresh run directory."""

from __future__ import annotations

import csv
import errno
import io
import math
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from cbrun.callbacks.base import resolve_mode
from cbrun.compute import speed
from cbrun.compute.distribution import describe as describe_strategy
from cbrun.compute.distribution import make_strategy
from cbrun.core.background_imports import BackgroundImports
from cbrun.core.console import Reporter, counted, format_metrics, format_number
from cbrun.core.errors import CbrunError
from cbrun.core.memory import return_free_memory
from cbrun.core.provenance import GIT_DIFF_FILE, git_provenance
from cbrun.core.run_dir import (
    CONFIG_FILE,
    RUN_RECORD,
    SpaceReserve,
    Stopwatch,
    create_run_dir,
    environment,
    utc_now,
    write_json_atomic,
    write_text_atomic,
)
from cbrun.data.base import split_size
from cbrun.data.class_weight import fit_class_weight
from cbrun.data.fingerprint import relative_to, write_listings
from cbrun.experiment.config import load_config, located, resolved_dict
from cbrun.experiment.data_checks import read_data
from cbrun.experiment.yaml_source import dump_yaml
from cbrun.inspect.report import add_pictures
from cbrun.run.build import build_callbacks, build_model, import_keras
from cbrun.run.interrupts import Interrupted, InterruptGuard
from cbrun.run.progress import EpochProgress
from cbrun.run.safeguards import NonFiniteLoss, NonFinitePolicy, SafetyChecks
from cbrun.run.scores import END_OF_RUN_MODULES, analyse
from cbrun.run.state import RunLock, SavedState, StateKeeper, continue_logs
from cbrun.run.stray_output import stdout_kept_clean, stdout_to_stderr

keras = import_keras()

MODEL_FILE = "model.keras"
DATA_CACHE = "data_cache"  # a streamed source's disk cache (data.cache: disk)


@dataclass
class TrainResult:
    run_dir: Path
    status: str
    exit_code: int
    record: dict[str, Any] = field(default_factory=dict)


@stdout_kept_clean  # stdout is for the run directory alone
def train(
    config_paths: Path | list[Path],
    overrides: list[str] | None = None,
    *,
    smoke: bool = False,
    runs_dir: Path | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train the experiment in `config_paths` (later files merged over earlier ones); user
    errors raise CbrunError before any run dir. Model code imports from the first file's
    folder."""
    paths = [config_paths] if isinstance(config_paths, Path) else list(config_paths)
    config_path = paths[0]
    config, document = load_config(paths, overrides, smoke=smoke)
    strategy = make_strategy(config.distribution)  # before TensorFlow runs any op
    import_keras(config.experiment.seed, config.experiment.deterministic)
    checked = read_data(config, document, config_dir=config_path.resolve().parent)  # = validate
    dataset, weights = checked.dataset, checked.class_weight
    if "fingerprint" in dataset.record:  # its paths as the config names them
        folder = config_path.resolve().parent
        dataset.record["fingerprint"] = relative_to(dataset.record["fingerprint"], folder)
    with located(document, "model"), strategy.scope():  # variables live on every replica
        model = build_model(config, dataset, config_dir=config_path.resolve().parent)

    record: dict[str, Any] = {
        "status": "running",
        "experiment": config.experiment.name,
        "started_at": utc_now(),
        "ended_at": None,
        "duration_seconds": None,
        "seed": config.experiment.seed,
        "tags": list(config.experiment.tags),
        "smoke": smoke,
        "epochs_planned": config.training.epochs,
        "epochs_completed": 0,
        "data": dataset.summary(),
        "class_weight": weights,
        "speed": speed.describe(config, model, split_size(dataset.train)),
        "distribution": describe_strategy(config.distribution, strategy),
        "config_file": str(config_path.resolve()),
        "config_files": [str(path.resolve()) for path in paths],
        **environment(),
    }
    git, diff = git_provenance(config_path)
    record["git"], record["git_commit"] = git, git and git["commit"]

    run_dir = create_run_dir(Path(runs_dir or config.output.runs_dir), config.experiment.name)
    try:
        SpaceReserve(run_dir).hold()  # before anything else is written there
        with located(document, "callbacks"):
            callbacks = build_callbacks(config, run_dir, dataset)
            test_callbacks = build_callbacks(config, run_dir, dataset, phase="evaluate")
        reporter = Reporter(quiet)
        reporter.attach_log(run_dir / "train.log")
        if diff:
            write_text_atomic(run_dir / GIT_DIFF_FILE, diff)
        write_text_atomic(run_dir / CONFIG_FILE, dump_yaml(resolved_dict(config)))
        write_text_atomic(run_dir / "overrides.yaml", dump_yaml(list(overrides or [])))
        summary = {**dataset.summary(), "feature_names": dataset.feature_names}
        write_json_atomic(run_dir / "data.json", summary)
        write_listings(run_dir, dataset.listings)
        write_text_atomic(run_dir / "model_summary.txt", _summary(model))
        write_json_atomic(run_dir / RUN_RECORD, record)
    except OSError as error:  # e.g. a full disk: the run never started, so nothing is kept
        _remove_unused(run_dir)
        raise CbrunError(f"{run_dir}: cannot write the run's files: {error}") from None
    except BaseException:
        _remove_unused(run_dir)
        raise
    return run(config, dataset, model, callbacks, test_callbacks, run_dir, record, reporter)


def run(
    config: Any,
    dataset: Any,
    model: Any,
    callbacks: list[Any],
    test_callbacks: list[Any],
    run_dir: Path,
    record: dict[str, Any],
    reporter: Reporter,
    resumed: SavedState | None = None,
    lock: RunLock | None = None,
) -> TrainResult:
    """Fit, evaluate and record a prepared run (new, or resumed from `resumed`); `lock`: the
    run's lock if the caller already holds it."""
    reserve = SpaceReserve(run_dir)  # held by train or resume: room for the final record
    lock = lock or RunLock(run_dir).acquire()  # a resume of a run still training is refused
    stray_output = stdout_to_stderr(run_dir / "train.log")  # prints of callbacks, Keras' verbose
    stray_output.__enter__()
    clock = Stopwatch()
    reporter.print(f"[bold]cbrun[/] {config.experiment.name}: {run_dir}")
    reporter.print(
        f"data {dataset.task}: "
        + ", ".join(f"{k} {v}" for k, v in dataset.summary()["samples"].items())
        + f"; model {config.model.type} ({model.count_params():,} parameters)"
    )
    skipped = dataset.record.get("skipped_files")
    if skipped:
        reporter.print(f"[yellow]skipped {counted(skipped, 'unreadable file')}[/] (see data.json)")
    if config.sweep is not None:
        reporter.print("note: `train` ignores the `sweep:` section; `cbrun sweep` runs it")
    if resumed is not None:
        reporter.print(f"resuming after epoch {resumed.epoch} of {config.training.epochs}")
    guard = InterruptGuard(run_dir, record).install()
    keeper = StateKeeper(
        run_dir, callbacks, _write_history, resumed, every=config.training.state_every
    )
    safety = SafetyChecks(guard, record)  # after the keeper: an epoch is saved before stopping
    policy = NonFinitePolicy(config.training, record)
    imports = BackgroundImports(END_OF_RUN_MODULES)  # started after the first epoch
    try:
        while True:
            try:
                history = _fit(
                    model,
                    config,
                    dataset,
                    callbacks,
                    run_dir,
                    record,
                    reporter,
                    keeper,
                    safety,
                    imports,
                )
                break
            except NonFiniteLoss as diverged:  # training.on_non_finite: fail, stop or rollback
                keeper.wait()  # the last epoch's state on disk before it is read
                saved = policy.recover(diverged, model, run_dir, callbacks)
                reporter.print(f"[yellow]{policy.message}[/]")
                if policy.stopped:
                    history = keras.callbacks.History()
                    break
                continue_logs(callbacks)  # on from the restored epoch, as a resume does
                keeper = StateKeeper(
                    run_dir, callbacks, _write_history, saved, every=config.training.state_every
                )
                safety = SafetyChecks(guard, record)
        imports.wait()
        return_free_memory()  # fit's freed buffers: not held through evaluation and pictures
        history = keeper.full_history(history)
        record.update(_outcome(config, history, callbacks), **policy.outcome())
        model.save(run_dir / MODEL_FILE)  # history files: written after every epoch by keeper
        if dataset.test is not None:
            test = model.evaluate(
                **dataset.feed("test", config.training.batch_size),
                verbose=0,
                return_dict=True,
                callbacks=test_callbacks,
            )
            record["test_metrics"] = {k: float(v) for k, v in test.items()}
            details, warnings = analyse(model, dataset, "test", config.training.batch_size, run_dir)
            for warning in warnings:
                record.setdefault("warnings", []).append(warning)
                reporter.print(f"[yellow]warning:[/] {warning}")
            write_json_atomic(
                run_dir / "eval.json",
                {
                    "split": "test",
                    "checkpoint": MODEL_FILE,
                    "metrics": record["test_metrics"],
                    "samples": split_size(dataset.test),
                    "evaluated_at": utc_now(),
                    **details,
                },
            )
        record["checkpoints"] = _checkpoints(run_dir, config)
        record["status"] = "completed"  # state/ stays: `--resume --set training.epochs=N`
        exit_code = 0
    except Interrupted as interrupt:
        record.update(interrupt.outcome(safety.where, keeper.epoch, keeper.saved_epoch, run_dir))
        keeper.save_current(model, run_dir / MODEL_FILE)
        reporter.print(f"[yellow]{record['stop_reason']}[/]\nresume: {record['resume_command']}")
        exit_code = interrupt.exit_code
    except Exception as error:  # any failure is recorded in the run directory
        record.update(status="failed", error={"type": type(error).__name__, "message": str(error)})
        record.setdefault("stop_reason", f"failed: {type(error).__name__}: {error}")
        reporter.log_only(traceback.format_exc())
        reporter.print(f"[red]training failed:[/] {type(error).__name__}: {error}")
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            record["resume_command"] = f"cbrun train --resume {run_dir}"
            reporter.print(f"free some space, then resume: {record['resume_command']}")
        exit_code = 1
    finally:
        keeper.join()  # no state file is written after the record
        segments = record.setdefault("segments", [])  # one per process that trained the run
        segments.append(
            {
                "from_epoch": resumed.epoch if resumed else 0,
                "seconds": clock.seconds(),
                "status": record["status"],
            }
        )
        total = round(sum(segment["seconds"] for segment in segments), 3)
        record.update(ended_at=utc_now(), duration_seconds=total)
        reserve.release()  # its room is for what follows, the record first
        write_json_atomic(run_dir / RUN_RECORD, record)
        add_pictures(run_dir, record, reporter)  # plots and report.html; a failure: a warning
        write_json_atomic(run_dir / RUN_RECORD, record)
        _notify_run_end(callbacks, record, reporter)  # e.g. mlflow ends its run with the status
        guard.uninstall()  # only now: a second Ctrl-C until here still leaves run.json readable
        stray_output.__exit__(None, None, None)
        lock.release()
    if exit_code == 0:
        reporter.print(_summary_table(record))
    reporter.close()
    return TrainResult(run_dir, record["status"], exit_code, record)


def _notify_run_end(callbacks: list[Any], record: dict[str, Any], reporter: Reporter) -> None:
    """Callbacks with `on_run_end(record)` see the final run record, however the run ended."""
    for callback in callbacks:
        hook = getattr(callback, "on_run_end", None)
        if hook is None:
            continue
        try:
            hook(record)
        except Exception as error:  # the run is over and recorded: report, do not fail it
            reporter.print(
                f"[yellow]warning:[/] {type(callback).__name__}.on_run_end failed: "
                f"{type(error).__name__}: {error}"
            )


def _fit(
    model, config, dataset, callbacks, run_dir, record, reporter, keeper, safety, imports
) -> Any:
    training = config.training
    internal_first = [_LearningRateLogger()]
    internal_last = [
        _EpochRecorder(run_dir, record, reporter, training.epochs),
        keeper,
        safety,
        _FreeMemoryReturned(),
        _AfterTheFirstEpoch(imports.start),
    ]
    if reporter.live:
        internal_first.append(EpochProgress(reporter.screen, training.epochs))
    return model.fit(
        **speed.fit_inputs(
            dataset,
            training,
            config.experiment.seed,
            passes_done=keeper.epoch,
            cache_dir=run_dir / DATA_CACHE,
        ),
        epochs=training.epochs,
        steps_per_epoch=training.steps_per_epoch,
        validation_steps=training.validation_steps if dataset.validation is not None else None,
        validation_freq=training.validation_freq,
        class_weight=fit_class_weight(record.get("class_weight")),
        callbacks=internal_first + callbacks + internal_last,
        initial_epoch=keeper.epoch,  # > 0 when resumed
        verbose=0,
    )


def _outcome(config: Any, history: Any, callbacks: list[Any]) -> dict[str, Any]:
    """Why training stopped, epochs run, and the best epoch of every monitored metric."""
    logs = history.history
    epochs_run = len(history.epoch)
    epochs = config.training.epochs
    reason = f"completed all {epochs} epochs" if epochs > 1 else "completed its 1 epoch"
    for callback in callbacks:
        if getattr(callback, "stop_reason", None):
            reason = callback.stop_reason
            break
        if getattr(callback, "stopped_epoch", 0) and hasattr(callback, "patience"):
            reason = (
                f"early_stopping: `{callback.monitor}` did not improve by more than "
                f"{abs(callback.min_delta):g} for {counted(callback.patience, 'epoch')}; "
                f"stopped after epoch {callback.stopped_epoch + 1}"
            )
            break
    monitors: dict[str, Any] = {}
    for params in config.callbacks:
        monitor = getattr(params, "monitor", None)
        values = logs.get(monitor) if monitor else None
        if not values or monitor in monitors:
            continue
        mode = resolve_mode(monitor, getattr(params, "mode", "auto"))
        finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
        if not finite:
            continue
        value, index = (min if mode == "min" else max)(finite, key=lambda pair: pair[0])
        monitors[monitor] = {"mode": mode, "best": float(value), "best_epoch": index + 1}
    return {
        "stop_reason": reason,
        "epochs_completed": epochs_run,
        "monitors": monitors,
        "final_metrics": {k: float(v[-1]) for k, v in logs.items() if v},
        **_model_epoch(callbacks, logs, epochs_run),
    }


def _model_epoch(callbacks: list[Any], logs: dict[str, list], epochs_run: int) -> dict[str, Any]:
    """Which epoch's weights model.keras holds: early stopping's restore_best_weights puts the
    best epoch's back at the end of training, even when it did not stop early."""
    for callback in callbacks:
        if getattr(callback, "restore_best_weights", False) and callback.best_weights is not None:
            epoch = callback.best_epoch + 1
            at_epoch = {k: float(v[epoch - 1]) for k, v in logs.items() if len(v) >= epoch}
            return {
                "model_epoch": epoch,
                "model_weights": f"weights of epoch {epoch} of {epochs_run}, the best "
                f"`{callback.monitor}` (early_stopping restore_best_weights)",
                "model_metrics": at_epoch,
            }
    return {"model_epoch": epochs_run}


def _checkpoints(run_dir: Path, config: Any) -> dict[str, Any]:
    """The final model, and the newest file of each best-only checkpoint callback."""
    found: dict[str, Any] = {"last": MODEL_FILE}
    for params in config.callbacks:
        if params.type != "model_checkpoint" or not params.save_best_only:
            continue
        folder = (run_dir / params.filepath).parent
        suffix = ".weights.h5" if params.save_weights_only else Path(params.filepath).suffix
        files = sorted(folder.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime)
        if files:
            found["best"] = str(files[-1].relative_to(run_dir))
            found["best_weights_only"] = params.save_weights_only
            break
    return found


def _write_history(run_dir: Path, history: dict[str, list[float]]) -> None:
    keys = list(history)
    rows = max((len(v) for v in history.values()), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch", *keys])
    for index in range(rows):
        writer.writerow(
            [index + 1, *(history[k][index] if index < len(history[k]) else "" for k in keys)]
        )
    write_text_atomic(run_dir / "history.csv", buffer.getvalue())
    write_json_atomic(
        run_dir / "history.json",
        {
            "epoch": list(range(1, rows + 1)),
            **{k: [float(x) for x in v] for k, v in history.items()},
        },
    )


def _summary(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=100)
    return "\n".join(lines) + "\n"


def _summary_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"{record['experiment']}: {record['status']}", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("epochs", f"{record['epochs_completed']} / {record['epochs_planned']}")
    table.add_row("stopped", record.get("stop_reason", ""))
    if record.get("model_weights"):
        table.add_row("model.keras", record["model_weights"])
    for name, value in record.get("final_metrics", {}).items():
        table.add_row(f"final {name}", format_number(value))
    for name, best in record.get("monitors", {}).items():
        table.add_row(f"best {name}", f"{format_number(best['best'])} (epoch {best['best_epoch']})")
    for name, value in record.get("test_metrics", {}).items():
        table.add_row(f"test {name}", format_number(value))
    table.add_row("duration", f"{record['duration_seconds']:.1f} s")
    return table


def _remove_unused(run_dir: Path) -> None:
    """Remove a run directory that never started (nothing of the user's is in it)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        run_dir.parent.rmdir()  # the experiment folder, if this was its only run
    except OSError:
        pass


class _LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs (history, CSV, TB)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            rate = self.model.optimizer.learning_rate  # a MirroredVariable under `mirrored`
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class _FreeMemoryReturned(keras.callbacks.Callback):
    """Gives the memory each epoch's steps freed back to the system (see core/memory.py)."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        return_free_memory()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        return_free_memory()


class _AfterTheFirstEpoch(keras.callbacks.Callback):
    """Calls `start` when an epoch ends (it must be safe to call again): the end-of-run imports
    start once the first epoch is over, since tracing the first steps is Python's work, which
    a thread would slow (the bench CNN's first epoch took 1.44 s instead of 1.2-1.3 s), while
    later epochs wait in TensorFlow's own threads, off Python's lock."""

    def __init__(self, start: Any):
        super().__init__()
        self.start = start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.start()


class _EpochRecorder(keras.callbacks.Callback):
    """Prints one line per epoch and keeps run.json's progress current."""

    def __init__(self, run_dir: Path, record: dict[str, Any], reporter: Reporter, epochs: int):
        super().__init__()
        self.run_dir, self.record, self.reporter, self.epochs = run_dir, record, reporter, epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._started
        width = len(str(self.epochs))
        self.reporter.print(
            f"epoch {epoch + 1:>{width}}/{self.epochs}  {format_metrics(logs or {})}  "
            f"[dim]{seconds:.1f}s[/]"
        )
        self.record["epochs_completed"] = epoch + 1
        self.record["last_metrics"] = {k: float(v) for k, v in (logs or {}).items()}
        write_json_atomic(self.run_dir / RUN_RECORD, self.record)
