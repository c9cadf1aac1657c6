"""Modules imported on a thread while the main thread waits on something else.

A run imports its end-of-run drawing modules while `fit` runs (`cbrun/run/train.py`), and a
sweep imports its plot's and HParams summaries' modules while its trials run in other processes.
"""

from __future__ import annotations

import importlib
import threading


class BackgroundImports:
    """`names` imported, in order, on a daemon thread that `start()` starts (once)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._thread = threading.Thread(target=self._load, name="cbrun-imports", daemon=True)

    def start(self) -> None:
        """Start the thread; calling it again does nothing."""
        if self._thread.ident is None:
            self._thread.start()

    def wait(self) -> None:
        """Until they are imported (started now if it was not yet)."""
        self.start()
        self._thread.join()

    def _load(self) -> None:
        for name in self.names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - imported again where used, with its error
                continue
