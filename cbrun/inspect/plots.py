"""Learning-curve and evaluation PNGs with matplotlib's Agg renderer (no display, no pyplot).

The figures `train` draws at the end of every run set their own margins, sized from the text
they hold (tick labels, class names), instead of matplotlib's constrained layout, which
draws each figure twice (once to measure it) and took half of their time.
"""

from __future__ import annotations

import functools
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


def _figure(width: float, height: float, layout: str | None = None) -> Any:
    return figure(width, height, dpi=100, layout=layout)


def text_inches(labels: Any, fontsize: float = 10, dpi: float = 100) -> float:
    """The width, in inches, of the widest of `labels` as matplotlib draws them (log-axis
    labels such as `$\\mathdefault{10^{-3}}$` measured as the mathtext they are)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.cbook import is_math_text
    from matplotlib.font_manager import FontProperties

    renderer, font = RendererAgg(1, 1, dpi), FontProperties(size=fontsize)
    widths = [
        renderer.get_text_width_height_descent(str(label), font, is_math_text(str(label)))[0]
        for label in labels
    ]
    return max(widths, default=0.0) / dpi


def _tick_labels(axis: Any, minor: bool = True) -> list[str]:
    """The labels the axis will draw at its current limits, major (then minor) ones, in
    increasing order (no drawing needed)."""
    low, high = sorted(axis.get_view_interval())
    kinds = [(axis.get_major_locator(), axis.get_major_formatter())]
    if minor:
        kinds.append((axis.get_minor_locator(), axis.get_minor_formatter()))
    labels: list[str] = []
    for locator, formatter in kinds:
        ticks = sorted(t for t in locator() if low <= t <= high)
        labels += formatter.format_ticks(ticks) if ticks else []
    return labels


def _fit_title(fig: Any, axes: Any) -> None:
    """Shrink a title (centred over the axes) wider than the figure allows, such as a long run
    name, until it fits."""
    title = axes.title
    width = fig.get_size_inches()[0]
    position = axes.get_position()
    centre = (position.x0 + position.x1) / 2 * width
    room = 2 * min(centre, width - centre) - 0.1
    title.set_fontsize(_fitted_size(title.get_text(), room, title.get_fontsize(), fig.dpi))


def _fitted_size(text: str, room: float, size: float = 10.0, dpi: float = 100) -> float:
    """The font size, from `size` down by 0.5 pt to 6 pt, at which `text` fits `room` inches."""
    while size > 6 and text_inches([text], size, dpi) > room:
        size -= 0.5
    return size


def _margins(
    fig: Any,
    *,
    left: float,
    bottom: float,
    top: float = 0.45,
    right: float = 0.2,
    gap: float = 0.0,
) -> None:
    """Place the figure's axes by margins in inches (`gap`: between side-by-side panels)."""
    width, height = fig.get_size_inches()
    panels = len(fig.axes)
    extra: dict[str, float] = {}
    if panels > 1:
        panel = (width - left - right - gap * (panels - 1)) / panels
        extra["wspace"] = gap / panel
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        **extra,
    )


def _single_axes_margins(fig: Any, axes: Any) -> None:
    """Margins for one axes with a title, an x label and an optional y label."""
    y_labels = text_inches(_tick_labels(axes.yaxis), dpi=fig.dpi)
    y_title = 0.3 if axes.get_ylabel() else 0.0
    last_x = _tick_labels(axes.xaxis, minor=False)[-1:]
    x_overhang = text_inches(last_x, dpi=fig.dpi) / 2  # its right half is past the axes
    _margins(fig, left=0.25 + y_labels + y_title, bottom=0.6, right=max(0.2, x_overhang + 0.1))
    _fit_title(fig, axes)


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
    _single_axes_margins(figure, axes)
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
    figure = _figure(6.0 * columns, 3.8 * rows, layout="constrained")  # `compare`: any runs
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
    """Write confusion_figure(counts, labels) to `path` as a PNG."""
    path.write_bytes(_png(confusion_figure(counts, labels)))
    return path


