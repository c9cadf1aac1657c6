"""A live progress bar inside each epoch, on a terminal only: batches done, ETA, running loss.

Pipes and CI logs get no bar: the one line per epoch that `train` prints is all they need, and
a per-batch hook would cost time for nothing. Added by `train` when stderr is a terminal and
`--quiet` is not given.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cbrun.core.console import format_metrics
from cbrun.run.build import import_keras

keras = import_keras()  # through cbrun, so TensorFlow's start-up chatter stays quiet


class EpochProgress(keras.callbacks.Callback):
    """A transient rich bar per epoch on `console`, updated after every batch."""

    def __init__(self, console: Console, epochs: int):
        super().__init__()
        self.console, self.epochs = console, epochs
        self.bar: Progress | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.bar = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("batches  eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=True,  # the epoch's own line replaces it
        )
        self.task = self.bar.add_task("fit", total=self.params.get("steps"), metrics="")
        self.bar.start()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=batch + 1, metrics=format_metrics(logs or {}))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._stop()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
