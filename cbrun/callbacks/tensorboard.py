"""TensorBoard event files: scalars per epoch or batch, histograms, graph."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.fields import RunPath
from cbrun.registry import callbacks


class TensorBoardParams(FitOnlyParams):
    """Write TensorBoard event files: scalars, weight histograms, graph (keras TensorBoard)."""

    def batch_hooks(self) -> bool:
        return self.update_freq != "epoch" or bool(self.profile_batch)

    type: Literal["tensorboard"]
    log_dir: RunPath = Field("tensorboard", description="Folder inside the run directory.")
    histogram_freq: NonNegativeInt = Field(0, description="Weight histograms every N epochs.")
    update_freq: Literal["epoch", "batch"] | PositiveInt = Field(
        "epoch", description="Write scalars each `epoch`, each `batch`, or every N batches."
    )
    write_graph: bool = True
    write_images: bool = False
    write_steps_per_second: bool = False
    profile_batch: NonNegativeInt = Field(0, description="Profile this batch (0: off).")
    embeddings_freq: NonNegativeInt = 0

    def output_paths(self) -> list[str]:
        return [self.log_dir.rstrip("/") + "/"]


@callbacks.register("tensorboard", TensorBoardParams)
def tensorboard(params: TensorBoardParams, ctx: BuildContext) -> Any:
    import keras

    class TensorBoard(keras.callbacks.TensorBoard):
        """Logs the learning rate the epoch used (cbrun puts it in the logs first), not the
        optimizer's rate at epoch end, which reduce_lr_on_plateau may already have lowered."""

        def _collect_learning_rate(self, logs: dict) -> dict:
            return logs if "learning_rate" in logs else super()._collect_learning_rate(logs)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            # With update_freq "epoch" Keras sets no batch writer, so its per-batch `batch_*`
            # scalars are written nowhere, yet cost ~0.3 ms of Python a batch: skip them.
            super().on_train_batch_end(batch, None if self.update_freq == "epoch" else logs)

    return TensorBoard(log_dir=ctx.path(params.log_dir), **params.keras_args("log_dir"))
