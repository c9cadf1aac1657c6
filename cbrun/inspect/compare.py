"""`cbrun compare`: config differences and metrics of several runs, and one overlay PNG."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cbrun.core.console import format_number
from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import CONFIG_FILE, create_exclusive
from cbrun.inspect.runs import RunInfo, is_run_dir, read_json_or_problem, read_run

MISSING = "—"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config as {"training.epochs": 3, "callbacks[0].patience": 5, ...}."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def config_differences(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Only the keys whose values differ between the configs (absent keys count as different)."""
    flat = [flatten(config) for config in configs]
    keys = list(dict.fromkeys(key for config in flat for key in config))
    differences: dict[str, list[Any]] = {}
    for key in keys:
        values = [config.get(key, MISSING) for config in flat]
        if any(v != values[0] for v in values[1:]):
            differences[key] = values
    return differences


def _read_config(run: RunInfo) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load((run.path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        run.problems.append(f"{CONFIG_FILE} is unreadable ({type(error).__name__})")
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _metric_rows(runs: list[RunInfo]) -> dict[str, list[str]]:
    """Final, best (with epoch) and test metrics of each run, then epochs and duration."""

    def final(run: RunInfo, name: str) -> str:
        value = (run.record.get("final_metrics") or {}).get(name)
        return MISSING if value is None else format_number(value)

    def best(run: RunInfo, name: str) -> str:
        found = (run.record.get("monitors") or {}).get(name)
        return MISSING if not found else f"{format_number(found['best'])} ({found['best_epoch']})"

    def test(run: RunInfo, name: str) -> str:
        value = run.test_metrics.get(name)
        return MISSING if value is None else format_number(value)

    sources = (
        ("final", final, lambda run: run.record.get("final_metrics") or {}),
        ("best", best, lambda run: run.record.get("monitors") or {}),
        ("test", test, lambda run: run.test_metrics),
    )
    rows: dict[str, list[str]] = {}
    for label, cell, names in sources:
        for name in dict.fromkeys(n for run in runs for n in names(run)):
            rows[f"{label} {name}"] = [cell(run, name) for run in runs]
    rows["epochs"] = [str(run.record.get("epochs_completed", MISSING)) for run in runs]
    rows["duration"] = [
        MISSING
        if run.record.get("duration_seconds") is None
        else f"{run.record['duration_seconds']:.1f}s"
        for run in runs
    ]
    return rows


def _table(title: str, runs: list[RunInfo], rows: dict[str, list[Any]], first: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for run in runs:
        table.add_column(run.name, overflow="fold")
    for key, cells in rows.items():
        table.add_row(key, *(str(c) for c in cells))
    return table


LEGEND_SETTINGS = 3  # settings named in each run's legend entry, the first that differ


def legend_labels(runs: list[RunInfo], differences: dict[str, list[Any]]) -> list[str]:
    """Each run's name with the settings that differ between the runs, as `key=value` (the
    experiment name and output folder are in the run's name already)."""
    keys = [k for k in differences if k != "experiment.name" and not k.startswith("output.")]
    shown = keys[:LEGEND_SETTINGS]
    more = ", …" if len(keys) > LEGEND_SETTINGS else ""
    labels = []
    for index, run in enumerate(runs):
        settings = ", ".join(f"{key}={differences[key][index]}" for key in shown)
        labels.append(f"{run.name} ({settings}{more})" if settings else run.name)
    return labels


def default_output() -> Path:
    """A new `compare-YYYYmmdd-HHMMSS.png` in the current directory (never an existing one)."""
    return create_exclusive(Path.cwd(), f"compare-{datetime.now():%Y%m%d-%H%M%S}", ".png")


def compare_runs(run_dirs: list[Path], output: Path | None) -> tuple[Group, Path | None]:
    """The comparison tables, and the overlay PNG written to `output` (or a new file in cwd)."""
    from cbrun.inspect.plots import plot_overlay

    if len(run_dirs) < 2:
        raise CbrunError("compare: give at least two run directories")
    for path in run_dirs:
        if not is_run_dir(path):
            raise CbrunError(f"{path}: not a run directory (expected one made by `cbrun train`)")
    if output is not None and output.exists():
        raise CbrunError(f"--output {output}: already exists (cbrun never overwrites a file)")
    if output is not None and not output.parent.is_dir():
        raise CbrunError(f"--output {output}: the folder {output.parent} does not exist")
    runs = [read_run(path) for path in run_dirs]
    differences = config_differences([_read_config(run) for run in runs])
    histories: dict[str, dict[str, Any]] = {}
    for run, label in zip(runs, legend_labels(runs, differences), strict=True):
        history = read_json_or_problem(run.path / "history.json", run.problems)
        if isinstance(history, dict):
            histories[label] = history

    parts: list[Any] = [
        _table("config differences", runs, differences, "key")
        if differences
        else Text("configs: identical"),
        _table("metrics", runs, _metric_rows(runs), "metric"),
    ]
    parts += [
        Text(f"{run.name}: {'; '.join(run.problems)}", style="magenta")
        for run in runs
        if run.problems
    ]
    if not histories:
        return Group(*parts, Text("no curves: none of the runs has a readable history.json")), None
    path = output if output is not None else default_output()
    try:
        plot_overlay(histories, path)
    except Exception:
        if output is None:
            path.unlink(missing_ok=True)  # the empty placeholder create_exclusive made
        raise
    return Group(*parts), path
