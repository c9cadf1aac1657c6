"""What the per-epoch resume state costs the training thread, on the bench MLP.

Trains the bench MLP (bench/configs/tabular.yaml on 50,000 rows x 32 features, 10 classes)
in this process, alternating two cases per repeat:

- `background`: cbrun as it is: the training thread copies the state, a background thread
  writes the files (cbrun/run/state.py);
- `inline`: the same files written on the training thread (each write waited for at once),
  which is what cbrun did before.

For each epoch it records the wall time of the epoch (begin to end) and the wall and CPU time
the training thread spends in `StateKeeper.on_epoch_end`. Prints a Markdown table.

    python bench/state_cost.py [--repeats 3] [--epochs 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402

from cbrun.run import state  # noqa: E402
from cbrun.run.train import train  # noqa: E402


def one_run(config: Path, inline: bool) -> dict[str, float]:
    """Train once; the medians of the epoch and of the keeper's time in the training thread."""
    keeper_wall: list[float] = []
    keeper_cpu: list[float] = []
    epoch_wall: list[float] = []
    original_end = state.StateKeeper.on_epoch_end
    original_start = state._BackgroundWrite.start

    def timed_end(self, epoch, logs=None):
        wall, cpu = time.perf_counter(), time.thread_time()
        original_end(self, epoch, logs)
        keeper_wall.append(time.perf_counter() - wall)
        keeper_cpu.append(time.thread_time() - cpu)
        epoch_wall.append(time.perf_counter() - self._bench_began)

    def timed_begin(self, epoch, logs=None):
        self._bench_began = time.perf_counter()

    def start_inline(self, write):
        original_start(self, write)
        self.join()

    state.StateKeeper.on_epoch_end = timed_end
    state.StateKeeper.on_epoch_begin = timed_begin
    if inline:
        state._BackgroundWrite.start = start_inline
    try:
        result = train(config, quiet=True)
    finally:
        state.StateKeeper.on_epoch_end = original_end
        del state.StateKeeper.on_epoch_begin
        state._BackgroundWrite.start = original_start
    assert result.exit_code == 0, result.record.get("error")
    steady = slice(1, None)  # the first epoch traces the functions
    return {
        "epoch": statistics.median(epoch_wall[steady]),
        "keeper_wall": statistics.median(keeper_wall[steady]),
        "keeper_cpu": statistics.median(keeper_cpu[steady]),
        "test_accuracy": result.record["test_metrics"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cbrun-state-cost-"))
    files = datagen.tabular_files(folder, rows=50_000, features=32, classes=10)
    base = yaml.safe_load((HERE / "configs" / "tabular.yaml").read_text())
    base["callbacks"] = [c for c in base["callbacks"] if c["type"] != "bench_epoch_timer"]
    base["data"].update(
        path=str(files["train"]),
        validation_path=str(files["validation"]),
        test_path=str(files["test"]),
    )
    base["training"]["epochs"] = args.epochs
    base["output"] = {"runs_dir": str(folder / "runs")}
    config = folder / "tabular.yaml"
    config.write_text(yaml.safe_dump(base, sort_keys=False))
    print(f"load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows: dict[str, list[dict[str, float]]] = {"inline": [], "background": []}
    for _ in range(args.repeats):
        for case in rows:
            rows[case].append(one_run(config, inline=case == "inline"))
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        "| state files written | epoch (median) | keeper, training thread wall | "
        "keeper CPU | share of the epoch | test accuracy |"
    )
    print("|---|---|---|---|---|---|")
    for case, samples in rows.items():
        epoch = statistics.median(s["epoch"] for s in samples)
        wall = statistics.median(s["keeper_wall"] for s in samples)
        cpu = statistics.median(s["keeper_cpu"] for s in samples)
        accuracy = {round(s["test_accuracy"], 4) for s in samples}
        print(
            f"| {case} | {epoch * 1000:.0f} ms | {wall * 1000:.1f} ms | {cpu * 1000:.1f} ms | "
            f"{wall / epoch:.1%} | {', '.join(map(str, sorted(accuracy)))} |"
        )


if __name__ == "__main__":
    main()
