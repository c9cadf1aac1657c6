"""Tables as they come: CSV, TSV, Parquet or JSON-lines files, columns of any kind.

A column is `numeric`, `categorical` (strings, booleans, or numbers declared so), `text`
(declared only) or `ignore`d. A table whose features are all numeric, with no gaps imputed,
becomes one float array, as it always did; any other table stays a dict of columns (name →
1-D array), and the model turns each column into numbers with Keras preprocessing layers
saved inside it (`cbrun.models.table_inputs`), so raw rows go straight to the saved model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cbrun.core.errors import CbrunError

ColumnKind = Literal["numeric", "categorical", "text", "image_path", "ignore"]
MISSING_TOKEN = "[missing]"  # what an empty categorical or text cell becomes under `impute`
SHOWN_ROWS = 5  # rows named in a message about bad cells


def read_table(path: str | Path, where: str, delimiter: str | None = None) -> Any:
    """The file at `path` as a DataFrame, read by its extension (`.csv`, `.tsv`, `.parquet`,
    `.jsonl`/`.ndjson`; anything else as CSV); `where` is the config key named in errors."""
    frame = _read(path, where, delimiter, None)
    if frame.empty:
        raise CbrunError(f"{where}: {path} has a header but no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def read_chunks(
    path: str | Path, where: str, delimiter: str | None, rows: int
) -> Iterator[tuple[int, Any]]:
    """The file at `path` as DataFrames of at most `rows` rows each, read as `read_table`
    reads it, with the position (from 0) of each chunk's first row; memory holds one chunk."""
    first = 0
    chunks = _read(path, where, delimiter, rows)
    while True:
        try:
            frame = next(chunks)
        except StopIteration:
            break
        except Exception as error:  # noqa: BLE001 - pandas and pyarrow raise their own kinds
            raise CbrunError(f"{where}: cannot read {path}: {error}") from None
        frame.columns = [str(c) for c in frame.columns]
        frame.index = range(first, first + len(frame))
        yield first, frame
        first += len(frame)
    if not first:
        raise CbrunError(f"{where}: {path} has a header but no data rows")


def _read(path: str | Path, where: str, delimiter: str | None, chunk_rows: int | None) -> Any:
    """A DataFrame (`chunk_rows` None) or an iterator of DataFrames of the file at `path`."""
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            return _read_parquet(path, where, chunk_rows)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows)
        sep = delimiter or ("\t" if suffix == ".tsv" else ",")
        read = pd.read_csv(path, sep=sep, chunksize=chunk_rows)
        return read if chunk_rows is None else iter(read)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CbrunError(f"{where}: cannot read {path}: {error}") from None
    except (ValueError, OSError) as error:  # bad JSON lines, a damaged Parquet file
        raise CbrunError(f"{where}: cannot read {path}: {error}") from None


def read_header(path: str | Path, delimiter: str | None = None) -> list[str] | None:
    """The column names of a table file, read cheaply (for `cbrun validate`); None when the
    file cannot be read so (reading it in full reports why)."""
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet

            return [str(c) for c in pyarrow.parquet.read_schema(path).names]
        if suffix in (".jsonl", ".ndjson"):
            with open(path, encoding="utf-8") as handle:
                first = json.loads(handle.readline())
            return [str(c) for c in first] if isinstance(first, dict) else None
        sep = delimiter or ("\t" if suffix == ".tsv" else ",")
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    except Exception:  # noqa: BLE001 - any unreadable header: the full read reports it
        return None


def _read_parquet(path: str | Path, where: str, chunk_rows: int | None) -> Any:
    import pandas as pd

    try:
        import pyarrow.parquet
    except ImportError:
        raise CbrunError(
            f"{where}: reading {path} needs pyarrow", hint='pip install "cbrun[parquet]"'
        ) from None
    if chunk_rows is None:
        return pd.read_parquet(path)
    batches = pyarrow.parquet.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    return (batch.to_pandas() for batch in batches)


def row_names(path: str | Path, rows: np.ndarray) -> str:
    """Positions of data rows as the user finds them in the file: the line of a CSV/TSV
    (the header is line 1), the line of a JSON-lines file, the row number of Parquet."""
    suffix = Path(path).suffix.lower()
    shown = [int(r) for r in rows[:SHOWN_ROWS]]
    more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
    plural = "s" if len(rows) > 1 else ""
    if suffix == ".parquet":
        return f"row{plural} " + ", ".join(str(r + 1) for r in shown) + more
    first = 1 if suffix in (".jsonl", ".ndjson") else 2
    return f"line{plural} " + ", ".join(str(r + first) for r in shown) + more


def guess_kind(column: Any) -> ColumnKind:
    """`numeric` for numbers, `categorical` for anything else (strings, booleans)."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return "numeric" if numeric else "categorical"


def table_columns(
    frame: Any,
    kinds: dict[str, ColumnKind],
    impute: bool,
    path: str | Path,
    where: str,
    first_row: int = 0,
) -> dict[str, np.ndarray]:
    """The feature columns of `frame` as arrays the model takes: float32 numbers (NaN for a
    gap, only under `impute`), strings for categorical and text columns; `first_row`: the
    position of the frame's first row in the file (a chunk of it), for the rows named.

    Raises:
        CbrunError: a numeric column holds text, or cells are missing and `impute` is off;
            the message names the column and the first rows.
    """
    import pandas as pd

    columns: dict[str, np.ndarray] = {}
    gaps: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        values = frame[name]
        missing = values.isna().to_numpy()
        if missing.any() and not impute:
            gaps[name] = np.flatnonzero(missing) + first_row
        if kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            bad = np.flatnonzero(numbers.isna().to_numpy() & ~missing)
            if len(bad):
                raise CbrunError(
                    f"{where}: column `{name}` is numeric but holds text in {path}: "
                    f"{row_names(path, bad + first_row)} (first value {values.iloc[bad[0]]!r})",
                    hint=f"declare it `data.columns.{name}: categorical` if it is a category",
                )
            with np.errstate(over="ignore"):  # 1e300 is a number, but no float32: inf
                as_float = numbers.to_numpy(dtype="float32")
            endless = np.flatnonzero(np.isinf(as_float))
            if len(endless):
                raise CbrunError(
                    f"{where}: column `{name}` holds infinite values in {path} (or numbers "
                    f"beyond float32's 3.4e38): {row_names(path, endless)} (first value "
                    f"{str(values.iloc[endless[0]])!r})"
                )
            columns[name] = as_float
        else:
            if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
                values = values.astype("Int64")  # a category 3 is "3", with or without gaps
            text = values.astype(str).to_numpy(dtype=object)
            text[missing] = MISSING_TOKEN
            columns[name] = text  # object strings: what Keras turns into tf.string
    if gaps:
        listed = "; ".join(f"`{n}` ({row_names(path, rows)})" for n, rows in gaps.items())
        raise CbrunError(
            f"{where}: missing cells in {path}: {listed}",
            hint="set `data.missing: impute` to fill them (numbers with the training mean and "
            "a was-missing indicator, categories with their own token)",
        )
    return columns
