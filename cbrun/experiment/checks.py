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


def _mirrored_runs_one_step_per_call(config: Any, document: Document) -> list[str]:
    steps = config.training.steps_per_execution
    if config.distribution.strategy != "mirrored" or steps in ("auto", 1):
        return []
    return [
        f"{document.where(('training', 'steps_per_execution'))}: training.steps_per_execution: "
        f"{steps} batches per call fail under distribution.strategy mirrored in Keras 3 (its "
        "multi-step function cannot be distributed); use 1 or auto"
    ]
