"""Benchmark cbrun against hand-written Keras on this machine; writes bench/RESULTS.md.

    python bench/run.py                 # the full benchmark (5 repeats of everything)
    python bench/run.py --quick         # 2 repeats and a shorter long job, to try things out
    python bench/run.py --sections 1,4  # only some sections

Every figure is the median of the repeats with the min-max range. The two sides of each
comparison run alternately in the same repeat (A B, then B A, ...) so that load from other
processes falls on both. Each case is its own process; peak memory is that process's
`ru_maxrss` (from `os.wait4`). Needs nothing beyond cbrun's own dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402

PYTHON = sys.executable
CBRUN = [PYTHON, str(BENCH / "cbrun_timed.py")]
STANDARD_CALLBACKS = [
    {"type": "early_stopping", "monitor": "val_loss", "patience": 1000},
    {
        "type": "model_checkpoint",
        "filepath": "checkpoints/best.keras",
        "monitor": "val_accuracy",
        "save_best_only": True,
    },
    {"type": "csv_logger", "filename": "log.csv"},
    {"type": "tensorboard", "log_dir": "tensorboard"},
    {
        "type": "learning_rate_scheduler",
        "schedule": {"type": "step_decay", "factor": 0.5, "step_size": 100},
    },
]
TIMER = {"type": "bench_epoch_timer"}


@dataclass
class Sample:
    """One process: wall and CPU seconds, peak resident memory, exit code and output."""

    wall: float
    cpu: float
    rss_mb: float
    code: int
    stdout: str
    stderr: str
    extra: dict = field(default_factory=dict)


def run_process(argv: list[str], env: dict[str, str] | None = None) -> Sample:
    """Run `argv` to completion; its own rusage comes from wait4 (not all children's)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Sample(
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def alternate(cases: dict, repeats: int, log) -> dict[str, list[Sample]]:
    """Run each case `repeats` times, alternating the order (ABC, CBA, ...) every repeat."""
    names = list(cases)
    results: dict[str, list[Sample]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            sample = cases[name](repeat)
            results[name].append(sample)
            status = "" if sample.code == 0 else f"  FAILED ({sample.code})"
            log(f"  {name} #{repeat + 1}: {sample.wall:.2f}s {sample.rss_mb:.0f}MB{status}")
            if sample.code != 0:
                log(sample.stderr[-2000:])
    return results


def ok(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.code == 0]


def spread(values: list[float], unit: str = "s", digits: int = 2) -> str:
    """`median (min–max) unit` of the values."""
    if not values:
        return "n/a"
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f}) {unit}".strip()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "**missed**"


