"""Every JSON file heplearn writes is valid JSON for any parser: NaN and ±inf are null (issue 15, item 10).

Before, ``results.json`` held ``Infinity`` (a rejection with no background left) where
``metrics.json`` wrote ``null``, and ``metrics.jsonl`` would hold ``NaN`` for a diverged loss.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.data.files import dumps
from heplearn.demo import DemoResult, write_results
from heplearn.runs import RunDirectory


def _strict(text: str) -> Any:
    """Parse as a strict JSON parser does: ``NaN``, ``Infinity`` and ``-Infinity`` are errors."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_demo_results_write_an_infinite_rejection_as_null(tmp_path: Path) -> None:
    write_results(tmp_path, [DemoResult("cuts", 0.9, math.inf, 96.0, tmp_path / "runs" / "cuts")], {"test": 10})
    (row,) = _strict((tmp_path / "results.json").read_text())
    assert row["rejection_at_30"] is None and row["rejection_at_50"] == 96.0


def test_run_files_write_nan_and_inf_as_null(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    run.append_history({"epoch": 1, "train_loss": float("nan"), "val_rejection": np.float32("inf")})
    run.write_model_info({"best_val_loss": -math.inf, "scores": np.array([1.0, np.nan])})
    assert _strict(run.metrics_file.read_text().strip()) == {"epoch": 1, "train_loss": None, "val_rejection": None}
    info = _strict(run.model_info_file.read_text())
    assert info["best_val_loss"] is None and info["scores"] == [1.0, None]


def test_write_json_and_dumps_never_write_nan() -> None:
    assert dumps({"a": [math.nan, 1.5, -math.inf]}) == '{"a": [null, 1.5, null]}'


def test_checkpoint_state_is_strict_json_and_keeps_an_unset_best_loss(tmp_path: Path) -> None:
    import torch

    from heplearn.training.checkpoint import TrainingState, load_checkpoint, save_checkpoint

    class OneModule:
        modules = {"model": torch.nn.Linear(2, 1)}
        optimizers: dict[str, Any] = {}
        schedulers: dict[str, Any] = {}

    path = save_checkpoint(tmp_path, OneModule(), TrainingState(epoch=1))
    content = _strict((path / "state.json").read_text())
    assert content["best_val_loss"] is None and content["epoch"] == 1
    restored = load_checkpoint(path, OneModule())
    assert restored.best_val_loss == math.inf and restored.epoch == 1
