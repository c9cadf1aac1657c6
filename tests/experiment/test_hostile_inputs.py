"""No input crashes cbrun: any YAML document, file bytes or `--set` value gives exit 0 or 2.

Hypothesis generates the inputs and shrinks any counter-example; every bug it found is pinned
with `@example`. Validation is light (no TensorFlow), so each example runs in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import TINY, assert_clean, run_cbrun

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Key names cbrun knows, so generated documents reach deep into the schema, plus strangers.
KNOWN_KEYS = sorted(
    {
        "experiment",
        "name",
        "seed",
        "data",
        "type",
        "samples",
        "features",
        "classes",
        "split",
        "validation",
        "test",
        "model",
        "units",
        "dropout",
        "compile",
        "optimizer",
        "learning_rate",
        "training",
        "epochs",
        "batch_size",
        "callbacks",
        "patience",
        "monitor",
        "filepath",
        "output",
        "runs_dir",
        "distribution",
        "strategy",
        "sweep",
        "grid",
        "random",
        "schedule",
        "phases",
        "limit",
        "<<",
    }
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["early_stopping", "mlp", "digits", "adam", "1e-3", ".inf", "yes"])
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8) | st.integers(-3, 3)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def mutated(path: list[Any], value: Any) -> Any:
    """TINY with the value at `path` (as far as it reaches) replaced by `value`."""
    data: Any = yaml.safe_load(yaml.safe_dump(TINY))
    parent = data
    for part in path[:-1]:
        if isinstance(parent, dict) and part in parent and isinstance(parent[part], dict | list):
            parent = parent[part]
    if isinstance(parent, dict):
        parent[path[-1]] = value
    return data


TINY_PATHS = st.lists(st.sampled_from(KNOWN_KEYS), min_size=1, max_size=3)


@SETTINGS
@given(path=TINY_PATHS, value=values)
@example(path=["training", "epochs"], value=True)
@example(path=["compile", "optimizer", "learning_rate"], value=float("inf"))
@example(path=["experiment", "seed"], value=2**64)
@example(path=["experiment", "name"], value="a\x00b")
@example(path=["experiment", "name"], value="n" * 300)
def test_any_value_anywhere_in_a_valid_config_validates_or_exits_2(folder, path, value):
    config = folder / "mutated.yaml"
    try:
        text = yaml.safe_dump(mutated(path, value), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return
    config.write_text(text, encoding="utf-8")
    assert_clean(*run_cbrun("validate", str(config)))


@SETTINGS
@given(document=values)
def test_any_yaml_document_validates_or_exits_2(folder, document):
    config = folder / "document.yaml"
    config.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert_clean(*run_cbrun("validate", str(config)))


@SETTINGS
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(raw=b"experiment:\n  name: \xff\xfe\n")
@example(raw=b"? [a, b]\n: 1\n")
@example(raw=b"a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n")
@example(raw=b"[" * 5000)
@example(raw=b"{a: [1, 'unclosed\n")
def test_any_file_bytes_validate_or_exit_2(folder, raw):
    config = folder / "bytes.yaml"
    config.write_bytes(raw)
    assert_clean(*run_cbrun("validate", str(config)))


@SETTINGS
@given(key=st.text(max_size=20), value=st.text(max_size=20))
@example(key="callbacks[0].patience", value="3")
@example(key="training..epochs", value="1")
@example(key="training.epochs.x", value="1")
@example(key="callbacks.99", value="{}")
@example(key="²", value="")  # str.isdigit, but not a number int() reads
def test_any_set_override_validates_or_exits_2(folder, key, value):
    config = folder / "base.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump(TINY, sort_keys=False))
    assert_clean(*run_cbrun("validate", str(config), "--set", f"{key}={value}"))


def test_billion_laughs_is_refused_quickly(folder):
    """Aliases that would expand to 10^9 nodes are refused, with the limit named."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    config = folder / "laughs.yaml"
    config.write_text("\n".join(lines) + "\n")
    code, stderr = run_cbrun("validate", str(config))
    assert code == 2 and "alias" in stderr, stderr


def test_deep_nesting_is_refused_with_the_limit(folder):
    config = folder / "deep.yaml"
    config.write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    code, stderr = run_cbrun("validate", str(config))
    assert code == 2 and "nest" in stderr, stderr


# Paths a file system refuses: a NUL, a name over 255 bytes, a path over 4095 bytes.
hostile_paths = st.builds(
    lambda head, bad, tail: f"{head}{bad}{tail}",
    st.text(alphabet="ab/_.", max_size=6),
    st.sampled_from(["\x00", "n" * 256, "é" * 128, "d/" * 2100]),
    st.text(alphabet="ab/_.", max_size=6),
)
CSV = {"type": "csv", "target": "t", **dict.fromkeys(("samples", "features", "classes"))}
PATH_FIELDS = [
    ({"data": CSV}, ("data", "path")),
    ({"output": {"runs_dir": "runs"}}, ("output", "runs_dir")),
    ({"callbacks": [{"type": "csv_logger"}]}, ("callbacks", 0, "filename")),
    ({"callbacks": [{"type": "model_checkpoint"}]}, ("callbacks", 0, "filepath")),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(PATH_FIELDS), path=hostile_paths)
