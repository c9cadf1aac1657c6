"""Call the user's own functions at any callback event (`module:function` paths)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.core.fields import ImportPath
from cbrun.core.importing import import_object
from cbrun.registry import callbacks

_WITH_INDEX = "called with (epoch or batch index, logs)"
BATCH_HOOKS = tuple(
    f"on_{phase}batch_{when}"
    for phase in ("", "train_", "test_", "predict_")
    for when in ("begin", "end")
)


def _hook(takes: str = _WITH_INDEX) -> Any:
    return Field(None, description=f"`module:function` {takes}.")


class LambdaParams(CallbackParams):
    """Call your own `module:function` at chosen events (keras LambdaCallback).

    Epoch and batch hooks are called as `function(index, logs)`, begin/end hooks of a whole
    fit, evaluate or predict as `function(logs)`, by position. Add `evaluate` or `predict` to
    `phases` for `on_test_*` / `on_predict_*` hooks to run in `cbrun eval` and prediction
    (in `fit`, `on_test_*` hooks run at each validation).
    """

    def batch_hooks(self) -> bool:
        return any(getattr(self, name) for name in BATCH_HOOKS)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"on_epoch_end": "my_project.hooks:log_epoch"}]}
    )

    type: Literal["lambda"]
    on_epoch_begin: ImportPath | None = _hook()
    on_epoch_end: ImportPath | None = _hook()
    on_batch_begin: ImportPath | None = _hook(_WITH_INDEX + ", in training")
    on_batch_end: ImportPath | None = _hook(_WITH_INDEX + ", in training")
    on_train_begin: ImportPath | None = _hook("called with (logs)")
    on_train_end: ImportPath | None = _hook("called with (logs)")
    on_train_batch_begin: ImportPath | None = _hook()
    on_train_batch_end: ImportPath | None = _hook()
    on_test_begin: ImportPath | None = _hook("called with (logs)")
    on_test_end: ImportPath | None = _hook("called with (logs)")
    on_test_batch_begin: ImportPath | None = _hook()
    on_test_batch_end: ImportPath | None = _hook()
    on_predict_begin: ImportPath | None = _hook("called with (logs)")
    on_predict_end: ImportPath | None = _hook("called with (logs)")
    on_predict_batch_begin: ImportPath | None = _hook()
    on_predict_batch_end: ImportPath | None = _hook()

    def hooks(self) -> dict[str, str]:
        """The events given, each with its `module:function` path."""
        return {
            name: value
            for name, value in self.keras_args().items()
            if name.startswith("on_") and value is not None
        }

    @model_validator(mode="after")
    def _at_least_one_hook(self) -> LambdaParams:
        if not self.hooks():
            events = [name for name in type(self).model_fields if name.startswith("on_")]
            raise ValueError(f"give at least one hook: {', '.join(events)}")
        return self


@callbacks.register("lambda", LambdaParams)
def lambda_hooks(params: LambdaParams, ctx: BuildContext) -> Any:
    import keras

    hooks = {}
    for event, path in params.hooks().items():
        function = import_object(path, event)
        if not callable(function):
            raise ValueError(f"{event}: `{path}` is not callable")
        hooks[event] = _positional(function)
    return keras.callbacks.LambdaCallback(**hooks)


def _positional(function: Any) -> Any:
    """Keras passes `logs` by position or by keyword; always pass it by position."""
    return lambda *args, **kwargs: function(*args, *kwargs.values())
