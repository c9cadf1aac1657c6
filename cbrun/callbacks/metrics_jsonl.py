"""One JSON object per line for each epoch (and every N batches), for machines to read."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.core.fields import RunPath
from cbrun.core.run_dir import utc_now
from cbrun.registry import callbacks


class MetricsJsonlParams(CallbackParams):
    """Append one JSON line per epoch (and every N batches) with its metrics, for machines.

    Each line has `event` (`epoch`, `batch`, `evaluate`, `predict`), `phase`, `time` (UTC),
    `elapsed_seconds` and the metrics. Joins evaluate and predict with `phases`: a line at
    the end of each. Lines are appended, so `cbrun eval` adds to the file training wrote.
    """

    def batch_hooks(self) -> bool:
        return self.batch_every > 0

    type: Literal["metrics_jsonl"]
    filename: RunPath = Field("metrics.jsonl", description="JSON Lines file in the run directory.")
    batch_every: NonNegativeInt = Field(
        0, description="Also write a line every N training batches (0: epochs only)."
    )

    def output_paths(self) -> list[str]:
        return [self.filename]


def _number(value: Any) -> Any:
    """A plain JSON number; NaN and infinities (not valid JSON) become null."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


@callbacks.register("metrics_jsonl", MetricsJsonlParams)
def metrics_jsonl(params: MetricsJsonlParams, ctx: BuildContext) -> Any:
    import keras

    path = Path(ctx.path(params.filename))

    class MetricsJsonl(keras.callbacks.Callback):
        """Writes and flushes one line per event, so a reader can tail the file live."""

        def __init__(self) -> None:
            super().__init__()
            self._file: Any = None
            self._in_fit = False
            self._started = time.perf_counter()

        def _write(self, event: str, logs: dict | None, **fields: Any) -> None:
            if self._file is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("a", encoding="utf-8")  # closed at the phase's end
            line = {
                "event": event,
                "phase": "fit" if self._in_fit else event,
                "time": utc_now(),
                "elapsed_seconds": round(time.perf_counter() - self._started, 4),
                **fields,
                "metrics": {k: _number(v) for k, v in (logs or {}).items()},
            }
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

        def _close(self) -> None:
            if self._file is not None:
                self._file.close()
                self._file = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._in_fit, self._started = True, time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._write("epoch", logs, epoch=epoch + 1)

        def on_train_end(self, logs: dict | None = None) -> None:
            self._in_fit = False
            self._close()

        def on_test_begin(self, logs: dict | None = None) -> None:
            if not self._in_fit:
                self._started = time.perf_counter()

        def on_test_end(self, logs: dict | None = None) -> None:
            if not self._in_fit:  # validation inside fit is already in the epoch line
                self._write("evaluate", logs)
                self._close()

        def on_predict_begin(self, logs: dict | None = None) -> None:
            self._started = time.perf_counter()

        def on_predict_end(self, logs: dict | None = None) -> None:
            self._write("predict", None)
            self._close()

    class BatchMetricsJsonl(MetricsJsonl):
        """Also a line every `batch_every` batches (a batch hook makes Keras call it in step)."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch, self._written = epoch, 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            # `batch` is the last of the N batches a step ran (training.steps_per_execution).
            if batch + 1 - self._written >= params.batch_every:
                self._write("batch", logs, epoch=self._epoch + 1, batch=batch + 1)
                self._written = batch + 1

    return BatchMetricsJsonl() if params.batch_every else MetricsJsonl()
