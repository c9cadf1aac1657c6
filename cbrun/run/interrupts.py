"""Ctrl-C and SIGTERM during a run: stop at a safe point, record it, exit with 128 + signal.

The first signal only sets a flag; `SafetyChecks` (cbrun/run/safeguards.py) raises `Interrupted`
at the next batch or epoch boundary of `fit`, so TensorFlow is never cut off in the middle of a
step and the last finished epoch is saved. A signal after the last epoch lets the run finish.
A second signal writes `run.json` as interrupted and exits at once, without waiting for anything.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cbrun.core.run_dir import RUN_RECORD, utc_now, write_json_atomic

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised at a safe point after SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM: the shell's convention for death by signal."""
        return 128 + self.signum

    def outcome(self, where: str, finished: int, saved: int, run_dir: Path) -> dict[str, Any]:
        """The run.json fields of an interrupted run: epochs `finished`, state `saved` after."""
        kept = "and saved" if saved == finished else f"(resume continues after epoch {saved})"
        return {
            "status": "interrupted",
            "signal": self.signal_name,
            "epochs_completed": finished,
            "stop_reason": f"interrupted by {self.signal_name} {where}; {finished} "
            f"epoch{'' if finished == 1 else 's'} finished {kept}",
            "resume_command": f"cbrun train --resume {run_dir}",
        }


class InterruptGuard:
    """Turns SIGINT/SIGTERM into `Interrupted` at a safe point while installed.

    Args:
        run_dir: the run directory whose `run.json` a second signal writes.
        record: the run record (shared with the trainer, so it is current when written).
    """

    def __init__(self, run_dir: Path, record: dict[str, Any]):
        self.run_dir, self.record = run_dir, record
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():  # signals need the main thread
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived; call only where stopping is safe."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            self._exit_now(signum)
        self.signum = signum
        sys.stderr.write(
            f"\n{signal.Signals(signum).name}: stopping at the next batch and saving the run "
            "(press Ctrl-C again to quit at once)\n"
        )
        sys.stderr.flush()

    def _exit_now(self, signum: int) -> None:
        """Second signal: leave a readable run.json and exit without any further work."""
        name = signal.Signals(signum).name
        if self.record.get("status") != "completed":
            self.record.update(
                status="interrupted",
                signal=name,
                stop_reason=f"interrupted by a second {name}: quit at once; the state of the "
                "last finished epoch is kept",
                resume_command=f"cbrun train --resume {self.run_dir}",
            )
        self.record["ended_at"] = utc_now()
        try:
            write_json_atomic(self.run_dir / RUN_RECORD, self.record)
        finally:
            sys.stderr.write(f"\n{name} again: quit at once; {self.run_dir}\n")
            sys.stderr.flush()
            os._exit(128 + signum)
