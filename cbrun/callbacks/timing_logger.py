"""Wall time and throughput per epoch and per sampled batch, as a CSV in the run directory."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.core.fields import RunPath
from cbrun.data.base import split_size
from cbrun.registry import callbacks

COLUMNS = ["phase", "epoch", "batch", "seconds", "samples", "samples_per_second"]


class TimingLoggerParams(CallbackParams):
    """Log wall time and samples/s per epoch and every N batches to a CSV in the run directory.

    Rows: `fit` (one per sampled batch, then one per epoch covering its training batches),
    `validation` (the validation pass of each epoch), and with `phases` also `evaluate` and
    `predict`. Rows are appended, so `cbrun eval` adds to the file training wrote.
    """

    type: Literal["timing_logger"]
    filename: RunPath = Field("timing.csv", description="CSV file in the run directory.")
    batch_every: NonNegativeInt = Field(
        10, description="Time every Nth batch (0: epochs and whole phases only)."
    )

    def output_paths(self) -> list[str]:
        return [self.filename]


@callbacks.register("timing_logger", TimingLoggerParams)
def timing_logger(params: TimingLoggerParams, ctx: BuildContext) -> Any:
    import keras

    path = Path(ctx.path(params.filename))
    batch_size = ctx.config.training.batch_size
    split_samples = {
        "fit": split_size(ctx.dataset.train),
        "validation": split_size(ctx.dataset.validation),
    }

    class TimingLogger(keras.callbacks.Callback):
        """Buffers rows in memory and writes them once per epoch or phase."""

        def __init__(self) -> None:
            super().__init__()
            self._rows: list[list[Any]] = []
            self._epoch: int | str = ""
            self._in_fit = False

        def _samples(self, phase: str, batches: int) -> int:
            """Samples in the first `batches` batches (the last batch of a split may be short)."""
            full = batches * batch_size
            known = split_samples.get(phase)
            return min(full, known) if known else full

        def _row(self, phase: str, batch: int | str, seconds: float, samples: int) -> None:
            rate = round(samples / seconds, 3) if seconds > 0 else ""
            self._rows.append([phase, self._epoch, batch, f"{seconds:.6f}", samples, rate])

        def _flush(self) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists() or path.stat().st_size == 0
            with open(path, "a", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow(COLUMNS)
                writer.writerows(self._rows)
            self._rows = []

        def _begin(self, phase: str) -> None:
            self._phase, self._phase_started = phase, time.perf_counter()
            self._batches, self._last_sampled = 0, None

        def _end(self, batches: int) -> None:
            seconds = time.perf_counter() - self._phase_started
            self._row(self._phase, "", seconds, self._samples(self._phase, batches))

        def _batch_begin(self, batch: int) -> None:
            """Sample this step if `batch_every` batches passed since the last sampled one.

            With `steps_per_execution` N, Keras calls the hooks once per N batches (`batch` is
            the first of them), so a sampled row then covers N batches.
            """
            last = self._last_sampled
            self._sampled = bool(params.batch_every) and (
                last is None or batch - last >= params.batch_every
            )
            if self._sampled:
                self._last_sampled, self._batch_started = batch, time.perf_counter()

        def _batch_end(self, batch: int) -> None:
            self._batches = batch + 1
            if self._sampled:
                seconds = time.perf_counter() - self._batch_started
                first = self._last_sampled
                samples = self._samples(self._phase, batch + 1) - self._samples(self._phase, first)
                self._row(self._phase, first + 1, seconds, samples)

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._in_fit = True

        def on_train_end(self, logs: dict | None = None) -> None:
            self._in_fit, self._epoch = False, ""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch, self._trained = epoch + 1, False
            self._begin("fit")

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self._batch_begin(batch)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._batch_end(batch)

        def on_test_begin(self, logs: dict | None = None) -> None:
            if self._in_fit:
                self._end(self._batches)  # the training part of the epoch ends here
                self._trained = True
            self._begin("validation" if self._in_fit else "evaluate")

        def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self._batch_begin(batch)

        def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._batch_end(batch)

        def on_test_end(self, logs: dict | None = None) -> None:
            self._end(self._batches)
            if not self._in_fit:
                self._flush()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if not self._trained:  # no validation this epoch
                self._end(self._batches)
            self._flush()

        def on_predict_begin(self, logs: dict | None = None) -> None:
            self._predicted = 0
            self._begin("predict")

        def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self._batch_begin(batch)

        def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
            size = len(keras.tree.flatten((logs or {}).get("outputs"))[0])
            self._predicted += size
            if self._sampled:
                seconds = time.perf_counter() - self._batch_started
                self._row("predict", self._last_sampled + 1, seconds, size)

        def on_predict_end(self, logs: dict | None = None) -> None:
            self._row("predict", "", time.perf_counter() - self._phase_started, self._predicted)
            self._flush()

    return TimingLogger()
