"""`cbrun runs`: find run directories and list them from their small files (no TensorFlow).

A run directory is read through `RunInfo`, which never raises on damage: a missing or
half-written file becomes a problem in `RunInfo.problems`, and the run is listed as `damaged`.
`cbrun show` and `cbrun compare` read runs the same way.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from socket import gethostname
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cbrun.callbacks.base import resolve_mode
from cbrun.core.console import format_number
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.run_dir import CONFIG_FILE, RUN_RECORD, restore_non_finite

STAMP = re.compile(r"^\d{8}-\d{6}(-\d+)?$")
TRASH = ".trash"  # `cbrun rm` moves runs here, inside the runs directory; never listed
AGE = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
AGE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
STATUSES = ("completed", "failed", "interrupted", "running", "damaged")
STATUS_STYLE = {"completed": "green", "failed": "red", "interrupted": "yellow", "running": "yellow"}
REPORT_FILE = "report.html"
SWEEP_RECORD = "sweep.json"  # written by `cbrun sweep` in its own folder
# Files a completed run always has; their absence marks it damaged.
COMPLETED_FILES = (CONFIG_FILE, "history.json", "model.keras")
FIELDS = ("started", "duration", "epochs", "name", "status")
RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "started_at": str,
    "duration_seconds": (int, float),
    "epochs_completed": int,
    "epochs_planned": int,
    "monitors": dict,
    "final_metrics": dict,
    "test_metrics": dict,
    "model_epoch": int,
    "model_metrics": dict,
}


@dataclass
class RunInfo:
    """What a run directory's small files say, and what is wrong with them."""

    path: Path
    record: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def status(self) -> str:
        return "damaged" if self.problems else str(self.record.get("status", "damaged"))

    def metric(self, name: str) -> float | None:
        """A number to sort by: `test_X`, a monitored metric's best value, or a final metric."""
        if name.startswith("test_") and name.removeprefix("test_") in self.test_metrics:
            return self.test_metrics[name.removeprefix("test_")]
        best = (self.record.get("monitors") or {}).get(name)
        if best:
            return best.get("best")
        return (self.record.get("final_metrics") or {}).get(name)

    def metric_names(self) -> set[str]:
        return {
            *(f"test_{k}" for k in self.test_metrics),
            *(self.record.get("monitors") or {}),
            *(self.record.get("final_metrics") or {}),
        }

    def row(self) -> dict[str, Any]:
        """The listing's fields, as JSON-ready values."""
        record = self.record
        monitors = record.get("monitors") or {}
        return {
            "name": self.name,
            "path": str(self.path),
            "status": self.status,
            "recorded_status": record.get("status"),
            "started_at": record.get("started_at"),
            "epochs_completed": record.get("epochs_completed"),
            "epochs_planned": record.get("epochs_planned"),
            "duration_seconds": record.get("duration_seconds"),
            "stop_reason": record.get("stop_reason"),
            "best": {
                k: {"value": v.get("best"), "epoch": v.get("best_epoch")}
                for k, v in monitors.items()
            },
            "final_metrics": record.get("final_metrics") or {},
            "test_metrics": self.test_metrics,
            "error": record.get("error"),
            "problems": self.problems,
        }


def metric_columns(record: dict[str, Any], test: dict[str, Any]) -> list[tuple[str, dict]]:
    """(heading, metrics) of each column of a run's metrics table: the last epoch's, the
    epoch whose weights model.keras holds when that is another one (early stopping's
    restore_best_weights), and the test set's (which scored model.keras)."""
    last = record.get("final_metrics") or record.get("last_metrics") or {}
    epochs = record.get("epochs_completed")
    columns = [(f"last epoch ({epochs})" if isinstance(epochs, int) else "last epoch", last)]
    model_epoch = record.get("model_epoch")
    if record.get("model_metrics") and model_epoch != epochs:
        columns.append((f"model.keras (epoch {model_epoch})", record["model_metrics"]))
    return [*columns, ("test", test)]


