"""Resume at its edges: the lock comes first, an edited config.yaml is refused by name, and
`duration_seconds` adds up every segment that trained the run."""

from __future__ import annotations

import json
import os
import signal

from conftest import run_dirs

HOOK = """
import os
import signal


def terminate_in_epoch_2(batch, logs):
    if os.environ.get("EDGE_TERMINATE") and batch == 1:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def test_edited_config_is_refused_and_segments_add_up(make_config, cli, runs_dir, tmp_path):
    from cbrun.run.state import RunLock

    (tmp_path / "edge_hook.py").write_text(HOOK)
    config = make_config(
        {
            "training": {"epochs": 3},
            "callbacks": [
                {"type": "lambda", "on_train_batch_end": "edge_hook:terminate_in_epoch_2"}
            ],
        }
    )
    os.environ["EDGE_TERMINATE"] = "1"
    try:
        assert cli("train", config).exit_code == 128 + signal.SIGTERM
    finally:
        del os.environ["EDGE_TERMINATE"]
    [run] = run_dirs(runs_dir)

    # Another process holds the lock: refused before any file is read (even a broken state).
    latest = run / "state" / "latest.json"
    kept = latest.read_text()
    latest.write_text("{broken")
    lock = RunLock(run).acquire()
    busy = cli("train", "--resume", run, "--allow-imports")
    lock.release()
    assert busy.exit_code == 2 and "another cbrun process is training" in busy.stderr
    latest.write_text(kept)

    original = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(original.replace("epochs: 3", "epochs: 5"))
    edited = cli("train", "--resume", run, "--allow-imports")
    assert edited.exit_code == 2
    assert "config.yaml: edited since the run began (training.epochs: 3 -> 5)" in edited.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"  # untouched

    (run / "config.yaml").write_text(original)
    resumed = cli("train", "--resume", run, "--allow-imports")
    assert resumed.exit_code == 0, resumed.stderr
    record = json.loads((run / "run.json").read_text())
    assert [(s["from_epoch"], s["status"]) for s in record["segments"]] == [
        (0, "interrupted"),
        (0, "completed"),
    ]
    total = sum(s["seconds"] for s in record["segments"])
    assert abs(record["duration_seconds"] - total) < 1e-6
    assert all(s["seconds"] > 0 for s in record["segments"])
