"""Learning-curve PNGs with matplotlib's Agg renderer (no display, no pyplot global state)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

PLOTS_DIR = "plots"
Series = tuple[list[int], list[float]]


def panels(history: dict[str, Any]) -> dict[str, dict[str, Series]]:
    """history.json as {metric: {"train"|"validation": (epochs, values)}}, loss first.

    Validation may run every k epochs (`validation_freq`), so its values are placed on
    epochs k, 2k, ... when its list is shorter than the training one.
    """
    epochs = [int(e) for e in history.get("epoch") or []]
    grouped: dict[str, dict[str, Series]] = {}
    for key, values in history.items():
        if key == "epoch" or not isinstance(values, list) or not values:
            continue
        name = key.removeprefix("val_")
        part = "validation" if key.startswith("val_") else "train"
        values = [float(v) for v in values]
        x = epochs if len(epochs) == len(values) else _spread(len(values), epochs)
        grouped.setdefault(name, {})[part] = (x, values)
    order = sorted(grouped, key=lambda n: (n != "loss", n == "learning_rate", n))
    return {name: grouped[name] for name in order}


def _spread(count: int, epochs: list[int]) -> list[int]:
    step = max(1, round(len(epochs) / count)) if epochs else 1
    return [step * (i + 1) for i in range(count)]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _style_axes(axes: Any, name: str, values: list[float]) -> None:
    axes.set_title(name)
    axes.set_xlabel("epoch")
    axes.grid(True, alpha=0.3)
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if name == "learning_rate" and positive and max(positive) / min(positive) > 20:
        axes.set_yscale("log")
    axes.xaxis.get_major_locator().set_params(integer=True)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_run(history: dict[str, Any], out_dir: Path, monitors: dict[str, Any]) -> list[Path]:
    """One PNG per metric (train and validation lines) in `out_dir`; best epochs marked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, parts in panels(history).items():
        figure = _figure(6.4, 4.0)
        axes = figure.add_subplot()
        for part, (x, y) in parts.items():
            axes.plot(x, y, marker="o" if len(x) <= 30 else None, markersize=3, label=part)
        for monitor, best in monitors.items():
            if monitor.removeprefix("val_") == name and best.get("best_epoch"):
                axes.axvline(
                    best["best_epoch"],
                    color="gray",
                    linestyle=":",
                    linewidth=1,
                    label=f"best {monitor} (epoch {best['best_epoch']})",
                )
        _style_axes(axes, name, [v for _, y in parts.values() for v in y])
        axes.legend()
        path = out_dir / f"{name}.png"
        path.write_bytes(_png(figure))
        written.append(path)
    return written


def plot_overlay(histories: dict[str, dict[str, Any]], path: Path) -> Path:
    """One PNG with a panel per metric, overlaying every run (train solid, validation dashed)."""
    per_run = {label: panels(history) for label, history in histories.items()}
    names = list(dict.fromkeys(name for runs in per_run.values() for name in runs))
    if not names:
        raise ValueError("none of the runs has a history to plot")
    columns = min(2, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _figure(6.0 * columns, 3.8 * rows)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        values: list[float] = []
        for number, (label, runs) in enumerate(per_run.items()):
            for part, (x, y) in runs.get(name, {}).items():
                dashed = part == "validation"
                axes.plot(
                    x,
                    y,
                    color=f"C{number % 10}",
                    linestyle="--" if dashed else "-",
                    label=f"{label} ({'val' if dashed else 'train'})",
                )
                values += y
        _style_axes(axes, name, values)
        axes.legend(fontsize="small")
    path.write_bytes(_png(figure))
    return path
