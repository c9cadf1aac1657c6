"""Checks across sections that a single field's validator cannot see, run before any training."""

from __future__ import annotations

from typing import Any

from cbrun.core.errors import ConfigError
from cbrun.experiment import callback_checks
from cbrun.experiment.yaml_source import Document


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
        _data_files_fit_the_config,
    ):
        problems.extend(item_check(config, document))
    if problems:
        raise ConfigError(problems, source=document.source)


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
        path = ("data", *(int(p) if p.isdigit() else p for p in key.split(".")))
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
