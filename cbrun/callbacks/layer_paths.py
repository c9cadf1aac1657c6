"""Layers by path, also inside sub-models (`block/conv`), and what they output in a forward pass.

A conv layer nested in a sub-model or a functional block is not among `model.layers`, and its
symbolic output is not connected to the outer model's inputs, so no `keras.Model(inputs,
layer.output)` reaches it. `capturing` instead records what the layers return while the
model runs (eagerly, or while a `tf.function` is traced), so gradients can be taken with
respect to it as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cbrun.core.errors import CbrunError, did_you_mean


def walk(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every layer of `model` (but its inputs) with its path, depth first in the model's
    order; a sub-model's own layers follow it as `sub/layer`."""
    found: list[tuple[str, Any]] = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        path = f"{prefix}{layer.name}"
        found.append((path, layer))
        inner = getattr(layer, "layers", None)
        if isinstance(inner, list) and inner and layer is not model:
            found += walk(layer, f"{path}/")
    return found


def is_conv(layer: Any) -> bool:
    """A 2-D conv layer (Conv2D and kin) whose output is batch × height × width × channels."""
    name = type(layer).__name__
    if "Conv" not in name:
        return False
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError, TypeError):  # a layer never called symbolically
        return "2D" in name


def conv_paths(model: Any) -> list[tuple[str, Any]]:
    """The conv layers anywhere in `model`, with their paths, in order."""
    return [(path, layer) for path, layer in walk(model) if is_conv(layer)]


def find_layer(model: Any, path: str, key: str, listing: str = "Layers") -> Any:
    """The layer at `path` (`conv`, or `block/conv` inside the sub-model `block`); a layer's
    own name also finds it inside a sub-model when no other layer has that name. `key` starts
    the error message (e.g. `saliency_maps.layer`); `listing` names the layers it then lists
    (`Conv layers`: only those)."""
    layers = walk(model)
    by_path = dict(layers)
    if path in by_path:
        return by_path[path]
    same_name = [layer for known, layer in layers if known.rsplit("/", 1)[-1] == path]
    if len(same_name) == 1:
        return same_name[0]
    paths = [known for known, _ in layers]
    if same_name:
        matches = [known for known in paths if known.rsplit("/", 1)[-1] == path]
        raise CbrunError(
            f"{key}: `{path}` names {len(matches)} layers; give its path: {', '.join(matches)}"
        )
    listed = paths if listing == "Layers" else [known for known, _ in conv_paths(model)]
    raise CbrunError(
        f"{key}: the model has no layer `{path}`.{did_you_mean(path, paths)} "
        f"{listing}: {', '.join(listed) or '-'}"
    )


@contextmanager
def capturing(layers: list[Any]) -> Iterator[dict[int, Any]]:
    """While inside, what each of `layers` returns when called is kept under `id(layer)` (the
    last call's output). The layers are unchanged afterwards."""
    found: dict[int, Any] = {}
    replaced = []
    for layer in dict.fromkeys(layers):
        own = layer.__dict__.get("call")  # a `call` set on the instance, kept to restore
        original = layer.call

        def hooked(*args: Any, _layer: Any = layer, _call: Any = original, **kwargs: Any) -> Any:
            output = _call(*args, **kwargs)
            found[id(_layer)] = output
            return output

        object.__setattr__(layer, "call", hooked)  # past Keras' attribute tracking
        replaced.append((layer, own))
    try:
        yield found
    finally:
        for layer, own in replaced:
            if own is None:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", own)
