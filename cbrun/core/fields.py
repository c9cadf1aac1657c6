"""Shared pydantic building blocks for config sections and component params."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """A config model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid")


def _relative_inside(value: str) -> str:
    path = PurePosixPath(value.replace("\\", "/"))
    if not value.strip():
        raise ValueError("must not be empty")
    if path.is_absolute() or re.match(r"^[A-Za-z]:", value):
        raise ValueError(
            f"must be a path relative to the run directory, got the absolute path `{value}`"
        )
    if ".." in path.parts:
        raise ValueError(f"must stay inside the run directory, `{value}` climbs out with `..`")
    return value


RunPath = Annotated[
    str,
    AfterValidator(_relative_inside),
    Field(description="A path inside the run directory (relative; no `..`)."),
]
"""A file or folder inside the run directory, given relative to it."""


class InputFile:
    """Marker on a params field holding a user file; resolved against the config's folder."""


class InputFolder:
    """Marker on a params field holding a user folder; resolved like `InputFile`."""


ImportPath = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="`package.module:attribute` to import.",
        examples=["my_project.models:build"],
    ),
]

Task = Literal["classification", "regression"]
