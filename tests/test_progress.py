"""Progress: drawn bars on a terminal, one log line per epoch / per file when the output is a file."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from heplearn import progress
from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.progress import LogProgress, progress_bar, progress_mode
from heplearn.run_config import load_run_config
from heplearn.training.from_config import train
from tests.conftest import make_jets

SOURCE = Path(progress.__file__).parents[0]


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "heplearn.progress"]


def test_the_mode_follows_the_terminal_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(progress, "_interactive", lambda: True)
    assert progress_mode() == "bar"
    monkeypatch.setattr(progress, "_interactive", lambda: False)
    assert progress_mode() == "log"
    assert isinstance(progress_bar(total=3), LogProgress)
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "bar")
    assert not isinstance(progress_bar(total=3, disable=True), LogProgress)
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "sometimes")
    with pytest.raises(ConfigError, match="HEPLEARN_PROGRESS='sometimes': choose one of auto, bar, log, off"):
        progress_mode()


def test_a_captured_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENVIRONMENT_VARIABLE, raising=False)
    assert progress_mode() == "log"  # pytest captures stderr into a file: what `cmd > log 2>&1` does


def test_one_line_per_file_not_per_update(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "log")
    caplog.set_level(logging.INFO, logger="heplearn.progress")
    for name in ("a.parquet", "b.parquet", "c.parquet"):
        with progress_bar(total=5000, desc=name, unit="jets") as bar:
            for _ in range(50):
                bar.update(100)
                bar.set_postfix(loss="0.31")
    lines = progress_lines(caplog)
    assert len(lines) == 3
    assert re.fullmatch(r"a\.parquet: 5000/5000 jets done in [\d.]+ s, [\d.e+]+ jets/s \(loss 0\.31\)", lines[0])
    assert "\r" not in capsys.readouterr().err  # no redraws


def test_long_runs_log_at_most_one_line_per_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    caplog.set_level(logging.INFO, logger="heplearn.progress")
    with LogProgress(total=7, desc="folds", unit="fold", interval=30) as bar:
        for _ in range(7):
            now[0] += 10  # each fold takes 10 s
            bar.update()
    # lines when 30 s have passed since the last one (after folds 3 and 6), then the closing one
    assert [line.split(" in ")[0] for line in progress_lines(caplog)] == [
        "folds: 3/7 fold",
        "folds: 6/7 fold",
        "folds: 7/7 fold done",
    ]
    caplog.clear()
    assert list(LogProgress(range(4), desc="files", unit="file")) == [0, 1, 2, 3]  # yields the items, then closes
    assert [line.split(" in ")[0] for line in progress_lines(caplog)] == ["files: 4/4 file done"]


def test_off_and_disabled_bars_are_silent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="heplearn.progress")
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "off")
    with progress_bar(total=2, desc="quiet") as bar:
        bar.update(2)
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "log")
    assert list(progress_bar([1, 2], disable=True)) == [1, 2]
    assert progress_lines(caplog) == [] and capsys.readouterr().err == ""


def test_training_logs_one_line_per_epoch_without_redraws(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "log")
    caplog.set_level(logging.INFO, logger="heplearn")
    path = io.write(make_jets(200, seed=4), tmp_path / "train.parquet")
    config = load_run_config(
        {
            "data": {
                "train": [str(path)],
                "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
                "labels": {"classes": ["label_top", "label_qcd"]},
            },
            "model": {"name": "mlp", "preset": "small"},
            "training": {"epochs": 3, "batch_size": 64, "seed": 1},
        }
    )
    train(config, runs_dir=tmp_path / "runs", progress=True)
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1", "epoch 2", "epoch 3"]
    assert progress_lines(caplog) == []  # the epoch line is the only one: short epochs log nothing more
    assert "\r" not in capsys.readouterr().err


def test_tqdm_is_used_only_through_the_shared_helper() -> None:
    users = sorted(
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if path.name != "progress.py" and re.search(r"^\s*(from|import) tqdm", path.read_text(), re.M)
    )
    assert users == [], f"use heplearn.progress.progress_bar instead of tqdm in {users}"
