"""Read experiment YAML safely, remembering where every key sits, and apply `--set` overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cbrun.core.console import counted
from cbrun.core.errors import CbrunError, did_you_mean

KeyPath = tuple[str | int, ...]

# YAML 1.1 only reads `1.0e-3` as a float; accept `1e-3`, `5E+4` and friends as well.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


# Limits that keep a hostile file from exhausting memory, the stack or time.
MAX_BYTES = 10_000_000
MAX_DEPTH = 64
MAX_VALUES = 100_000  # after aliases are expanded: `&a [*b, *b, ...]` chains grow exponentially
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a number, refuses duplicate keys, and merges `<<:`."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue  # merged keys may be overridden by the mapping's own keys
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool | type(None)):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key `{key}` (first defined on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


@dataclass
class Document:
    """A parsed YAML document: its data, its source name and the line of every key path."""

    data: Any
    source: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    overridden: dict[KeyPath, str] = field(default_factory=dict)
    files: dict[KeyPath, str] = field(default_factory=dict)  # keys a later merged file set

    def where(self, path: KeyPath) -> str:
        """`file:line` (or the override that set it) for the nearest known key of `path`."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.overridden:
                return f"--set {self.overridden[prefix]}"
            if prefix in self.lines:
                return f"{self.file_of(prefix)}:{self.lines[prefix]}"
        return self.source

    def file_of(self, path: KeyPath) -> str:
        """The file that gave the value at `path` (or its nearest key)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.files:
                return self.files[path[:end]]
        return self.source


def parse_yaml(text: str, source: str) -> Document:
    """Parse one YAML document with the safe loader; errors name the file and line."""
    if len(text) > MAX_BYTES:
        raise CbrunError(
            f"{source}: {len(text)} characters; experiment files are limited to {MAX_BYTES:,}"
        )
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        raise CbrunError(
            f"{source}:{line}: character {error.character!r} is not allowed in YAML"
        ) from None
    try:
        _check_depth(text, source)
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            raise CbrunError(
                f"{source}: its aliases (`*name`) expand to more than {MAX_VALUES:,} values; "
                "experiment files are limited to that"
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        raise CbrunError(_yaml_message(error, source)) from None
    except yaml.YAMLError as error:
        raise CbrunError(f"{source}: invalid YAML: {error}") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return Document(data, source, lines)


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the event stream, before any recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise CbrunError(
                    f"{source}:{line}: nested more than {MAX_DEPTH} levels deep; experiment "
                    "files are limited to that"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for once every alias is expanded (memoised per node)."""
    if id(node) not in sizes:
        sizes[id(node)] = 1  # a recursive alias counts once instead of looping
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def load_yaml(path: Path) -> Document:
    """Read and parse a YAML file; a missing or unreadable file is a user error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CbrunError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CbrunError(f"{path}: is a directory, expected a YAML file") from None
    except (OSError, ValueError) as error:
        raise CbrunError(f"{path}: cannot read: {error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise CbrunError(
            f"{path}:{line}:{column}: byte 0x{raw[error.start]:02x} is not UTF-8; save the file "
            "as UTF-8"
        ) from None
    return parse_yaml(text, str(path))


def merge_documents(documents: list[Document]) -> Document:
    """Later files over earlier ones: mappings merge key by key, any other value (lists too)
    replaces the earlier one. `callbacks:` as a mapping in a later file patches the list
    instead: `append:` adds items, any other key names the item to update by its `type`.
    Every key keeps the file and line it came from."""
    merged = Document(documents[0].data, documents[0].source, dict(documents[0].lines))
    for document in documents[1:]:
        if document.data is None:
            continue
        if not isinstance(document.data, dict) or not isinstance(merged.data, dict | None):
            raise CbrunError(f"{document.source}:1: expected a mapping of sections to merge")
        merged.data = _merge(merged, merged.data or {}, document, document.data, ())
    return merged


def _merge(merged: Document, old: Any, later: Document, new: Any, path: KeyPath) -> Any:
    if path == ("callbacks",) and isinstance(new, dict) and isinstance(old, list):
        return _patch_callbacks(merged, old, later, new)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        _take_lines(merged, later, path)
        return new
    result = dict(old)
    for key, value in new.items():
        result[key] = _merge(merged, old.get(key), later, value, path + (key,))
        merged.lines[path + (key,)] = later.lines.get(path + (key,), 1)
        merged.files[path + (key,)] = later.source
    return result


def _take_lines(merged: Document, later: Document, path: KeyPath) -> None:
    """`path` and everything under it now come from `later`."""
    depth = len(path)
    for table in (merged.lines, merged.files):
        for key in [k for k in table if k[:depth] == path]:
            del table[key]
    for key, line in later.lines.items():
        if key[:depth] == path:
            merged.lines[key] = line
            merged.files[key] = later.source


def _patch_callbacks(merged: Document, old: list, later: Document, patches: dict) -> list:
    items = list(old)
    for key, value in patches.items():
        where = f"{later.source}:{later.lines.get(('callbacks', key), 1)}: callbacks.{key}"
        if key == "append":
            if not isinstance(value, list):
                raise CbrunError(f"{where}: expected a list of callbacks to add")
            for offset, item in enumerate(value):
                index = len(items)
                items.append(item)
                _move_lines(merged, later, ("callbacks", "append", offset), ("callbacks", index))
            continue
        matches = [
            i for i, item in enumerate(items) if isinstance(item, dict) and item.get("type") == key
        ]
        types = [str(item.get("type")) for item in items if isinstance(item, dict)]
        if len(matches) != 1:
            found = "no callback" if not matches else f"{len(matches)} callbacks"
            raise CbrunError(
                f"{where}: {found} of type `{key}` to patch (types: {', '.join(types) or 'none'})"
                f"{did_you_mean(str(key), types) if not matches else ''}",
                hint="patch by index instead: --set callbacks[N].key=value" if matches else None,
            )
        if not isinstance(value, dict):
            raise CbrunError(f"{where}: expected a mapping of keys to change")
        index = matches[0]
        items[index] = {**items[index], **value}
        for name in value:
            _move_lines(merged, later, ("callbacks", key, name), ("callbacks", index, name))
    return items


def _move_lines(merged: Document, later: Document, source: KeyPath, target: KeyPath) -> None:
    depth = len(source)
    for key, line in later.lines.items():
        if key[:depth] == source:
            merged.lines[target + key[depth:]] = line
            merged.files[target + key[depth:]] = later.source


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def apply_overrides(document: Document, overrides: list[str]) -> None:
    """Apply `key.path=value` overrides in order; values are parsed as YAML.

    List items are addressed by index (`callbacks[0].patience=3` or `callbacks.0.patience=3`).
    Keys and mappings the file lacks are created; the schema then decides what is allowed.
    """
    if document.data is None:
        document.data = {}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise CbrunError(
                f"--set {override}: expected KEY=VALUE, for example `training.epochs=3`"
            )
        value = parse_yaml(raw, f"--set {override}").data if raw.strip() else None
        path = split_key(key.strip(), override)
        parent = document.data
        for depth, part in enumerate(path[:-1]):
            if isinstance(parent, dict) and parent.get(part) is None:
                if isinstance(path[depth + 1], int):  # an item of a list the file lacks
                    raise CbrunError(
                        f"--set {override}: `{format_path(path[: depth + 2])}` names no item "
                        f"(there is no `{format_path(path[: depth + 1])}` list)"
                    )
                document.overridden[path[: depth + 1]] = override  # created by this override
            parent = _child(parent, part, path[: depth + 1], override)
        _assign(parent, path[-1], value, override)
        document.overridden[path] = override


def split_key(key: str, override: str) -> KeyPath:
    """`callbacks[0].patience` (as cbrun prints key paths) or `callbacks.0.patience`."""
    parts: list[str | int] = []
    for part in re.sub(r"\[(\d+)\]", r".\1", key).split("."):
        if not part:
            raise CbrunError(f"--set {override}: empty key segment in `{key}`")
        parts.append(int(part) if part.isdecimal() else part)  # not isdigit: "²" is a digit
    return tuple(parts)


def _child(parent: Any, part: str | int, path: KeyPath, override: str) -> Any:
    shown = format_path(path)
    if isinstance(parent, list):
        if not isinstance(part, int) or part >= len(parent):
            raise CbrunError(
                f"--set {override}: `{shown}` names no item (the list has "
                f"{counted(len(parent), 'item')})"
            )
        return parent[part]
    if isinstance(parent, dict):
        if parent.get(part) is None:
            parent[part] = {}  # a section or mapping the file lacks; the schema judges it
        return parent[part]
    raise CbrunError(f"--set {override}: `{shown}` is inside a value that is not a mapping")


def _assign(parent: Any, part: str | int, value: Any, override: str) -> None:
    if isinstance(parent, list):
        if not isinstance(part, int) or part >= len(parent):
            raise CbrunError(
                f"--set {override}: the list has {counted(len(parent), 'item')}, no index {part}"
            )
        parent[part] = value
    elif isinstance(parent, dict):
        parent[part] = value
    else:
        raise CbrunError(f"--set {override}: cannot set a key inside a value that is not a mapping")


def format_path(path: KeyPath) -> str:
    """`('callbacks', 1, 'patience')` -> `callbacks[1].patience`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, path + (index,), lines)


def _yaml_message(error: yaml.MarkedYAMLError, source: str) -> str:
    mark = error.problem_mark or error.context_mark
    # An override is one line: its own text says more than a line and column would.
    where = source
    if mark and not source.startswith("--set "):
        where = f"{source}:{mark.line + 1}:{mark.column + 1}"
    problem = error.problem or str(error)
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("'")[1].replace("tag:yaml.org,2002:", "!!") if "'" in problem else ""
        return (
            f"{where}: the tag `{tag}` is not allowed: experiment files are plain data and "
            "never construct Python objects"
        )
    context = f" ({error.context})" if error.context else ""
    begun = error.context_mark
    if begun and mark and begun.line != mark.line and not source.startswith("--set "):
        # An unclosed bracket or quote: the parser stops far from where the mistake began.
        opened = " (a bracket or quote opened there may be unclosed)"
        context = f" ({error.context} that began at line {begun.line + 1}, column "
        context += f"{begun.column + 1}){opened}"
    return f"{where}: invalid YAML: {problem}{context}"
