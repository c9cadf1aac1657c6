"""Shared pydantic building blocks for config sections and component params."""

from __future__ import annotations

import re
import types
import typing
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """A config model that rejects unknown keys, and infinities and NaN in numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def number_not_bool(annotation: Any) -> bool:
    """Whether a field's type takes an int or float but not a bool (looking through unions,
    `Optional` and `Annotated`, not into containers)."""
    kinds: set[Any] = set()
    stack = [annotation]
    while stack:
        kind = stack.pop()
        origin = typing.get_origin(kind)
        if origin in (typing.Union, types.UnionType, Annotated):
            stack.extend(
                typing.get_args(kind)[:1] if origin is Annotated else typing.get_args(kind)
            )
        elif origin is Literal:
            kinds.update(type(v) for v in typing.get_args(kind))
        else:
            kinds.add(kind)
    return bool(kinds & {int, float}) and not kinds & {bool, Any}


NAME_MAX = 255  # bytes in one file or folder name (ext4, APFS, NTFS alike)
PATH_MAX = 4095  # bytes in a whole path (Linux)


def path_problem(value: str) -> str | None:
    """Why a file system would refuse `value` as a path (a NUL, a name or path too long)."""
    if "\0" in value:
        return "contains a NUL character, which no file system accepts in a name"
    for part in PurePosixPath(value.replace("\\", "/")).parts:
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            return f"has a name of {size} bytes (`{part[:16]}...`); file systems take {NAME_MAX}"
    size = len(value.encode("utf-8", "surrogateescape"))
    return f"is {size} bytes long; paths can be {PATH_MAX}" if size > PATH_MAX else None


def _file_system_path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(f"the path {problem}")
    return value


FileSystemPath = Annotated[str, AfterValidator(_file_system_path)]
"""A path any file system could hold (no NUL, names of at most 255 bytes)."""


def _relative_inside(value: str) -> str:
    path = PurePosixPath(value.replace("\\", "/"))
    if not value.strip():
        raise ValueError("must not be empty")
    _file_system_path(value)
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


class InputPattern:
    """Marker on a params field holding a user file or a glob of files; resolved like
    `InputFile`, checked by the source (which says when no file matches)."""


ImportPath = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="`package.module:attribute` to import.",
        examples=["my_project.models:build"],
    ),
]

Task = Literal["classification", "regression"]
