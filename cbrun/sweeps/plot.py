"""A PNG of the sweep's metric against each swept parameter, one panel per parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cbrun.errors import CbrunError


def plot_metric(record: dict[str, Any], path: Path) -> None:
    """Scatter the metric of every scored trial against each parameter; the best is starred."""
    try:
        import matplotlib
    except ImportError:
        raise CbrunError(
            "matplotlib is not installed", hint='pip install "cbrun[plots]" for sweep plots'
        ) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    scored = [item for item in record["trials"] if item.get("metric") is not None]
    keys = list(record["trials"][0]["params"]) if record["trials"] else []
    if not scored or not keys:
        raise CbrunError("no completed trial has the metric, nothing to plot")
    best = (min if record["direction"] == "min" else max)(scored, key=lambda i: i["metric"])
    figure, axes = pyplot.subplots(
        1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False, constrained_layout=True
    )
    for axis, key in zip(axes[0], keys, strict=True):
        values = [item["params"][key] for item in scored]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        labels = sorted({str(v) for v in values})
        xs = values if numeric else [labels.index(str(v)) for v in values]
        axis.scatter(xs, [item["metric"] for item in scored], color="tab:blue")
        best_x = best["params"][key] if numeric else labels.index(str(best["params"][key]))
        axis.scatter(
            [best_x],
            [best["metric"]],
            marker="*",
            s=200,
            color="tab:orange",
            label=f"best ({best['trial']})",
        )
        if numeric and min(values) > 0 and max(values) / min(values) >= 10:
            axis.set_xscale("log")
        if not numeric:
            axis.set_xticks(range(len(labels)), labels, rotation=20)
        axis.set_xlabel(key)
        axis.set_ylabel(record["metric"])
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.suptitle(f"{record['experiment']}: {record['metric']} ({record['direction']}) per trial")
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
