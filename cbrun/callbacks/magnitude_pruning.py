"""Prune the smallest weights of chosen layers to a target sparsity on a polynomial schedule."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.errors import CbrunError
from cbrun.core.fields import RunPath
from cbrun.core.run_dir import write_json_atomic
from cbrun.registry import callbacks


class MagnitudePruningParams(FitOnlyParams):
    """Zero the smallest-magnitude kernel weights up to a target sparsity, and keep them zero.

    Sparsity follows TF-MOT's polynomial decay: `target + (initial - target) * (1 - p)**power`
    with `p` the fraction of the way from the begin to the end step; masks are recomputed every
    `frequency` steps (and at the end step) and enforced after every optimizer step. Give the
    ramp in steps (`begin_step`/`end_step`) or in epochs (`begin_epoch`/`end_epoch`). The final
    sparsity of each layer, measured on its weights, goes to `report` (JSON) and `sparsity`
    is logged each epoch.
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"target_sparsity": 0.8, "end_epoch": 10}]}
    )

    type: Literal["magnitude_pruning"]
    target_sparsity: float = Field(
        gt=0, lt=1, description="Fraction of weights zeroed at the end.", examples=[0.8]
    )
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="Sparsity at the begin step.")
    layers: list[str] = Field(
        default_factory=list,
        description="Layer name patterns (`dense_*`); default: every Dense and Conv layer.",
    )
    begin_step: NonNegativeInt | None = Field(None, description="First pruning step (batch).")
    end_step: PositiveInt | None = Field(None, description="Step the target is reached.")
    begin_epoch: NonNegativeInt | None = Field(None, description="First pruning epoch (0-based).")
    end_epoch: PositiveInt | None = Field(None, description="Epoch the target is reached.")
    frequency: PositiveInt = Field(10, description="Recompute the masks every N steps.")
    power: float = Field(3.0, gt=0, description="Exponent of the polynomial schedule.")
    report: RunPath = Field("pruning.json", description="Per-layer final sparsity (JSON).")

    @model_validator(mode="after")
    def _one_ramp(self) -> MagnitudePruningParams:
        steps = (self.begin_step, self.end_step)
        epochs = (self.begin_epoch, self.end_epoch)
        if any(v is not None for v in steps) and any(v is not None for v in epochs):
            raise ValueError("give the ramp in steps or in epochs, not both")
        begin, end = steps if self.end_step is not None else epochs
        if end is None:
            raise ValueError("set end_step or end_epoch (when the target sparsity is reached)")
        if end <= (begin or 0):
            raise ValueError(f"the ramp must end ({end}) after it begins ({begin})")
        if self.initial_sparsity >= self.target_sparsity:
            raise ValueError("initial_sparsity must be below target_sparsity")
        return self

    def output_paths(self) -> list[str]:
        return [self.report]

    def logged_metrics(self) -> list[str]:
        return ["sparsity"]

    def sparsity(self, step: int, begin: int, end: int) -> float:
        """The scheduled sparsity at optimizer `step`, given the ramp in steps."""
        progress = min(max((step - begin) / (end - begin), 0.0), 1.0)
        return (
            self.target_sparsity
            + (self.initial_sparsity - self.target_sparsity) * (1 - progress) ** self.power
        )


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """A 0/1 mask zeroing the `round(sparsity * size)` smallest-magnitude weights."""
    flat = np.abs(weights).ravel()
    count = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=weights.dtype)
    if count:
        mask[np.argpartition(flat, count - 1)[:count]] = 0
    return mask.reshape(weights.shape)


class _Masked:
    """A variable constraint: the previous constraint (if any), then times the 0/1 mask.

    Keras optimizers apply a variable's constraint right after each update, inside the
    compiled train step, so pruned weights are back to zero after every optimizer step.
    """

    def __init__(self, mask: Any, previous: Any = None):
        self.mask, self.previous = mask, previous

    def __call__(self, weights: Any) -> Any:
        if self.previous is not None:
            weights = self.previous(weights)
        return weights * self.mask


def _all_layers(layer: Any) -> list[Any]:
    found = [layer]
    for inner in getattr(layer, "layers", []):
        found.extend(_all_layers(inner))
    return found


