"""Tabular data from CSV files: a target column and numeric feature columns."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.data.base import Arrays, Dataset, FileDataParams, make_file_dataset
from cbrun.registry import datasets

MAX_AUTO_CLASSES = 20


class CsvParams(FileDataParams):
    """A CSV file with a header row: one target column and numeric feature columns."""

    type: Literal["csv"]
    target: str = Field(description="Name of the target column.", examples=["label"])
    features: list[str] | None = Field(
        None, description="Feature columns; default: every column but the target."
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto",
        description="`auto`: classification for text/bool targets or integers with at most "
        f"{MAX_AUTO_CLASSES} distinct values, else regression.",
    )
    delimiter: str = Field(",", min_length=1, max_length=1)


@datasets.register("csv", CsvParams)
def csv(params: CsvParams, seed: int) -> Dataset:
    import pandas as pd

    def read_frame(path: str) -> pd.DataFrame:
        keys = ("path", "validation_path", "test_path")
        key = next(k for k in keys if getattr(params, k) == path)
        try:
            frame = pd.read_csv(path, sep=params.delimiter)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise CbrunError(f"data.{key}: cannot read {path} as CSV: {error}") from None
        if frame.empty:
            raise CbrunError(f"data.{key}: {path} has a header but no data rows")
        columns = list(frame.columns)
        wanted = [params.target, *(params.features or [])]
        for column in wanted:
            if column not in columns:
                raise CbrunError(
                    f"data.{'target' if column == params.target else 'features'}: {path} has "
                    f"no column `{column}`.{did_you_mean(column, columns)} "
                    f"Columns: {', '.join(map(str, columns))}"
                )
        return frame

    main = read_frame(params.path)
    features = params.features or [c for c in main.columns if c != params.target]
    task = params.task if params.task != "auto" else _infer_task(main[params.target])
    classes = (
        sorted(main[params.target].dropna().unique().tolist())
        if (task == "classification")
        else None
    )

    def read(path: str) -> Arrays:
        frame = main if path == params.path else read_frame(path)
        bad = [c for c in features if not _numeric(frame[c])]
        if bad:
            raise CbrunError(
                f"data.features: feature columns must be numeric; in {path}, not numeric: "
                f"{', '.join(map(str, bad))}"
            )
        x = frame[features].to_numpy(dtype="float32")
        target = frame[params.target]
        if classes is None:
            return x, target.to_numpy(dtype="float32")
        codes = pd.Categorical(target, categories=classes).codes  # -1: not a known class
        if (codes < 0).any():
            unknown = sorted({str(v) for v in target[codes < 0]})
            raise CbrunError(
                f"data.target: `{params.target}` in {path} has labels not seen in "
                f"{params.path}: {', '.join(unknown[:5])}"
            )
        return x, codes.astype("int32")

    return make_file_dataset(
        read,
        params,
        seed,
        task,
        source=params.path,
        num_classes=len(classes or []) or None,
        feature_names=[str(f) for f in features],
        class_names=[str(c) for c in classes] if classes else None,
    )


def _infer_task(column) -> Literal["classification", "regression"]:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "classification"
    if pd.api.types.is_integer_dtype(column) and column.nunique() <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
