"""`training.class_weight`: `balanced` raises the recall of a rare class on an imbalanced
set, the weights follow scikit-learn's formula and are in run.json, and a weight for a class
that does not exist, or for a regression, is exit 2 naming the key, with no run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_refused, train_tiny

RARE = 0.1  # the share of class `rare`


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same imbalanced, overlapping two-class data trained without and with `balanced`."""
    root = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < RARE).astype("int64")
    x = rng.normal(size=(1000, 2)) + 1.2 * y[:, None]
    np.savez(root / "imbalanced.npz", x=x, y=y)
    data = {
        "type": "npz",
        "path": "imbalanced.npz",
        "split": {"validation": 0.0, "test": 0.3},
        **dict.fromkeys(("samples", "features", "classes")),  # TINY's synthetic keys
    }
    common = {"data": data, "training": {"epochs": 4, "batch_size": 32}}
    plain = train_tiny(root, common, "plain.yaml")
    common["training"]["class_weight"] = "balanced"
    weighted = train_tiny(root, common, "weighted.yaml")
    return {"root": root, "plain": plain, "weighted": weighted}


def rare_recall(result) -> float:
    return json.loads((result.run_dir / "eval.json").read_text())["per_class"]["1"]["recall"]


def test_balanced_raises_the_recall_of_the_rare_class(runs):
    plain, weighted = rare_recall(runs["plain"]), rare_recall(runs["weighted"])
    assert plain <= 0.35 and weighted >= 0.6, (plain, weighted)


def test_balanced_weights_follow_the_formula_and_are_recorded(runs):
    assert runs["plain"].record["class_weight"] is None
    recorded = json.loads((runs["weighted"].run_dir / "run.json").read_text())["class_weight"]
    counts = np.bincount(np.load(runs["root"] / "imbalanced.npz")["y"])  # before the split
    train = runs["weighted"].record["data"]["samples"]["train"]
    assert recorded["mode"] == "balanced"
    rare = recorded["weights"]["1"]
    assert rare == pytest.approx(train / (2 * round(counts[1] * 0.7)), rel=0.05)
    assert recorded["weights"]["0"] < 1 < rare


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        (
            {"training": {"class_weight": {"dog": 2.0}}},
            "training.class_weight: `dog` is not a class. Classes: 0, 1, 2",
        ),
        (  # a digit, but not one int() reads
            {"training": {"class_weight": {"²": 2.0}}},
            "training.class_weight: `²` is not a class.",
        ),
        (
            {
                "data": {"type": "synthetic_regression", "samples": 50, "classes": None},
                "training": {"class_weight": "balanced"},
            },
            "training.class_weight: the data is a regression task",
        ),
    ],
)
def test_impossible_weights_are_refused(make_config, cli, runs_dir, updates, expected):
    assert_refused(cli, make_config(updates), runs_dir, expected)