def confusion_figure(counts: list[list[int]], labels: list[str]) -> Any:
    """Counts and row-normalised (each true class sums to 1) side by side, names on the axes.

    Each panel is a square of cells with a colour bar as tall as it; the figure is sized
    around them (in inches, from the text they hold), so nothing overlaps and no band of
    the figure is empty."""
    matrix = np.asarray(counts, dtype="float64")
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = len(labels)
    side = min(1.0 + 0.45 * size, 7.8)  # the square of cells
    font = 8 if size <= 15 else 6
    names = text_inches(labels, font)
    rotated = size > 6 or names > 0.9 * side / size  # wider than a column
    below = 0.45 + (names * math.sqrt(0.5) if rotated else 0) + font / 72  # 45°: length·sin 45°
    y_side = 0.3 + names + 0.15  # axis title, class names, ticks
    panels = (
        (matrix, f"counts ({counted(int(matrix.sum()), 'sample')})", "{:.0f}", None),
        (normalised, "row-normalised (recall on the diagonal)", "{:.2f}", 1.0),
    )
    scales = [_scale_labels(values.max(), top) for values, _, _, top in panels]
    bar = 0.15 + 0.12 + 0.08  # gap, the bar, its ticks
    widths = [y_side + side + bar + text_inches(scale) + 0.25 for scale in scales]
    width, height = sum(widths), below + side + 0.45
    fig = _figure(width, height)
    x0 = 0.0
    for (values, title, fmt, top), panel in zip(panels, widths, strict=True):
        top = top or max(float(values.max()), 1.0)  # all zeros: the scale is still 0..1
        axes = fig.add_axes(
            (
                (x0 + y_side) / width,
                below / height,
                side / width,
                side / height,
            )
        )
        cells = _cells(axes, values, vmax=top)
        scale = fig.add_axes(
            ((x0 + y_side + side + 0.15) / width, below / height, 0.12 / width, side / height)
        )
        fig.colorbar(cells, cax=scale)
        room = 2 * min(y_side + side / 2, panel - y_side - side / 2) - 0.1
        axes.set_title(title, fontsize=_fitted_size(title, room))
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        ticks = range(size)
        axes.set_xticks(
            ticks,
            labels,
            rotation=45 if rotated else 0,
            ha="right" if rotated else "center",
            fontsize=font,
        )
        axes.set_yticks(ticks, labels, fontsize=font)
        if size <= 20:
            _cell_labels(axes, values, fmt, fontsize=9 if size <= 10 else 6, middle=top / 2)
        x0 += panel
    return fig


def _scale_labels(maximum: float, top: float | None) -> list[str]:
    """The tick labels a colour bar from 0 to `top` (or the counts' maximum) will show."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    top = top or max(float(maximum), 1.0)
    ticks = [t for t in MaxNLocator().tick_values(0, top) if 0 <= t <= top]
    formatter = ScalarFormatter()
    formatter.create_dummy_axis()
    formatter.axis.set_view_interval(0, top)
    return formatter.format_ticks(ticks)


def _cells(axes: Any, values: np.ndarray, vmax: float) -> Any:
    """One green square per cell, row 0 on top, as `imshow` would draw them. A mesh, not an
    image: Agg resamples an image to the screen in float, which for a 10-class matrix briefly
    took 10-17 MB more at the end of a run whose peak memory counts."""
    rows, columns = values.shape
    cells = axes.pcolormesh(
        np.arange(columns + 1) - 0.5,
        np.arange(rows + 1) - 0.5,
        values,
        cmap="Greens",
        vmin=0,
        vmax=vmax,
    )
    axes.set_xlim(-0.5, columns - 0.5)
    axes.set_ylim(rows - 0.5, -0.5)
    return cells


def _cell_labels(axes: Any, values: np.ndarray, fmt: str, fontsize: float, middle: float) -> None:
    """Each cell's value centred in it, white on cells darker than the colour scale's
    `middle`. One collection of the values' outlines, not a text per cell: 200 texts were
    0.09 s of the 0.23 s a 10-class matrix took to draw; this draws the same glyphs."""
    from matplotlib.collections import PathCollection
    from matplotlib.transforms import Affine2D

    rows, columns = values.shape
    cells = [(row, column) for row in range(rows) for column in range(columns)]
    labels = PathCollection(
        [_centred_outline(fmt.format(values[cell]), fontsize) for cell in cells],
        offsets=[(column, row) for row, column in cells],
        offset_transform=axes.transData,
        transform=Affine2D().scale(1 / 72) + axes.figure.dpi_scale_trans,  # points
        facecolors=["white" if values[cell] > middle else "black" for cell in cells],
        edgecolors="none",
    )
    axes.add_collection(labels, autolim=False)


@functools.lru_cache(maxsize=2048)
def _centred_outline(text: str, fontsize: float) -> Any:
    """`text` as a path in points, in the default font, centred on (0, 0)."""
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    path = TextPath((0, 0), text, size=fontsize)
    box = path.get_extents()
    return path.transformed(Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2))


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
    _single_axes_margins(fig, axes)
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
    _single_axes_margins(fig, axes)
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
    left = 0.55 + text_inches(_tick_labels(scatter.yaxis), dpi=fig.dpi)
    gap = 0.55 + text_inches(_tick_labels(histogram.yaxis), dpi=fig.dpi)
    _margins(fig, left=left, bottom=0.6, top=0.4, gap=gap)
    path.write_bytes(_png(fig))
    return path