def test_a_path_no_file_system_takes_is_exit_2_naming_its_key(folder, field, path):
    from conftest import merge

    updates, key = field
    data = merge(TINY, updates)
    parent = data
    for part in key[:-1]:
        parent = parent[part]
    parent[key[-1]] = path
    config = folder / "paths.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    for command in ("validate", "train"):
        code, stderr = run_cbrun(command, str(config))
        assert code == 2 and "Traceback" not in stderr, stderr
        shown = ".".join(map(str, key)).replace(".0.", "[0].")
        assert shown in stderr and "the path" in stderr, stderr


@pytest.mark.parametrize("command", ["eval", "predict", "show", "runs", "rm", "train"])
def test_a_run_directory_name_too_long_for_the_file_system_is_exit_2(command):
    name = "r" * 300
    args = {"predict": [name, "x.csv"], "train": [f"{name}.yaml"]}.get(command, [name])
    code, stderr = run_cbrun(command, *args)
    assert code == 2, stderr
    assert stderr.startswith("error: ") and "Traceback" not in stderr, stderr


# What the list in issue 12 names, each with the answer README promises: (file bytes, text
# on stderr, or None for "valid"). TINY's sections follow each document.
BODY = yaml.safe_dump({k: v for k, v in TINY.items() if k != "training"}, sort_keys=False)
PROMISED = {
    "non_utf8_byte_names_line_and_column": (
        b'experiment:\n  name: ok\n  description: "caf\xe9"\n',
        ":3:20: byte 0xe9 is not UTF-8; save the file as UTF-8",
    ),
    "complex_key": (b"? [a, b]\n: 1\n", ":1:3: invalid YAML: a key must be a plain value"),
    "merge_key_is_supported": (
        ("training:\n  <<: {epochs: 3, batch_size: 8}\n  epochs: 4\n" + BODY).encode(),
        None,
    ),
    "file_over_the_size_limit": (
        b"# x\n" * 2_600_000,
        "experiment files are limited to 10,000,000",
    ),
}


@pytest.mark.parametrize("case", list(PROMISED))
def test_inputs_the_issue_names_get_the_promised_answer(folder, case):
    raw, expected = PROMISED[case]
    config = folder / f"{case}.yaml"
    config.write_bytes(raw)
    code, stderr = run_cbrun("validate", str(config))
    if expected is None:
        from cbrun.experiment.config import load_config

        assert code == 0, stderr
        training = load_config(config)[0].training  # merged, then the key beside it wins
        assert (training.batch_size, training.epochs) == (8, 4)
    else:
        assert code == 2 and expected in stderr and f"{config}" in stderr, stderr


# Arrays of any shape and values in an npz file: validate reads them as train does.
npz_arrays = st.fixed_dictionaries(
    {
        "rows": st.integers(0, 12),
        "x_shape": st.sampled_from([(), (3,), (0,), (2, 2)]),
        "y_shape": st.sampled_from([(), (1,), (3,)]),
        "values": st.sampled_from(["classes", "one_class", "floats", "negative", "ids"]),
        "gap": st.sampled_from([None, float("nan"), float("inf"), 1e39]),
        "scalar_y": st.booleans(),
        "task": st.sampled_from(["classification", "regression"]),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=npz_arrays)
@example(case={"rows": 12, "x_shape": (), "y_shape": (), "values": "classes", "gap": None,
               "scalar_y": False, "task": "classification"})  # fmt: skip
@example(case={"rows": 12, "x_shape": (3,), "y_shape": (3,), "values": "classes", "gap": None,
               "scalar_y": False, "task": "classification"})  # fmt: skip
@example(case={"rows": 12, "x_shape": (3,), "y_shape": (1,), "values": "classes",
               "gap": float("nan"), "scalar_y": False, "task": "regression"})  # fmt: skip
def test_any_npz_arrays_validate_or_exit_2(folder, case):
    """1-D or one-hot arrays, gaps, one class, ids for classes, a scalar: exit 0 or 2 (400
    examples passed locally; 40 kept)."""
    import numpy as np

    rows = case["rows"]
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, *case["x_shape"]))
    y = {
        "classes": np.arange(rows) % 3,
        "one_class": np.zeros(rows, dtype=int),
        "floats": rng.normal(size=rows),
        "negative": np.arange(rows) - 2,
        "ids": (np.arange(rows) % 2) * 10**9,
    }[case["values"]].astype(float)
    y = np.repeat(y[:, None], case["y_shape"][0], axis=1) if case["y_shape"] else y
    if case["gap"] is not None and rows:
        y.flat[0] = case["gap"]
    np.savez(folder / "arrays.npz", x=x, y=np.float64(1.0) if case["scalar_y"] else y)
    data = {"type": "npz", "path": "arrays.npz", "task": case["task"], "split": {"test": 0.0}}
    config = folder / "arrays.yaml"
    config.write_text(yaml.safe_dump({**TINY, "data": data}, sort_keys=False))
    code, stderr = run_cbrun("validate", str(config))
    assert_clean(code, stderr)
    if code == 2:
        assert "arrays.npz" in stderr or "data." in stderr, stderr
