"""ABCDisCo (arXiv:2007.14400): two taggers made independent on the background close the ABCD estimate."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.errors import ConfigError, DataError
from heplearn.methods.abcd_closure import ClosureConstraint, ClosureSettings, non_closure, soft_region_counts
from heplearn.methods.decorrelation import pair_scores, second_network
from heplearn.run_config import load_run_config
from heplearn.stats.abcd import AbcdEstimate, abcd_estimate, region_counts
from heplearn.training.from_config import train


def gaussian_events(path: Path, n: int, seed: int) -> Path:
    """Background N(0, I₄), signal N(1.2·(1, 1, 1, 1), I₄): every feature separates."""
    rng = np.random.default_rng(seed)
    signal = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)) + 1.2 * signal[:, None]
    fields = {f"jet_x{i}": x[:, i].astype(np.float32) for i in range(4)}
    return io.write(
        ak.zip({**fields, "label_sig": signal.astype(np.int64), "label_bkg": (1 - signal).astype(np.int64)}), path
    )


def abcd_closure_on(run_dir: Path, test_file: Path) -> tuple[AbcdEstimate, float]:
    """The ABCD estimate in the (f, g) plane of a Double DisCo run's background, cut at the medians,
    and f's AUC."""
    first, second, arrays = pair_scores(run_dir, [test_file])
    background = arrays.label == 1
    f, g = first[background], second[background]
    estimate = abcd_estimate(region_counts(f, g, float(np.median(f)), float(np.median(g))))
    return estimate, float(roc_auc_score(arrays.label == 0, first))


def test_double_disco_closes_the_abcd_estimate(tmp_path: Path) -> None:
    train_file = gaussian_events(tmp_path / "train.parquet", 8000, 1)
    test_file = gaussian_events(tmp_path / "test.parquet", 8000, 2)
    pulls = {}
    for strength in (0.0, 100.0):
        config = load_run_config(
            {
                "data": {
                    "train": str(train_file),
                    "inputs": {"jet": {"variables": [f"jet_x{i}" for i in range(4)]}},
                    "labels": {"classes": ["label_sig", "label_bkg"]},
                },
                "model": {"name": "mlp", "preset": "small", "dropout": 0.0},
                "training": {
                    "epochs": 5,
                    "batch_size": 512,
                    "seed": 2,
                    "threads": 1,
                    "learning_rate": 3e-3,
                    "step": {"name": "double_disco", "strength": strength},
                },
            }
        )
        result = train(config, name=f"double{strength:g}", runs_dir=tmp_path / "runs", progress=False)
        assert (result.run_dir / "second.safetensors").is_file()
        assert {"train_loss_second", "train_disco_pair"} <= set(result.history[-1])
        estimate, _ = abcd_closure_on(result.run_dir, test_file)
        pulls[strength] = estimate.closure_pull
    assert pulls[0.0] < -10  # two taggers of the same inputs: B and C nearly empty, N_A underestimated
    assert abs(pulls[100.0]) < 3  # decorrelated on the background: the estimate closes


def test_a_run_without_a_second_network_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="double_disco"):
        second_network(tmp_path)


def test_soft_region_counts_become_the_hard_counts() -> None:
    rng = np.random.default_rng(4)
    f, g = rng.uniform(size=5000), rng.uniform(size=5000)
    weight = rng.uniform(0.5, 1.5, size=5000)
    hard = region_counts(f, g, 0.4, 0.7, weight)
    soft = soft_region_counts(torch.tensor(f), torch.tensor(g), 0.4, 0.7, 1e-12, torch.tensor(weight))
    np.testing.assert_allclose(soft.numpy(), [hard.sums[region] for region in "ABCD"], rtol=1e-9)
    assert float(soft.sum()) == pytest.approx(weight.sum())  # the four regions share every event
    wide = soft_region_counts(torch.tensor(f), torch.tensor(g), 0.4, 0.7, 0.1, torch.tensor(weight))
    assert abs(float(wide[0]) - hard.sums["A"]) > 1.0  # a finite width smooths the cut


