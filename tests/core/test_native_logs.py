"""TensorFlow's C++ start-up chatter is dropped from stderr; other lines written there stay."""

from __future__ import annotations

import os

from cbrun.core.native_logs import quiet_native_logs

CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795496844.288265    6498 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1795496844.288845    6498 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
]
KEPT = [
    "W0000 00:00:1795496844.3 6498 op_kernel.cc:1] a real warning",
    "Traceback (most recent call last): something the user must see",
]


def test_chatter_is_dropped_and_everything_else_is_written_back(capfd, monkeypatch):
    monkeypatch.delenv("CBRUN_DEBUG", raising=False)
    with quiet_native_logs():
        for line in [*CHATTER[:2], KEPT[0], *CHATTER[2:], KEPT[1]]:
            os.write(2, (line + "\n").encode())
    assert capfd.readouterr().err.splitlines() == KEPT


def test_cbrun_debug_shows_the_chatter(capfd, monkeypatch):
    monkeypatch.setenv("CBRUN_DEBUG", "1")
    with quiet_native_logs():
        os.write(2, (CHATTER[1] + "\n").encode())
    assert capfd.readouterr().err.splitlines() == [CHATTER[1]]
