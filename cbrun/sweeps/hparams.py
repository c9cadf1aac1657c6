"""TensorBoard's HParams dashboard for a sweep: one session per trial in `<sweep dir>/hparams/`.

`hparams/` holds the experiment (the swept keys with their domains, and the metrics);
`hparams/<trial>/` holds that trial's values and, once it has them, its metrics as scalars:
the sweep metric (the value that ranks it), `final/<name>` and `test/<name>`. Written with
TensorBoard's own protos and event writer, so no TensorFlow import is needed.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from cbrun.core.run_dir import read_json
from cbrun.experiment.sweep_space import Distribution

HPARAMS_DIR = "hparams"
HPARAMS_MODULES = (  # 0.13 s to import: the sweep imports them while its trials run
    "tensorboard.plugins.hparams.summary_v2",
    "tensorboard.compat.proto.summary_pb2",
    "tensorboard.compat.proto.event_pb2",
    "tensorboard.summary.writer.record_writer",
)


def write_hparams(sweep_dir: Path, record: dict[str, Any]) -> Path:
    """(Re)write the sweep's HParams summaries from sweep.json's record; returns the folder."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    folder = sweep_dir / HPARAMS_DIR
    shutil.rmtree(folder, ignore_errors=True)  # a resumed sweep writes it whole again
    items = record["trials"]
    sessions = {item["trial"]: _session(sweep_dir, record, item) for item in items}
    metric_tags = [record["metric"]]
    for _, metrics in sessions.values():
        metric_tags += [tag for tag in metrics if tag not in metric_tags]
    hparams = [_hparam(hp, key, record["search"]) for key in _keys(record)]
    config = hp.hparams_config_pb(hparams=hparams, metrics=[hp.Metric(t) for t in metric_tags])
    _write(folder, [config])
    for name, (values, metrics) in sessions.items():
        summaries = [hp.hparams_pb(values, trial_id=name)]
        summaries += [_scalar(tag, value) for tag, value in metrics.items()]
        _write(folder / name, summaries)
    return folder


def _keys(record: dict[str, Any]) -> list[str]:
    search = record["search"]
    return [*search.get("grid", {}), *search.get("random", {})]


def _value(value: Any) -> Any:
    """An HParams value: a number, a string or a bool (lists and None as their YAML text)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def _hparam(hp: Any, key: str, search: dict[str, Any]) -> Any:
    """A swept key with its domain: the grid's or choice's values, or a random range."""
    if key in search.get("grid", {}):
        values = search["grid"][key]
    else:
        dist = Distribution.parse(search["random"][key])
        if dist.name == "randint":
            return hp.HParam(key, hp.IntInterval(*dist.args))
        if dist.name != "choice":
            return hp.HParam(key, hp.RealInterval(*map(float, dist.args)))
        values = list(dist.args)
    shown = [_value(v) for v in values]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in shown)
    same_type = numbers or len({type(v) for v in shown}) == 1
    if not same_type:
        return hp.HParam(key)
    return hp.HParam(key, hp.Discrete([float(v) for v in shown] if numbers else shown))


def _session(
    sweep_dir: Path, record: dict[str, Any], item: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, float]]:
    """A trial's values and its metrics for the dashboard."""
    values = {key: _value(value) for key, value in item["params"].items()}
    metrics: dict[str, float] = {}
    if item.get("metric") is not None:
        metrics[record["metric"]] = float(item["metric"])
    run_json = sweep_dir / item["run_dir"] / "run.json" if item.get("run_dir") else None
    if run_json is not None and run_json.is_file():
        run = read_json(run_json)
        final = run.get("final_metrics") or run.get("last_metrics") or {}
        metrics |= {f"final/{k}": float(v) for k, v in final.items()}
        metrics |= {f"test/{k}": float(v) for k, v in (run.get("test_metrics") or {}).items()}
    return values, metrics


def _scalar(tag: str, value: float) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary

    return Summary(value=[Summary.Value(tag=tag, simple_value=value)])


def _write(folder: Path, summaries: list[Any]) -> None:
    """One event file of `summaries`, written as TensorBoard's own EventFileWriter does (its
    RecordWriter framing) but to a plain file: EventFileWriter would import TensorFlow."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = folder / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.cbrun"
    writer = RecordWriter(path.open("wb"))
    try:
        writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            writer.write(Event(wall_time=now, step=0, summary=summary).SerializeToString())
    finally:
        writer.close()
