"""``heplearn evaluate`` on a regression run: bias, resolution and the coverage of quantile heads (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.evaluation.evaluate import EvaluationSettings, evaluate_run
from heplearn.evaluation.plots import PlotStyle
from heplearn.evaluation.regression import binned_residuals, robust_width, summarise_target
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train
from tests.test_cli import run as run_cli


def test_robust_width_is_sigma_for_a_gaussian_and_ignores_tails() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 2.0, 200_000)
    assert robust_width(values) == pytest.approx(2.0, rel=0.01)
    values[:2000] = 1e6  # 1% outliers move the standard deviation by orders of magnitude, not the width
    assert robust_width(values) == pytest.approx(2.0, rel=0.03)


def test_exact_quantiles_of_a_known_gaussian_cover_their_levels() -> None:
    """y ~ N(x, 0.5): the true quartiles x ± 0.6745·0.5 cover 25% and 75% in every bin, pull width 1."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 100_000)
    y = x + 0.5 * rng.normal(size=len(x))
    quantiles = {0.25: x - 0.6745 * 0.5, 0.5: x, 0.75: x + 0.6745 * 0.5}
    summary = summarise_target("y", y, x, quantiles)
    assert summary.coverage["0.25"] == pytest.approx(0.25, abs=0.005)
    assert summary.coverage["0.75"] == pytest.approx(0.75, abs=0.005)
    assert summary.pull_width == pytest.approx(1.0, abs=0.02)
    assert summary.bias == pytest.approx(0.0, abs=0.01) and summary.resolution == pytest.approx(0.5, rel=0.02)
    binned = binned_residuals("x", x, y, x, quantiles, bins=5, value_range=(0, 10))
    assert binned.counts.sum() == len(x)
    np.testing.assert_allclose(binned.coverage["0.25"], 0.25, atol=0.012)
    np.testing.assert_allclose(binned.resolution, 0.5, rtol=0.04)
    overconfident = summarise_target("y", y, x, {0.25: x - 0.2 * 0.5, 0.5: x, 0.75: x + 0.2 * 0.5})
    assert overconfident.pull_width == pytest.approx(0.6745 / 0.2, rel=0.03)  # σ̂ too small by 0.2/0.6745


def heteroscedastic(path: Path, n: int, seed: int) -> str:
    """y ~ N(2x, 0.3 + 0.2x²), x ~ U(−2, 2), with a jet_pt observer."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    y = 2 * x + (0.3 + 0.2 * x**2) * rng.normal(size=n)
    return str(
        io.write(
            ak.zip(
                {
                    "jet_x": x.astype(np.float32),
                    "jet_y": y.astype(np.float32),
                    "jet_pt": (500 + 100 * x).astype(np.float32),
                }
            ),
            path,
        )
    )


def test_evaluate_a_quantile_regression_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_file = heteroscedastic(tmp_path / "train.parquet", 12_000, 1)
    test_file = heteroscedastic(tmp_path / "test.parquet", 6_000, 2)
    config = load_run_config(
        {
            "data": {
                "train": train_file,
                "val": test_file,
                "inputs": {"jet": {"variables": ["jet_x"]}},
                "labels": {"type": "regression", "targets": {"y": "jet_y"}},
                "observers": ["jet_pt"],
            },
            "model": {"name": "mlp", "preset": "small", "dropout": 0.0, "batch_norm": False},
            "training": {
                "epochs": 4,
                "batch_size": 256,
                "seed": 0,
                "threads": 1,
                "learning_rate": 3e-3,
                "weight_decay": 0.0,
                "quantiles": [0.25, 0.5, 0.75],
                "loss": "huber_quantiles",
            },
        }
    )
    run_dir = train(config, name="calibrated", runs_dir=tmp_path / "runs", progress=False).run_dir
    settings = EvaluationSettings(style=PlotStyle(formats=("png",), dpi=50), bins=6)
    result = evaluate_run(run_dir, [test_file], tmp_path / "eval", settings=settings, progress=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    (target,) = metrics["targets"]
    predicted, arrays = TrainedModel.load(run_dir).predict_files([test_file])
    truth = arrays.label[:, 0]
    assert target["coverage"]["0.25"] == pytest.approx(np.mean(truth < predicted[:, 0]))  # exactly the definition
    assert target["coverage"]["0.25"] == pytest.approx(0.25, abs=0.04)
    assert target["coverage"]["0.75"] == pytest.approx(0.75, abs=0.04)
    assert target["pull_width"] == pytest.approx(1.0, abs=0.2)
    (versus_truth, versus_pt) = metrics["binned"]["y"]
    assert versus_truth["variable"] == "true y" and versus_pt["variable"] == "jet_pt"
    assert sum(versus_pt["counts"]) > 0.98 * len(truth) and len(versus_pt["coverage"]["0.75"]) == 6  # bulk range
    inner = [r for r, c in zip(versus_pt["resolution"], versus_pt["counts"], strict=True) if c > 300]
    assert max(inner) > 1.8 * min(inner)  # the resolution follows σ(x) = 0.3 + 0.2x²
    names = {path.name for path in result.plots}
    assert {"residual_y.png", "y_vs_true_y.png", "y_vs_jet_pt.png"} <= names
    assert "Coverage" in result.report.read_text()
    code, out, _ = run_cli(
        ["evaluate", str(run_dir), "--data", test_file, "-o", str(tmp_path / "cli"), "--no-progress"], capsys
    )
    assert code == 0 and "P(y < q0.25)" in out
