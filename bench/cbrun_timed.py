"""`cbrun` with one extra callback registered: `bench_epoch_timer` (see timer.py).

The bench configs list `- type: bench_epoch_timer` last among their callbacks, so cbrun builds
it like any registered callback. Everything else is `cbrun.cli.main`, unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from cbrun.callbacks.base import CallbackParams
from cbrun.cli import main
from cbrun.registry import callbacks


class BenchEpochTimerParams(CallbackParams):
    """Bench only: write every epoch's end time to $CBRUN_BENCH_TIMES."""

    type: Literal["bench_epoch_timer"]

    def batch_hooks(self) -> bool:
        return False  # epoch ends only: leaves `steps_per_execution: auto` as the user's run


@callbacks.register("bench_epoch_timer", BenchEpochTimerParams)
def bench_epoch_timer(params: BenchEpochTimerParams, ctx):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timer import EpochTimer

    return EpochTimer()


if __name__ == "__main__":
    main()
