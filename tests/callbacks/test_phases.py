"""Callbacks join the phases they declare: fit, the final test evaluation, `cbrun eval`, predict."""

import json
import math
import sys

import numpy as np
import pytest

from conftest import train_tiny

# Hooks recording every call, in order, in the module's CALLS list.
HOOKS = """
CALLS = []

def record(name):
    def hook(*args):
        index = args[0] if len(args) == 2 else None
        CALLS.append(name if index is None else f"{name}:{index}")
    return hook

for _event in ("train_begin", "epoch_end", "train_end", "test_begin", "test_batch_end",
               "test_end", "predict_begin", "predict_batch_end", "predict_end"):
    globals()[_event] = record(_event)
"""
BATCH_SIZE = 32  # TINY's


def batches(run_dir, split):
    samples = json.loads((run_dir / "data.json").read_text())["samples"][split]
    return [f"test_batch_end:{i}" for i in range(math.ceil(samples / BATCH_SIZE))]


def hook_paths(*events):
    return {f"on_{event}": f"phase_hooks:{event}" for event in events}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run with a fit-only lambda and an evaluate+predict lambda; CALLS after training."""
    folder = tmp_path_factory.mktemp("phases")
    (folder / "phase_hooks.py").write_text(HOOKS)
    sys.modules.pop("phase_hooks", None)
    result = train_tiny(
        folder,
        {
            "callbacks": [
                {"type": "lambda", **hook_paths("train_begin", "epoch_end", "train_end")},
                {
                    "type": "lambda",
                    "phases": ["evaluate", "predict"],
                    **hook_paths(
                        "test_begin",
                        "test_batch_end",
                        "test_end",
                        "predict_begin",
                        "predict_batch_end",
                        "predict_end",
                    ),
                },
            ]
        },
    )
    hooks = sys.modules["phase_hooks"]
    return result.run_dir, hooks, list(hooks.CALLS)


def test_fit_runs_fit_hooks_then_the_test_evaluation_runs_evaluate_hooks(trained):
    run_dir, _, calls = trained
    # Validation inside fit does not call the evaluate-phase callback: it is not in `fit`.
    assert calls == [
        "train_begin",
        "epoch_end:0",
        "epoch_end:1",
        "train_end",
        "test_begin",
        *batches(run_dir, "test"),
        "test_end",
    ]


def test_cbrun_eval_runs_only_the_evaluate_hooks(trained, cli):
    run_dir, hooks, _ = trained
    hooks.CALLS.clear()
    result = cli("eval", run_dir, "--split", "validation", "--allow-imports")
    assert result.exit_code == 0, result.stderr
    assert hooks.CALLS == ["test_begin", *batches(run_dir, "validation"), "test_end"]


def test_predict_run_runs_only_the_predict_hooks(trained):
    from cbrun.run.predict import predict_run

    run_dir, hooks, _ = trained
    hooks.CALLS.clear()
    x = np.zeros((70, 8), dtype="float32")
    predictions = predict_run(run_dir, x, batch_size=32, allow_imports=True)
    assert predictions.shape == (70, 3)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    assert hooks.CALLS == [
        "predict_begin",
        "predict_batch_end:0",
        "predict_batch_end:1",
        "predict_batch_end:2",
        "predict_end",
    ]


def test_predict_run_refuses_the_run_configs_imports_unless_allowed(trained):
    from cbrun.core.errors import CbrunError
    from cbrun.run.predict import predict_run

    run_dir, hooks, _ = trained
    hooks.CALLS.clear()
    with pytest.raises(CbrunError, match="does not import code from a run directory"):
        predict_run(run_dir, np.zeros((4, 8), dtype="float32"))
    assert hooks.CALLS == []
