"""`sweep.json` as `cbrun sweep --resume` reads it back: checked whole before anything runs.

A sweep record hand-edited or damaged into any JSON shape is a user error (exit 2) naming
the file and the key, never a traceback half-way through a resumed sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import read_json
from cbrun.experiment.records import checked_record
from cbrun.experiment.sweep_space import SweepSection

SWEEP_RECORD = "sweep.json"
STATUSES = ("pending", "running", "completed", "failed", "stopped", "interrupted")


class _Lenient(BaseModel):
    """Keys cbrun reads are checked; others (a Ray node, an Optuna trial) are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class TrialRecord(_Lenient):
    trial: Annotated[str, Field(pattern=r"^trial-\d{3,}$")]  # also a folder name (hparams/)
    params: dict[str, JsonValue]
    status: Literal[STATUSES]  # type: ignore[valid-type]
    attempts: Annotated[int, Field(ge=0)] = 0
    metric: float | None = None
    metric_epoch: Annotated[int, Field(ge=0)] | None = None
    run_dir: str | None = None
    error: str | None = None
    note: str | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None


class MlflowParent(_Lenient):
    tracking_uri: str
    run_id: str


class SweepRecord(_Lenient):
    experiment: str
    config: str | None = None
    configs: Annotated[list[str], Field(min_length=1)] | None = None
    overrides: list[str] = Field(default_factory=list)
    metric: str
    direction: Literal["min", "max"]
    search: dict[str, Any]
    max_epochs: Annotated[int, Field(ge=1)] = 1
    trials: list[TrialRecord]
    mlflow: MlflowParent | None = None


def read_sweep_record(sweep_dir: Path) -> dict[str, Any]:
    """The record of `sweep_dir`, checked; any damage is a CbrunError naming file and key."""
    path = sweep_dir / SWEEP_RECORD
    raw = read_json(path)
    record = _checked(SweepRecord, raw, path, ())
    search = _checked(SweepSection, record.search, path, ("search",)).model_dump(mode="json")
    if record.config is None and record.configs is None:
        raise CbrunError(f"{path}: configs: the record names no experiment file", hint=HINT)
    checked = record.model_dump(exclude_unset=True)  # as written, with what resume reads
    checked["search"] = search  # every key the sweep's code reads
    checked.setdefault("overrides", [])
    for item in checked["trials"]:
        item.setdefault("attempts", 0)
    return checked


HINT = "the file was edited or cut short: put it back as cbrun wrote it, or start a new sweep"


def _checked(model: type[BaseModel], raw: Any, path: Path, prefix: tuple[Any, ...]) -> Any:
    return checked_record(model, raw, path, HINT, prefix)
