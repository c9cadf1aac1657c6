"""Your own Keras callback class, named by `module:Class` and built with `init_args`."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.callbacks.lambda_hooks import BATCH_HOOKS
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import ImportPath
from cbrun.core.importing import import_object, imports_refused
from cbrun.core.native_logs import quiet_native_logs
from cbrun.registry import callbacks


class UserClassParams(CallbackParams):
    """Your own keras.callbacks.Callback subclass, given as `module:Class` with `init_args`.

    `init_args` are checked against the class's `__init__` before training (and by
    `validate`): an unknown or a missing argument is an error naming it. An `__init__` that takes
    `run_dir` gets the run directory unless `init_args` sets it. The config file's folder is
    importable.
    """

    model_config = ConfigDict(
        serialize_by_alias=True,  # the field is `logged_metrics`, as in the file
        json_schema_extra={
            "examples": [{"class_path": "keras.callbacks:TerminateOnNaN", "init_args": {}}]
        },
    )

    type: Literal["class"]
    class_path: ImportPath = Field(description="`package.module:ClassName` of the callback.")
    init_args: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the class's constructor."
    )
    logged_metrics_: list[str] = Field(
        default_factory=list,
        alias="logged_metrics",
        description="Metrics the callback adds to each epoch's logs, so a `monitor` may watch "
        "them.",
    )

    def logged_metrics(self) -> list[str]:
        return list(self.logged_metrics_)

    def batch_hooks(self) -> bool:
        """Whether the class overrides any of Keras' per-batch hooks (it is imported by now)."""
        cls = _callback_class(self)
        base = next(b for b in cls.__mro__ if b.__name__ == "Callback")
        return any(getattr(cls, name) is not getattr(base, name) for name in BATCH_HOOKS)

    def build_problems(self, config_dir: Path) -> list[tuple[tuple[str, ...], str]]:
        if imports_refused():
            return []  # a run directory's saved config: imported only when it is built
        if str(config_dir) not in sys.path:
            sys.path.insert(0, str(config_dir))
        try:
            with quiet_native_logs():  # the user's module may import TensorFlow
                check_init_args(_callback_class(self), self.init_args)
        except CbrunError as error:
            key, _, message = error.message.partition(": ")
            return [(tuple(key.split(".")), message)]
        return []


@callbacks.register("class", UserClassParams)
def user_class(params: UserClassParams, ctx: BuildContext) -> Any:
    cls = _callback_class(params)
    check_init_args(cls, params.init_args)
    if _takes(cls, "run_dir") and "run_dir" not in params.init_args:
        return cls(**params.init_args, run_dir=ctx.run_dir)
    return cls(**params.init_args)


def _callback_class(params: UserClassParams) -> type:
    cls = import_object(params.class_path, "class_path")
    # Keras' own Callback base, recognised without importing Keras (the module did).
    is_callback = isinstance(cls, type) and any(
        base.__name__ == "Callback" and base.__module__.startswith("keras") for base in cls.__mro__
    )
    if not is_callback:
        raise CbrunError(
            f"class_path: `{params.class_path}` is not a keras.callbacks.Callback subclass"
        )
    return cls


def _takes(cls: type, name: str) -> bool:
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


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
        if parameter.name == "run_dir" and parameter.kind is not parameter.POSITIONAL_ONLY:
            continue  # cbrun passes the run directory
        if parameter.kind is parameter.POSITIONAL_ONLY or parameter.name not in init_args:
            raise CbrunError(
                f"init_args.{parameter.name}: {cls.__name__} needs the argument "
                f"`{parameter.name}`; add it under init_args"
            )
