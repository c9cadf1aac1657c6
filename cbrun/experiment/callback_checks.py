"""Config checks of the `callbacks:` list against the rest of the experiment, before training.

Each check takes the validated config and its YAML document and returns problem messages
(`file:line: key.path: what is wrong; what to change`); `cbrun.experiment.checks.check`
reports them all.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from cbrun.core.errors import did_you_mean
from cbrun.core.run_dir import CONFIG_FILE, RUN_RECORD
from cbrun.experiment.yaml_source import Document, format_path
from cbrun.models.head import DEFAULT_METRICS

# Files and folders (ending with `/`) cbrun itself writes in a run directory: no callback may
# write them. Written out here: training.py and state.py, which name most, import Keras.
RUN_FILES = (
    CONFIG_FILE,
    RUN_RECORD,
    "overrides.yaml",
    "history.csv",
    "history.json",
    "model.keras",
    "model_summary.txt",
    "data.json",
    "eval.json",
    "train.log",
    "git.diff",
    "report.html",
    "plots/",
    "state/",
    "data_cache/",  # a streamed source's disk cache (data.cache: disk)
)
LR_DRIVING_CALLBACKS = ("learning_rate_scheduler", "reduce_lr_on_plateau")


def callbacks_can_be_built(config: Any, document: Document) -> list[str]:
    """What each callback's params can tell before training that its factory would refuse."""
    config_dir = Path(document.source).resolve().parent
    return [
        f"{document.where(('callbacks', index, *key))}: "
        f"{format_path(('callbacks', index, *key))}: {message}"
        for index, item in enumerate(config.callbacks)
        for key, message in item.build_problems(config_dir)
    ]


def swap_ema_weights_needs_ema(config: Any, document: Document) -> list[str]:
    if config.compile.optimizer.use_ema:
        return []
    return [
        f"{document.where(('callbacks', index, 'type'))}: callbacks[{index}]: "
        "`swap_ema_weights` needs an optimizer that keeps an exponential moving average of "
        "the weights: set compile.optimizer.use_ema: true, or drop this callback"
        for index, item in enumerate(config.callbacks)
        if item.type == "swap_ema_weights"
    ]


def lr_drivers_need_a_plain_learning_rate(config: Any, document: Document) -> list[str]:
    if not config.compile.optimizer.has_schedule:
        return []
    return [
        f"{document.where(('callbacks', index, 'type'))}: callbacks[{index}]: `{item.type}` "
        "sets the optimizer's learning rate each epoch, but compile.optimizer.learning_rate is "
        f"a `{config.compile.optimizer.learning_rate.type}` schedule, which Keras cannot "
        "change. Use a number for compile.optimizer.learning_rate, or drop this callback."
        for index, item in enumerate(config.callbacks)
        if item.type in LR_DRIVING_CALLBACKS
    ]


def one_learning_rate_driver(config: Any, document: Document) -> list[str]:
    drivers = [
        (index, item.type)
        for index, item in enumerate(config.callbacks)
        if item.type in LR_DRIVING_CALLBACKS
    ]
    if len({kind for _, kind in drivers}) < 2:
        return []
    (first, first_type), *others = drivers
    return [
        f"{document.where(('callbacks', index, 'type'))}: callbacks[{index}]: `{kind}` and "
        f"callbacks[{first}] (`{first_type}`) both set the learning rate, and "
        "learning_rate_scheduler overwrites every reduction at the next epoch: keep one of them"
        for index, kind in others
        if kind != first_type
    ]


def monitors_are_logged(config: Any, document: Document) -> list[str]:
    """Every metric a callback watches is one the fit logs (Keras would only warn each epoch)."""
    names = logged_names(config)
    problems = []
    for index, item in enumerate(config.callbacks):
        if "fit" not in item.phases:
            continue
        for field, metric in item.watched_metrics():
            if metric in names:
                continue
            where = f"{document.where(('callbacks', index, field))}: callbacks[{index}].{field}"
            if metric.startswith("val_") and not has_validation_data(config.data):
                problems.append(
                    f"{where}: `{metric}` needs validation data, but data.split.validation is "
                    "0 and there is no data.validation_path: set data.split.validation (e.g. "
                    f"0.2) or use `{metric.removeprefix('val_')}`"
                )
            else:
                problems.append(
                    f"{where}: `{metric}` is not logged by this run.{did_you_mean(metric, names)}"
                    f" Available: {', '.join(names)} (metrics come from compile.metrics)"
                )
    return problems


def output_paths_are_distinct(config: Any, document: Document) -> list[str]:
    """No two callbacks write the same file, nor into a folder another owns, nor a run file."""
    owners = [
        (posixpath.normpath(name), name.endswith("/"), "cbrun's own run files")
        for name in RUN_FILES
    ]
    problems = []
    for index, item in enumerate(config.callbacks):
        for raw in item.output_paths():
            path, is_folder = posixpath.normpath(raw), raw.endswith("/")
            for other, other_is_folder, owner in owners:
                if (
                    path == other
                    or _inside(path, other, other_is_folder)
                    or _inside(other, path, is_folder)
                ):
                    shown = other + "/" if other_is_folder else other
                    problems.append(
                        f"{document.where(('callbacks', index))}: callbacks[{index}] "
                        f"(`{item.type}`) writes `{raw}`, which clashes with `{shown}` of "
                        f"{owner}: give it another path"
                    )
                    break
            owners.append((path, is_folder, f"callbacks[{index}] (`{item.type}`)"))
    return problems


def logged_names(config: Any) -> list[str]:
    """What each epoch's logs hold: loss and metrics (and `val_` twins), learning_rate, extras.

    Default metrics depend on the task, which a data source's params may state as a `task`
    field or class variable; otherwise either task's defaults are accepted.
    """
    task = getattr(config.data, "task", None)
    if config.compile.metrics is not None:
        metrics = list(config.compile.metrics)
    elif task in DEFAULT_METRICS:
        metrics = DEFAULT_METRICS[task]
    else:  # the task is only known once the data is read: allow either default
        metrics = [m for defaults in DEFAULT_METRICS.values() for m in defaults]
    names = ["loss", *metrics]
    if has_validation_data(config.data):
        names += [f"val_{name}" for name in names]
    names.append("learning_rate")
    for item in config.callbacks:
        names += [name for name in item.logged_metrics() if name not in names]
    return names


def has_validation_data(data: Any) -> bool:
    """False only when the data section clearly holds no validation split."""
    split = getattr(data, "split", None)
    return bool(getattr(data, "validation_path", None)) or split is None or split.validation > 0


def _inside(path: str, folder: str, is_folder: bool) -> bool:
    return is_folder and (folder == "." or path.startswith(folder + "/"))
