"""`run.json` as `cbrun train --resume` reads it back: checked before anything changes.

A resumed run appends to its record (a resume, a segment, non-finite events) and reads some
of it while it trains (class weights); a record hand-edited into another JSON shape would
fail with a traceback, possibly only at the end of training. It is refused at once instead,
naming the file and the key, like every other damaged run file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from cbrun.core.run_dir import RUN_RECORD, read_json
from cbrun.experiment.records import checked_record


class _Kept(BaseModel):
    """Keys a resume reads are checked; every other key is kept as it is."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class _Segment(_Kept):
    seconds: Annotated[float, Field(ge=0)]


class _NonFiniteEvent(_Kept):
    action: str


class _NonFinite(_Kept):
    events: list[_NonFiniteEvent] = Field(default_factory=list)


class _ClassWeight(_Kept):
    weights: dict[str, float]


class _Record(_Kept):
    status: str | None = None
    config_file: str | None = None
    data: dict[str, JsonValue] | None = None
    resumes: list[dict[str, JsonValue]] = Field(default_factory=list)
    segments: list[_Segment] = Field(default_factory=list)
    warnings: list[JsonValue] = Field(default_factory=list)
    non_finite: _NonFinite | None = None
    class_weight: _ClassWeight | None = None


def read_resumed_record(run_dir: Path) -> dict[str, Any]:
    """`run_dir`'s run.json, checked where a resume reads or extends it (CbrunError: exit 2)."""
    path = run_dir / RUN_RECORD
    raw = read_json(path)
    checked_record(
        _Record,
        raw,
        path,
        hint="run.json was edited or damaged; put it back as cbrun wrote it to resume",
    )
    return raw
