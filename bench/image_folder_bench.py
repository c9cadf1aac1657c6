"""Image folders: cbrun's `image_directory` against hand-written Keras; writes
bench/IMAGE_FOLDER_RESULTS.md.

    python bench/image_folder_bench.py [--images 5000] [--repeats 3] [--memory]

1. Throughput: `cbrun train bench/configs/image_folder.yaml` (through bench/cbrun_timed.py)
   against bench/baselines/image_folder.py (`keras.utils.image_dataset_from_directory` plus
   prefetch), on the same JPEG files, the same CNN, batch 64, no cache. The two run
   alternately, each in its own process; an epoch's time is the median gap between epoch
   ends after the first (bench/timer.py). Target: cbrun's images/s >= 0.95x the baseline's.
2. `--memory`: peak resident memory (`ru_maxrss` from os.wait4) of `cbrun train` on 2,000
   and on 20,000 images, 2 epochs, no cache. Target: within 10 %.

The images are random colour fields, 48x48 JPEG, one class folder per mean colour; they are
written once to a temporary folder (seeded, so every run sees the same files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import CBRUN, PYTHON, alternate, run_process, spread  # noqa: E402

CLASSES = 10


def write_images(folder: Path, count: int, size: int = 48) -> Path:
    from PIL import Image

    if (folder / "done").exists():
        return folder
    rng = np.random.default_rng(0)
    colours = rng.uniform(40, 215, size=(CLASSES, 3))
    for index in range(count):
        label = index % CLASSES
        pixels = rng.normal(colours[label], 40, size=(size, size, 3))
        target = folder / f"class_{label}" / f"{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(target, quality=90)
    (folder / "done").write_text("")
    return folder


def timed(argv: list[str], work: Path, tag: str):
    def case(repeat: int):
        times = work / f"{tag}-{repeat}.json"
        sample = run_process(argv, env={**os.environ, "CBRUN_BENCH_TIMES": str(times)})
        if sample.code == 0:
            recorded = json.loads(times.read_text())
            sample.extra["epoch"] = statistics.median(np.diff(recorded["epoch_ends"]))
            sample.extra["epoch_cpu"] = statistics.median(np.diff(recorded["cpu_epoch_ends"]))
        return sample

    return case


def cbrun_argv(images: Path, runs: Path, epochs: int, *settings: str) -> list[str]:
    return [
        *CBRUN,
        "train",
        str(BENCH / "configs" / "image_folder.yaml"),
        "--set",
        f"data.path={images}",
        "--set",
        f"training.epochs={epochs}",
        *(arg for setting in settings for arg in ("--set", setting)),
        "--runs-dir",
        str(runs),
        "--quiet",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cbrun-image-bench-"))
    lines = [
        "# Image folder benchmark",
        "",
        f"Written by `python bench/image_folder_bench.py --images {args.images} --repeats "
        f"{args.repeats}{' --memory' if args.memory else ''}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; figures are `median (min–max)`.",
        "",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.platform()}; load average before: "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg()),
        "",
    ]
    images = write_images(work / f"images-{args.images}", args.images)
    print(f"images in {images}", file=sys.stderr)
    cases = {
        "cbrun image_directory": timed(cbrun_argv(images, work / "runs", 4), work, "cbrun"),
        "cbrun image_directory, state_every: 1000": timed(
            cbrun_argv(images, work / "runs", 4, "training.state_every=1000"), work, "cbrun-nostate"
        ),
        "keras image_dataset_from_directory + prefetch": timed(
            [PYTHON, str(BENCH / "baselines" / "image_folder.py"), "--data", str(images)],
            work,
            "keras",
        ),
    }
    results = alternate(cases, args.repeats, lambda text: print(text, file=sys.stderr))
    lines += [
        "## 1. Throughput",
        "",
        f"{args.images} JPEG files of 48x48 resized to 32x32, the same CNN, batch 64, 4 "
        "epochs, no cache; epoch = median gap between epoch ends after the first.",
        "",
        "| pipeline | epoch | epoch CPU time | images/s | whole process (start-up, checks, "
        "4 epochs) | peak memory |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    speed, cpu = {}, {}
    for name, samples in results.items():
        good = [s for s in samples if s.code == 0]
        epochs, cpus = [s.extra["epoch"] for s in good], [s.extra["epoch_cpu"] for s in good]
        speed[name] = args.images / statistics.median(epochs)
        cpu[name] = statistics.median(cpus)
        lines.append(
            f"| {name} | {spread(epochs)} | {spread(cpus)} | {speed[name]:.0f} | "
            f"{spread([s.wall for s in good])} | {spread([s.rss_mb for s in good], 'MB', 0)} |"
        )
    baseline = list(speed)[-1]
    lines.append("")
    for name in list(speed)[:-1]:
        ratio = speed[name] / speed[baseline]
        lines.append(
            f"- {name} / Keras images per second: **{ratio:.3f}** (target ≥ 0.95: "
            f"{'met' if ratio >= 0.95 else 'missed'}); Keras / cbrun epoch CPU time: "
            f"{cpu[baseline] / cpu[name]:.3f}."
        )
    lines.append("")
    if args.memory:
        small = write_images(work / "images-2000", 2000)
        large = write_images(work / "images-20000", 20000)
        memory = alternate(
            {
                "2,000 images": timed(cbrun_argv(small, work / "runs", 2), work, "m2k"),
                "20,000 images": timed(cbrun_argv(large, work / "runs", 2), work, "m20k"),
            },
            args.repeats,
            lambda text: print(text, file=sys.stderr),
        )
        peaks = {name: [s.rss_mb for s in runs if s.code == 0] for name, runs in memory.items()}
        growth = statistics.median(peaks["20,000 images"]) / statistics.median(
            peaks["2,000 images"]
        )
        lines += [
            "## 2. Peak memory",
            "",
            "`cbrun train` on the same kind of files, 2 epochs, no cache: peak resident memory "
            "of the whole process.",
            "",
            "| folder | peak memory |",
            "| --- | --- |",
            *(f"| {name} | {spread(values, 'MB', 0)} |" for name, values in peaks.items()),
            "",
            f"20,000 / 2,000: **{growth:.3f}** (target ≤ 1.10: "
            f"{'met' if growth <= 1.10 else 'missed'}).",
            "",
        ]
    out = BENCH / "IMAGE_FOLDER_RESULTS.md"
    out.write_text("\n".join(lines))
    print(out)


if __name__ == "__main__":
    main()
