"""`cbrun sweep --address`: a real two-node Ray cluster on loopback, started with Ray's CLI.

The head node listens on 127.0.0.2 and the second node on 127.0.0.1 (Ray replaces 127.0.0.1
itself by the machine's address, so the head takes another loopback address). Each has 1 CPU,
its own temp dir and this test's own auth token. The cluster is stopped by signalling the
`ray start --block` processes this test started, then killing what is left of their process
groups: `ray stop` would stop every Ray process on the machine, other sessions' too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cbrun.inspect.runs import find_runs

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("ray", "pyarrow", "optuna")),
    reason="needs the ray and optuna extras",
)
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP = "127.0.0.2"
STARTED = "Ray runtime started"
NODE_IDS = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
print(json.dumps({n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cluster_env() -> dict[str, str]:
    """This environment with a fresh auth token, without what earlier tests set for Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # set by local sweeps; it bars 2 nodes
    return env | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


def _start_node(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`ray start ARGS --block` in a new process group; returns once the node is up."""
    process = subprocess.Popen(
        [RAY, "start", *args, "--block", "--num-cpus=1", "--num-gpus=0",
         "--object-store-memory=80000000", "--disable-usage-stats",
         f"--dashboard-agent-listen-port={_free_port()}"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while STARTED not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"`ray start {' '.join(args)}` failed:\n{log.read_text()}")
        time.sleep(0.5)
    return process


def _stop_node(process: subprocess.Popen, temp_dir: Path) -> None:
    """SIGTERM `ray start --block`, which stops its node; SIGKILL what is left after 60 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for pid in _pids_naming(temp_dir):  # a daemon that left the group still names its dirs
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pids_naming(folder: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and str(folder).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def two_node_cluster(log_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """A head node and a second node on loopback; yields the head's address and temp dir."""
    temp_dir = Path(tempfile.mkdtemp(prefix="cbrun-ray-", dir="/tmp"))  # Ray's socket paths
    address = f"{HEAD_IP}:{_free_port()}"
    nodes: list[subprocess.Popen] = []
    try:
        head = [
            "--head", f"--node-ip-address={HEAD_IP}", f"--port={address.split(':')[1]}",
            "--include-dashboard=false", f"--ray-client-server-port={_free_port()}",
            f"--temp-dir={temp_dir / 'head'}",
        ]  # fmt: skip
        nodes.append(_start_node(head, log_dir / "head.log", env))
        second = [f"--address={address}", f"--temp-dir={temp_dir / 'second'}"]
        nodes.append(_start_node(second, log_dir / "second.log", env))
        yield address, temp_dir
    finally:
        for node in reversed(nodes):  # the second node first, while the head can drain it
            _stop_node(node, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_sweep_joins_a_two_node_cluster_and_its_trials_run_on_both_nodes(make_config, tmp_path):
    config = make_config({"sweep": {"search": "optuna", "trials": 2, "seed": 3,
                                    "random": {"model.dropout": "uniform(0, 0.3)"}}})  # fmt: skip
    env = _cluster_env()
    with two_node_cluster(tmp_path, env) as (address, temp_dir):
        nodes = subprocess.run(
            [sys.executable, "-c", NODE_IDS, address], env=env, capture_output=True, text=True
        )
        assert nodes.returncode == 0, nodes.stderr
        node_ips = json.loads(nodes.stdout.strip().splitlines()[-1])
        assert sorted(node_ips.values()) == ["127.0.0.1", HEAD_IP]
        sweep = subprocess.run(
            [sys.executable, "-m", "cbrun", "sweep", str(config), "--backend", "ray",
             "--address", address, "--workers", "2"],
            env=env, capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    sweep_dir = Path(sweep.stdout.strip().splitlines()[-1])
    record = json.loads((sweep_dir / "sweep.json").read_text())
    backend = record["backend"]
    assert backend["ray_address"] == address and backend["ray_started_here"] is False
    assert backend["search_alg"] == "ray.tune.search.optuna.OptunaSearch"
    assert [t["status"] for t in record["trials"]] == ["completed", "completed"]
    # One CPU per node and one per trial: the two trials ran at once, one on each node.
    assert sorted(t["ray_node"] for t in record["trials"]) == sorted(node_ips)
    assert len(find_runs(sweep_dir)) == 2
    assert not _pids_naming(temp_dir)  # nothing of the cluster is left running
