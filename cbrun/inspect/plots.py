"""Learning-curve and evaluation PNGs with matplotlib's Agg renderer (no display, no pyplot)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.callbacks.visual import figure
from cbrun.core.console import counted

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
    return figure(width, height, dpi=100)


def _style_axes(axes: Any, name: str, values: list[float], title: str = "") -> None:
    """Title, grid, integer epochs; a log y axis for a positive curve spanning more than two
    decades (a learning rate from a factor of 20 on)."""
    axes.set_title(title or name)
    axes.set_xlabel("epoch")
    if name == "learning_rate":
        axes.set_ylabel("learning rate")
    axes.grid(True, alpha=0.3)
    finite = [v for v in values if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    if positive and len(positive) == len(finite):
        if max(positive) / min(positive) > (20 if name == "learning_rate" else 100):
            axes.set_yscale("log")
    axes.xaxis.get_major_locator().set_params(integer=True)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_run(
    history: dict[str, Any], out_dir: Path, monitors: dict[str, Any], run_name: str = ""
) -> list[Path]:
    """One PNG per metric (train and validation lines) in `out_dir`; best epochs marked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, parts in panels(history).items():
        path = out_dir / f"{name}.png"
        path.write_bytes(_png(curve_figure(name, parts, monitors, run_name)))
        written.append(path)
    return written


def curve_figure(
    name: str, parts: dict[str, Series], monitors: dict[str, Any], run_name: str = ""
) -> Any:
    """One metric's figure: its train and validation curves (the learning rate as the steps
    each epoch trained with), the best epoch of a monitor on it, the run's name in the title."""
    figure = _figure(6.4, 4.0)
    axes = figure.add_subplot()
    for part, (x, y) in parts.items():
        marker = "o" if len(x) <= 30 else None
        if name == "learning_rate":  # epoch e (the interval e-1..e) trained with y[e]
            axes.step(x, y, where="pre", marker=marker, markersize=3, label=part)
        else:
            axes.plot(x, y, marker=marker, markersize=3, label=part)
    for monitor, best in monitors.items():
        if monitor.removeprefix("val_") == name and best.get("best_epoch"):
            axes.axvline(
                best["best_epoch"],
                color="gray",
                linestyle=":",
                linewidth=1,
                label=f"best {monitor} (epoch {best['best_epoch']})",
            )
    title = f"{run_name}: {name}" if run_name else name
    _style_axes(axes, name, [v for _, y in parts.values() for v in y], title)
    axes.legend()
    return figure


def plot_overlay(histories: dict[str, dict[str, Any]], path: Path) -> Path:
    """One PNG with a panel per metric, overlaying every run (train solid, validation dashed)."""
    path.write_bytes(_png(overlay_figure(histories)))
    return path


def overlay_figure(histories: dict[str, dict[str, Any]]) -> Any:
    """A panel per metric overlaying every run, labelled as `histories` names them (the
    learning rate as the steps each epoch trained with)."""
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
                draw = axes.step if name == "learning_rate" else axes.plot
                extra = {"where": "pre"} if name == "learning_rate" else {}
                draw(
                    x,
                    y,
                    color=f"C{number % 10}",
                    linestyle="--" if dashed else "-",
                    label=f"{label} ({'val' if dashed else 'train'})",
                    **extra,
                )
                values += y
        _style_axes(axes, name, values)
        axes.legend(fontsize="small")
    return figure


def plot_confusion_matrix(counts: list[list[int]], labels: list[str], path: Path) -> Path:
    """Counts and row-normalised (each true class sums to 1) side by side, names on the axes."""
    matrix = np.asarray(counts, dtype="float64")
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = len(labels)
    side = min(2.2 + 0.45 * size, 9.0)
    fig = _figure(2 * side + 0.8, side + 0.5)
    for index, (values, title, fmt) in enumerate(
        (
            (matrix, f"counts ({counted(int(matrix.sum()), 'sample')})", "{:.0f}"),
            (normalised, "row-normalised (recall on the diagonal)", "{:.2f}"),
        )
    ):
        axes = fig.add_subplot(1, 2, index + 1)
        image = axes.imshow(values, cmap="Greens", vmin=0, vmax=1 if index else None)
        fig.colorbar(image, ax=axes, shrink=0.8)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        ticks = range(size)
        font = 8 if size <= 15 else 6
        axes.set_xticks(ticks, labels, rotation=45 if size > 6 else 0, ha="right", fontsize=font)
        axes.set_yticks(ticks, labels, fontsize=font)
        if size <= 20:
            middle = values.max() / 2 if values.max() > 0 else 0.5
            for row in range(size):
                for column in range(size):
                    value = values[row, column]
                    axes.text(
                        column,
                        row,
                        fmt.format(value),
                        ha="center",
                        va="center",
                        fontsize=9 if size <= 10 else 6,
                        color="white" if value > middle else "black",
                    )
    path.write_bytes(_png(fig))
    return path


def plot_roc(roc: dict[str, Any], path: Path) -> Path:
    """The ROC curve of the positive class with its AUC; the diagonal is chance."""
    fig = _figure(4.8, 4.4)
    axes = fig.add_subplot()
    axes.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1, label="chance")
    axes.plot(roc["fpr"], roc["tpr"], label=f"AUC {roc['auc']:.3f}")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"ROC, positive class `{roc['positive_class']}`", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    path.write_bytes(_png(fig))
    return path


def plot_pr(pr: dict[str, Any], path: Path) -> Path:
    """Precision against recall with the average precision; the positive rate is chance."""
    fig = _figure(4.8, 4.4)
    axes = fig.add_subplot()
    axes.axhline(pr["positive_rate"], color="gray", linestyle=":", linewidth=1, label="chance")
    axes.step(
        pr["recall"], pr["precision"], where="post", label=f"AP {pr['average_precision']:.3f}"
    )
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_ylim(0, 1.02)
    axes.set_title(f"precision-recall, positive class `{pr['positive_class']}`", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left")
    path.write_bytes(_png(fig))
    return path


def plot_residuals(y: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    """Residuals (true - predicted) against the prediction, and their histogram."""
    true, guess = y.ravel(), predicted.ravel()
    residuals = true - guess
    fig = _figure(9.0, 3.8)
    scatter = fig.add_subplot(1, 2, 1)
    scatter.axhline(0, color="gray", linestyle=":", linewidth=1)
    scatter.scatter(guess, residuals, s=10, alpha=0.7)
    scatter.set_xlabel("predicted")
    scatter.set_ylabel("residual (true - predicted)")
    scatter.set_title(f"residuals of {counted(len(residuals), 'sample')}", fontsize=10)
    scatter.grid(True, alpha=0.3)
    histogram = fig.add_subplot(1, 2, 2)
    histogram.hist(residuals, bins=min(40, max(5, len(residuals) // 5)))
    histogram.axvline(0, color="gray", linestyle=":", linewidth=1)
    histogram.set_xlabel("residual")
    histogram.set_ylabel("samples")
    histogram.set_title("distribution", fontsize=10)
    path.write_bytes(_png(fig))
    return path
