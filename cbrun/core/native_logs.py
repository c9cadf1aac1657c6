"""TensorFlow's C++ start-up chatter, kept off the terminal while TensorFlow is imported.

TensorFlow's native code logs informational lines (oneDNN, CUDA stubs, CPU features) straight
to file descriptor 2 before its log level settings apply, so `TF_CPP_MIN_LOG_LEVEL` cannot hide
them. During the import, stderr goes to a temporary file; afterwards every line is written
back except that chatter. Warnings and errors are kept, but for the failed `cuInit` on hosts
with no NVIDIA device at all. `CBRUN_DEBUG=1` shows everything.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ \S+:\d+\] "  # an INFO line of TensorFlow's C++ logging
    r"|To enable the following instructions: .* with the appropriate compiler flags\."
)
NO_GPU_CUINIT = re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit")


def is_chatter(line: str) -> bool:
    """True for a start-up line that tells a user nothing they can act on."""
    if CHATTER.match(line):
        return True
    return bool(NO_GPU_CUINIT.match(line)) and not Path("/dev/nvidiactl").exists()


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send fd 2 to a temporary file during the block; write back all but the chatter."""
    if os.environ.get("CBRUN_DEBUG"):
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_chatter(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
