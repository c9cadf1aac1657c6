"""A run's pictures: learning-curve PNGs and one self-contained `report.html`.

The report embeds its plots as base64 data URIs and its style inline, so it renders offline,
from an e-mail attachment or a CI artifact, with no network fetch.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from cbrun.callbacks.activation_maps import GIF_NAME as ACTIVATIONS_GIF
from cbrun.callbacks.saliency_maps import GIF_NAME as SALIENCY_GIF
from cbrun.callbacks.visual import PHASE_PREFIXES, epoch_frames
from cbrun.core.console import Reporter, format_number
from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import (
    CONFIG_FILE,
    RUN_RECORD,
    read_json,
    restore_non_finite,
    write_text_atomic,
)
from cbrun.inspect.plots import PLOTS_DIR, plot_run
from cbrun.inspect.runs import REPORT_FILE, metric_columns
from cbrun.inspect.show import MATRIX_UP_TO, artifacts, human_size

EVAL_FILE = "eval.json"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.3em; color: white; }
.completed { background: #2e7d32; } .failed { background: #c62828; }
.running, .interrupted { background: #f9a825; } .warning { color: #c62828; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; } .plots img { width: 520px; border: 1px solid #eee; }
.plots img.wide { width: 760px; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
code { background: #f1f1f1; padding: 0 0.2em; border-radius: 0.2em; }
"""


def add_pictures(run_dir: Path, record: dict[str, Any], reporter: Reporter) -> None:
    """Draw the run's plots and report into `run_dir`, noting them in `record`.

    A failure here must not cost the user a trained model, so it does not fail the run: it
    is printed as a warning and kept in `record["warnings"]` (run.json).
    """
    try:
        plots = write_plots(run_dir, record)
        record["plots"] = [str(p.relative_to(run_dir)) for p in plots]
        write_text_atomic(run_dir / REPORT_FILE, render_report(run_dir, record, plots))
        record["report"] = REPORT_FILE
    except Exception as error:  # noqa: BLE001 - any drawing failure becomes a warning
        message = f"plots/report not written: {type(error).__name__}: {error}"
        record.setdefault("warnings", []).append(message)
        reporter.print(f"[yellow]warning:[/] {message}")


def refresh_report(run_dir: Path) -> None:
    """Write report.html again from the run's files as they are now (after a `cbrun eval`,
    so the report shows every evaluation); the learning-curve PNGs are reused, not redrawn."""
    record = read_json(run_dir / RUN_RECORD)
    if not isinstance(record, dict):
        raise CbrunError(f"{run_dir / RUN_RECORD}: not a JSON object")
    plots = [run_dir / name for name in record.get("plots") or [] if (run_dir / name).is_file()]
    write_text_atomic(run_dir / REPORT_FILE, render_report(run_dir, record, plots))


def write_plots(run_dir: Path, record: dict[str, Any]) -> list[Path]:
    """PNGs of history.json in `run_dir/plots`; none when the run wrote no history."""
    history_file = run_dir / "history.json"
    if not history_file.exists():
        return []
    history = restore_non_finite(json.loads(history_file.read_text(encoding="utf-8")))
    name = f"{record.get('experiment', run_dir.parent.name)}/{run_dir.name}"
    return plot_run(history, run_dir / PLOTS_DIR, record.get("monitors") or {}, name)


