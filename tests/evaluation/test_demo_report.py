"""``run_demo`` ends with the comparison report of every model (generation replaced by synthetic jets)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from heplearn import demo
from heplearn.generate import driver
from tests.evaluation.conftest import write_splits


def test_demo_writes_the_comparison_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_generate(processes: list[str], jets: int, output: Path, **_: Any) -> SimpleNamespace:
        assert processes == ["top", "qcd"]
        files = write_splits(Path(output), ("top", "qcd"), sizes=(1200, 300, 800))
        return SimpleNamespace(files={split: Path(path) for split, path in files.items()},
                               jets_per_split={"train": 1200, "val": 300, "test": 800})

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
