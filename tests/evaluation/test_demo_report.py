"""``run_demo`` ends with the comparison report of every model (generation replaced by synthetic jets)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from heplearn import demo
from heplearn.generate import driver
from tests.evaluation.conftest import write_splits


def test_demo_writes_the_comparison_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_generate(processes: list[str], jets: int, output: Path, **_: Any) -> SimpleNamespace:
        assert processes == ["top", "qcd"]
        files = write_splits(Path(output), ("top", "qcd"), sizes=(1200, 300, 800))
        return SimpleNamespace(
            files={split: Path(path) for split, path in files.items()},
            jets_per_split={"train": 1200, "val": 300, "test": 800},
        )

    monkeypatch.setattr(driver, "generate", fake_generate)
    results = demo.run_demo(tmp_path, jets_per_class=100, models=["cuts", "likelihood"], progress=False)
    assert [result.model for result in results] == ["cuts", "likelihood"]
    assert all(0.5 < result.auc <= 1 and result.rejection_at_30 > 1 for result in results)
    report = (tmp_path / "report.html").read_text()
    assert "cuts" in report and "likelihood" in report and "data:image/png;base64," in report
    assert (tmp_path / "plots" / "roc.png").is_file()
    assert "report.html" in (tmp_path / "results.md").read_text()
    rows = json.loads((tmp_path / "results.json").read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["auc"] for row in rows] == [model["auc"] for model in metrics["models"]]


def test_a_second_demo_reuses_its_runs_unless_the_seed_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_generate(processes: list[str], jets: int, output: Path, **options: Any) -> SimpleNamespace:
        assert options["fractions"] == demo.SPLIT  # 30% test jets
        files = write_splits(Path(output), ("top", "qcd"), sizes=(600, 150, 400))
        return SimpleNamespace(
            files={split: Path(path) for split, path in files.items()},
            jets_per_split={"train": 600, "val": 150, "test": 400},
        )

    monkeypatch.setattr(driver, "generate", fake_generate)
    demo.run_demo(tmp_path, models=["likelihood"], progress=False)
    config = tmp_path / "runs" / "likelihood" / "config.yaml"
    written = config.stat().st_mtime_ns
    saved = yaml.safe_load(config.read_text())["training"]
    assert (saved["threads"], saved["deterministic"], saved["seed"]) == (demo.DEMO_THREADS, True, 0)
    (result,) = demo.run_demo(tmp_path, models=["likelihood"], progress=False)
    assert config.stat().st_mtime_ns == written  # the same settings: the finished run is reused
    assert result.auc_uncertainty is not None and 0 < result.auc_uncertainty < 0.05
    assert f"{result.auc:.4f} ± {result.auc_uncertainty:.4f}" in (tmp_path / "results.md").read_text()
    demo.run_demo(tmp_path, models=["likelihood"], progress=False, seed=3)
    assert yaml.safe_load(config.read_text())["training"]["seed"] == 3  # another seed: trained again
