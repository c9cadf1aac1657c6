"""Your own Keras callback class, named by `module:Class` and built with `init_args`."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import ConfigDict, Field

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import ImportPath
from cbrun.core.importing import import_object
from cbrun.registry import callbacks


class UserClassParams(CallbackParams):
    """Your own keras.callbacks.Callback subclass, given as `module:Class` with `init_args`.

    `init_args` are checked against the class's `__init__` before training: an unknown or a
    missing argument is an error naming it. The config file's folder is importable.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"class_path": "keras.callbacks:TerminateOnNaN", "init_args": {}}]
        }
    )

    type: Literal["class"]
    class_path: ImportPath = Field(description="`package.module:ClassName` of the callback.")
    init_args: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the class's constructor."
    )


@callbacks.register("class", UserClassParams)
def user_class(params: UserClassParams, ctx: BuildContext) -> Any:
    import keras

    cls = import_object(params.class_path, "class_path")
    if not (isinstance(cls, type) and issubclass(cls, keras.callbacks.Callback)):
        raise CbrunError(
            f"class_path: `{params.class_path}` is not a keras.callbacks.Callback subclass"
        )
    check_init_args(cls, params.init_args)
    return cls(**params.init_args)


def check_init_args(cls: type, init_args: dict[str, Any]) -> None:
    """Raise a CbrunError naming `init_args.KEY` for an unknown or a missing argument."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return  # no signature to check against (e.g. a class implemented in C)
    parameters = signature.parameters.values()
    named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        for key in init_args:
            if key not in named:
                raise CbrunError(
                    f"init_args.{key}: {cls.__name__} takes no argument `{key}`."
                    f"{did_you_mean(key, named)} It takes: {', '.join(named) or 'none'}"
                )
    for parameter in parameters:
        variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        if variadic or parameter.default is not parameter.empty:
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY or parameter.name not in init_args:
            raise CbrunError(
                f"init_args.{parameter.name}: {cls.__name__} needs the argument "
                f"`{parameter.name}`; add it under init_args"
            )
