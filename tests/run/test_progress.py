"""A live bar inside each epoch on a terminal; one plain line per epoch elsewhere."""

from __future__ import annotations

import os
import select
import subprocess
import sys

from conftest import ROOT


def test_a_terminal_gets_a_live_bar_and_a_pipe_one_line_per_epoch(make_config, tmp_path):
    config = make_config({"data": {"samples": 3000}, "training": {"epochs": 2, "batch_size": 8}})
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cbrun", "train", str(config)],
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "160"},
    )
    os.close(secondary)
    screen = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        screen += chunk
    assert process.wait(timeout=120) == 0
    os.close(primary)
    text = screen.decode("utf-8", "replace")
    assert "batches  eta" in text and "/225" in text, text[-2000:]  # 1800 samples / 8
    assert "epoch 2/2" in text

    piped = subprocess.run(
        [sys.executable, "-m", "cbrun", "train", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    assert "batches  eta" not in piped.stderr
    epoch_lines = [line for line in piped.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
