"""`list-callbacks`, `list-models`, `list-datasets`: what each registry holds, from its params."""

from __future__ import annotations

import inspect
import io
import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python
from rich.console import Console
from rich.table import Table

from cbrun import registry
from cbrun.experiment.yaml_source import dump_yaml
from cbrun.registry import Component, Registry

SECTIONS = {"callbacks": "callbacks", "models": "model", "datasets": "data"}


def render(kind: str, name: str | None, as_json: bool) -> str:
    reg: Registry = getattr(registry, kind)
    components = [reg.get(name)] if name else reg.components()
    if as_json:
        return json.dumps([_as_dict(c, SECTIONS[kind]) for c in components], indent=2)
    if name:
        return _detail(components[0], SECTIONS[kind])
    table = Table(title=f"{kind} ({len(components)})", show_lines=False)
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("parameters")
    for component in components:
        table.add_row(component.name, component.description, ", ".join(_param_names(component)))
    return _to_text(table) + f"\nDetails: cbrun list-{kind} NAME"


def example_snippet(component: Component, section: str) -> str:
    """YAML for the component's section that validates as it stands."""
    item = component.example()
    data = {section: [item]} if section == "callbacks" else {section: item}
    return dump_yaml({**getattr(component.params, "example_sections", {}), **data})


def _detail(component: Component, section: str) -> str:
    tables = [_params_table(f"{component.name}: {component.description}", _params(component))]
    for prefix, model in _nested_models(component.params):
        tag = _tag(model)
        title = f"{prefix} with type: {tag}" if tag else prefix
        summary = (inspect.getdoc(model) or "").split("\n")[0]
        rows = _params_of(model, f"{prefix}.")
        tables.append(_params_table(f"{title}: {summary}" if summary else title, rows))
    text = "\n\n".join(_to_text(table) for table in tables)
    return text + "\nExample:\n" + example_snippet(component, section)


def _params_table(title: str, rows: list[dict[str, str]]) -> Table:
    table = Table(title=title)
    for column in ("parameter", "type", "default", "description"):
        table.add_column(column)
    for param in rows:
        table.add_row(param["name"], param["type"], param["default"], param["description"])
    return table


def _as_dict(component: Component, section: str) -> dict[str, Any]:
    return {
        "name": component.name,
        "description": component.description,
        "origin": component.origin,
        "parameters": _params(component),
        "nested": [
            {"key": prefix, "type": _tag(model), "parameters": _params_of(model, f"{prefix}.")}
            for prefix, model in _nested_models(component.params)
        ],
        "example": example_snippet(component, section),
        "schema": component.params.model_json_schema(),
    }


def _params(component: Component) -> list[dict[str, str]]:
    return _params_of(component.params)


def _params_of(params: type[BaseModel], prefix: str = "") -> list[dict[str, str]]:
    rows = []
    fields = params.model_fields
    # the component's own params first; `phases`, shared by every callback, last
    for field_name in sorted(fields, key=lambda name: name == "phases"):
        field = fields[field_name]
        if field_name == "type":
            continue
        if field.is_required():
            default = "(required)"
        elif field.default_factory is not None:
            default = json.dumps(to_jsonable_python(field.default_factory()))
        else:
            default = "" if field.default is PydanticUndefined else json.dumps(field.default)
        rows.append(
            {
                "name": prefix + (field.alias or field_name),  # the key as written in the file
                "type": _type_name(field.annotation),
                "default": default,
                "description": field.description or "",
            }
        )
    return rows


def _param_names(component: Component) -> list[str]:
    return [p["name"] for p in _params(component)]


def _nested_models(
    params: type[BaseModel], prefix: str = "", depth: int = 0
) -> list[tuple[str, type[BaseModel]]]:
    """(key path, model) of each params model a field may hold (each union member), depth first:
    a `learning_rate_scheduler`'s `schedule` is one of the schedules, each with its params."""
    found: list[tuple[str, type[BaseModel]]] = []
    for field_name, field in params.model_fields.items():
        key = prefix + (field.alias or field_name)
        for model in _models_in(field.annotation):
            found.append((key, model))
            if depth < 2:
                found += _nested_models(model, f"{key}.", depth + 1)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _tag(model: type[BaseModel]) -> str | None:
    """The `type:` value that selects this model in a union, if it has one."""
    field = model.model_fields.get("type")
    args = typing.get_args(field.annotation) if field else ()
    return str(args[0]) if field and typing.get_origin(field.annotation) is typing.Literal else None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        tag = _tag(annotation)
        return f"{{type: {tag}}}" if tag else "mapping"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _to_text(renderable: Any) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=120, no_color=True, highlight=False).print(renderable)
    return buffer.getvalue().rstrip()
