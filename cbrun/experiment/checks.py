"""Checks across sections that a single field's validator cannot see, run before any training."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cbrun.core.errors import CbrunError, ConfigError, did_you_mean
from cbrun.core.importing import imports_refused, missing_package
from cbrun.data.class_weight import check_class_weight
from cbrun.experiment import callback_checks
from cbrun.experiment.keras_names import COMPILE_ALIASES, LOSSES, METRICS
from cbrun.experiment.yaml_source import Document, format_path

# What cbrun's own output layers (all but `import` models and `add_output: false`) cannot be
# scored with. A classification head gives one probability per class for labels that are class
# indices; Keras fails mid-run on these (categorical_accuracy runs, but scores the wrong thing).
NOT_FOR_CLASS_INDICES = frozenset(
    {
        "auc",
        "precision",
        "recall",
        "f1_score",
        "binary_accuracy",
        "binary_crossentropy",
        "true_positives",
        "true_negatives",
        "false_positives",
        "false_negatives",
        "categorical_accuracy",
        "categorical_crossentropy",
        "categorical_focal_crossentropy",
        "categorical_hinge",
        "top_k_categorical_accuracy",
        "mse",
        "mae",
        "mape",
        "msle",
        "mean_squared_error",
        "mean_absolute_error",
        "r2_score",
        "hinge",
        "squared_hinge",
        "kl_divergence",
        "poisson",
        "cosine_similarity",
    }
)
CLASS_SCORES = ("accuracy", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy")
# A regression head gives numbers: scores of classes make no sense of them.
NOT_FOR_NUMBERS = frozenset(
    {
        "accuracy",
        "acc",
        "auc",
        "precision",
        "recall",
        "f1_score",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "crossentropy",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
    }
)


def check(config: Any, document: Document) -> None:
    """Raise one ConfigError listing every cross-section conflict in `config`."""
    problems: list[str] = []
    for item_check in (
        callback_checks.lr_drivers_need_a_plain_learning_rate,
        _split_fractions_leave_training,
        _mirrored_runs_one_step_per_call,
        callback_checks.swap_ema_weights_needs_ema,
        callback_checks.one_learning_rate_driver,
        callback_checks.monitors_are_logged,
        callback_checks.output_paths_are_distinct,
        callback_checks.callbacks_can_be_built,
        _rollback_can_lower_the_learning_rate,
        _compile_names_are_known,
        _model_function_is_importable,
        _class_weight_fits_declared_classes,
        _data_files_fit_the_config,
    ):
        problems.extend(item_check(config, document))
    task = getattr(config.data, "task", None)
    if task in ("classification", "regression"):  # else the data decides, when it is read
        problems.extend(compile_fits_the_head(config, task, document))
    if problems:
        raise ConfigError(problems, source=document.source)


def compile_fits_the_head(config: Any, task: str, document: Document | None) -> list[str]:
    """The loss and metrics can score what cbrun's head for `task` outputs."""
    if config.model.type == "import" or not getattr(config.model, "add_output", True):
        return []  # the user's own head: Keras judges it
    refused = NOT_FOR_CLASS_INDICES if task == "classification" else NOT_FOR_NUMBERS
    named = [(("compile", "loss"), config.compile.loss)] + [
        (("compile", "metrics", index), name)
        for index, name in enumerate(config.compile.metrics or [])
    ]
    problems = []
    for path, name in named:
        if name is None or _snake(name) not in refused:  # `AUC` is Keras' class of `auc`
            continue
        key = "compile.loss" if len(path) == 2 else f"compile.metrics[{path[2]}]"
        where = f"{document.where(path)}: " if document is not None else ""
        problems.append(
            f"{where}{key}: `{name}` cannot score this classification model: it outputs one "
            "probability per class and the labels are class indices (Keras would fail "
            f"mid-run); use {', '.join(CLASS_SCORES)} (eval.json has per-class precision, "
            "recall and F1)"
            if task == "classification"
            else f"{where}{key}: `{name}` scores classes, but this is a regression task; use "
            "mae, mse or root_mean_squared_error"
        )
    return problems


