"""The experiment file: its sections, how it is loaded, and how its errors are reported."""

from __future__ import annotations

import functools
import os
import re
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt, ValidationError, create_model

from cbrun import registry
from cbrun.compute.distribution import DistributionSection
from cbrun.compute.speed import PipelineSection, Precision
from cbrun.core.errors import CbrunError, ConfigError, did_you_mean
from cbrun.core.fields import (
    FileSystemPath,
    InputFile,
    InputFolder,
    InputPattern,
    StrictModel,
    number_not_bool,
    path_problem,
)
from cbrun.experiment.sweep_space import SweepSection
from cbrun.experiment.yaml_source import (
    Document,
    KeyPath,
    apply_overrides,
    format_path,
    load_yaml,
    merge_documents,
)
from cbrun.models.optimizers import OptimizerSection

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ExperimentSection(StrictModel):
    """Who this experiment is."""

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=100,
        description="Names the folder under the runs directory: letters, digits, `_`, `.`, `-`.",
        examples=["quickstart"],
    )
    seed: int = Field(
        42, ge=0, lt=2**32, description="Seeds Python, NumPy, TensorFlow and data splits."
    )
    deterministic: bool = Field(
        False,
        description="Make TensorFlow's ops deterministic (enable_op_determinism): the same seed "
        "gives the same weights, also across `--resume`; some ops get slower or unsupported.",
    )
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class OutputSection(StrictModel):
    """Where runs are written."""

    runs_dir: FileSystemPath = Field(
        "runs", min_length=1, description="Folder holding run directories (relative to the cwd)."
    )


class CompileSection(StrictModel):
    """Arguments of `model.compile`."""

    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    loss: str | None = Field(
        None,
        description="Keras loss name; default sparse_categorical_crossentropy for "
        "classification, mean_squared_error for regression.",
    )
    metrics: list[str] | None = Field(
        None, description="Keras metric names; default [accuracy] or [mae] by task."
    )


class TrainingSection(StrictModel):
    """Arguments of `model.fit`."""

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    shuffle: bool = True
    steps_per_epoch: PositiveInt | None = Field(
        None, description="Batches per epoch; default: the whole training split."
    )
    validation_steps: PositiveInt | None = Field(
        None, description="Validation batches per epoch; default: the whole validation split."
    )
    validation_freq: PositiveInt = Field(1, description="Validate every N epochs.")
    state_every: PositiveInt = Field(
        1,
        description="Save the state `train --resume` continues from every N epochs (and "
        "after the last). Each save writes the model and optimizer: raise N for very short "
        "epochs; a resume then repeats up to N-1 epochs.",
    )
    steps_per_execution: PositiveInt | Literal["auto"] = Field(
        "auto",
        description="Batches per call into TensorFlow; more cuts per-batch Python overhead "
        "(batch-level callback hooks then run every N batches). `auto`: 32 (at most an "
        "epoch's batches) when no callback has a per-batch hook, else 1.",
    )
    jit_compile: bool | Literal["auto"] = Field(
        "auto", description="XLA compilation; `auto` lets Keras decide (off on CPU-only hosts)."
    )
    precision: Precision = Field(
        "float32",
        description="Keras dtype policy of the model's layers; the output layer stays float32.",
    )
    class_weight: Literal["balanced"] | dict[int | str, PositiveFloat] | None = Field(
        None,
        description="Weigh each class's loss: `balanced` (n_samples / (n_classes * count) over "
        "the training split) or `{class: weight}` by class name or index (others weigh 1); "
        "classification only.",
    )
    pipeline: PipelineSection | None = Field(
        None, description="Feed `fit` from a tf.data pipeline with these options."
    )
    on_non_finite: Literal["fail", "stop", "rollback"] = Field(
        "fail",
        description="When the training loss becomes NaN or infinite (checked after every "
        "batch): `fail` the run; `stop` training and keep the model of the last saved epoch; "
        "`rollback` to the last saved epoch, multiply the learning rate by `rollback_factor` "
        "and train on (at most `max_rollbacks` times, then fail).",
    )
    rollback_factor: float = Field(
        0.5, gt=0, lt=1, description="`rollback` multiplies the learning rate by this."
    )
    max_rollbacks: PositiveInt = Field(
        3, description="`rollback`: the run fails at the next non-finite loss after this many."
    )


