"""Write each epoch's metrics as a CSV row."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.fields import RunPath
from cbrun.registry import callbacks


class CsvLoggerParams(FitOnlyParams):
    """Write each epoch's metrics as a CSV row (keras CSVLogger)."""

    def batch_hooks(self) -> bool:
        return False

    type: Literal["csv_logger"]
    filename: RunPath = Field("log.csv", description="CSV file inside the run directory.")
    separator: str = Field(",", min_length=1, max_length=1)
    append: bool = Field(False, description="Append to an existing file instead of replacing.")

    def output_paths(self) -> list[str]:
        return [self.filename]


@callbacks.register("csv_logger", CsvLoggerParams)
def csv_logger(params: CsvLoggerParams, ctx: BuildContext) -> Any:
    import keras

    path = Path(ctx.path(params.filename))
    path.parent.mkdir(parents=True, exist_ok=True)  # Keras does not create the folder
    return keras.callbacks.CSVLogger(str(path), separator=params.separator, append=params.append)
