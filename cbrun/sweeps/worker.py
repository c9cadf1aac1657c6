"""A warm sweep worker: one process that imports TensorFlow once and trains trials in turn.

The local pool starts it as `python -m cbrun.sweeps.worker` and speaks JSON lines with it. A
request, one line on the worker's stdin, names a trial and two files:

    {"configs": [...], "overrides": [...], "runs_dir": "...", "stdout": FILE, "stderr": FILE}

The worker points its file descriptors 1 and 2 at those files, so everything the trial prints
(cbrun's lines, user code, Keras, TensorFlow's C++ logs) lands there as it would in a fresh
`cbrun train --quiet` process, and trains the trial in-process with cbrun's own `train`. It
answers on its original stdout, kept aside at start where no trial can write:

    {"exit_code": 0, "retire": null}

`retire` says why the worker cannot train another trial as a fresh process would (it then
exits, and the pool starts a new one). Before each trial the process is put back as it was
after import (`cbrun.run.process_state`). If the worker dies in a trial (a callback calls
`os._exit`, a segfault, SIGKILL), the pool sees its pipe close and records the trial failed.
End of input ends the worker at once (`os._exit`, as multiprocessing's children end: each
trial has closed its files, and the interpreter's teardown with TensorFlow loaded took 0.4 s
the sweep waited for); so does Ctrl-C while it waits (in a trial, train handles it).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from cbrun.core.errors import CbrunError


def main() -> None:
    requests, replies = _protocol_channel()
    try:
        from cbrun.run.process_state import ProcessBaseline, unrestorable
        from cbrun.run.train import train  # TensorFlow and Keras: imported once, here

        baseline = ProcessBaseline.capture()
        for line in requests:
            request = json.loads(line)
            exit_code = _with_output_to(request, train, baseline)
            retire = unrestorable()
            replies.write(json.dumps({"exit_code": exit_code, "retire": retire}) + "\n")
            replies.flush()
            if retire:
                break
    except KeyboardInterrupt:  # Ctrl-C on the sweep while this worker waited for a trial
        sys.exit(130)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _protocol_channel() -> tuple[TextIO, TextIO]:
    """Keep stdin and stdout for the protocol alone: trials read /dev/null, print to stderr."""
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # between trials, stray output goes to the worker's own stderr
    return requests, replies


def _with_output_to(request: dict[str, Any], train: Any, baseline: Any) -> int:
    """Train the trial with file descriptors 1 and 2 (so sys.stdout/stderr) on its files."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    for fd, key in ((1, "stdout"), (2, "stderr")):
        target = os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)
    try:
        return _train(train, baseline, request)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _train(train: Any, baseline: Any, request: dict[str, Any]) -> int:
    """One trial as `cbrun train CONFIGS --quiet --runs-dir DIR --set ...` would run it."""
    try:
        baseline.restore()
        result = train(
            [Path(path) for path in request["configs"]],
            list(request["overrides"]),
            runs_dir=Path(request["runs_dir"]),
            quiet=True,
        )
    except CbrunError as error:
        _debug_traceback()
        print(f"error: {error.render()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # Ctrl-C before training started (training handles its own)
        _debug_traceback()
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: shown as `cbrun train` would show it
        traceback.print_exc()
        return 1
    print(result.run_dir)
    return result.exit_code


def _debug_traceback() -> None:
    if os.environ.get("CBRUN_DEBUG"):
        traceback.print_exc()


if __name__ == "__main__":
    main()
