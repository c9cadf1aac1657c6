"""Named components: a name bound to a pydantic params model, a description and a factory.

One `Registry` per kind (callbacks, models, datasets, schedules). The JSON Schema, the
`list-*` commands and config validation are all derived from it. Built-in components live in
modules listed per registry and are imported on first lookup; third-party packages add theirs
through the entry-point group of that kind (for example `cbrun.callbacks`), also read lazily.
Nothing here imports TensorFlow: factories import Keras inside their bodies.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from cbrun.core.errors import CbrunError, did_you_mean


@dataclass(frozen=True)
class Component:
    """One registered component."""

    name: str
    params: type[BaseModel]
    factory: Callable[..., Any]
    description: str
    origin: str

    def example(self) -> dict[str, Any]:
        """A config item for this component that validates as it stands.

        The params model's first `examples` entry when it declares one
        (`model_config = ConfigDict(json_schema_extra={"examples": [{...}]})`, without `type`),
        else its `type` and its required params, each from the field's `examples`.
        """
        extra = self.params.model_config.get("json_schema_extra")
        declared = extra.get("examples") if isinstance(extra, dict) else None
        if declared:
            return {"type": self.name, **declared[0]}
        item: dict[str, Any] = {"type": self.name}
        for field_name, field in self.params.model_fields.items():
            if field_name != "type" and field.is_required():
                examples = field.examples or []
                item[field_name] = examples[0] if examples else f"<{field_name}>"
        return item


class Registry:
    """A namespace of components of one kind, looked up by name."""

    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.group = group
        self._builtin_modules = builtin_modules
        self._components: dict[str, Component] = {}
        self._loaded = False

    def register(
        self, name: str, params: type[BaseModel], *, description: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator binding `name` to `params` and the decorated factory.

        `params` must declare `type: Literal[name]` so that a list of components validates as a
        discriminated union. The description defaults to the first line of the params docstring.
        """
        _check_tag(self.kind, name, params)

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            origin = f"{factory.__module__}.{factory.__qualname__}"
            if name in self._components:
                raise CbrunError(
                    f"{self.kind} `{name}` is registered twice: by "
                    f"{self._components[name].origin} and by {origin}"
                )
            doc = description or inspect.getdoc(params) or inspect.getdoc(factory) or ""
            self._components[name] = Component(
                name, params, factory, doc.strip().splitlines()[0] if doc else "", origin
            )
            return factory

        return decorator

    def get(self, name: str) -> Component:
        """The component called `name`; unknown names fail with the choices and a close match."""
        self._load()
        try:
            return self._components[name]
        except KeyError:
            raise CbrunError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        self._load()
        names = self.names()
        return (
            f"unknown {self.kind} `{name}`.{did_you_mean(name, names)} "
            f"Available: {', '.join(names)}"
        )

    def names(self) -> list[str]:
        self._load()
        return sorted(self._components)

    def components(self) -> list[Component]:
        self._load()
        return [self._components[n] for n in sorted(self._components)]

    def union(self) -> Any:
        """A pydantic discriminated union over every registered params model."""
        params = tuple(c.params for c in self.components())
        if len(params) == 1:
            return Annotated[params[0], Field(discriminator="type")]
        return Annotated[Union[params], Field(discriminator="type")]  # noqa: UP007

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for entry_point in entry_points(group=self.group):
            if entry_point.name in self._components:
                continue  # registered already, e.g. a plugin module that registers several
            try:
                entry_point.load()
            except Exception as error:  # a broken plugin must not break every command
                print(
                    f"warning: plugin `{entry_point.name}` ({entry_point.value}) of "
                    f"{self.group} failed to import: {type(error).__name__}: {error}",
                    file=sys.stderr,
                )
                continue
            if entry_point.name not in self._components:
                print(
                    f"warning: plugin `{entry_point.name}` ({entry_point.value}) of "
                    f"{self.group} imported but registered no {self.kind} of that name",
                    file=sys.stderr,
                )


def _check_tag(kind: str, name: str, params: type[BaseModel]) -> None:
    field = params.model_fields.get("type")
    if (
        field is None
        or typing.get_origin(field.annotation) is not Literal
        or typing.get_args(field.annotation) != (name,)
    ):
        raise CbrunError(
            f"{kind} `{name}`: its params model {params.__name__} must declare "
            f"`type: Literal[{name!r}]`"
        )


callbacks = Registry(
    "callback",
    "cbrun.callbacks",
    (
        "cbrun.callbacks.early_stopping",
        "cbrun.callbacks.model_checkpoint",
        "cbrun.callbacks.csv_logger",
        "cbrun.callbacks.tensorboard",
        "cbrun.callbacks.learning_rate_scheduler",
        "cbrun.callbacks.overfitting_guard",
        "cbrun.callbacks.timing_logger",
        "cbrun.callbacks.gradient_norm_logger",
        "cbrun.callbacks.prediction_snapshots",
        "cbrun.callbacks.saliency_maps",
        "cbrun.callbacks.activation_maps",
        "cbrun.callbacks.magnitude_pruning",
        "cbrun.callbacks.augmentation_schedule",
        "cbrun.callbacks.metrics_jsonl",
        "cbrun.callbacks.mlflow_tracking",
        "cbrun.callbacks.reduce_lr_on_plateau",
        "cbrun.callbacks.terminate_on_nan",
        "cbrun.callbacks.backup_and_restore",
        "cbrun.callbacks.lambda_hooks",
        "cbrun.callbacks.swap_ema_weights",
        "cbrun.callbacks.user_class",
    ),
)
models = Registry(
    "model",
    "cbrun.models",
    ("cbrun.models.mlp", "cbrun.models.sequential", "cbrun.models.imported"),
)
datasets = Registry(
    "dataset",
    "cbrun.datasets",
    (
        "cbrun.data.synthetic",
        "cbrun.data.csv",
        "cbrun.data.npz",
        "cbrun.data.digits",
        "cbrun.data.image_directory",
        "cbrun.data.tfrecord",
        "cbrun.data.imported",
    ),
)
schedules = Registry(
    "schedule", "cbrun.schedules", ("cbrun.schedules.builtin", "cbrun.schedules.imported")
)