@callbacks.register("magnitude_pruning", MagnitudePruningParams)
def magnitude_pruning(params: MagnitudePruningParams, ctx: BuildContext) -> Any:
    import keras

    prunable = (
        keras.layers.Dense,
        keras.layers.Conv1D,
        keras.layers.Conv2D,
        keras.layers.Conv3D,
        keras.layers.Conv1DTranspose,
        keras.layers.Conv2DTranspose,
        keras.layers.Conv3DTranspose,
    )
    report_path = Path(ctx.path(params.report))

    class MagnitudePruning(keras.callbacks.Callback):
        """Keeps a mask per kernel, enforced as its constraint; recomputes masks on schedule."""

        def __init__(self) -> None:
            super().__init__()
            self.report: dict[str, Any] = {}

        def _select(self) -> list[Any]:
            layers = [layer for layer in _all_layers(self.model) if layer is not self.model]
            if not params.layers:
                return [layer for layer in layers if isinstance(layer, prunable)]
            chosen = [
                layer
                for layer in layers
                if any(fnmatch.fnmatchcase(layer.name, p) for p in params.layers)
            ]
            names = ", ".join(layer.name for layer in layers)
            for pattern in params.layers:
                if not any(fnmatch.fnmatchcase(layer.name, pattern) for layer in chosen):
                    raise CbrunError(f"magnitude_pruning: no layer matches `{pattern}`: {names}")
            for layer in chosen:
                if getattr(layer, "kernel", None) is None:
                    raise CbrunError(f"magnitude_pruning: layer `{layer.name}` has no kernel")
            return chosen

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._layers = self._select()
            with self.model.distribute_strategy.scope():
                self._masks = [
                    keras.Variable(keras.ops.ones_like(layer.kernel), trainable=False)
                    for layer in self._layers
                ]
            self._constraints = [layer.kernel.constraint for layer in self._layers]
            for layer, mask, previous in zip(
                self._layers, self._masks, self._constraints, strict=True
            ):
                layer.kernel.constraint = _Masked(mask, previous)
            per_epoch = self.params.get("steps") or 1
            if params.end_step is not None:
                self._begin, self._end = params.begin_step or 0, params.end_step
            else:
                self._begin = (params.begin_epoch or 0) * per_epoch
                self._end = params.end_epoch * per_epoch
            self._pruned_at: int | None = None

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            last = self._pruned_at
            due = last is None or step - last >= params.frequency or (step >= self._end > last)
            if step < self._begin or not due or (last is not None and last >= self._end):
                return
            target = params.sparsity(min(step, self._end), self._begin, self._end)
            for layer, mask in zip(self._layers, self._masks, strict=True):
                kernel = keras.ops.convert_to_numpy(layer.kernel)
                mask.assign(magnitude_mask(kernel, target))
                layer.kernel.assign(layer.kernel * mask)
            self._pruned_at = step

        def get_resume_state(self) -> dict[str, Any]:
            """What `cbrun train --resume` needs: the step of the last pruning."""
            return {"pruned_at": self._pruned_at}

        def set_resume_state(self, state: dict[str, Any]) -> None:
            """Go on after a resume: pruned weights are exactly 0, so they give back the masks."""
            self._pruned_at = state["pruned_at"]
            if self._pruned_at is None:
                return
            for layer, mask in zip(self._layers, self._masks, strict=True):
                mask.assign(keras.ops.cast(keras.ops.not_equal(layer.kernel, 0), mask.dtype))

        def _measured(self) -> dict[str, Any]:
            per_layer = {}
            zeros = total = 0
            for layer in self._layers:
                kernel = keras.ops.convert_to_numpy(layer.kernel)
                per_layer[layer.name] = {
                    "sparsity": float(np.mean(kernel == 0)),
                    "weights": int(kernel.size),
                }
                zeros, total = zeros + int(np.sum(kernel == 0)), total + int(kernel.size)
            return {"overall": zeros / total if total else 0.0, "layers": per_layer}

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None:
                logs["sparsity"] = self._measured()["overall"]

        def on_train_end(self, logs: dict | None = None) -> None:
            for layer, previous in zip(self._layers, self._constraints, strict=True):
                layer.kernel.constraint = previous
            measured = self._measured()
            self.report = {
                "target_sparsity": params.target_sparsity,
                "schedule_steps": [self._begin, self._end],
                "final_step": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
                "overall_sparsity": measured["overall"],
                "layers": measured["layers"],
            }
            write_json_atomic(report_path, self.report)

    return MagnitudePruning()
