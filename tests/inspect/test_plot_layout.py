"""The end-of-run figures set their own margins (no constrained layout, which draws every
figure twice): whatever the class names, values and run names, no text falls off the figure."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from cbrun.inspect.plots import confusion_figure, curve_figure, panels  # noqa: E402

FIGURES = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzWMABC0123456789_- ", min_size=1, max_size=28
).filter(lambda name: name.strip() == name and name)


def text_outside(figure) -> list[str]:
    """What of `figure`, once drawn, reaches past its edges (1 pixel of slack): the texts
    among the artists that stick out, or their bounding box."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = figure.get_size_inches()
    slack = 1 / figure.dpi
    box = figure.get_tightbbox(renderer)  # inches: every drawn artist, ticks as drawn
    if box.x0 >= -slack and box.y0 >= -slack and box.x1 <= width + slack:
        if box.y1 <= height + slack:
            return []
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text()]
    inside = figure.bbox.padded(1)
    stray = [t.get_text() for t in texts if not inside.contains(*t.get_window_extent().p1)]
    return [f"drawn extent {box.bounds} of a {width} x {height} in figure; texts: {stray}"]


@FIGURES
@given(
    labels=st.lists(NAME, min_size=2, max_size=20, unique=True),
    scale=st.sampled_from([1, 10, 1000, 1_000_000]),
    data=st.data(),
)
def test_the_confusion_matrix_keeps_every_class_name_and_count_on_the_figure(labels, scale, data):
    size = len(labels)
    counts = data.draw(
        st.lists(
            st.lists(st.integers(0, scale), min_size=size, max_size=size),
            min_size=size,
            max_size=size,
        )
    )
    figure = confusion_figure(counts, labels)
    assert text_outside(figure) == []
    assert figure.get_layout_engine() is None  # drawn once, not measured by a second draw
    assert titles_clear_of_panels(figure) == []


def titles_clear_of_panels(figure) -> list[str]:
    """The titles that overlap a panel or colour bar (of either half of the figure), or each
    other; and colour bars not as tall as their square of cells."""
    renderer = figure.canvas.get_renderer()
    boxes = [axes.get_window_extent(renderer) for axes in figure.axes]
    titles = [
        (axes.title.get_text(), axes.title.get_window_extent(renderer)) for axes in figure.axes
    ]
    titles = [(text, box) for text, box in titles if text]
    found = [
        f"{text!r} overlaps a panel" for text, box in titles if any(box.overlaps(b) for b in boxes)
    ]
    if len(titles) == 2 and titles[0][1].overlaps(titles[1][1]):
        found.append("the two titles overlap")
    for cells, bar in zip(boxes[::2], boxes[1::2], strict=True):
        if abs(cells.height - bar.height) > 1 or abs(cells.width - cells.height) > 1:
            found.append(f"cells {cells.bounds} and colour bar {bar.bounds} differ in height")
    return found


VALUE = st.one_of(
    st.floats(-1e7, 1e7, allow_nan=False),
    st.floats(1e-9, 1e-2),
    st.just(math.nan),
)


@FIGURES
@given(
    name=st.sampled_from(["loss", "accuracy", "learning_rate", "mean_absolute_error"]),
    train=st.lists(VALUE, min_size=1, max_size=60),
    with_validation=st.booleans(),
    run_name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789/", max_size=80),
)
@example("learning_rate", [1e-2, 1e-3, 1e-4, 1e-5, 1e-6], False, "a-long-experiment-name/" * 3)
@example("loss", [-1234567.25, 7654321.5, math.nan], True, "")
def test_learning_curves_keep_their_ticks_labels_and_title_on_the_figure(
    name, train, with_validation, run_name
):
    history = {"epoch": list(range(1, len(train) + 1)), name: train}
    if with_validation and name != "learning_rate":
        history[f"val_{name}"] = [v * 1.1 for v in train]
    parts = panels(history)[name]
    monitors = {f"val_{name}": {"best_epoch": len(train)}} if with_validation else {}
    figure = curve_figure(name, parts, monitors, run_name)
    assert text_outside(figure) == []


def one_full_cell():
    """The confusion figure of 3 classes where only cell (row 0, column 2) is full, and its
    pixels (RGB, row 0 on top) once drawn."""
    import numpy as np

    figure = confusion_figure([[0, 0, 9], [0, 0, 0], [0, 0, 0]], ["a", "b", "c"])
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return figure, np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def test_each_confusion_cell_is_drawn_where_its_row_and_column_are_with_its_colour():
    """True classes run down from the top, predicted ones left to right, as in eval.json:
    only cell (row 0, column 2) is full, so only it is dark green in each panel."""
    import numpy as np

    figure, pixels = one_full_cell()
    height = pixels.shape[0]
    for axes in figure.axes[::2]:  # the two panels (each followed by its colour bar)
        for (row, column), dark in {(0, 2): True, (2, 0): False, (0, 0): False}.items():
            x, y = axes.transData.transform((column + 0.3, row + 0.3))  # clear of its text
            colour = pixels[int(height - y), int(x)]
            assert (np.abs(colour - (0, 68, 27)).max() < 30) == dark, (row, column, colour)


def test_each_confusion_cell_shows_its_value_in_the_middle_in_a_colour_that_contrasts():
    """White digits on the full (dark) cell, black ones on the empty cells, in both panels;
    the digits are where the cell's middle is, nothing of them near its corners."""
    figure, pixels = one_full_cell()
    height = pixels.shape[0]

    def region(axes, row, column, half):
        (x0, y0), (x1, y1) = axes.transData.transform(
            [(column - half, row + half), (column + half, row - half)]
        )
        return pixels[int(height - y1) : int(height - y0), int(x0) : int(x1)]

    for axes in figure.axes[::2]:
        middle, corner = region(axes, 0, 2, 0.25), region(axes, 0, 2, 0.45)[:4, :4]
        assert (middle.min(axis=-1) > 160).sum() > 10  # white strokes on dark green
        assert (corner.min(axis=-1) > 160).sum() == 0
        empty = region(axes, 2, 0, 0.25)
        assert (empty.max(axis=-1) < 100).sum() > 10  # black strokes on pale green
