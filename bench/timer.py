"""The one tiny callback both sides of the benchmark use: epoch end times, written as JSON.

It records the wall clock (`time.perf_counter()`) and the process's CPU time (all threads,
`time.process_time()`) at the start of training and at the end of every epoch, and writes them
to the file named by $CBRUN_BENCH_TIMES when training ends. The steady-state epoch time is the
median gap between consecutive epoch ends (the first epoch, which traces the graph, is left
out), so everything done between two epochs by any callback is counted. CPU time is far less
disturbed than wall time by other processes competing for the cores.
"""

from __future__ import annotations

import json
import os
import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Collects epoch end times; writes them once, at the end of training."""

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.epoch_ends, self.cpu_epoch_ends = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(time.perf_counter())
        self.cpu_epoch_ends.append(time.process_time())

    def on_train_end(self, logs=None):
        path = os.environ.get("CBRUN_BENCH_TIMES")
        if path:
            with open(path, "w") as handle:
                times = {
                    "train_begin": self.started,
                    "epoch_ends": self.epoch_ends,
                    "cpu_train_begin": self.cpu_started,
                    "cpu_epoch_ends": self.cpu_epoch_ends,
                }
                json.dump(times, handle)