def render_report(run_dir: Path, record: dict[str, Any], plots: list[Path]) -> str:
    """The report as one HTML document (plots inlined as data URIs)."""
    e = html.escape
    status = str(record.get("status", "unknown"))
    title = f"{record.get('experiment', run_dir.parent.name)} / {run_dir.name}"
    overview = [
        ("stopped", record.get("stop_reason")),
        ("started", record.get("started_at")),
        ("ended", record.get("ended_at")),
        ("duration", _seconds(record.get("duration_seconds"))),
        ("epochs", f"{record.get('epochs_completed')} / {record.get('epochs_planned')}"),
        ("seed", record.get("seed")),
        ("smoke run", "yes" if record.get("smoke") else None),
        ("host", record.get("host")),
        ("git commit", record.get("git_commit")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items())),
        ("directory", str(run_dir.resolve())),
    ]
    if record.get("error"):
        error = f"{record['error'].get('type')}: {record['error'].get('message')}"
        if str(record.get("stop_reason", "")).startswith("failed:"):
            overview.pop(0)  # "failed: <the error>": the error row says it once
        overview.insert(0, ("error", error))
    overview = [(k, _message(str(v))) for k, v in overview if v not in (None, "")]
    columns = metric_columns(record, record.get("test_metrics") or {})
    metric_rows = [
        [name, *(format_number(v[name]) if name in v else "" for _, v in columns)]
        for name in dict.fromkeys(name for _, values in columns for name in values)
    ]
    best_rows = [
        [name, best.get("mode", ""), format_number(best.get("best")), str(best.get("best_epoch"))]
        for name, best in (record.get("monitors") or {}).items()
    ]
    images = "".join(_image(p, f"{p.stem} curve") for p in plots)
    try:
        config = (run_dir / CONFIG_FILE).read_text(encoding="utf-8")
    except OSError as error:
        config = f"(config.yaml unreadable: {error})"
    files = [
        [_link(path, path + (f" ({count} files)" if count > 1 else "")), human_size(size)]
        for path, size, count in artifacts(run_dir)
    ]
    warnings = "".join(
        f'<p class="warning">warning: {_message(w)}</p>' for w in record.get("warnings") or []
    )
    body = [
        f"<h1>{e(title)}</h1>",
        f'<p><span class="status {e(status)}">{e(status)}</span></p>',
        warnings,
        _table([], [[k, v] for k, v in overview]),
        "<h2>Metrics</h2>",
        _table(
            ["metric", *(heading for heading, _ in columns)],
            metric_rows,
            numeric=tuple(range(1, len(columns) + 1)),
        ),
    ]
    if best_rows:
        body += [
            "<h2>Best epochs</h2>",
            _table(["monitor", "mode", "best", "epoch"], best_rows, numeric=(2, 3)),
        ]
    body += _evaluations(run_dir)
    body += _interpretability(run_dir)
    body += [
        "<h2>Learning curves</h2>",
        f'<div class="plots">{images}</div>' if images else "<p>No history was recorded.</p>",
        "<h2>Data</h2>",
        _table([], _data_rows(record.get("data") or {})),
        *_model_summary(run_dir),
        "<h2>Config</h2>",
        f"<pre>{e(config)}</pre>",
        "<h2>Artifacts</h2>",
        _table(["path", "size"], files, numeric=(1,)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}: {e(status)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    wide = ' class="wide"' if path.stem == "confusion_matrix" else ""
    return (
        f'<figure><img{wide} alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'
    )


def _read_evaluation(path: Path) -> dict[str, Any] | None:
    try:
        evaluation = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return evaluation if isinstance(evaluation, dict) else None


def later_evaluations(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable eval-*.json of `cbrun eval`, oldest first."""
    found = [(path, _read_evaluation(path)) for path in run_dir.glob("eval-*.json")]
    readable = [(path, evaluation) for path, evaluation in found if evaluation is not None]
    return sorted(
        readable,  # evaluated_at has whole seconds: then the file written last is the newest
        key=lambda item: (str(item[1].get("evaluated_at", "")), item[0].stat().st_mtime_ns),
    )


def _evaluated(evaluation: dict[str, Any]) -> str:
    """What an evaluation scored: `the validation split of model.keras`, or new data's path."""
    source = evaluation.get("data")
    what = (
        f"new data {source.get('path')}"
        if isinstance(source, dict)
        else f"the {evaluation.get('split')} split"
    )
    checkpoint = evaluation.get("checkpoint")
    return f"{what} of {checkpoint}" if checkpoint else what


def _evaluations(run_dir: Path) -> list[str]:
    """Train's test evaluation (eval.json) in full; then, after any `cbrun eval`, a table of
    every eval-*.json and the newest one in full, each with its pictures."""
    body: list[str] = []
    evaluation = _read_evaluation(run_dir / EVAL_FILE)
    if evaluation is not None:
        heading = f"Evaluation on the {html.escape(str(evaluation.get('split')))} split"
        body += _evaluation(run_dir, evaluation, heading)
    later = later_evaluations(run_dir)
    if not later:
        return body
    rows = []
    for path, found in later:
        metrics = found.get("metrics") if isinstance(found.get("metrics"), dict) else {}
        what = _evaluated(found)
        if found.get("data_changed"):
            what += " (the data had changed)"
        rows.append(
            [
                _link(path.name, path.name),
                what,
                str(found.get("samples", "")),
                ", ".join(f"{k} {_number(v)}" for k, v in metrics.items()),
                str(found.get("evaluated_at", "")),
            ]
        )
    body += [
        f"<h2>Evaluations by <code>cbrun eval</code> ({len(later)})</h2>",
        _table(["file", "evaluated", "samples", "metrics", "at"], rows, numeric=(2,)),
    ]
    path, newest = later[-1]
    heading = f"Newest evaluation: {html.escape(_evaluated(newest))} ({html.escape(path.name)})"
    return body + _evaluation(run_dir, newest, heading, always=True)


def _evaluation(
    run_dir: Path, evaluation: dict[str, Any], heading: str, always: bool = False
) -> list[str]:
    """One evaluation: per-class table, confusion matrix, scores, pictures (`heading`: HTML).
    Without per-class or regression details it is left out, unless `always` (then its
    Keras metrics are shown)."""
    if not any(key in evaluation for key in ("per_class", "regression")):
        if not always or not isinstance(evaluation.get("metrics"), dict):
            return []
        rows = [[str(k), _number(v)] for k, v in evaluation["metrics"].items()]
        return [f"<h2>{heading}</h2>", _table(["metric", "value"], rows, numeric=(1,))]
    body = [f"<h2>{heading}</h2>"]
    per_class = evaluation.get("per_class") or {}
    averages = evaluation.get("averages") or {}
    rows = [
        [str(name), *_scores(scores)]
        for name, scores in [*per_class.items(), *((f"{k} avg", averages.get(k)) for k in averages)]
        if isinstance(scores, dict)
    ]
    if rows:
        body.append(
            _table(["class", "precision", "recall", "f1", "support"], rows, numeric=(1, 2, 3, 4))
        )
    matrix = evaluation.get("confusion_matrix") or {}
    labels = [str(label) for label in matrix.get("labels") or []]
    if labels and len(labels) <= MATRIX_UP_TO:
        body.append(
            f"<p>Confusion matrix, {sum(map(sum, matrix['counts']))} samples: rows are the true "
            "class, columns the predicted class.</p>"
        )
        body.append(
            _table(
                ["true \\ predicted", *labels],
                [
                    [label, *map(str, row)]
                    for label, row in zip(labels, matrix["counts"], strict=False)
                ],
                numeric=tuple(range(1, len(labels) + 1)),
            )
        )
    scores: list[list[str]] = []
    roc, pr = evaluation.get("roc"), evaluation.get("pr")
    if isinstance(roc, dict):
        scores.append(
            [f"ROC AUC (positive class {roc.get('positive_class')})", _number(roc.get("auc"))]
        )
        if roc.get("skipped"):
            scores[-1][1] = str(roc["skipped"])
    if isinstance(pr, dict):
        scores.append(["average precision", _number(pr.get("average_precision"))])
    regression = evaluation.get("regression")
    if isinstance(regression, dict):
        scores += [[name.upper(), _number(regression.get(name))] for name in ("mae", "rmse")]
        scores.append(["R²", _number(regression.get("r2"))])
    if scores:
        body.append(_table(["score", "value"], scores, numeric=(1,)))
    names = evaluation.get("plots") if isinstance(evaluation.get("plots"), list) else []
    inside = run_dir.resolve()
    pictures = [
        run_dir / name
        for name in names
        if isinstance(name, str) and (run_dir / name).resolve().is_relative_to(inside)
    ]  # an edited eval file embeds no file from outside the run
    images = "".join(_image(p, p.stem.replace("_", " ")) for p in pictures if p.is_file())
    if images:
        body.append(f'<div class="plots">{images}</div>')
    return body


PICTURE_CALLBACKS = {"saliency_maps": "saliency", "activation_maps": "activations"}
"""The picture callbacks, and their default folders."""


def _picture_folders(run_dir: Path) -> list[tuple[Path, str]]:
    """(folder, kind) of each saliency_maps / activation_maps item of the run's config, and of
    any folder holding their GIF."""
    folders: dict[Path, str] = {}
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        items = (config.get("callbacks") if isinstance(config, dict) else None) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        items = []
    for item in items if isinstance(items, list) else []:
        kind = PICTURE_CALLBACKS.get(str(item.get("type"))) if isinstance(item, dict) else None
        if kind:
            folders[run_dir / str(item.get("directory") or kind).rstrip("/")] = kind
    for gif in run_dir.glob("*/*.gif"):
        if gif.name in (SALIENCY_GIF, ACTIVATIONS_GIF):
            kind = "saliency" if gif.name == SALIENCY_GIF else "activations"
            folders.setdefault(gif.parent, kind)
    return sorted(folders.items())


def _interpretability(run_dir: Path) -> list[str]:
    """The newest picture of each saliency_maps / activation_maps folder for each phase (the
    last epoch, the newest evaluation, the newest prediction), with its GIF linked."""
    figures = []
    for folder, kind in _picture_folders(run_dir):
        if not folder.is_dir() or not folder.resolve().is_relative_to(run_dir.resolve()):
            continue
        newest = [epoch_frames(folder, prefix)[-1:] for prefix in PHASE_PREFIXES]
        pictures = [path for paths in newest for path in paths]
        if not pictures:
            continue
        name = str(folder.relative_to(run_dir))
        gif = folder / (SALIENCY_GIF if kind == "saliency" else ACTIVATIONS_GIF)
        link = f': <a href="{html.escape(f"{name}/{gif.name}")}">all epochs (GIF)</a>'
        images = "".join(_image(p, f"{kind} {name}/{p.stem}") for p in pictures)
        figures.append(f"<h3>{html.escape(name)}/ ({kind}){link if gif.is_file() else ''}</h3>")
        figures.append(f'<div class="plots">{images}</div>')
    return ["<h2>Inside the model</h2>", *figures] if figures else []


def _scores(scores: dict[str, Any]) -> list[str]:
    return [
        *(_number(scores.get(k)) for k in ("precision", "recall", "f1")),
        str(scores.get("support", "")),
    ]


def _number(value: Any) -> str:
    return format_number(value) if isinstance(value, (int, float)) else "n/a"


class _Html(str):
    """Markup made here from escaped parts: a table cell that is not escaped again."""


def _message(text: str) -> _Html:
    """A message with its `names` set as code, the rest escaped."""
    parts = html.escape(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return _Html(html.escape(text))
    return _Html("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def _link(path: str, text: str) -> _Html:
    """A link to a file or folder of the run, relative to the report (it sits in the run dir)."""
    return _Html(f'<a href="{html.escape(path)}">{html.escape(text)}</a>')


def _model_summary(run_dir: Path) -> list[str]:
    try:
        summary = (run_dir / "model_summary.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return ["<h2>Model</h2>", f"<pre>{html.escape(summary)}</pre>"]


def _data_rows(data: dict[str, Any]) -> list[list[str]]:
    """data.json's summary as readable rows: task, input shape, classes, samples per split."""
    rows: list[list[str]] = []
    for key, value in data.items():
        if value in (None, [], {}):
            continue
        if key == "fingerprint" and isinstance(value, dict):
            rows += [[f"fingerprint of {k}", _fingerprint_text(v)] for k, v in value.items()]
            continue
        if key == "input_shape" and isinstance(value, list):
            value = " × ".join(map(str, value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        rows.append([key.replace("_", " "), str(value)])
    return rows


def _fingerprint_text(entry: Any) -> str:
    """One file's or folder's fingerprint in a line: path, size or count, a short hash."""
    if not isinstance(entry, dict):
        return str(entry)
    if "sha256" in entry:
        return f"{entry.get('path')}: {entry.get('size')} bytes, SHA-256 {entry['sha256']:.12}…"
    digest = str(entry.get("names_and_sizes_sha256"))
    return f"{entry.get('path')}: {entry.get('files')} files, names and sizes SHA-256 {digest:.12}…"


def _table(header: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    e = html.escape

    def cell(value: str) -> str:
        return value if isinstance(value, _Html) else e(value)

    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell(c)}</td>' if i in numeric else f"<td>{cell(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    head = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _seconds(value: Any) -> str | None:
    return None if value is None else f"{value:.1f} s"