SMOKE_SAMPLES = 256


class ExperimentBase(StrictModel):
    """Fields shared by every experiment; `data`, `model` and `callbacks` come from registries."""

    experiment: ExperimentSection
    output: OutputSection = Field(default_factory=OutputSection)
    compile: CompileSection = Field(default_factory=CompileSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    distribution: DistributionSection = Field(default_factory=DistributionSection)
    sweep: SweepSection | None = Field(
        None, description="A search run by `cbrun sweep`; `cbrun train` ignores it."
    )


@functools.cache
def experiment_model() -> type[ExperimentBase]:
    """The experiment model with the data, model and callback unions of the registries."""
    return create_model(
        "Experiment",
        __base__=ExperimentBase,
        data=(registry.datasets.union(), Field(description="The data source, chosen by `type`.")),
        model=(registry.models.union(), Field(description="The model builder, chosen by `type`.")),
        callbacks=(
            list[registry.callbacks.union()],
            Field(default_factory=list, description="Callbacks, each chosen by `type`."),
        ),
    )


def json_schema() -> dict[str, Any]:
    """JSON Schema of an experiment file, for editors and `jsonschema`."""
    schema = experiment_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cbrun experiment"
    return schema


SECTION_ORDER = ("experiment", "output", "data", "model", "compile", "training", "callbacks")


def resolved_dict(config: ExperimentBase) -> dict[str, Any]:
    """The config as plain data in file order, each component's `type` first."""
    data = config.model_dump(mode="json")

    def type_first(item: dict[str, Any]) -> dict[str, Any]:
        return {"type": item["type"], **{k: v for k, v in item.items() if k != "type"}}

    data["data"], data["model"] = type_first(data["data"]), type_first(data["model"])
    data["callbacks"] = [type_first(item) for item in data["callbacks"]]
    if data.get("sweep") is None:
        data.pop("sweep", None)  # an optional section only `cbrun sweep` reads
    return {key: data[key] for key in SECTION_ORDER if key in data} | data


def load_config(
    paths: Path | list[Path], overrides: list[str] | None = None, *, smoke: bool = False
) -> tuple[ExperimentBase, Document]:
    """Read (later files merged over earlier ones), override, validate and resolve an
    experiment; user errors raise CbrunError."""
    documents = [load_yaml(path) for path in ([paths] if isinstance(paths, Path) else paths)]
    for document in documents:
        if not isinstance(document.data, (dict, type(None))):
            raise CbrunError(
                f"{document.source}:1: expected a mapping of sections (experiment, data, ...)"
            )
    document = merge_documents(documents)
    apply_overrides(document, list(overrides or []))
    if smoke:
        apply_smoke(document)
    config = validate(document)
    resolve_input_files(config, document)
    from cbrun.experiment import checks

    checks.check(config, document)
    return config, document


def validate(document: Document) -> ExperimentBase:
    try:
        config = experiment_model().model_validate(document.data or {})
    except ValidationError as error:
        described = [_describe(e, document) for e in error.errors(include_url=False)]
        raise ConfigError(_most_specific(described), source=document.source) from None
    booleans = list(_booleans_for_numbers(config, document.data, ()))
    if booleans:
        raise ConfigError(
            [
                f"{document.where(path)}: {format_path(path)}: expected a number, got the "
                f"boolean `{str(value).lower()}` (YAML reads yes/no/on/off/true/false as booleans)"
                for path, value in booleans
            ],
            source=document.source,
        )
    return config


def _booleans_for_numbers(model: Any, data: Any, path: KeyPath) -> Iterator[tuple[KeyPath, bool]]:
    """Key paths where the file gave a boolean and a number field took it as 0 or 1."""
    if not isinstance(model, BaseModel) or not isinstance(data, dict):
        return
    for name, field in type(model).model_fields.items():
        if name not in data:
            continue
        value, given = getattr(model, name), data[name]
        if isinstance(given, bool) and number_not_bool(field.annotation):
            yield path + (name,), given
        elif isinstance(value, list) and isinstance(given, list):
            for index, (item, raw) in enumerate(zip(value, given, strict=False)):
                yield from _booleans_for_numbers(item, raw, path + (name, index))
        else:
            yield from _booleans_for_numbers(value, given, path + (name,))


def _most_specific(described: list[tuple[KeyPath, int, str]]) -> list[str]:
    """One message per key path, none for a path with problems deeper inside it.

    A value that fails every member of a union yields one error per member: a mapping meant
    for the schedule member is best explained by that member's (deeper) errors, and a wrong
    type is the least telling error at a path (rank 1) when another member says more.
    """
    paths = [path for path, _, _ in described]
    kept: dict[KeyPath, tuple[int, str]] = {}
    for path, rank, text in described:
        deeper = any(len(other) > len(path) and other[: len(path)] == path for other in paths)
        if not deeper and (path not in kept or rank < kept[path][0]):
            kept[path] = (rank, text)
    return [text for _, text in kept.values()]


_LEADING_KEY_PATH = re.compile(r"^([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*|\[\d+\])*)(?=[: ])")


@contextmanager
def located(document: Document, section: str) -> Iterator[None]:
    """Give user errors raised while building from `document` the file and line they concern.

    A message that starts with a key path (`data.target: ...`, `callbacks[1] (type): ...`)
    gets the line of that key; any other gets the line of `section`, and the section's name.
    """
    try:
        yield
    except ConfigError:
        raise
    except CbrunError as error:
        match = _LEADING_KEY_PATH.match(error.message)
        if match and match.group(1) in SECTION_ORDER:
            parts = re.findall(r"\.([A-Za-z_]\w*)|\[(\d+)\]", match.group(2))
            path = (match.group(1), *(name or int(index) for name, index in parts))
            message = f"{document.where(path)}: {error.message}"
        else:
            message = f"{document.where((section,))}: {section}: {error.message}"
        raise CbrunError(message, hint=error.hint) from None


def apply_smoke(document: Document) -> None:
    """Shrink a run for CI: one epoch of two batches on at most 256 samples, callbacks kept."""
    data = document.data
    training = data.setdefault("training", {}) if isinstance(data, dict) else None
    if not isinstance(training, dict):
        return  # validation reports the malformed section
    training["epochs"] = 1
    training["steps_per_epoch"] = 2
    source = data.get("data")
    if isinstance(source, dict):
        limit = source.get("limit")
        source["limit"] = SMOKE_SAMPLES if not isinstance(limit, int) else min(limit, SMOKE_SAMPLES)


def resolve_input_files(config: ExperimentBase, document: Document) -> None:
    """Make user files in component params absolute (relative to the config file that named
    them) and check them."""
    for section in ("data", "model"):
        params = getattr(config, section)
        for name, field in type(params).model_fields.items():
            value = getattr(params, name)
            folder = any(m is InputFolder for m in field.metadata)
            pattern = any(m is InputPattern for m in field.metadata)
            if value is None or not (folder or pattern or InputFile in field.metadata):
                continue
            problem = path_problem(str(value))
            if problem:
                where = document.where((section, name))
                raise ConfigError([f"{where}: {section}.{name}: the path {problem}"])
            resolved = Path(os.path.expanduser(str(value)))
            if not resolved.is_absolute():
                base_dir = Path(document.file_of((section, name))).parent
                resolved = (base_dir / resolved).resolve()
            if pattern:
                setattr(params, name, str(resolved))
                continue
            if not (resolved.is_dir() if folder else resolved.is_file()):
                where = document.where((section, name))
                raise ConfigError([f"{where}: {section}.{name}: {_not_there(resolved, folder)}"])
            setattr(params, name, str(resolved))


def _not_there(path: Path, folder: bool) -> str:
    """Why `path` is not the folder or regular file the config needs."""
    kind = "folder" if folder else "file"
    if not path.exists():
        return f"{kind} not found: {path}"
    if path.is_dir():
        return f"expected a file, found a folder: {path}"
    if folder:
        return f"expected a folder, found a file: {path}"
    return f"expected a regular file, found a device, pipe or socket: {path}"


def _describe(error: dict[str, Any], document: Document) -> tuple[KeyPath, int, str]:
    """One pydantic error: its key path, its rank and `file:line: key.path: message`."""
    path, fields = _data_path(error["loc"], document.data)
    rank = 1 if error["type"].endswith(("_type", "_parsing")) else 0
    return path, rank, _message(error, document, path, fields)


def _message(error: dict[str, Any], document: Document, path: KeyPath, fields: Any) -> str:
    where = document.where(path)
    shown = format_path(path) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1] if path else error["loc"][-1])
        hint = did_you_mean(key, fields or [])
        allowed = f" Allowed keys: {', '.join(fields)}." if fields else ""
        return f"{where}: {shown}: unknown key `{key}`.{hint}{allowed}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        reg = _registry_for(path)
        if kind == "union_tag_not_found":
            choices = ", ".join(reg.names()) if reg else ""
            return f"{where}: {shown}: missing `type:`; choose one of: {choices}"
        tag = str(error["ctx"].get("tag"))
        expected = [t.strip(" '") for t in str(error["ctx"].get("expected_tags", "")).split(",")]
        message = (
            reg.unknown_message(tag)
            if reg
            else (
                f"unknown type `{tag}`.{did_you_mean(tag, expected)} "
                f"Available: {', '.join(expected)}"
            )
        )
        return f"{document.where(path + ('type',))}: {format_path(path + ('type',))}: {message}"
    if kind == "missing":
        return f"{where}: {shown}: required key is missing"
    if kind == "literal_error" and isinstance(error.get("input"), str):
        choices = re.findall(r"'([^']*)'", str(error["ctx"].get("expected", "")))
        return (
            f"{where}: {shown}: `{error['input']}` is not one of: {', '.join(choices)}."
            f"{did_you_mean(error['input'], choices)}"
        )
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where}: {shown}: expected a mapping of keys, got {error.get('input')!r}"
    if kind == "string_pattern_mismatch" and error["ctx"].get("pattern") == NAME_PATTERN:
        message = (
            "expected letters, digits, `_`, `.` or `-`, starting with a letter or digit "
            "(it names one folder inside the runs directory)"
        )
    if "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    elif kind in ("model_type", "dict_type"):
        message = f"expected a mapping of keys, got {type(error['input']).__name__}"
    return f"{where}: {shown}: {message}"