def _snake(name: str) -> str:
    """`MeanSquaredError` -> `mean_squared_error`, `AUC` -> `auc`."""
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower()


def _split_fractions_leave_training(config: Any, document: Document) -> list[str]:
    split = getattr(config.data, "split", None)
    if split is None or split.validation + split.test < 1:
        return []
    return [
        f"{document.where(('data', 'split'))}: data.split: validation ({split.validation}) + "
        f"test ({split.test}) must add up to less than 1 to leave data for training"
    ]


def _data_files_fit_the_config(config: Any, document: Document) -> list[str]:
    """Columns named in `data:` that the data files lack (read from their headers)."""
    problems = []
    for key, message in config.data.file_problems():
        path = ("data", *(int(p) if p.isdecimal() else p for p in key.split(".")))
        problems.append(f"{document.where(path)}: data.{key}: {message}")
    return problems


def _mirrored_runs_one_step_per_call(config: Any, document: Document) -> list[str]:
    steps = config.training.steps_per_execution
    if config.distribution.strategy != "mirrored" or steps in ("auto", 1):
        return []
    return [
        f"{document.where(('training', 'steps_per_execution'))}: training.steps_per_execution: "
        f"{steps} batches per call fail under distribution.strategy mirrored in Keras 3 (its "
        "multi-step function cannot be distributed); use 1 or auto"
    ]


def _rollback_can_lower_the_learning_rate(config: Any, document: Document) -> list[str]:
    """`on_non_finite: rollback` scales the learning rate, which a schedule would undo."""
    if config.training.on_non_finite != "rollback":
        return []
    where = f"{document.where(('training', 'on_non_finite'))}: training.on_non_finite"
    if config.compile.optimizer.has_schedule:
        return [
            f"{where}: `rollback` lowers the learning rate, but compile.optimizer.learning_rate "
            f"is a `{config.compile.optimizer.learning_rate.type}` schedule, which Keras cannot "
            "change: use a number for the learning rate, or `fail` / `stop`"
        ]
    return [
        f"{where}: `rollback` lowers the learning rate, but callbacks[{index}] "
        "(`learning_rate_scheduler`) sets it anew every epoch: use `fail` or `stop`, or "
        "reduce_lr_on_plateau instead"
        for index, item in enumerate(config.callbacks)
        if item.type == "learning_rate_scheduler"
    ]


def _compile_names_are_known(config: Any, document: Document) -> list[str]:
    """Loss and metric names Keras would not resolve (checked without importing Keras)."""
    named = [(("compile", "loss"), "loss", config.compile.loss, LOSSES)]
    named += [
        (("compile", "metrics", index), "metric", name, METRICS | COMPILE_ALIASES)
        for index, name in enumerate(config.compile.metrics or [])
    ]
    return [
        f"{document.where(path)}: {format_path(path)}: unknown Keras {kind} `{name}`."
        f"{did_you_mean(name, sorted(n for n in known if n.islower()))}"
        for path, kind, name, known in named
        if name is not None and name not in known
    ]


def _model_function_is_importable(config: Any, document: Document) -> list[str]:
    """An `import` model whose module is nowhere to be found (looked up, not imported)."""
    if config.model.type != "import" or imports_refused():
        return []  # a run directory's saved config: imported only when it is built
    folder = Path(document.file_of(("model", "function"))).resolve().parent
    problem = missing_package(config.model.function, folder)
    if problem is None:
        return []
    return [f"{document.where(('model', 'function'))}: model.function: {problem}"]


def _class_weight_fits_declared_classes(config: Any, document: Document) -> list[str]:
    """`training.class_weight` against the classes of a source that declares them (data
    read by `validate` is checked once it is read: `data_checks.read_data`)."""
    declared = config.data.declared_classes()
    if declared is None or config.training.class_weight is None:
        return []
    task, names = declared
    try:
        check_class_weight(config.training.class_weight, task, names or [])
    except CbrunError as error:
        return [f"{document.where(('training', 'class_weight'))}: {error.message}"]
    return []
