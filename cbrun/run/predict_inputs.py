"""`cbrun predict`: read new inputs like the training data, predict, write a CSV.

Inputs are checked against the run's `data.json` (feature names, input shape) before any
model is loaded, so a wrong file fails fast with a message naming what is missing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cbrun.core.console import counted
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.run_dir import CONFIG_FILE, read_json
from cbrun.data.table import read_table, table_columns
from cbrun.data.table_images import decoded, image_columns, resolved

TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".jsonl", ".ndjson")


def read_inputs(run_dir: Path, paths: list[Path]) -> tuple[list[str] | None, Any]:
    """Names (None for table rows) and features of the inputs, prepared as in training: an
    array, or for a run trained on a table of raw columns a dict of columns.

    A source may read its own kind of input (image files and folders for image_directory);
    the others take one CSV or NPZ file of features.
    """
    params = _data_params(run_dir)
    own = params.prediction_inputs(paths)
    if own is not None:
        return own
    if len(paths) != 1:
        raise CbrunError(f"predict: expected one CSV or NPZ file, got {len(paths)} inputs")
    return None, _read_table(run_dir, paths[0], params)


def _read_table(run_dir: Path, path: Path, params: Any) -> Any:
    """Features from a table or NPZ file, shaped and prepared as the run's training data."""
    data = read_json(run_dir / "data.json")
    shape = tuple(data["input_shape"])
    if not path.is_file():
        raise CbrunError(f"{path}: no such file")
    if data.get("columns"):
        frame = _read_frame(path, list(data["columns"]))
        impute = getattr(params, "missing", "error") == "impute"
        x = table_columns(frame, data["columns"], impute, path, str(path))
        images = image_columns(data["columns"])  # paths relative to this file: decoded
        return decoded(params, images, resolved(x, images, path)) if images else x
    if path.suffix.lower() == ".npz":
        x = _read_npz(path, getattr(params, "x", "x"))
    elif path.suffix.lower() in TABLE_SUFFIXES:
        x = _read_csv(path, data.get("feature_names"), math.prod(shape))
    else:
        raise CbrunError(
            f"{path}: expected a table ({', '.join(TABLE_SUFFIXES)}) or .npz file, got "
            f"`{path.suffix or path.name}`"
        )
    if x.shape[1:] != shape:
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(shape):
            raise CbrunError(
                f"{path}: inputs have shape {_shape(x.shape)}, but the model takes "
                f"{_shape((len(x), *shape))}"
            )
        x = x.reshape((len(x), *shape))
    if not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))
        raise CbrunError(
            f"{path}: missing or non-finite values in rows {', '.join(map(str, rows[:5] + 1))}"
        )
    return params.prepare_features(x).astype("float32")


def _data_params(run_dir: Path) -> Any:
    from cbrun import registry

    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        data = config["data"]
        return registry.datasets.get(data["type"]).params.model_validate(data)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise CbrunError(
            f"{run_dir / CONFIG_FILE}: cannot read the run's data section: {error}"
        ) from None


def _read_frame(path: Path, feature_names: list[str] | None) -> Any:
    """The table at `path`, with every one of `feature_names` (None: no names known)."""
    frame = read_table(path, "predict")
    columns = list(frame.columns)
    missing = [name for name in feature_names or [] if name not in columns]
    if missing:
        hint = did_you_mean(missing[0], columns)
        raise CbrunError(
            f"{path}: missing feature column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'`{m}`' for m in missing)}.{hint} The model was trained on: "
            f"{', '.join(feature_names or [])}"
        )
    return frame


def _read_csv(path: Path, feature_names: list[str] | None, width: int) -> np.ndarray:
    import pandas as pd

    frame = _read_frame(path, feature_names)
    columns = list(frame.columns)
    if feature_names:
        frame = frame[feature_names]
    elif len(columns) != width:
        raise CbrunError(
            f"{path}: {counted(len(columns), 'column')}, but the model takes "
            f"{counted(width, 'feature')} "
            "(the training data had no column names, so every column is a feature)"
        )
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise CbrunError(f"{path}: feature columns must be numeric; not numeric: {', '.join(bad)}")
    return frame.to_numpy(dtype="float64")


def _read_npz(path: Path, name: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if name not in names and len(names) == 1:
                name = names[0]
            if name not in names:
                raise CbrunError(
                    f"{path}: no array `{name}`.{did_you_mean(name, names)} "
                    f"Arrays: {', '.join(names)}"
                )
            x = archive[name]
    except (OSError, ValueError) as error:
        raise CbrunError(f"{path}: cannot read as .npz: {error}") from None
    if not np.issubdtype(x.dtype, np.number):
        raise CbrunError(f"{path}: array `{name}` must be numeric, got {x.dtype}")
    return x.astype("float64")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def prediction_table(run_dir: Path, outputs: np.ndarray, names: list[str] | None = None) -> Any:
    """Model outputs as a DataFrame: class probabilities and the predicted label, or values;
    first a `file` column when the inputs were files."""
    table = _outputs_table(run_dir, outputs)
    if names is not None:
        table.insert(0, "file", names)
    return table


def _outputs_table(run_dir: Path, outputs: np.ndarray) -> Any:
    import pandas as pd

    data = read_json(run_dir / "data.json")
    outputs = np.asarray(outputs).reshape(len(outputs), -1)
    if data["task"] != "classification":
        names = (
            ["prediction"]
            if outputs.shape[1] == 1
            else [f"prediction_{i}" for i in range(outputs.shape[1])]
        )
        return pd.DataFrame(outputs, columns=names)
    if outputs.shape[1] == 1:  # one sigmoid unit: the probability of the second class
        outputs = np.hstack([1 - outputs, outputs])
    classes = data.get("class_names") or [str(i) for i in range(outputs.shape[1])]
    table = pd.DataFrame(outputs, columns=[f"prob_{c}" for c in classes])
    table["predicted"] = [classes[i] for i in outputs.argmax(axis=1)]
    return table


def predict_file(
    run_dir: Path,
    input_paths: Path | list[Path],
    output: Path | None,
    checkpoint: str = "last",
    unsafe: bool = False,
    allow_imports: bool = False,
) -> str | None:
    """Predict for every row (or image) of the inputs; write the CSV to `output`, or return
    its text."""
    if not (run_dir / "data.json").is_file():
        raise CbrunError(f"{run_dir}: not a finished run directory (no data.json)")
    if output is not None and output.exists():
        raise CbrunError(f"--output {output}: already exists (cbrun never overwrites a file)")
    paths = [input_paths] if isinstance(input_paths, Path) else list(input_paths)
    names, x = read_inputs(run_dir, paths)
    from cbrun.run.predict import predict_run  # TensorFlow: only once the input is known good

    outputs = predict_run(
        run_dir, x, checkpoint, unsafe=unsafe, allow_imports=allow_imports, input_names=names
    )
    table = prediction_table(run_dir, outputs, names)
    text = table.to_csv(index=False, float_format="%.6g")
    if output is None:
        return text
    try:
        with open(output, "x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise CbrunError(f"--output {output}: cannot write: {error}") from None
    return None
