"""cbrun's own per-epoch backup of a run's training state, in `RUN_DIR/state/`.

Once, before the first epoch, the whole model (architecture, compile settings, optimizer) goes
to `state/model.keras`. After every epoch (and once before the first) the values of the
model's and the optimizer's variables (`variables.npz`, a fraction of a `.keras` file's cost),
the history so far, the progress of every callback that tracks one (early stopping's `wait` and
`best`, a best-only checkpoint's `best`, ...) and every random state training draws on (the
layers' seed generators, Keras' global one, NumPy's and Python's; see cbrun/run/rng_state.py)
are written to a new `state/epoch-NNNN/` folder; then `state/latest.json` is replaced
atomically to point at it, and older folders are removed. A process killed at any moment leaves
`latest.json` naming a complete folder, which `cbrun train --resume` continues from (see
cbrun/run/resume.py). This works whether or not the config declares Keras' own
`backup_and_restore` callback.

The training thread only copies those values; a background thread writes the files (and the
history files) while the next epoch trains, one epoch's state at a time, so the disk's fsyncs
never hold training up. Whoever reads the state or the saved epoch waits for it first.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import CONFIG_FILE, read_json, utc_now, write_json_atomic
from cbrun.run.build import import_keras
from cbrun.run.rng_state import capture_random_state, restore_random_state, write_random_state

keras = import_keras()  # through cbrun, so TensorFlow's start-up chatter stays quiet

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

STATE_DIR = "state"
LATEST = "latest.json"
MODEL = "model.keras"  # state/model.keras: the model as training began (older runs: per epoch)
VARIABLES = "variables.npz"
STATE = "state.json"
LOCK = ".lock"

# Attributes of Keras callbacks that carry their progress from one epoch to the next.
PROGRESS_ATTRIBUTES = (
    "wait",
    "best",
    "best_epoch",
    "stopped_epoch",
    "cooldown_counter",
    "_batches_seen_since_last_saving",
    "_last_batch_seen",
    "_ema_weights_in_model",  # swap_ema_weights: the state saved after an epoch holds EMA weights
)


@dataclass
class SavedState:
    """One saved point of a run: `epoch` epochs finished."""

    folder: Path
    epoch: int
    history: dict[str, list[float]]
    callbacks: list[dict[str, Any]]
    random: dict[str, Any] | None = None  # absent in states saved before cbrun kept it
    config_yaml: str | None = None  # the run's config.yaml as the run began

    @property
    def model_path(self) -> Path:
        """The `.keras` file to load the model from (then `restore_variables` sets its values)."""
        if (self.folder / VARIABLES).is_file():
            return self.folder.parent / MODEL
        return self.folder / MODEL  # a state saved before cbrun kept only the variables


def restore_variables(model: Any, saved: SavedState) -> None:
    """Set the model's and its optimizer's variables to the values saved with `saved`."""
    path = saved.folder / VARIABLES
    if not path.is_file():  # an older state: its own model.keras holds the values
        model.load_weights(saved.model_path)
        return
    variables = _state_variables(model)
    with np.load(path) as stored:
        if len(stored.files) != len(variables):
            raise CbrunError(
                f"{path}: holds {len(stored.files)} variables, the model and optimizer have "
                f"{len(variables)}: the state does not belong to this model"
            )
        for index, variable in enumerate(variables):
            value = stored[f"v{index}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise CbrunError(
                    f"{path}: variable {index} ({variable.path}) has shape {value.shape}, "
                    f"the model's is {tuple(variable.shape)}: the state does not belong to it"
                )
            variable.assign(value)


def _state_variables(model: Any) -> list[Any]:
    optimizer = getattr(model, "optimizer", None)
    return list(model.variables) + (list(optimizer.variables) if optimizer is not None else [])


class _Latest(BaseModel):
    folder: str = Field(pattern=r"^epoch-\d{4,}$")  # a folder of state/, never a path out


class _CallbackProgress(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_name: str = Field(alias="class")
    attributes: dict[Literal[PROGRESS_ATTRIBUTES], Any] = {}  # type: ignore[valid-type]
    custom: Any = None
    best_weights: str | None = Field(None, pattern=r"^callback-\d+-best-weights\.npz$")


class _NumpyRandom(BaseModel):
    kind: str
    pos: int
    has_gauss: int
    cached_gaussian: float


class _PythonRandom(BaseModel):
    version: int
    gauss_next: float | None


class _RandomEntry(BaseModel):
    file: Literal["random.npz"]
    layer_seed_generators: list[str]
    keras_global: bool
    numpy: _NumpyRandom
    python: _PythonRandom


class _StateFile(BaseModel):
    epoch: int = Field(ge=0)
    history: dict[str, list[float | None]]
    callbacks: list[_CallbackProgress]
    random: _RandomEntry | None = None
    config_yaml: str | None = None


def read_state(run_dir: Path) -> SavedState | None:
    """The run's latest saved state, or None if it never saved one; a damaged one is refused
    by name (hand-edited or truncated files must not crash or steer a resume)."""
    latest = run_dir / STATE_DIR / LATEST
    if not latest.is_file():
        return None
    pointer = _read_checked(latest, _Latest)
    folder = run_dir / STATE_DIR / pointer.folder
    saved = _read_checked(folder / STATE, _StateFile)
    callbacks = [entry.model_dump(by_alias=True, exclude_none=True) for entry in saved.callbacks]
    for entry in saved.callbacks:
        entry_file = folder / entry.best_weights if entry.best_weights else None
        if entry_file is not None and not entry_file.is_file():
            raise CbrunError(f"{entry_file}: missing; the saved state is incomplete")
    state = SavedState(
        folder,
        saved.epoch,
        {k: [math.nan if v is None else v for v in values] for k, values in saved.history.items()},
        callbacks,
        saved.random.model_dump() if saved.random else None,
        saved.config_yaml,
    )
    if not state.model_path.is_file():
        raise CbrunError(f"{state.model_path}: missing; the saved state is incomplete")
    return state


def keep_config(saved: SavedState, config_yaml: str) -> None:
    """Make `config_yaml` the config the saved state belongs to (a resume that extends it)."""
    path = saved.folder / STATE
    write_json_atomic(path, {**read_json(path), "config_yaml": config_yaml})


def _read_checked(path: Path, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(read_json(path))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        what = "expected a JSON object" if first["type"] == "model_type" else first["msg"]
        raise CbrunError(
            f"{path}: damaged ({where}: {what}); the run cannot resume from it",
            hint="start a new run with `cbrun train CONFIG`",
        ) from None


class _BackgroundWrite:
    """Runs one write at a time on its own thread; its error is raised by the next `wait`."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, write: Callable[[], None]) -> None:
        self.wait()  # one epoch's copies in memory at most, and the files in epoch order
        self._thread = threading.Thread(target=self._run, args=(write,), daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def join(self) -> None:
        """Wait for the write, keeping its error for the next `wait`."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, write: Callable[[], None]) -> None:
        try:
            write()
        except BaseException as error:  # e.g. a full disk: the run fails at its next wait
            self._error = error


class StateKeeper(keras.callbacks.Callback):
    """Saves the training state every `every` epochs; restores callback progress on resume.

    It must come after every user callback in the list: its `on_train_begin` then runs after
    theirs (which reset their progress), and its `on_epoch_end` sees their updated progress.

    Args:
        run_dir: the run directory.
        callbacks: the config's callbacks, in order (their progress is saved).
        write_history: writes `history.csv`/`history.json` from a history dict.
        resumed: the state a resumed run starts from, or None for a new run.
        every: save after every this many epochs, and after the last one.
    """

    def __init__(
        self,
        run_dir: Path,
        callbacks: list[Any],
        write_history: Callable[[Path, dict[str, list[float]]], None],
        resumed: SavedState | None = None,
        every: int = 1,
    ):
        super().__init__()
        self.run_dir, self.callbacks, self.write_history = run_dir, callbacks, write_history
        self.resumed, self.every = resumed, every
        self.epoch = resumed.epoch if resumed else 0
        self._saved_epoch = self.epoch
        self._writes = _BackgroundWrite()
        self._reader: tuple[tuple[int, ...], Callable[[], list[Any]]] | None = None
        self.history: dict[str, list[float]] = {
            k: list(v) for k, v in (resumed.history if resumed else {}).items()
        }
        config_file = run_dir / CONFIG_FILE
        self.config_yaml = (
            resumed.config_yaml
            if resumed and resumed.config_yaml is not None
            else config_file.read_text(encoding="utf-8")
            if config_file.is_file()
            else None
        )

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.resumed is None:
            self._save()  # epoch 0: a run stopped during its first epoch resumes from here,
            self.wait()  # so it is on disk before the first batch, even for a SIGKILL
            return
        if self.resumed.random is not None:  # dropout and co. draw on as the unbroken run did
            restore_random_state(self.model, self.resumed.folder, self.resumed.random)
        for callback, saved in zip(self.callbacks, self.resumed.callbacks, strict=False):
            if type(callback).__name__ == saved["class"]:
                _restore_progress(callback, saved, self.resumed.folder)
            if isinstance(callback, keras.callbacks.CSVLogger):
                _drop_rows_from(Path(callback.filename), callback.sep, self.epoch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():  # as keras.callbacks.History records it
            self.history.setdefault(key, []).append(_plain(value))
        self.epoch = epoch + 1
        if self.epoch % self.every == 0 or self.epoch == self.params.get("epochs"):
            self._save()
        else:
            history = {k: list(v) for k, v in self.history.items()}
            self._writes.start(lambda: self.write_history(self.run_dir, history))

    def on_train_end(self, logs: dict | None = None) -> None:
        self.wait()

    def wait(self) -> None:
        """Wait until the files of the last finished epoch are written (raises their error)."""
        self._writes.wait()

    def join(self) -> None:
        """Wait for the files being written, leaving an error for `wait` (a run that fails
        or stops for another reason records that reason)."""
        self._writes.join()

    @property
    def saved_epoch(self) -> int:
        """The epoch the latest saved state ends with (once its files are written)."""
        self.join()
        return self._saved_epoch

    def full_history(self, history: Any) -> Any:
        """`history` (from this fit) with the epochs of the runs before a resume prepended."""
        history.history = {k: list(v) for k, v in self.history.items()}
        history.epoch = list(range(self.epoch))
        return history

    def save_current(self, model: Any, path: Path) -> None:
        """Save `model` as it is now to `path`, atomically (an interrupted run's model so far)."""
        partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
        model.save(partial)
        os.replace(partial, path)

    def _read_variables(self) -> list[np.ndarray]:
        """Copies of the model's and the optimizer's variables, read in one TensorFlow call
        (one eager read per variable took 1.5 ms for the bench MLP's 20, this 0.4 ms)."""
        variables = _state_variables(self.model)
        key = tuple(id(v) for v in variables)
        if self._reader is None or self._reader[0] != key:
            import tensorflow as tf

            read = tf.function(lambda: [tf.identity(v) for v in variables], autograph=False)
            self._reader = (key, read)
        return [value.numpy().copy() for value in self._reader[1]()]  # training goes on

    def _save(self) -> None:
        """Copy the state now; write it (and the history files) on the background thread."""
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and not optimizer.built:  # before the first step: all its
            with self.model.distribute_strategy.scope():  # state is saved, as Keras builds it
                optimizer.build(self.model.trainable_variables)  # when loading a model
        root = self.run_dir / STATE_DIR
        if not (root / MODEL).is_file():  # the model as training began; the values follow
            self.wait()
            root.mkdir(parents=True, exist_ok=True)
            self.save_current(self.model, root / MODEL)
        values = {f"v{i}": value for i, value in enumerate(self._read_variables())}
        progress = [_progress(callback, i) for i, callback in enumerate(self.callbacks)]
        random_arrays, random_entry = capture_random_state(self.model)
        epoch, history = self.epoch, {k: list(v) for k, v in self.history.items()}
        state = {
            "epoch": epoch,
            "saved_at": utc_now(),
            "history": history,
            "callbacks": [entry for entry, _ in progress],
            "config_yaml": self.config_yaml,  # a resume refuses an edited config.yaml
            "random": random_entry,
        }

        def write() -> None:
            if epoch > 0:
                self.write_history(self.run_dir, history)
            name = f"epoch-{epoch:04d}"
            partial = root / f".{name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            np.savez(partial / VARIABLES, **values)
            for entry, best_weights in progress:
                if best_weights is not None:
                    np.savez(partial / entry["best_weights"], *best_weights)
            write_random_state(partial, random_arrays)
            write_json_atomic(partial / STATE, state)
            shutil.rmtree(root / name, ignore_errors=True)  # a resumed run redoing this epoch
            os.replace(partial, root / name)
            write_json_atomic(root / LATEST, {"folder": name, "epoch": epoch})
            self._saved_epoch = epoch
            for old in root.iterdir():
                if old.name not in (name, LATEST, MODEL):
                    shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)

        self._writes.start(write)


def continue_logs(callbacks: list[Any]) -> None:
    """Make CSV loggers append to their file (rows past the saved epoch are dropped later)."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.CSVLogger):
            callback.append = True


class RunLock:
    """An exclusive lock on a run directory while one process trains in it (POSIX `flock`)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            return self
        flags = os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)  # never through a link
        try:
            fd = os.open(self.run_dir / LOCK, flags, 0o644)
        except OSError as error:
            raise CbrunError(
                f"{self.run_dir / LOCK}: cannot open the run's lock: {error}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CbrunError(
                f"{self.run_dir}: another cbrun process is training in this run directory"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def _drop_rows_from(path: Path, separator: str, epoch: int) -> None:
    """Cut a CSVLogger file (0-based `epoch` column) in place before the row of `epoch`.

    In place, because the logger already holds the file open for appending.
    """
    if not path.is_file():
        return
    with open(path, "r+", encoding="utf-8", newline="") as handle:
        header = handle.readline()
        end = len(header.encode())
        for line in iter(handle.readline, ""):
            first = line.split(separator, 1)[0].strip('"')
            if first.isdecimal() and int(first) >= epoch:
                break
            end += len(line.encode())
        handle.truncate(end)


def _progress(callback: Any, index: int) -> tuple[dict[str, Any], list[Any] | None]:
    """The progress attributes of one callback, as JSON, and its best weights (for their own
    file, which the JSON names)."""
    if hasattr(callback, "get_resume_state"):  # plugin callbacks may describe their own state
        custom = copy.deepcopy(callback.get_resume_state())  # written while training goes on
        return {"class": type(callback).__name__, "custom": custom}, None
    values = {
        name: _plain(getattr(callback, name))
        for name in PROGRESS_ATTRIBUTES
        if hasattr(callback, name)
    }
    entry: dict[str, Any] = {"class": type(callback).__name__, "attributes": values}
    best_weights = getattr(callback, "best_weights", None)
    if best_weights is None:
        return entry, None
    entry["best_weights"] = f"callback-{index}-best-weights.npz"
    return entry, [np.array(weights, copy=True) for weights in best_weights]


def _restore_progress(callback: Any, saved: dict[str, Any], folder: Path) -> None:
    if "custom" in saved:
        callback.set_resume_state(saved["custom"])
        return
    for name, value in saved["attributes"].items():
        setattr(callback, name, value)
    if saved.get("best_weights"):
        with np.load(folder / saved["best_weights"]) as arrays:
            callback.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def _plain(value: Any) -> Any:
    """A JSON value for a progress attribute (numbers from NumPy or tensors become floats)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))
