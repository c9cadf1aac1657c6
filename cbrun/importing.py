"""Import `package.module:attribute` paths named in a config."""

from __future__ import annotations

import importlib
from typing import Any

from cbrun.errors import CbrunError


def import_object(path: str, key: str) -> Any:
    """The object at `module:attribute`; failures name the config key that asked for it."""
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
            raise CbrunError(f"{key}: `{module_name}` has no attribute `{attribute}`") from None
    return target
