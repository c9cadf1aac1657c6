"""Global gradient norm and weight norm per epoch, into the history and TensorBoard."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.fields import RunPath
from cbrun.data.base import Split, pick, split_size, take
from cbrun.registry import callbacks


class GradientNormLoggerParams(FitOnlyParams):
    """Log the global gradient norm and weight norm each epoch (history and TensorBoard).

    At each epoch end the loss of one fixed training batch is differentiated with
    tf.GradientTape in inference mode (dropout off, batch norm on its moving statistics), so
    it costs one extra forward and backward pass per epoch and changes no state. Adds
    `grad_norm` and `weight_norm` to the epoch's logs; put it before `csv_logger` and
    `tensorboard` in the list for them to see these keys. Clipping belongs on the optimizer
    (`compile.optimizer.args: {global_clipnorm: 1.0}`); this shows the norms before clipping.
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["gradient_norm_logger"]
    batch_size: PositiveInt | None = Field(
        None, description="Samples in the fixed batch; default: training.batch_size."
    )
    log_dir: RunPath = Field(
        "gradient_norms", description="TensorBoard event folder in the run directory."
    )
    per_variable: bool = Field(
        False, description="Also write each variable's gradient and weight norm to TensorBoard."
    )

    def output_paths(self) -> list[str]:
        return [self.log_dir.rstrip("/") + "/"]

    def logged_metrics(self) -> list[str]:
        return ["grad_norm", "weight_norm"]


def fixed_batch(data: Split, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`size` training samples chosen once by `seed`, in their original order."""
    return take(data, pick(split_size(data), size, seed))


@callbacks.register("gradient_norm_logger", GradientNormLoggerParams)
def gradient_norm_logger(params: GradientNormLoggerParams, ctx: BuildContext) -> Any:
    import keras
    import tensorflow as tf

    x_batch, y_batch = fixed_batch(
        ctx.dataset.train,
        params.batch_size or ctx.config.training.batch_size,
        ctx.config.experiment.seed,
    )
    log_dir = ctx.path(params.log_dir)

    class GradientNormLogger(keras.callbacks.Callback):
        """One GradientTape pass on the fixed batch at each epoch end."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._writer = tf.summary.create_file_writer(log_dir)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            weights = self.model.trainable_variables
            with tf.GradientTape() as tape:
                predicted = self.model(x_batch, training=False)
                loss = self.model.compute_loss(
                    x=x_batch, y=y_batch, y_pred=predicted, training=False
                )
            gradients = tape.gradient(loss, weights)
            pairs = [(w, g) for w, g in zip(weights, gradients, strict=True) if g is not None]
            grad_norm = float(tf.linalg.global_norm([g for _, g in pairs]))
            weight_norm = float(tf.linalg.global_norm([tf.convert_to_tensor(w) for w in weights]))
            if logs is not None:
                logs.update(grad_norm=grad_norm, weight_norm=weight_norm)
            with self._writer.as_default(step=epoch):
                tf.summary.scalar("grad_norm", grad_norm)
                tf.summary.scalar("weight_norm", weight_norm)
                if params.per_variable:
                    for weight, gradient in pairs:
                        tf.summary.scalar(f"grad_norm/{weight.path}", tf.norm(gradient))
                        tf.summary.scalar(f"weight_norm/{weight.path}", tf.norm(weight))
            self._writer.flush()

        def on_train_end(self, logs: dict | None = None) -> None:
            self._writer.close()

    return GradientNormLogger()