def _data_path(loc: tuple, data: Any) -> tuple[KeyPath, list[str] | None]:
    """Drop union-tag segments from a pydantic location; also give the keys allowed at the end."""
    path: list[str | int] = []
    node: Any = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # the tag segment of a discriminated union
        is_key = isinstance(node, dict) and part in node
        if isinstance(part, str) and not part.isidentifier() and not is_key:
            continue  # pydantic's name for a validator or union member, not a key
        path.append(part)
        node = _child(node, part)
    parent_model = _field_model_chain(experiment_model(), path[:-1], data)
    fields = sorted(parent_model.model_fields) if _is_model(parent_model) else None
    return tuple(path), fields


def _field_model_chain(model: Any, path: list, data: Any) -> Any:
    node = data
    for part in path:
        model = _field_model(model, part, node)
        node = _child(node, part)
    return _pick_member(model, node)


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _field_model(model: Any, part: Any, node: Any) -> Any:
    """The annotation reached from `model` through key or index `part`."""
    model = _pick_member(model, node)
    if _is_model(model) and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    if typing.get_origin(model) is list and isinstance(part, int):
        return typing.get_args(model)[0]
    return None


def _pick_member(annotation: Any, node: Any) -> Any:
    """Unwrap Annotated/Optional and choose the union member that `node`'s `type` tag selects."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        tag = node.get("type") if isinstance(node, dict) else None
        for member in members:
            if _is_model(member) and tag is not None:
                field = member.model_fields.get("type")
                if field is not None and typing.get_args(field.annotation) == (tag,):
                    return member
        models = [m for m in members if _is_model(m)]
        return models[0] if len(models) == 1 else annotation
    return annotation


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _registry_for(path: KeyPath) -> registry.Registry | None:
    head = path[0] if path else None
    if head == "callbacks":
        return registry.schedules if "schedule" in path else registry.callbacks
    return {"data": registry.datasets, "model": registry.models}.get(head)
