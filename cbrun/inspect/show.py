"""`cbrun show`: one run's config, outcome, metrics, artifacts and curves in the terminal."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import fmean
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cbrun.core.console import counted, format_number
from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import CONFIG_FILE
from cbrun.inspect.runs import (
    REPORT_FILE,
    STATUS_STYLE,
    is_run_dir,
    metric_columns,
    read_json_or_problem,
    read_run,
)

BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
EXPAND_UP_TO = 5  # folders with at most this many files are listed file by file
MATRIX_UP_TO = 20  # confusion matrices with more classes are left to the picture


def sparkline(values: list[float], width: int = SPARK_WIDTH) -> str:
    """Values as a row of block characters, lowest ▁ to highest █ (bucket means if long).

    NaN and infinite values (a diverged run) show as blanks.
    """
    if len(values) > width:
        size = len(values) / width
        values = [
            fmean(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)])
            for i in range(width)
        ]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))] if math.isfinite(v) else " "
        for v in values
    )


def history_series(history: dict[str, Any]) -> dict[str, list[float]]:
    """The per-epoch series in a history.json (everything but the epoch numbers); a value that
    is not a number (a hand-edited file) is NaN, shown as a blank."""
    return {
        name: [_number(v) for v in values]
        for name, values in history.items()
        if name != "epoch" and isinstance(values, list) and values
    }


def _number(value: Any) -> float:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


def curves_table(history: dict[str, Any]) -> Table:
    table = Table(box=None, show_header=True, pad_edge=False)
    for name, justify in (
        ("metric", "left"),
        ("curve", "left"),
        ("first", "right"),
        ("last", "right"),
        ("min", "right"),
        ("max", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    series = history_series(history)
    for name in sorted(series, key=lambda n: (n.removeprefix("val_"), n.startswith("val_"))):
        values = series[name]
        table.add_row(
            name,
            Text(sparkline(values), style="cyan"),
            *(format_number(v) for v in (values[0], values[-1], min(values), max(values))),
        )
    return table


def artifacts(run_dir: Path) -> list[tuple[str, int, int]]:
    """(path, size in bytes, file count) for each file, and for each folder as a whole."""
    rows: list[tuple[str, int, int]] = []
    for entry in sorted(run_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            rows.append((entry.name, entry.stat().st_size, 1))
            continue
        files = sorted(p for p in entry.rglob("*") if p.is_file())
        if len(files) <= EXPAND_UP_TO:
            rows += [(str(p.relative_to(run_dir)), p.stat().st_size, 1) for p in files]
        else:
            rows.append((f"{entry.name}/", sum(p.stat().st_size for p in files), len(files)))
    return rows


def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")


def show_run(run_dir: Path) -> Group:
    """Everything `cbrun show` prints about one run; damaged parts are reported, not raised."""
    if not is_run_dir(run_dir):
        raise CbrunError(f"{run_dir}: not a run directory (expected one made by `cbrun train`)")
    info = read_run(run_dir)
    record = info.record
    parts: list[Any] = [Text(f"{info.name}  ({run_dir})", style="bold")]

    status = Table.grid(padding=(0, 2))
    status.add_column(style="dim")
    status.add_column()
    style = STATUS_STYLE.get(info.status, "magenta")
    status.add_row("status", Text(info.status, style=style))
    for problem in info.problems:
        status.add_row("problem", Text(problem, style="magenta"))
    if record.get("error"):
        status.add_row("error", f"{record['error'].get('type')}: {record['error'].get('message')}")
    for key, label in (
        ("stop_reason", "stopped"),
        ("started_at", "started"),
        ("ended_at", "ended"),
    ):
        if record.get(key):
            status.add_row(label, str(record[key]))
    if record.get("duration_seconds") is not None:
        status.add_row("duration", f"{record['duration_seconds']:.1f} s")
    if "epochs_completed" in record:
        status.add_row("epochs", f"{record['epochs_completed']} / {record.get('epochs_planned')}")
    if record.get("model_weights"):
        status.add_row("model.keras", str(record["model_weights"]))
    for resume in record.get("resumes") or []:
        status.add_row("resume", _resume_line(resume))
    for name, best in (record.get("monitors") or {}).items():
        status.add_row(
            f"best {name}", f"{format_number(best.get('best'))} at epoch {best.get('best_epoch')}"
        )
    if record.get("versions"):
        status.add_row("versions", ", ".join(f"{k} {v}" for k, v in record["versions"].items()))
    if record.get("git_commit"):
        git = record.get("git") if isinstance(record.get("git"), dict) else {}
        dirty = ""
        if git.get("dirty"):
            diff = f"; {git['diff_file']}" if git.get("diff_file") else ""
            dirty = f" (dirty: {git.get('changed_files', 0)} changed, "
            dirty += f"{git.get('untracked_files', 0)} untracked{diff})"
        status.add_row("git commit", f"{record['git_commit']}{dirty}")
    if (run_dir / REPORT_FILE).is_file():
        status.add_row("report", str(run_dir / REPORT_FILE))
    parts += [Text(""), status]

    parts += [Text(""), _metrics_table(record, info.test_metrics)]
    evaluation = read_json_or_problem(run_dir / "eval.json", []) if info.test_metrics else None
    if isinstance(evaluation, dict):
        try:
            parts += [item for table in evaluation_tables(evaluation) for item in (Text(""), table)]
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            parts.append(Text(f"eval.json: unreadable evaluation details ({error})", "magenta"))

    evaluations = evaluations_table(run_dir)
    if evaluations.row_count:
        parts += [Text(""), evaluations]

    problems: list[str] = []
    history = read_json_or_problem(run_dir / "history.json", problems)
    if isinstance(history, dict) and history_series(history):
        parts += [Text("\ncurves", style="bold"), curves_table(history)]
    elif record.get("status") != "running":
        parts.append(
            Text(f"\nno curves: {'; '.join(problems) or 'history.json is empty'}", style="dim")
        )

    files = Table(title="artifacts", title_justify="left", box=None, pad_edge=False)
    files.add_column("path")
    files.add_column("size", justify="right")
    for path, size, count in artifacts(run_dir):
        files.add_row(path if count == 1 else f"{path} ({count} files)", human_size(size))
    parts += [Text(""), files]

    parts.append(Text("\nconfig.yaml", style="bold"))
    try:
        parts.append(Text((run_dir / CONFIG_FILE).read_text(encoding="utf-8").rstrip()))
    except (OSError, UnicodeDecodeError) as error:
        parts.append(Text(f"unreadable: {error}", style="magenta"))
    return Group(*parts)


def _resume_line(resume: Any) -> str:
    """`resumed after epoch 2 (training.epochs: 2 -> 4) at <time>, was completed`."""
    if not isinstance(resume, dict):
        return f"unreadable entry in run.json: {resume!r}"[:200]
    changed = resume.get("changed") if isinstance(resume.get("changed"), dict) else {}
    changes = "; ".join(
        f"{key}: {' -> '.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in changed.items()
    )
    line = f"resumed after epoch {resume.get('from_epoch')}"
    line += f" ({changes})" if changes else ""
    return line + f" at {resume.get('at')}, was {resume.get('previous_status')}"


def _metrics_table(record: dict[str, Any], test: dict[str, float]) -> Table:
    columns = metric_columns(record, test)
    table = Table(title="metrics", title_justify="left")
    table.add_column("metric")
    for heading, _ in columns:
        table.add_column(heading, justify="right")
    for name in dict.fromkeys(name for _, values in columns for name in values):
        table.add_row(name, *(format_number(v[name]) if name in v else "" for _, v in columns))
    return table


def evaluations_table(run_dir: Path) -> Table:
    """One row per `cbrun eval` file: what it evaluated (a split, or new data and its path),
    the checkpoint, the samples and Keras' metrics; data that had changed is flagged."""
    table = Table(title="evaluations", title_justify="left")
    for name in ("file", "data", "checkpoint", "samples", "metrics"):
        table.add_column(name, justify="right" if name == "samples" else "left")
    for path in sorted(run_dir.glob("eval-*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
        problems: list[str] = []
        found = read_json_or_problem(path, problems)
        if not isinstance(found, dict):
            table.add_row(path.name, Text("; ".join(problems) or "not an object", "magenta"))
            continue
        source = found.get("data") if isinstance(found.get("data"), dict) else {}
        data = Text(str(source.get("path") or f"{found.get('split')} split"))
        if found.get("data_changed"):
            data.append(" (data had changed)", style="yellow")
        metrics = found.get("metrics") if isinstance(found.get("metrics"), dict) else {}
        shown = ", ".join(f"{k} {format_number(v)}" for k, v in metrics.items())
        table.add_row(
            path.name, data, str(found.get("checkpoint", "")), str(found.get("samples", "")), shown
        )
    return table


def evaluation_tables(evaluation: dict[str, Any]) -> list[Table]:
    """An eval.json's detail as terminal tables: per class, confusion matrix, curves, errors."""
    tables: list[Table] = []
    per_class = evaluation.get("per_class")
    if isinstance(per_class, dict) and per_class:
        tables.append(_per_class_table(per_class, evaluation.get("averages") or {}))
    matrix = evaluation.get("confusion_matrix")
    if isinstance(matrix, dict) and isinstance(matrix.get("counts"), list):
        tables.append(_confusion_table(matrix))
    scores: list[tuple[str, Any]] = []
    roc, pr = evaluation.get("roc"), evaluation.get("pr")
    if isinstance(roc, dict):
        scores.append((f"ROC AUC (positive: {roc.get('positive_class')})", roc.get("auc")))
    if isinstance(pr, dict):
        scores.append(("average precision", pr.get("average_precision")))
    regression = evaluation.get("regression")
    if isinstance(regression, dict):
        scores += [(name, regression.get(name)) for name in ("mae", "rmse", "r2")]
    if scores:
        table = Table(title="evaluation", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in scores:
            shown = format_number(value) if isinstance(value, (int, float)) else "n/a"
            table.add_row(name, shown)
        tables.append(table)
    return tables


def _per_class_table(per_class: dict[str, Any], averages: dict[str, Any]) -> Table:
    table = Table(title="per class", title_justify="left")
    table.add_column("class")
    for name in ("precision", "recall", "f1", "support"):
        table.add_column(name, justify="right")
    rows = [(name, scores, "") for name, scores in per_class.items()]
    rows += [(f"{kind} avg", averages.get(kind), "dim") for kind in ("macro", "weighted")]
    for index, (label, scores, style) in enumerate(rows):
        if not isinstance(scores, dict):
            continue
        table.add_row(
            label,
            *(format_number(scores.get(k)) for k in ("precision", "recall", "f1")),
            str(scores.get("support", "")),
            style=style,
            end_section=index == len(per_class) - 1,
        )
    return table


def _confusion_table(matrix: dict[str, Any]) -> Table:
    labels = [str(label) for label in matrix.get("labels") or []]
    counts = matrix["counts"]
    total = sum(sum(row) for row in counts)
    table = Table(
        title=f"confusion matrix, {counted(total, 'sample')}",
        title_justify="left",
    )
    if len(labels) > MATRIX_UP_TO:
        table.add_column(f"{len(labels)} classes: see plots/confusion_matrix.png")
        return table
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(label, justify="right")
    for i, (label, row) in enumerate(zip(labels, counts, strict=False)):
        cells = [
            Text(str(n), style=("bold green" if i == j else "red") if n else "dim")
            for j, n in enumerate(row)
        ]
        table.add_row(label, *cells)
    return table
