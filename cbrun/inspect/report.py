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

from cbrun.core.console import Reporter, format_number
from cbrun.core.run_dir import CONFIG_FILE, restore_non_finite, write_text_atomic
from cbrun.inspect.plots import PLOTS_DIR, plot_run
from cbrun.inspect.runs import REPORT_FILE
from cbrun.inspect.show import artifacts, human_size

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.3em; color: white; }
.completed { background: #2e7d32; } .failed { background: #c62828; }
.running, .interrupted { background: #f9a825; } .warning { color: #c62828; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; } .plots img { width: 520px; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
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


def write_plots(run_dir: Path, record: dict[str, Any]) -> list[Path]:
    """PNGs of history.json in `run_dir/plots`; none when the run wrote no history."""
    history_file = run_dir / "history.json"
    if not history_file.exists():
        return []
    history = restore_non_finite(json.loads(history_file.read_text(encoding="utf-8")))
    return plot_run(history, run_dir / PLOTS_DIR, record.get("monitors") or {})


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
        overview.insert(
            0, ("error", f"{record['error'].get('type')}: {record['error'].get('message')}")
        )
    final = record.get("final_metrics") or record.get("last_metrics") or {}
    test = record.get("test_metrics") or {}
    metric_rows = [
        [
            name,
            format_number(final[name]) if name in final else "",
            format_number(test[name]) if name in test else "",
        ]
        for name in dict.fromkeys([*final, *test])
    ]
    best_rows = [
        [name, best.get("mode", ""), format_number(best.get("best")), str(best.get("best_epoch"))]
        for name, best in (record.get("monitors") or {}).items()
    ]
    images = "".join(
        f'<figure><img alt="{e(p.stem)} curve" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode("ascii")}"></figure>'
        for p in plots
    )
    try:
        config = (run_dir / CONFIG_FILE).read_text(encoding="utf-8")
    except OSError as error:
        config = f"(config.yaml unreadable: {error})"
    files = [
        [path + (f" ({count} files)" if count > 1 else ""), human_size(size)]
        for path, size, count in artifacts(run_dir)
    ]
    warnings = "".join(
        f'<p class="warning">warning: {e(w)}</p>' for w in record.get("warnings") or []
    )
    body = [
        f"<h1>{e(title)}</h1>",
        f'<p><span class="status {e(status)}">{e(status)}</span></p>',
        warnings,
        _table([], [[k, str(v)] for k, v in overview if v not in (None, "")]),
        "<h2>Metrics</h2>",
        _table(
            ["metric", "final" if record.get("final_metrics") else "last epoch", "test"],
            metric_rows,
            numeric=(1, 2),
        ),
    ]
    if best_rows:
        body += [
            "<h2>Best epochs</h2>",
            _table(["monitor", "mode", "best", "epoch"], best_rows, numeric=(2, 3)),
        ]
    body += [
        "<h2>Learning curves</h2>",
        f'<div class="plots">{images}</div>' if images else "<p>No history was recorded.</p>",
        "<h2>Data</h2>",
        f"<pre>{e(json.dumps(record.get('data') or {}, indent=2))}</pre>",
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


def _table(header: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{e(c)}</td>' if i in numeric else f"<td>{e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    head = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _seconds(value: Any) -> str | None:
    return None if value is None else f"{value:.1f} s"
