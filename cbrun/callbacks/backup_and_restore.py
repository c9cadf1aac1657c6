"""Back up the training state so that an interrupted fit resumes where it stopped."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.fields import RunPath
from cbrun.registry import callbacks


class BackupAndRestoreParams(FitOnlyParams):
    """Back up weights and epoch to resume an interrupted fit (keras BackupAndRestore).

    The folder holds `latest.weights.h5` and `training_metadata.json`; a fit started with the
    same folder resumes from them. It belongs to this callback alone.
    """

    def batch_hooks(self) -> bool:
        return self.save_freq != "epoch"

    type: Literal["backup_and_restore"]
    backup_dir: RunPath = Field("backup", description="Folder inside the run directory.")
    save_freq: Literal["epoch"] | PositiveInt = Field(
        "epoch", description="Back up each `epoch`, or every N batches."
    )
    double_checkpoint: bool = Field(
        False, description="Also keep the previous backup, in case the latest is corrupt."
    )
    delete_checkpoint: bool = Field(True, description="Delete the backup when training finishes.")

    def output_paths(self) -> list[str]:
        return [self.backup_dir.rstrip("/") + "/"]


@callbacks.register("backup_and_restore", BackupAndRestoreParams)
def backup_and_restore(params: BackupAndRestoreParams, ctx: BuildContext) -> Any:
    import keras

    return keras.callbacks.BackupAndRestore(
        ctx.path(params.backup_dir), **params.keras_args("backup_dir")
    )
