"""Run-directory records (run.json, sweep.json) checked against pydantic models on resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cbrun.core.errors import CbrunError
from cbrun.experiment.yaml_source import format_path


def checked_record(
    model: type[BaseModel], raw: Any, path: Path, hint: str, prefix: tuple[Any, ...] = ()
) -> Any:
    """`raw` validated by `model`; else a CbrunError naming the file, the first bad key (under
    `prefix`), what was expected and the value found (exit 2, never a traceback)."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        key = format_path((*prefix, *problem["loc"])) or "the record"
        shown = problem.get("input")
        got = "" if isinstance(shown, (dict, list)) else f" (got {str(shown)[:40]!r})"
        raise CbrunError(f"{path}: {key}: {problem['msg']}{got}", hint=hint) from None