def test_non_closure_of_correlated_gaussians_is_the_analytic_value() -> None:
    """Median cuts on a bivariate normal of correlation ρ: N_A N_D/(N_B N_C) = ((¼+a)/(¼−a))², a = arcsin ρ/2π."""
    rng = np.random.default_rng(5)
    for rho, closure in ((0.1, 1.291), (0.3, 2.194)):
        x = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=400_000)
        counts = soft_region_counts(torch.tensor(x[:, 0]), torch.tensor(x[:, 1]), 0.0, 0.0, 1e-6)
        assert float(non_closure(counts)) == pytest.approx(closure - 1, abs=0.02)


def test_the_multiplier_ascends_while_the_constraint_is_violated() -> None:
    constraint = ClosureConstraint(ClosureSettings(epsilon=0.05, multiplier_rate=2.0))
    constraint.ascend(torch.tensor(0.30))
    assert float(constraint.multiplier) == pytest.approx(0.5)
    constraint.ascend(torch.tensor(0.10))
    assert float(constraint.multiplier) == pytest.approx(0.6)
    constraint.ascend(torch.tensor(0.0))  # satisfied: λ falls, never below zero
    assert float(constraint.multiplier) == pytest.approx(0.5)
    for _ in range(10):
        constraint.ascend(torch.tensor(0.0))
    assert float(constraint.multiplier) == 0.0
    rng = np.random.default_rng(6)
    x = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=4000)
    f, g = (torch.tensor(column, requires_grad=True) for column in x.T)
    constraint.multiplier.fill_(1.0)
    term, violation = constraint(f, g, torch.ones(4000, dtype=torch.float64))
    assert float(violation.detach()) > 1.0
    term.backward()
    # descending the term moves f and g against each other: it lowers the non-closure
    with torch.no_grad():
        _, after = constraint(
            f - 0.05 * f.grad / f.grad.abs().max(),
            g - 0.05 * g.grad / g.grad.abs().max(),
            torch.ones(4000, dtype=torch.float64),
        )
    assert float(after) < float(violation.detach())


def test_a_bad_closure_setting_names_its_key() -> None:
    with pytest.raises(ConfigError, match="quantiles"):
        load_run_config(
            {
                "data": {
                    "train": "x.parquet",
                    "inputs": {"jet": {"variables": ["jet_x0"]}},
                    "labels": {"classes": ["label_sig", "label_bkg"]},
                },
                "model": {"name": "mlp"},
                "training": {"step": {"name": "double_disco", "closure": {"quantiles": [0.5, 1.5]}}},
            }
        )


def test_the_closure_constraint_closes_the_abcd_estimate_without_disco(tmp_path: Path) -> None:
    """λ_DisCo = 0: the taggers alone fail closure (see above); the MDMM constraint alone restores it."""
    train_file = gaussian_events(tmp_path / "train.parquet", 8000, 1)
    test_file = gaussian_events(tmp_path / "test.parquet", 8000, 2)
    config = load_run_config(
        {
            "data": {
                "train": str(train_file),
                "inputs": {"jet": {"variables": [f"jet_x{i}" for i in range(4)]}},
                "labels": {"classes": ["label_sig", "label_bkg"]},
            },
            "model": {"name": "mlp", "preset": "small", "dropout": 0.0},
            "training": {
                "epochs": 5,
                "batch_size": 512,
                "seed": 2,
                "threads": 1,
                "learning_rate": 3e-3,
                "step": {"name": "double_disco", "strength": 0.0, "closure": {"epsilon": 0.2}},
            },
        }
    )
    result = train(config, name="closure", runs_dir=tmp_path / "runs", progress=False)
    assert {"train_non_closure", "train_closure_multiplier"} <= set(result.history[-1])
    estimate, auc = abcd_closure_on(result.run_dir, test_file)
    print(f"closure {estimate.closure:.3f}, pull {estimate.closure_pull:.2f}, AUC {auc:.4f}")
    assert abs(estimate.closure_pull) < 3  # without the constraint (λ = 0 above): pull < −10
    assert auc > 0.85  # still a tagger (the Bayes AUC of the toy is Φ(2.4/√2) = 0.955)
