"""Turn a validated config into data, a compiled model and callbacks, via the registries."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cbrun import registry
from cbrun.callbacks.base import BuildContext
from cbrun.compute.speed import dtype_policy, steps_per_execution
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.lazy_modules import KERAS_UNUSED, loaded_on_first_use
from cbrun.core.memory import imports_kept_out_of_collections
from cbrun.core.native_logs import quiet_native_logs
from cbrun.data.base import Dataset, split_size
from cbrun.experiment.checks import compile_fits_the_head
from cbrun.models.head import DEFAULT_LOSS, DEFAULT_METRICS, with_target_scale


def import_keras(seed: int | None = None, deterministic: bool = False) -> Any:
    """Import Keras on TensorFlow with TensorFlow's C++ chatter muted (and the parts of Keras
    cbrun never uses left to load on first use); seed everything.

    `deterministic` also makes TensorFlow's ops deterministic, for the rest of the process.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with (
        quiet_native_logs(),
        imports_kept_out_of_collections("keras"),
        loaded_on_first_use(KERAS_UNUSED),
    ):
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # initialises devices: their log lines come now

    import cbrun.models.layers  # noqa: F401  (registers cbrun's layers, so saved models load)

    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return keras


def build_dataset(config: Any, config_dir: Path | None = None) -> Dataset:
    """The config's data; `config_dir` is importable for `import` data."""
    _importable(config_dir)
    component = registry.datasets.get(config.data.type)
    return component.factory(config.data, config.experiment.seed)


def resolve_compile_defaults(config: Any, dataset: Dataset) -> None:
    """Fill the loss and metrics left empty with the defaults for the data's task."""
    config.compile.loss = config.compile.loss or DEFAULT_LOSS[dataset.task]
    if config.compile.metrics is None:
        config.compile.metrics = list(DEFAULT_METRICS[dataset.task])


def build_model(config: Any, dataset: Dataset, config_dir: Path | None = None) -> Any:
    """Build and compile the model; `config_dir` is importable for `import` models."""
    keras = import_keras()
    _importable(config_dir)
    with dtype_policy(config.training.precision):
        model = registry.models.get(config.model.type).factory(config.model, dataset)
    for params in config.callbacks:  # callbacks that add layers, e.g. augmentation
        if hasattr(params, "prepare_model"):
            model = params.prepare_model(model, dataset, config.experiment.seed)
    model = with_target_scale(model, dataset)
    resolve_compile_defaults(config, dataset)
    _check_compile_names(keras, config.compile)
    problems = compile_fits_the_head(config, dataset.task, None)  # a task the data decided
    if problems:
        raise CbrunError(problems[0])
    try:
        model.compile(
            optimizer=config.compile.optimizer.build(),
            loss=keras.losses.get(config.compile.loss),
            metrics=list(config.compile.metrics),
            steps_per_execution=steps_per_execution(config, split_size(dataset.train))[0],
            jit_compile=config.training.jit_compile,
        )
    except (ValueError, TypeError) as error:
        raise CbrunError(f"compile: {error}") from None
    return model


def _importable(folder: Path | None) -> None:
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _check_compile_names(keras: Any, section: Any) -> None:
    """Unknown loss or metric names fail here, with their key and a close match, not in `fit`."""

    def public_names(module: Any) -> list[str]:
        return [n for n in dir(module) if n.islower() and n not in ("get", "serialize")]

    try:
        keras.losses.get(section.loss)
    except (ValueError, TypeError):
        names = public_names(keras.losses)
        raise CbrunError(
            f"compile.loss: unknown Keras loss `{section.loss}`.{did_you_mean(section.loss, names)}"
        ) from None
    for index, metric in enumerate(section.metrics):
        if metric in ("accuracy", "acc", "crossentropy", "ce"):  # compile() resolves these
            continue
        try:
            keras.metrics.get(metric)
        except (ValueError, TypeError):
            names = ["accuracy", *public_names(keras.metrics)]
            raise CbrunError(
                f"compile.metrics[{index}]: unknown Keras metric `{metric}`."
                f"{did_you_mean(metric, names)}"
            ) from None


def build_callbacks(
    config: Any,
    run_dir: Path,
    dataset: Dataset,
    phase: str = "fit",
    *,
    evaluated: str = "test",
    inputs: Any = None,
    input_names: list[str] | None = None,
) -> list[Any]:
    """One Keras callback (or several) per `callbacks:` item that joins `phase`, in order;
    `evaluated`, `inputs` and `input_names`: what the evaluate or predict phase is given (see
    BuildContext)."""
    context = BuildContext(
        run_dir=run_dir,
        config=config,
        dataset=dataset,
        phase=phase,  # type: ignore[arg-type]
        evaluated=evaluated,
        inputs=inputs,
        input_names=input_names,
    )
    built: list[Any] = []
    for index, params in enumerate(config.callbacks):
        if phase not in params.phases:
            continue
        try:
            result = registry.callbacks.get(params.type).factory(params, context)
        except CbrunError as error:
            raise CbrunError(
                f"callbacks[{index}] ({params.type}): {error.message}", hint=error.hint
            ) from None
        except (TypeError, ValueError) as error:
            raise CbrunError(f"callbacks[{index}] ({params.type}): {error}") from error
        built.extend(result if isinstance(result, list) else [result])
    return built
