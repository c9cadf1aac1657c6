"""A PNG of the sweep's metric against each swept parameter, one panel per parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cbrun.core.errors import CbrunError

# What the plot draws with; a sweep imports them on a thread while its trials run.
PLOT_MODULES = ("matplotlib.figure", "matplotlib.ticker", "matplotlib.backends.backend_agg")


def plot_metric(record: dict[str, Any], path: Path) -> None:
    """Scatter the metric of every scored trial against each parameter; the best is starred.

    Numbers go on a numeric axis (logarithmic when they span a factor of 10 or more), other
    values (lists, names) on a categorical one.
    """
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state
    from matplotlib.ticker import NullFormatter

    scored = [item for item in record["trials"] if item.get("metric") is not None]
    keys = list(record["trials"][0]["params"]) if record["trials"] else []
    if not scored or not keys:
        raise CbrunError("no completed trial has the metric, nothing to plot")
    best = (min if record["direction"] == "min" else max)(scored, key=lambda i: i["metric"])
    figure = Figure(figsize=(4 * len(keys), 3.5), dpi=100, layout="constrained")
    for axes, key in zip(figure.subplots(1, len(keys), squeeze=False)[0], keys, strict=True):
        values = [item["params"][key] for item in scored]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        labels = sorted({str(v) for v in values})

        def position(value: Any, numeric: bool = numeric, labels: list[str] = labels) -> Any:
            return value if numeric else labels.index(str(value))

        axes.scatter([position(v) for v in values], [i["metric"] for i in scored])
        axes.scatter(
            [position(best["params"][key])],
            [best["metric"]],
            marker="*",
            s=200,
            color="tab:orange",
            label=f"best ({best['trial']})",
        )
        if numeric and min(values) > 0 and max(values) / min(values) >= 10:
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(NullFormatter())
        if numeric and key in record["search"]["grid"]:  # tick exactly the values tried
            distinct = sorted(set(values))
            axes.set_xticks(distinct, [f"{v:g}" for v in distinct])
        if not numeric:
            axes.set_xticks(range(len(labels)), labels, rotation=20)
        axes.set_xlabel(key)
        axes.set_ylabel(record["metric"])
        axes.grid(True, alpha=0.3)
    figure.axes[0].legend(fontsize="small")
    figure.suptitle(f"{record['experiment']}: {record['metric']} ({record['direction']}) per trial")
    figure.savefig(path)
