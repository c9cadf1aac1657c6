"""The random states training consumes, saved with each resume state and restored on resume.

`model.save` keeps weights and the optimizer but not the state of the layers' random number
generators: a Keras 3 layer that draws random numbers (Dropout, GaussianNoise, random
augmentation) owns a `keras.random.SeedGenerator` whose state is a `[seed, counter]` variable
that moves on with every training step, and a loaded model gets fresh seeds instead. So next to
each saved model cbrun writes `random.npz` with:

- the state of every seed generator the model's layers own (`model.variables` that are not
  `model.weights`, which is how Keras itself separates them), in the model's own order;
- Keras' global seed generator (used by `keras.random.*` calls without a `seed`), if one exists;
- NumPy's global generator (`np.random.get_state()`) and Python's `random` module state.

The tf.data input pipeline of `training.pipeline` is re-positioned separately (its generator
is advanced by the passes already made; see `cbrun.compute.speed.batches`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.core.errors import CbrunError
from cbrun.run.build import import_keras

keras = import_keras()

RANDOM_FILE = "random.npz"
_GLOBAL_SEED_GENERATOR = "global_seed_generator"  # keras.src.random.seed_generator's key


def layer_seed_states(model: Any) -> list[Any]:
    """The state variables of the seed generators owned by `model`'s layers, in model order."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def capture_random_state(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The random states now: the arrays for `random.npz`, and the JSON entry that describes
    them (for state.json)."""
    states = layer_seed_states(model)
    arrays = {
        f"layer_{i}": np.array(keras.ops.convert_to_numpy(v), copy=True)
        for i, v in enumerate(states)
    }
    global_generator = _global_seed_generator()
    if global_generator is not None:
        arrays["keras_global"] = np.array(
            keras.ops.convert_to_numpy(global_generator.state), copy=True
        )
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    arrays["numpy_keys"] = keys
    version, python_state, gauss_next = random.getstate()
    arrays["python_state"] = np.asarray(python_state, dtype=np.int64)
    entry = {
        "file": RANDOM_FILE,
        "layer_seed_generators": [v.path for v in states],
        "keras_global": global_generator is not None,
        "numpy": {
            "kind": kind,
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "gauss_next": gauss_next},
    }
    return arrays, entry


def write_random_state(folder: Path, arrays: dict[str, Any]) -> None:
    """Write what `capture_random_state` copied to `folder/random.npz`."""
    np.savez(folder / RANDOM_FILE, **arrays)


def restore_random_state(model: Any, folder: Path, entry: dict[str, Any]) -> None:
    """Put back what `write_random_state` wrote into `folder` (described by `entry`)."""
    path = folder / entry["file"]
    try:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError) as error:
        raise CbrunError(f"{path}: cannot read the saved random state: {error}") from None
    states = layer_seed_states(model)
    saved = entry["layer_seed_generators"]
    if len(states) != len(saved) or any(f"layer_{i}" not in arrays for i in range(len(saved))):
        raise CbrunError(
            f"{path}: the saved state holds {len(saved)} layer random generators, the model "
            f"has {len(states)}: the state does not belong to this model"
        )
    for index, variable in enumerate(states):
        variable.assign(arrays[f"layer_{index}"].astype(variable.dtype))
    _restore_global_seed_generator(arrays.get("keras_global") if entry["keras_global"] else None)
    numpy = entry["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            arrays["numpy_keys"],
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    python = entry["python"]
    random.setstate(
        (python["version"], tuple(int(x) for x in arrays["python_state"]), python["gauss_next"])
    )


def _global_seed_generator() -> Any:
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute(_GLOBAL_SEED_GENERATOR)


def _restore_global_seed_generator(state: Any) -> None:
    """Keras' global seed generator as saved: absent (as after `set_random_seed`) or `state`."""
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import global_seed_generator

    if state is None:
        global_state.set_global_attribute(_GLOBAL_SEED_GENERATOR, None)
        return
    generator = global_seed_generator()  # made anew if absent
    generator.state.assign(state.astype(generator.state.dtype))