class Bench:
    """Holds the work folder, the repeat count and the Markdown being written."""

    def __init__(self, args: argparse.Namespace):
        self.repeats = args.repeats
        self.quick = args.quick
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="cbrun-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self.memory: list[tuple[str, str, list[Sample]]] = []
        self.train_speed: dict[str, float] = {}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def load(self) -> str:
        return "load average (1/5/15 min): " + " / ".join(f"{v:.2f}" for v in os.getloadavg())

    def section(self, title: str, body) -> None:
        self.log(f"== {title}")
        self.add(f"## {title}", "", f"Before: {self.load()}.", "")
        started = time.perf_counter()
        body()
        took = time.perf_counter() - started
        self.add("", f"After: {self.load()}; the section took {took:.0f} s.", "")

    # -- data files -------------------------------------------------------------------------

    def data(self) -> Path:
        folder = self.work / "data"
        if not (folder / "tabular-train.csv").exists():
            folder.mkdir(parents=True, exist_ok=True)
            self.log("generating data files")
            datagen.tabular_files(folder, rows=50_000, features=32, classes=10)
            datagen.image_files(folder, images=8_000, side=28, classes=10)
        return folder

    def config(self, name: str, template: str, epochs: int | None = None, callbacks=None) -> Path:
        """A bench config from bench/configs/<template>.yaml with this run's data paths."""
        config = yaml.safe_load((BENCH / "configs" / f"{template}.yaml").read_text())
        data = self.data()
        stem = "tabular" if template == "tabular" else "images"
        suffix = ".csv" if template == "tabular" else ".npz"
        config["data"]["path"] = str(data / f"{stem}-train{suffix}")
        config["data"]["validation_path"] = str(data / f"{stem}-validation{suffix}")
        config["data"]["test_path"] = str(data / f"{stem}-test{suffix}")
        if epochs:
            config["training"]["epochs"] = epochs
        if callbacks is not None:
            config["callbacks"] = callbacks
        path = self.work / "configs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def cbrun_train(self, config: Path, tag: str):
        def case(repeat: int) -> Sample:
            times = self.work / "times" / f"{tag}-cbrun-{repeat}.json"
            times.parent.mkdir(parents=True, exist_ok=True)
            argv = [*CBRUN, "train", str(config), "-q", "--runs-dir", str(self.work / "runs")]
            sample = run_process(argv, env={**os.environ, "CBRUN_BENCH_TIMES": str(times)})
            return with_times(sample, times, run_dir=sample.stdout.strip().splitlines()[-1:])

        return case

    def baseline_train(self, script: str, tag: str, epochs: int):
        def case(repeat: int) -> Sample:
            times = self.work / "times" / f"{tag}-keras-{repeat}.json"
            out = self.work / "baseline" / f"{tag}-{repeat}"
            argv = [PYTHON, str(BENCH / "baselines" / script), "--data", str(self.data())]
            argv += ["--out", str(out), "--epochs", str(epochs)]
            sample = run_process(argv, env={**os.environ, "CBRUN_BENCH_TIMES": str(times)})
            return with_times(sample, times)

        return case

    # -- 1. start-up --------------------------------------------------------------------------

    def startup(self) -> None:
        cbrun = [PYTHON, "-m", "cbrun"]
        if (Path(PYTHON).parent / "cbrun").exists():
            cbrun = [str(Path(PYTHON).parent / "cbrun")]
        quickstart = str(REPO / "configs" / "quickstart.yaml")
        commands = {
            "python -c 'import tensorflow'": [PYTHON, "-c", "import tensorflow"],
            "cbrun --help": [*cbrun, "--help"],
            "cbrun list-callbacks": [*cbrun, "list-callbacks"],
            "cbrun validate configs/quickstart.yaml": [*cbrun, "validate", quickstart],
        }
        results = alternate(
            {name: (lambda _r, argv=argv: run_process(argv)) for name, argv in commands.items()},
            self.repeats,
            self.log,
        )
        tf_time = median([s.wall for s in ok(results["python -c 'import tensorflow'"])])
        self.add(
            "Wall time of each command in a fresh process (the `cbrun` console script), against",
            "importing TensorFlow alone. Target: each cbrun command ≤ 15 % of the import.",
            "",
            "| command | wall time | % of `import tensorflow` | target ≤ 15 % |",
            "| --- | --- | --- | --- |",
        )
        for name, samples in results.items():
            walls = [s.wall for s in ok(samples)]
            self.memory.append(("1. start-up", name, samples))
            if name.startswith("python"):
                self.add(f"| `{name}` | {spread(walls)} | 100 % | |")
                continue
            share = 100 * median(walls) / tf_time
            self.add(f"| `{name}` | {spread(walls)} | {share:.1f} % | {verdict(share, 15)} |")

    # -- 2. training overhead -----------------------------------------------------------------

    def training(self) -> None:
        long_epochs = 30 if self.quick else 100
        cases = [
            ("small MLP, tabular CSV", "tabular", "tabular_mlp.py", 6),
            ("CNN, 28x28 images (.npz)", "cnn", "cnn.py", 5),
            (f"long job: the MLP, {long_epochs} epochs", "tabular", "tabular_mlp.py", long_epochs),
        ]
        self.add(
            "`cbrun train` (through `bench/cbrun_timed.py`: `cbrun.cli.main` plus the bench's",
            "epoch timer registered as a callback) against a hand-written Keras script",
            "(`bench/baselines/`) that loads the same files, builds the same model and the same",
            "Keras callbacks (early stopping, best-only checkpoint, CSV logger), calls",
            "`model.fit`, evaluates on the test file and saves the model. Both use the same",
            "epoch timer (`bench/timer.py`). *Epoch* is the steady-state epoch time: the median",
            "gap between consecutive epoch ends, the first epoch left out; *epoch CPU* is the",
            "same for the process's CPU time (all threads), which other processes' load",
            "disturbs far less than wall time. Targets: epoch ratio ≤ 1.03; whole-process wall",
            "ratio ≤ 1.10 for the long job.",
            "",
            "| case | train samples × epochs | epoch cbrun | epoch Keras | epoch ratio "
            "| epoch CPU ratio |",
            "| --- | --- | --- | --- | --- | --- |",
        )
        rows = []
        for index, (title, template, script, epochs) in enumerate(cases):
            tag = ["small", "cnn", "long"][index]
            self.log(f"-- {title}")
            config = self.config(tag, template, epochs=epochs)
            results = alternate(
                {
                    "cbrun": self.cbrun_train(config, tag),
                    "keras": self.baseline_train(script, tag, epochs),
                },
                self.repeats,
                self.log,
            )
            cb, kr = ok(results["cbrun"]), ok(results["keras"])
            if not cb or not kr:
                self.add(f"| {title} | failed: see the log of `bench/run.py` | | | | |")
                continue
            epoch_cb = [s.extra["epoch"] for s in cb]
            epoch_kr = [s.extra["epoch"] for s in kr]
            epoch_ratio = median(epoch_cb) / median(epoch_kr)
            cpu_ratio = median([s.extra["epoch_cpu"] for s in cb]) / median(
                [s.extra["epoch_cpu"] for s in kr]
            )
            samples = 40_000 if template == "tabular" else 6_400
            self.train_speed[title] = samples / median(epoch_kr)
            self.add(
                f"| {title} | {samples:,} × {epochs} | {spread(epoch_cb)} | {spread(epoch_kr)} "
                f"| {epoch_ratio:.3f} ({verdict(epoch_ratio, 1.03)}) | {cpu_ratio:.3f} |"
            )
            wall_ratio = median([s.wall for s in cb]) / median([s.wall for s in kr])
            cpu_ratio = median([s.cpu for s in cb]) / median([s.cpu for s in kr])
            outside = [s.extra["outside_fit"] for s in cb], [s.extra["outside_fit"] for s in kr]
            share = 100 * median([s.extra["outside_fit"] / s.wall for s in cb])
            accuracy = [median([s.extra["accuracy"] for s in side]) for side in (cb, kr)]
            target = f" ({verdict(wall_ratio, 1.10)})" if tag == "long" else ""
            rows.append(
                f"| {title} | {spread([s.wall for s in cb], 's', 1)} "
                f"| {spread([s.wall for s in kr], 's', 1)} | {wall_ratio:.3f}{target} "
                f"| {cpu_ratio:.3f} | {median(outside[0]):.1f} / {median(outside[1]):.1f} s "
                f"| {share:.1f} % | {accuracy[0]:.4f} / {accuracy[1]:.4f} |"
            )
            self.memory.append(("2. training", f"{title}: cbrun", results["cbrun"]))
            self.memory.append(("2. training", f"{title}: Keras script", results["keras"]))
        self.add(
            "",
            "Whole process: *outside fit* is wall time minus the time from the start of `fit`",
            "to its last epoch end (interpreter and TensorFlow start-up, reading data, building,",
            "evaluating, saving); *start-up share* is that part of cbrun's wall time.",
            "",
            "| case | wall cbrun | wall Keras | wall ratio | CPU ratio | outside fit cbrun / "
            "Keras | start-up share (cbrun) | test accuracy cbrun / Keras |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        )

    # -- 3. callback overhead -----------------------------------------------------------------

    def callbacks(self) -> None:
        example, example_callbacks = richest_example()
        usable, dropped = [], []
        for item in example_callbacks:
            probe = self.config("probe", "tabular", callbacks=[item])
            sample = run_process([*CBRUN, "validate", str(probe)])
            if sample.code == 0:
                usable.append(item)
            else:
                dropped.append(f"`{item.get('type')}` ({sample.stderr.strip().splitlines()[-1]})")
        five = self.config("callbacks-five", "tabular", callbacks=STANDARD_CALLBACKS)
        full = self.config("callbacks-full", "tabular", callbacks=usable)
        argv = [PYTHON, str(BENCH / "callback_cost.py"), str(five), str(full)]
        argv += ["--repeats", str(self.repeats), "--runs-dir", str(self.work / "runs-cost")]
        sample = run_process(argv)
        self.memory.append(("3. callbacks", "the callback measurement process", [sample]))
        if sample.code != 0:
            self.add("The measurement failed:", "", "```", sample.stderr[-1500:], "```")
            return
        report = json.loads(sample.stdout.strip().splitlines()[-1])
        steps = report["steps"]
        self.add(
            f"The section 2 MLP (40,000 samples, {steps} batches per epoch, with validation),",
            "built once by cbrun in one process; the callbacks built by cbrun from",
            "`bench/configs` items. Short fits (3 epochs) of the same model with each set of",
            f"callbacks alternate, {self.repeats} repeats after a warm-up; *epoch* is the",
            "steady-state epoch time (median gap between epoch ends). The example config is the",
            f"one in `configs/` with the most callbacks when this ran: `{example}`, its items",
            "that fit a tabular classifier: " + ", ".join(f"`{i['type']}`" for i in usable) + ".",
            "",
            "| callbacks | epoch | epoch CPU | epoch vs none |",
            "| --- | --- | --- | --- |",
        )
        none = median(report["lists"][0]["wall"])
        for row in report["lists"]:
            self.add(
                f"| {row['name']} ({row['count']}) | {spread(row['wall'], 's', 3)} "
                f"| {spread(row['cpu'], 's', 3)} | {median(row['wall']) / none:.3f} |"
            )
        if dropped:
            self.add("", "Left out (not for a tabular classifier): " + "; ".join(dropped) + ".")
        self.add(
            "",
            "**Per-batch cost** of each callback that overrides a batch hook, alone against no",
            "callbacks (same fits as above): (difference of median epoch times) ÷ batches, in",
            "wall time and in the process's CPU time. Overriding a batch-end hook also turns off",
            "Keras' asynchronous dispatch of batch-end calls, which is part of the cost.",
            "",
            "| callback | batch hooks | epoch with it | wall per batch | CPU per batch |",
            "| --- | --- | --- | --- | --- |",
        )
        for row in report["callbacks"]:
            self.add(
                f"| `{row['name']}` | {', '.join(row['hooks'])} | {spread(row['with'], 's', 3)} "
                f"| {row['per_batch_us']:+.1f} µs | {row['per_batch_cpu_us']:+.1f} µs |"
            )
        self.add(
            "",
            "No batch hooks (per-epoch work only): "
            + ", ".join(f"`{n}`" for n in report["epoch_only"])
            + ".",
        )

    # -- 4. data ------------------------------------------------------------------------------

    def data_sources(self) -> None:
        rows = 200_000 if self.quick else 1_000_000
        folder = self.work / "big"
        folder.mkdir(exist_ok=True)
        paths = {}
        if not (folder / "big.csv").exists():
            self.log(f"generating a {rows:,}-row CSV and a 60,000-image .npz")
        run = [PYTHON, str(BENCH / "data_bench.py")]
        sample = run_process([*run, "generate", str(folder), "--rows", str(rows)])
        if sample.code != 0:
            raise SystemExit(sample.stderr)
        paths = json.loads(sample.stdout)
        sources = [
            ("csv", paths["csv"], "pandas.read_csv"),
            ("npz (tabular)", paths["npz"], "numpy.load"),
            ("npz (images)", paths["images"], "numpy.load"),
            ("digits", "-", "sklearn load_digits"),
            ("synthetic_classification", str(rows), "numpy, same draws"),
        ]
        self.add(
            "**Loading**: each data source's factory (read, check, split into arrays; here",
            "100 % train) against reading the same data directly. Each load is its own",
            "process (imports done before the clock starts); samples/s of the load only.",
            "",
            "| source | samples | cbrun samples/s | direct samples/s | direct with "
            "| cbrun ÷ direct | peak memory cbrun / direct |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        )
        for name, path, direct in sources:
            kind = name.split(" ")[0]
            results = alternate(
                {
                    how: (
                        lambda _r, how=how, kind=kind, path=path: parse(
                            run_process([*run, "load", kind, path, "--how", how])
                        )
                    )
                    for how in ("cbrun", "direct")
                },
                self.repeats,
                self.log,
            )
            cb, dr = ok(results["cbrun"]), ok(results["direct"])
            speed_cb = [s.extra["samples"] / s.extra["seconds"] for s in cb]
            speed_dr = [s.extra["samples"] / s.extra["seconds"] for s in dr]
            count = cb[0].extra["samples"] if cb else 0
            self.add(
                f"| {name} | {count:,} | {spread(speed_cb, '', 0)} | {spread(speed_dr, '', 0)} "
                f"| {direct} | {median(speed_cb) / median(speed_dr):.2f} "
                f"| {median([s.rss_mb for s in cb]):.0f} / "
                f"{median([s.rss_mb for s in dr]):.0f} MB |"
            )
            self.memory.append(("4. data", f"load {name}: cbrun", results["cbrun"]))
            self.memory.append(("4. data", f"load {name}: direct", results["direct"]))
        sample = run_process(
            [*run, "feed", paths["npz"], paths["images"], "--repeats", str(self.repeats)]
        )
        if sample.code != 0:
            self.add("", "Feeding: the measurement failed:", "```", sample.stderr[-1500:], "```")
            return
        feed = json.loads(sample.stdout.strip().splitlines()[-1])
        self.add(
            "",
            "**Feeding `fit`**: batches per second out of the input pipeline alone (one pass",
            "over the arrays, shuffled, nothing trained), as samples/s, against the training",
            "speed of the section 2 models (train samples ÷ steady epoch time of the Keras",
            "script). Target: the pipeline ≥ 3× the training speed.",
            "",
            "| arrays | pipeline | samples/s | × training speed | target ≥ 3× |",
            "| --- | --- | --- | --- | --- |",
        )
        for row in feed["rows"]:
            speeds = [v for t, v in self.train_speed.items() if ("CNN" in t) == row["images"]]
            train = max(speeds) if speeds else None  # the fastest model of that kind
            times = f"{median(row['samples_per_second']) / train:.1f}×" if train else "n/a"
            met = verdict(3, median(row["samples_per_second"]) / train) if train else ""
            self.add(
                f"| {row['data']} | {row['pipeline']} | {spread(row['samples_per_second'], '', 0)} "
                f"| {times} | {met} |"
            )
        if self.train_speed:
            self.add(
                "",
                "Training speed used: "
                + "; ".join(f"{k}: {v:,.0f} samples/s" for k, v in self.train_speed.items())
                + ".",
            )
        self.memory.append(("4. data", "feeding process (all pipelines)", [sample]))

    # -- 6. speed settings --------------------------------------------------------------------

    def speed_settings(self) -> None:
        config = self.config("settings", "tabular", callbacks=[])
        argv = [PYTHON, str(BENCH / "settings_cost.py"), str(config)]
        sample = run_process([*argv, "--repeats", str(self.repeats)])
        if sample.code != 0:
            self.add("The measurement failed:", "", "```", sample.stderr[-1500:], "```")
            return
        rows = json.loads(sample.stdout.strip().splitlines()[-1])["rows"]
        self.add(
            "One epoch (with validation) of the section 2 MLP under each `training:` speed",
            "setting, built by cbrun as `cbrun train` builds it, measured in one process:",
            f"warm-up epoch each, then one-epoch fits alternating, {self.repeats} repeats.",
            f"Peak memory of that process: {sample.rss_mb:.0f} MB.",
            "",
            "| setting | epoch wall | epoch CPU | speed-up (wall) |",
            "| --- | --- | --- | --- |",
        )
        for row in rows:
            self.add(
                f"| `{row['name']}` | {spread(row['wall'], 's', 3)} | {spread(row['cpu'], 's', 3)} "
                f"| {row['speedup']:.2f}× |"
            )

    # -- 5. memory ----------------------------------------------------------------------------

    def peak_memory(self) -> None:
        self.add(
            "Peak resident memory (`ru_maxrss`) of each case's process, from the runs above.",
            "",
            "| section | case | peak memory |",
            "| --- | --- | --- |",
        )
        for section, name, samples in self.memory:
            self.add(f"| {section} | {name} | {spread([s.rss_mb for s in ok(samples)], 'MB', 0)} |")

    def write(self, out: Path, sections: set[str], started: float) -> None:
        header = [
            "# cbrun benchmark results",
            "",
            f"Written by `python bench/run.py{' --quick' if self.quick else ''}` on "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in "
            f"{(time.perf_counter() - started) / 60:.1f} min; {self.repeats} repeats of "
            "everything; figures are `median (min–max)`.",
            "",
            *machine(),
            "",
        ]
        out.write_text("\n".join(header + self.lines) + "\n")
        self.log(f"wrote {out}")


def with_times(sample: Sample, times: Path, run_dir: list[str] | None = None) -> Sample:
    """Add the steady-state epoch time and the time outside fit from the timer's file."""
    if sample.code != 0 or not times.exists():
        sample.code = sample.code or 99
        return sample
    data = json.loads(times.read_text())
    ends = data["epoch_ends"]
    sample.extra["epoch"] = steady(data["train_begin"], ends)
    sample.extra["epoch_cpu"] = steady(data["cpu_train_begin"], data["cpu_epoch_ends"])
    sample.extra["outside_fit"] = sample.wall - (ends[-1] - data["train_begin"])
    if run_dir:
        record = json.loads((Path(run_dir[0]) / "run.json").read_text())
        sample.extra["accuracy"] = record["test_metrics"]["accuracy"]
    else:
        metrics = sample.stdout.strip().splitlines()[-1]
        sample.extra["accuracy"] = float(metrics.split("'accuracy': ")[1].split(",")[0])
    return sample


def steady(begin: float, ends: list[float]) -> float:
    """The median gap between consecutive epoch ends (the first epoch when there is one)."""
    gaps = [b - a for a, b in zip(ends[:-1], ends[1:], strict=True)]
    return median(gaps) if gaps else ends[0] - begin


def parse(sample: Sample) -> Sample:
    if sample.code == 0:
        sample.extra = json.loads(sample.stdout.strip().splitlines()[-1])
    return sample


def richest_example() -> tuple[str, list[dict]]:
    """The config in configs/ with the most callbacks, and its callbacks."""
    best = ("", [])
    for path in sorted((REPO / "configs").glob("*.yaml")):
        items = (yaml.safe_load(path.read_text()) or {}).get("callbacks") or []
        if len(items) > len(best[1]):
            best = (f"configs/{path.name}", items)
    return best


def machine() -> list[str]:
    """CPU, cores, memory, versions and git commit, as Markdown lines."""
    cpu = "unknown"
    memory = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        total = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory = f"{int(total) / 1024**2:.1f} GiB"
    versions = subprocess.run(
        [
            PYTHON,
            "-c",
            "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; import tensorflow, "
            "keras, numpy, pandas, cbrun; print(tensorflow.__version__, keras.__version__, "
            "numpy.__version__, pandas.__version__, cbrun.__version__)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    names = ["TensorFlow", "Keras", "NumPy", "pandas", "cbrun"]
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, {memory} RAM, {platform.platform()}",
        f"- Python {platform.python_version()}; "
        + ", ".join(f"{n} {v}" for n, v in zip(names, versions, strict=False))
        + f"; git commit {commit or 'unknown'}",
    ]


SECTIONS = {
    "1": ("1. Start-up", Bench.startup),
    "2": ("2. Training overhead", Bench.training),
    "3": ("3. Callback overhead", Bench.callbacks),
    "4": ("4. Data", Bench.data_sources),
    "5": ("5. Peak memory", Bench.peak_memory),
    "6": ("6. Speed settings", Bench.speed_settings),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="Runs per case (default 5).")
    parser.add_argument("--quick", action="store_true", help="2 repeats, smaller long job/CSV.")
    parser.add_argument("--sections", default="1,2,3,4,5,6", help="Comma-separated, e.g. 1,4.")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--workdir", help="Keep data and runs here (default: a temp folder).")
    args = parser.parse_args()
    args.repeats = args.repeats or (2 if args.quick else 5)
    bench = Bench(args)
    started = time.perf_counter()
    chosen = set(args.sections.split(","))
    try:
        for key, (title, body) in SECTIONS.items():
            if key in chosen:
                bench.section(title, lambda body=body: body(bench))
                bench.write(args.out, chosen, started)  # partial results survive a crash
    finally:
        if not args.workdir:
            shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
