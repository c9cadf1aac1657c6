"""Tables as they come: categorical, text and numeric columns, gaps, other file formats, a
standardised target, sample weights, and the preprocessing saved inside the model."""

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbrun import registry
from conftest import ROOT, TINY, assert_clean, merge, run_cbrun, run_python, train_tiny

sys.path.insert(0, str(ROOT / "configs" / "data"))
from write_loans import loans  # noqa: E402  (the bundled example's own generator)

LOANS = {"target": "repaid", "columns": {"note": "text"}, "missing": "impute"}
CSV = {"type": "csv", "samples": None, "features": None, "classes": None}  # merged over TINY


def load(params: dict, seed: int = 0):
    component = registry.datasets.get("csv")
    return component.factory(component.params.model_validate({"type": "csv", **params}), seed)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One run on 600 loans: numbers, two categorical columns, text, empty cells."""
    folder = tmp_path_factory.mktemp("mixed")
    loans(600, seed=1).to_csv(folder / "loans.csv", index=False)
    data = {**CSV, "path": str(folder / "loans.csv"), **LOANS}
    result = train_tiny(
        folder,
        {
            "data": {**data, "split": {"validation": 0.2, "test": 0.2}},
            "model": {"type": "mlp", "units": [32]},
            "training": {"epochs": 12, "batch_size": 32},
        },
    )
    return folder, result.run_dir


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """A regression run on a target in the thousands, standardised, with sample weights."""
    folder = tmp_path_factory.mktemp("scaled")
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    shop = rng.choice(["a", "b", "c"], 500)
    price = 1000 + 100 * x + np.select([shop == "a", shop == "b"], [50, -50], 0)
    frame = pd.DataFrame({"x": x, "shop": shop, "weight": rng.uniform(0.5, 1.5, 500)})
    frame["price"] = price + rng.normal(0, 5, 500)
    frame.to_csv(folder / "prices.csv", index=False)
    result = train_tiny(
        folder,
        {
            "data": {
                **CSV,
                "path": str(folder / "prices.csv"),
                "target": "price",
                "normalize_target": True,
                "sample_weight": "weight",
                "split": {"validation": 0.2, "test": 0.2},
            },
            "model": {"type": "mlp", "units": [32]},
            "compile": {"optimizer": {"name": "adam", "learning_rate": 0.01}},
            "training": {"epochs": 12, "batch_size": 32},
        },
    )
    return folder, result.run_dir


def test_a_mixed_table_trains_and_records_its_preprocessing(mixed):
    _, run_dir = mixed
    record = json.loads((run_dir / "run.json").read_text())
    assert record["test_metrics"]["accuracy"] >= 0.8
    data = json.loads((run_dir / "data.json").read_text())
    assert data["columns"] == {
        "income": "numeric",
        "debt": "numeric",
        "age": "numeric",
        "purpose": "categorical",
        "region": "categorical",
        "note": "text",
    }
    learned = data["preprocessing"]
    assert learned["purpose"]["vocabulary"] == 5
    assert learned["region"]["vocabulary"] == 5  # four regions and the missing token
    assert learned["income"]["imputed"] > 0 and learned["debt"]["imputed"] == 0


def test_predict_takes_raw_rows_with_unseen_categories_and_gaps(mixed, cli, tmp_path):
    _, run_dir = mixed
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "income,debt,age,purpose,region,note\n"
        "90,2,40,business,north,stable salaried savings permanent\n"
        "20,60,30,spaceship,,late gambling overdraft unemployed\n"
        ",10,50,car,mars,\n"
    )
    result = cli("predict", run_dir, rows)
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert table["predicted"].tolist()[:2] == ["yes", "no"]
    assert len(table) == 3 and table[["prob_no", "prob_yes"]].notna().all().all()


def test_saved_models_take_raw_dict_rows_in_a_fresh_process(mixed, scaled):
    """Plain keras.saving.load_model; cbrun's layers only for the model that imputes."""
    code = f"""
import keras, numpy as np
prices = keras.saving.load_model({str(scaled[1] / "model.keras")!r})
print(prices.predict({{"x": np.array([0.0, 1.0]), "shop": np.array(["c", "c"], dtype=object)}},
                     verbose=0).ravel().tolist())
import cbrun.models.layers
model = keras.saving.load_model({str(mixed[1] / "model.keras")!r})
rows = {{"income": np.array([90.0, np.nan]), "debt": np.array([2.0, 60.0]),
        "age": np.array([40.0, 30.0]),
        "purpose": np.array(["business", "spaceship"], dtype=object),
        "region": np.array(["north", "mars"], dtype=object),
        "note": np.array(["stable savings", "late gambling"], dtype=object)}}
print(model.predict(rows, verbose=0).argmax(axis=1).tolist())
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    prices, classes = result.stdout.strip().splitlines()[-2:]
    low, high = json.loads(prices)
    assert abs(low - 1000) < 40 and abs(high - 1100) < 40  # in the target's units
    assert json.loads(classes) == [1, 0]  # yes, no


def test_a_standardised_target_is_learned_and_reported_in_its_units(scaled):
    _, run_dir = scaled
    record = json.loads((run_dir / "run.json").read_text())
    assert record["test_metrics"]["mae"] < 25  # the target's std is about 110
    assert not record.get("warnings")  # the weighted test split is scored in full too
    data = json.loads((run_dir / "data.json").read_text())
    assert 950 < data["target_scale"]["mean"] < 1050 and 80 < data["target_scale"]["std"] < 140
    assert data["feature_names"] == ["x", "shop"]  # the weight column is not a feature


def test_tsv_parquet_and_jsonl_read_the_same_table(tmp_path):
    frame = loans(60, seed=2)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    datasets = [load({"path": str(tmp_path / f"t.{s}"), **LOANS}) for s in SUFFIXES]
    first = datasets[0]
    for other in datasets[1:]:
        assert other.columns == first.columns
        for name, column in first.train[0].items():
            np.testing.assert_array_equal(other.train[0][name], column)
        np.testing.assert_array_equal(other.train[1], first.train[1])


SUFFIXES = ("csv", "tsv", "parquet", "jsonl")


def test_impute_fills_gaps_and_error_names_them(tmp_path):
    frame = pd.DataFrame(
        {"a": [1.0, None, 3.0, 4.0], "c": ["x", "y", None, "x"], "y": [0, 1, 0, 1]}
    )
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    whole = {"validation": 0, "test": 0}
    data = load(
        {"path": str(tmp_path / "gaps.csv"), "target": "y", "missing": "impute", "split": whole}
    )
    assert data.record["preprocessing"]["a"]["imputed"] == 1
    assert "[missing]" in data.train[0]["c"].tolist()
    capped = load(
        {
            "path": str(tmp_path / "gaps.csv"),
            "target": "y",
            "missing": "impute",
            "split": whole,
            "max_categories": 2,
        }
    )
    assert capped.record["preprocessing"]["c"]["vocabulary"] == 2  # of x, y and [missing]
    with pytest.raises(Exception, match=r"`a` \(line 3\); `c` \(line 4\)"):
        load({"path": str(tmp_path / "gaps.csv"), "target": "y"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"columns": {"notes": "text"}}, "data.columns.notes: .* no column `notes`. Did you mean"),
        ({"target": "purpose", "features": ["debt"], "task": "classification"}, None),
        ({"missing": "error"}, r"data.path: missing cells in .*`region` \(lines? \d"),
        (
            {"columns": {"purpose": "numeric"}},
            r"`purpose` is numeric but holds text .* lines 2, 3, 4, 5, 6 and 35 more",
        ),
    ],
)
def test_bad_tables_exit_2_naming_the_column_and_leave_no_run(tmp_path, change, message):
    frame = loans(40, seed=3)
    if change.get("target") == "purpose":
        frame["purpose"] = "car"  # one class only
        message = "holds one class only"
    frame.to_csv(tmp_path / "loans.csv", index=False)
    data = {**CSV, "path": str(tmp_path / "loans.csv"), **LOANS, **change}
    config = merge(TINY, {"data": data, "output": {"runs_dir": str(tmp_path / "runs")}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code, stderr = run_cbrun("train", str(tmp_path / "c.yaml"), "--quiet")
    assert code == 2, stderr
    assert re.search(message, stderr), stderr
    assert not (tmp_path / "runs").exists()


KINDS = st.sampled_from(["numeric", "categorical", "text", "ignore", None])
CELLS = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["a", "b", "x y"]))


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    cells=st.lists(st.lists(CELLS, min_size=3, max_size=3), min_size=2, max_size=8),
    kinds=st.lists(KINDS, min_size=2, max_size=2),
    missing=st.sampled_from(["error", "impute"]),
    labels=st.lists(st.sampled_from(["p", "q", None]), min_size=8, max_size=8),
)
def test_any_small_table_trains_or_fails_cleanly(tmp_path_factory, cells, kinds, missing, labels):
    folder = tmp_path_factory.mktemp("any")
    frame = pd.DataFrame(cells, columns=["f0", "f1", "f2"])
    frame["label"] = labels[: len(frame)]
    frame.to_csv(folder / "t.csv", index=False)
    columns = {f"f{i}": kind for i, kind in enumerate(kinds) if kind}
    config = {
        "experiment": {"name": "any", "seed": 0},
        "data": {
            "type": "csv",
            "path": "t.csv",
            "target": "label",
            "columns": columns,
            "missing": missing,
            "split": {"validation": 0.0, "test": 0.0},
        },
        "model": {"type": "mlp", "units": [4]},
        "training": {"epochs": 1, "batch_size": 4},
        "output": {"runs_dir": str(folder / "runs")},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    assert_clean(*run_cbrun("train", str(folder / "c.yaml"), "--quiet"))
