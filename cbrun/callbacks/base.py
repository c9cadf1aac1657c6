"""What callback params share: the monitored metric and its mode, and the build context."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from cbrun.core.fields import StrictModel

# Metric names (without `val_`) where bigger is better; anything else is minimised.
_MAXIMISED = re.compile(
    r"(acc|accuracy|auc|precision|recall|f1|fbeta|iou|r2|score|true_positives|true_negatives)"
    r"(_\d+)?$"
)


def resolve_mode(monitor: str, mode: str = "auto") -> Literal["min", "max"]:
    """`min` for losses and errors, `max` for accuracy-like metrics; explicit modes win.

    Keras' own `auto` guesses from a few names and fails on custom metrics, so cbrun decides.
    """
    if mode in ("min", "max"):
        return mode  # type: ignore[return-value]
    name = monitor.removeprefix("val_")
    return "max" if _MAXIMISED.search(name) and "loss" not in name else "min"


Phase = Literal["fit", "evaluate", "predict"]


class CallbackParams(StrictModel):
    """Base of every callback's params."""

    example_sections: ClassVar[dict[str, Any]] = {}
    """Other sections the `list-callbacks` example needs to validate, e.g. an EMA optimizer."""

    phases: list[Phase] = Field(
        default_factory=lambda: ["fit"],
        min_length=1,
        description="Which of fit, evaluate and predict this callback joins.",
    )

    def keras_args(self, *exclude: str) -> dict[str, Any]:
        """The params passed straight to a Keras callback: all but cbrun's own and `exclude`."""
        return self.model_dump(exclude={"type", "phases", *exclude})

    def output_paths(self) -> list[str]:
        """Files this callback writes, relative to the run directory; folders end with `/`.

        The config check reports two callbacks (or a callback and cbrun's own run files) that
        list the same path, or a path inside a folder another one lists (a folder ending with
        `/` is owned whole, as TensorBoard's `log_dir`). A callback that writes files overrides
        this, e.g. `return [self.filename]`; templated names are compared as written.
        """
        return []

    def logged_metrics(self) -> list[str]:
        """Names this callback adds to each epoch's logs, so that a `monitor` may watch them."""
        return []

    def watched_metrics(self) -> list[tuple[str, str]]:
        """(param, metric) pairs this callback reads from the epoch logs; checked up front."""
        return []

    def batch_hooks(self) -> bool:
        """Whether the callback needs a hook called after every batch. When none does,
        `training.steps_per_execution: auto` runs many batches per call into TensorFlow (a
        batch hook would then be called once per call). Unknown callbacks say yes."""
        return True

    def build_problems(self, config_dir: Path) -> list[tuple[tuple[str, ...], str]]:
        """What building this callback would refuse, found before training (`validate` too):
        (key path inside the item, message) pairs. `config_dir` is the config file's folder."""
        return []


class FitOnlyParams(CallbackParams):
    """Base of params of callbacks that only act while training: `phases` may only hold `fit`."""

    phases: list[Literal["fit"]] = Field(  # type: ignore[assignment]
        default_factory=lambda: ["fit"],
        min_length=1,
        description="Only `fit`: this callback acts during training.",
    )


class MonitorParams(FitOnlyParams):
    """Params of callbacks that watch a metric."""

    monitor: str = Field("val_loss", description="Metric to watch, e.g. `val_loss`, `accuracy`.")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="`auto`: max for accuracy-like metrics, min otherwise."
    )

    @property
    def resolved_mode(self) -> Literal["min", "max"]:
        return resolve_mode(self.monitor, self.mode)

    def watched_metrics(self) -> list[tuple[str, str]]:
        return [("monitor", self.monitor)]


@dataclass
class BuildContext:
    """What a callback factory may use: the run directory, the config and the data, and for
    which phase it is built (a callback in several phases is built once per phase)."""

    run_dir: Path
    config: Any
    dataset: Any
    phase: Phase = "fit"
    evaluated: str = "test"
    """In `evaluate`: what is evaluated, `test` or `validation` (a split of `dataset`) or
    `data` (new labelled data, held in `dataset.train`, as `cbrun eval --data` reads it)."""
    inputs: Any = None
    """In `predict`: the inputs about to be predicted."""
    input_names: list[str] | None = None
    """In `predict`: the inputs' names when they are files (as predictions.csv's `file`)."""

    def path(self, relative: str) -> str:
        """`relative` (already checked to stay inside) as a path in the run directory."""
        return str(self.run_dir / relative)
