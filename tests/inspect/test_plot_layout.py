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