def read_json_or_problem(path: Path, problems: list[str]) -> Any:
    """The JSON in `path`, or None with a problem noted (missing, truncated, not JSON)."""
    try:
        return restore_non_finite(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        problems.append(f"{path.name} is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(f"{path.name} is unreadable ({error})")
    return None


def read_run(path: Path) -> RunInfo:
    """Read `run.json` and `eval.json` of one run directory; damage becomes `problems`."""
    info = RunInfo(path)
    record = read_json_or_problem(path / RUN_RECORD, info.problems)
    if record is not None and not isinstance(record, dict):
        info.problems.append(f"{RUN_RECORD} does not hold a JSON object")
        record = None
    info.record = _checked(record or {}, info.problems)
    if info.record.get("test_metrics"):
        info.test_metrics = dict(info.record["test_metrics"])
    elif (path / "eval.json").exists():
        evaluation = read_json_or_problem(path / "eval.json", info.problems)
        if isinstance(evaluation, dict):
            info.test_metrics = dict(evaluation.get("metrics") or {})
    if info.record.get("status") == "running" and _process_gone(info.record):
        info.problems.append(
            f"recorded as running, but its process {info.record['pid']} is gone (killed?)"
        )
    if info.record.get("status") == "completed":
        info.problems += [
            f"{name} is missing" for name in COMPLETED_FILES if not (path / name).exists()
        ]
    return info


def _checked(record: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """`record` without the fields whose type is wrong (a hand-edited file), each noted."""
    for key, kind in RECORD_TYPES.items():
        value = record.get(key)
        if value is None:
            continue
        items = dict if key == "monitors" else (int, float)
        if (
            not isinstance(value, kind)
            or isinstance(value, bool)
            or (isinstance(value, dict) and not all(isinstance(v, items) for v in value.values()))
        ):
            problems.append(f"{RUN_RECORD}: `{key}` has the wrong type")
            record.pop(key)
    return record


def _process_gone(record: dict[str, Any]) -> bool:
    """True when the run's training process was on this host and no longer exists."""
    pid = record.get("pid")
    if os.name != "posix" or not isinstance(pid, int) or record.get("host") != gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def is_run_dir(path: Path) -> bool:
    """A run directory, finished or not (a sweep's folder is not one)."""
    return (
        path.is_dir()
        and not (path / SWEEP_RECORD).exists()
        and (
            (path / RUN_RECORD).exists()
            or (path / CONFIG_FILE).exists()
            or bool(STAMP.match(path.name))
        )
    )


def find_runs(runs_dir: Path, depth: int = 6) -> list[Path]:
    """Run directories under `runs_dir` (`<experiment>/<stamp>`, sweeps' trials included).

    A folder with `run.json` or `config.yaml` is a run; a timestamp-named folder with no run
    inside is a run that died before writing anything.
    """
    if not runs_dir.is_dir():
        raise CbrunError(f"{runs_dir}: no such directory (give the folder your runs are in)")
    return _collect(runs_dir, depth)


def _collect(folder: Path, depth: int) -> list[Path]:
    if is_run_dir(folder) and ((folder / RUN_RECORD).exists() or (folder / CONFIG_FILE).exists()):
        return [folder]
    # .trash/: runs `cbrun rm` moved away; mlartifacts/: the mlflow callback's default
    # artifact store, copies of runs' records.
    skipped = (TRASH, "mlartifacts")
    children = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in skipped)
    children = children if depth > 0 else []
    inner = [run for child in children for run in _collect(child, depth - 1)]
    return inner or ([folder] if is_run_dir(folder) else [])


@dataclass
class RunFilter:
    """Which runs `cbrun runs` (and so `cbrun rm` by way of `--paths`) selects."""

    status: str | None = None
    tags: tuple[str, ...] = ()
    smoke: bool | None = None
    experiment: str | None = None
    older_than: str | None = None

    def keeps(self, run: RunInfo, now: float) -> bool:
        record = run.record
        tags = record.get("tags") if isinstance(record.get("tags"), list) else []
        return (
            (self.status is None or run.status == self.status)
            and all(tag in tags for tag in self.tags)
            and (self.smoke is None or bool(record.get("smoke")) == self.smoke)
            and (self.experiment is None or run.path.parent.name == self.experiment)
            and (self.older_than is None or now - _started(run) > age_seconds(self.older_than))
        )


def age_seconds(text: str) -> float:
    """`30m`, `12h`, `7d`, `2w` in seconds; anything else is a user error."""
    match = AGE.match(text.strip())
    if not match:
        raise CbrunError(f"--older-than: expected an age such as 30m, 12h, 7d or 2w, got `{text}`")
    return float(match.group(1)) * AGE_UNITS[match.group(2)]


def _started(run: RunInfo) -> float:
    """When the run started (its record), else when its folder was made."""
    try:
        return datetime.fromisoformat(str(run.record["started_at"])).timestamp()
    except (KeyError, ValueError):
        return run.path.stat().st_mtime


def select_runs(
    runs: list[RunInfo],
    status: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    where: RunFilter | None = None,
) -> list[RunInfo]:
    """Filter, sort (newest first, or best `sort` metric first), keep `limit`."""
    where = where or RunFilter(status=status)
    if where.status is not None and where.status not in STATUSES:
        raise CbrunError(
            f"--status: expected one of {', '.join(STATUSES)}, got `{where.status}`."
            + did_you_mean(where.status, STATUSES)
        )
    if where.older_than is not None:
        age_seconds(where.older_than)  # a bad age is an error even when no run is listed
    now = datetime.now().timestamp()
    runs = [run for run in runs if where.keeps(run, now)]
    runs = sorted(runs, key=lambda run: str(run.record.get("started_at") or ""), reverse=True)
    if sort:
        runs = _sorted_by(runs, sort)
    return runs[:limit] if limit is not None else runs


def _sorted_by(runs: list[RunInfo], sort: str) -> list[RunInfo]:
    if sort in FIELDS:
        keys = {
            "started": "started_at",
            "duration": "duration_seconds",
            "epochs": "epochs_completed",
            "name": "name",
            "status": "status",
        }
        values = {id(run): run.row()[keys[sort]] for run in runs}
        known = [run for run in runs if values[id(run)] is not None]
        return sorted(known, key=lambda run: values[id(run)]) + [
            run for run in runs if values[id(run)] is None
        ]
    available = sorted(set().union(*(run.metric_names() for run in runs))) if runs else []
    if runs and sort not in available:
        raise CbrunError(
            f"--sort: no run has a metric `{sort}`.{did_you_mean(sort, available)} "
            f"Available: {', '.join([*FIELDS, *available])}"
        )
    sign = -1 if resolve_mode(sort.removeprefix("test_")) == "max" else 1

    def key(run: RunInfo) -> tuple[int, float]:
        value = run.metric(sort)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return (1, 0.0) if missing else (0, sign * float(value))

    return sorted(runs, key=key)


def runs_table(runs: list[RunInfo], runs_dir: Path, sort: str | None = None) -> Group:
    """A heading line (never wrapped into the table's width) over one row per run."""
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("run", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("status")
    table.add_column("epochs", justify="right")
    table.add_column("time", justify="right")
    table.add_column("best (epoch)")
    table.add_column("test")
    for run in runs:
        row = run.row()
        status = row["status"]
        style = STATUS_STYLE.get(status, "magenta")
        note = f"\n[dim]{'; '.join(run.problems)}[/]" if run.problems else ""
        table.add_row(
            row["name"],
            _short_time(row["started_at"]),
            f"[{style}]{status}[/]{' [dim](smoke)[/]' if run.record.get('smoke') else ''}{note}",
            _epochs(row),
            "" if row["duration_seconds"] is None else f"{row['duration_seconds']:.0f}s",
            "\n".join(
                f"{k} {format_number(v['value'])} ({v['epoch']})" for k, v in row["best"].items()
            ),
            "\n".join(f"{k} {format_number(v)}" for k, v in row["test_metrics"].items()),
        )
    count = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
    order = f"best {sort} first" if sort else "newest first"
    return Group(Text(f"{count} in {runs_dir}, {order}"), table)


def _epochs(row: dict[str, Any]) -> str:
    done, planned = row["epochs_completed"], row["epochs_planned"]
    return "" if done is None and planned is None else f"{done or 0}/{planned or '?'}"


def _short_time(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%m-%d %H:%M")
    except ValueError:
        return stamp


def list_runs(
    runs_dir: Path,
    where: RunFilter,
    sort: str | None,
    limit: int | None,
    output: str = "table",
) -> str | Group:
    """The `cbrun runs` output: a table, a JSON list of rows, or one path per line."""
    runs = select_runs([read_run(path) for path in find_runs(runs_dir)], None, sort, limit, where)
    if output == "json":
        return json.dumps([run.row() for run in runs], indent=2)
    if output == "paths":
        return "\n".join(str(run.path) for run in runs)
    return runs_table(runs, runs_dir, sort)
