"""Peak memory of `cbrun train` on a streamed table (`data.stream: true`) does not grow with
the file; writes bench/TABLE_STREAM_RESULTS.md.

    python bench/table_stream_bench.py [--small 20000] [--times 20] [--repeats 2]

The tables are bench/table_bench.py's (5 numeric, 4 categorical, 1 text column, 3 classes),
`--small` rows and `--times` as many. Each case is one `cbrun train` process, 1 epoch, batch
256, 15 % validation; its peak resident memory is its `ru_maxrss` (os.wait4). `--test`
(default 0) is the test fraction: the test evaluation draws curves over every test row,
which grow with the test split whatever the source. `--chunk-rows` (default 1,000) sets
`chunk_rows` and `shuffle_buffer`, so that the small table is already many chunks long (the
rows in flight are a few chunks and a shuffle block, whatever the file's length). Cases: the
streamed small table, the streamed big one, and the big one read whole (the in-memory path,
`stream: false`) for contrast. Target: the streamed big table peaks within 10 % of the
streamed small one. The memory cap stated is the streamed small table's peak plus 10 %: the
in-memory path needs more than that for the big table, the streamed one not.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import PYTHON, alternate, run_process, spread  # noqa: E402
from table_bench import generate  # noqa: E402

CONFIG = """
experiment: {{name: table-stream-bench, seed: 0}}
data:
  {{type: csv, path: {csv}, target: label, task: classification, columns: {{review: text}},
   stream: {stream}, chunk_rows: {chunk}, shuffle_buffer: {chunk},
   split: {{validation: 0.15, test: {test}}}}}
model: {{type: mlp, units: [64]}}
compile: {{optimizer: {{name: adam, learning_rate: 0.001}}}}
training: {{epochs: 1, batch_size: 256}}
"""


def config(csv: Path, folder: Path, stream: bool, test: float, chunk: int) -> Path:
    path = folder / f"{csv.stem}-{'stream' if stream else 'memory'}.yaml"
    path.write_text(
        CONFIG.format(csv=json.dumps(str(csv)), stream=str(stream).lower(), test=test, chunk=chunk)
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--chunk-rows", type=int, default=1000, help="chunk_rows and shuffle_buffer"
    )
    parser.add_argument(
        "--test", type=float, default=0.0, help="test fraction (its evaluation's curves grow)"
    )
    parser.add_argument("--load", default="", help="what else ran on the machine (for the file)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="table-stream-bench-"))
    rows = {"small": args.small, "big": args.small * args.times}
    tables = {}
    for name, count in rows.items():
        tables[name] = work / f"{name}.csv"
        generate(tables[name], count)
    runs = work / "runs"

    def case(csv: Path, stream: bool):
        path = config(csv, work, stream, args.test, args.chunk_rows)
        return lambda _: run_process(
            [PYTHON, "-m", "cbrun", "train", str(path), "-q", "--runs-dir", str(runs)]
        )

    cases = {
        f"streamed, {rows['small']:,} rows": case(tables["small"], True),
        f"streamed, {rows['big']:,} rows": case(tables["big"], True),
        f"in memory, {rows['big']:,} rows": case(tables["big"], False),
    }
    results = alternate(cases, args.repeats, print)
    peaks = {name: [s.rss_mb for s in samples if s.code == 0] for name, samples in results.items()}
    walls = {name: [s.wall for s in samples if s.code == 0] for name, samples in results.items()}
    small, big, whole = (statistics.median(values) for values in peaks.values())
    growth = big / small
    cap = small * 1.1
    sizes = {name: path.stat().st_size / 1e6 for name, path in tables.items()}
    lines = [
        "# Streamed tables: peak memory against the file's size",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.processor() or platform.machine()}), {args.repeats} repeats, "
        "`python bench/table_stream_bench.py "
        f"--small {args.small} --times {args.times} --repeats {args.repeats} "
        f"--test {args.test} --chunk-rows {args.chunk_rows}`."
        + (f" Load: {args.load}." if args.load else ""),
        "",
        f"`cbrun train`, 1 epoch, batch 256, 15 % validation and {args.test:.0%} test, "
        f"`chunk_rows` and `shuffle_buffer` {args.chunk_rows:,}, an MLP (64 units) "
        "behind the table's preprocessing layers; tables of bench/table_bench.py (5 numeric, "
        f"4 categorical, 1 text column): {rows['small']:,} rows ({sizes['small']:.1f} MB) and "
        f"{rows['big']:,} rows ({sizes['big']:.1f} MB). Peak memory is the process's "
        "`ru_maxrss`.",
        "",
        "| case | peak memory | wall time |",
        "|---|---|---|",
        *(f"| {name} | {spread(peaks[name], 'MB', 0)} | {spread(walls[name])} |" for name in cases),
        "",
        f"- Streamed, {args.times}x the rows: peak {big:.0f} MB against {small:.0f} MB, "
        f"{growth:.3f}x (target <= 1.10: {'met' if growth <= 1.1 else '**missed**'}).",
        f"- Memory cap stated: {cap:.0f} MB (the streamed small table's peak + 10 %). The "
        f"{rows['big']:,}-row table read whole peaks at {whole:.0f} MB "
        f"({'above' if whole > cap else 'not above'} the cap); streamed it trains within it "
        f"({'yes' if big <= cap else '**no**'}).",
        "",
    ]
    (BENCH / "TABLE_STREAM_RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
