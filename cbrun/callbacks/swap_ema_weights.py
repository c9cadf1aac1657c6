"""Evaluate and save with the exponential moving average of the weights."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.registry import callbacks


class SwapEMAWeightsParams(FitOnlyParams):
    """Swap in the optimizer's EMA weights for evaluation (keras SwapEMAWeights).

    Needs `compile.optimizer.use_ema: true`. With `swap_on_epoch: true` the EMA weights are
    in the model at each epoch's end too, so checkpoints written then hold them; list this
    callback before `model_checkpoint` for that.
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["swap_ema_weights"]
    swap_on_epoch: bool = Field(
        False, description="Also swap at each epoch's end (for checkpoints of EMA weights)."
    )

    example_sections: ClassVar[dict[str, Any]] = {"compile": {"optimizer": {"use_ema": True}}}


@callbacks.register("swap_ema_weights", SwapEMAWeightsParams)
def swap_ema_weights(params: SwapEMAWeightsParams, ctx: BuildContext) -> Any:
    import keras

    return keras.callbacks.SwapEMAWeights(swap_on_epoch=params.swap_on_epoch)
