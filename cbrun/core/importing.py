"""Import `package.module:attribute` paths named in a config.

Code is imported only from the config the user runs. Commands that read a run directory
(`cbrun eval`, `cbrun train --resume`) wrap their work in `imports_from_run`, which refuses
every import path unless the user passed `--allow-imports`.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from cbrun.core.errors import CbrunError, did_you_mean

_REFUSED_SOURCE: ContextVar[str | None] = ContextVar("cbrun_refused_source", default=None)


@contextmanager
def imports_from_run(run_dir: Path, allowed: bool) -> Iterator[None]:
    """Within: import paths in `run_dir`'s saved config are refused, unless `allowed`.

    Allowed imports may also come from the folder of the config file the run was trained from.
    """
    if allowed:
        try:
            config_file = json.loads((run_dir / "run.json").read_text())["config_file"]
        except (OSError, ValueError, KeyError, TypeError):
            config_file = None
        if config_file and str(Path(config_file).parent) not in sys.path:
            sys.path.insert(0, str(Path(config_file).parent))
    token = _REFUSED_SOURCE.set(None if allowed else str(run_dir))
    try:
        yield
    finally:
        _REFUSED_SOURCE.reset(token)


def imports_refused() -> bool:
    """Whether code named by a run directory's saved config may not be imported now."""
    return _REFUSED_SOURCE.get() is not None


def import_object(path: str, key: str) -> Any:
    """The object at `module:attribute`; failures name the config key that asked for it."""
    refused = _REFUSED_SOURCE.get()
    if refused is not None:
        raise CbrunError(
            f"{key}: `{path}` is code named by the config saved in {refused}; cbrun does not "
            "import code from a run directory unless asked to",
            hint="if you trust that run directory, pass --allow-imports",
        )
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise CbrunError(
            f"{key}: cannot import `{module_name}`: {error}",
            hint="the module must be importable: installed, or in the config file's folder",
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            names = [name for name in dir(target) if not name.startswith("_")]
            raise CbrunError(
                f"{key}: `{module_name}` has no attribute `{attribute}`.{did_you_mean(part, names)}"
            ) from None
    return target


def missing_package(path: str, folder: Path) -> str | None:
    """Why `module:attribute` cannot be imported when its top-level package is nowhere on
    the path (with `folder`, the config's); None when it may be. Nothing is executed."""
    import importlib.util

    top = path.partition(":")[0].split(".")[0]
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"cannot import `{path.partition(':')[0]}`: No module named '{top}'"
