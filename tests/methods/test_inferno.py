"""INFERNO (arXiv:1806.04743): the soft histogram, the profiled Asimov variance against analytic
answers, the Fisher bound of the paper's synthetic problem, and the term in a real training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from heplearn.errors import ConfigError, DataError
from heplearn.methods.inferno import (
    BENCHMARKS,
    AsimovModel,
    InfernoSettings,
    Nuisance,
    SummaryStatistic,
    Templates,
    benchmark_settings,
    binned_uncertainty,
    fisher_bound,
    network,
    network_bins,
    soft_histogram,
    synthetic_3d,
    train_inferno,
    with_variations,
)
from heplearn.run_config import LossTermConfig, TrainingConfig
from heplearn.tasks import Classification
from heplearn.training.losses import TermContext, build_terms


def test_soft_counts_become_the_hard_counts_as_the_temperature_goes_to_zero() -> None:
    logits = torch.from_numpy(np.random.default_rng(0).normal(size=(5000, 10)))
    top2 = logits.topk(2, dim=-1).values
    logits = logits[(top2[:, 0] - top2[:, 1]) > 0.01]  # a unique argmax, by a margin
    hard = torch.bincount(logits.argmax(-1), minlength=10).double()
    errors = [float((soft_histogram(logits, tau) - hard).abs().max()) for tau in (1.0, 0.1, 0.01, 1e-4)]
    assert errors[0] > 10  # a warm softmax spreads events over bins
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-9
    assert torch.equal(soft_histogram(logits, 0.0), hard)


def one_bin(
    signal: float,
    background: float,
    nuisances: list[Nuisance] | None = None,
    background_uncertainty: float | None = None,
) -> AsimovModel:
    flat = Templates(torch.ones(1, dtype=torch.float64), torch.ones((0, 1)), torch.ones((0, 1)))
    return AsimovModel(flat, flat, nuisances or [], signal, background, background_uncertainty)


def test_one_bin_counting_gives_sqrt_s_plus_b() -> None:
    assert math.sqrt(float(one_bin(50, 1000).poi_variance().detach())) == pytest.approx(math.sqrt(1050), rel=1e-9)
    assert math.sqrt(1050) == pytest.approx(32.4, abs=0.01)
    # a Gaussian-constrained background yield adds σ_b in quadrature: σ_s² = s + b + σ_b²
    assert float(one_bin(50, 1000, background_uncertainty=100).poi_variance().detach()) == pytest.approx(1050 + 100**2)


def test_the_term_on_a_one_output_network_gives_sqrt_s_plus_b() -> None:
    config = TrainingConfig(loss=[LossTermConfig(name="inferno", signal_yield=50, background_yield=1000)])
    task = SummaryStatistic(1)
    (term,) = build_terms(config.loss, task, TermContext(config))
    outputs = torch.randn(200, 1, requires_grad=True)
    batch = {"label": torch.tensor([0, 1] * 100), "weight": torch.ones(200)}
    assert math.sqrt(float(term(outputs, batch, task).detach())) == pytest.approx(32.40, abs=0.01)


def test_templates_interpolate_through_down_nominal_up() -> None:
    nominal, up, down = torch.tensor([0.5, 0.5]), torch.tensor([[0.6, 0.4]]), torch.tensor([[0.3, 0.7]])
    templates = Templates(nominal, up, down)
    steps = torch.tensor([0.2])
    assert torch.allclose(templates.at(torch.tensor([0.2]), steps), up[0])
    assert torch.allclose(templates.at(torch.tensor([-0.2]), steps), down[0])
    assert torch.allclose(templates.at(torch.tensor([0.0]), steps), nominal)


def test_the_hessian_sigma_matches_the_profile_likelihood_width() -> None:
    """σ from [H⁻¹]_ss against the ΔNLL = ½ crossing of the profile likelihood (nuisance
    minimised at each s) for a three-bin model with a shape nuisance: within 5% (methods §6c)."""
    signal = Templates(torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64), torch.zeros((0, 3)), torch.zeros((0, 3)))
    background = Templates(
        torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
        torch.tensor([[0.25, 0.3, 0.45]], dtype=torch.float64),
        torch.tensor([[0.16, 0.3, 0.54]], dtype=torch.float64),
    )
    model = AsimovModel(signal, background, [Nuisance("shape", 1.0, 1.0)], 50.0, 1000.0)
    sigma = math.sqrt(float(model.poi_variance().detach()))
    observed = model.expected(model.nominal_parameters()).detach()

    def profile(s: float) -> float:
        def nll(theta: float) -> float:
            return float(model.nll(torch.tensor([s, theta], dtype=torch.float64), observed))

        return scipy.optimize.minimize_scalar(nll, bounds=(-5, 5), method="bounded").fun

    minimum = profile(50.0)
    up = scipy.optimize.brentq(lambda s: profile(s) - minimum - 0.5, 50.0, 50.0 + 5 * sigma)
    down = scipy.optimize.brentq(lambda s: profile(s) - minimum - 0.5, 50.0 - 5 * sigma, 50.0)
    assert (up - down) / 2 == pytest.approx(sigma, rel=0.05)
    # the nuisance does cost: more than the no-nuisance σ
    assert sigma > math.sqrt(float(AsimovModel(signal, background, [], 50.0, 1000.0).poi_variance().detach())) * 1.05


@pytest.mark.parametrize(
    ("benchmark", "paper"), [("B0", 14.72), ("B1", 15.52), ("B2", 15.65), ("B3", 15.62), ("B4", 16.89)]
)
def test_fisher_bound_of_the_synthetic_problem(benchmark: str, paper: float) -> None:
    """The paper's "analytical likelihood" row (arXiv:1806.04743 Table 2): the Cramér–Rao bound of
    the unbinned extended likelihood, integrated here; ours lies 0.1% below the published numbers."""
    assert fisher_bound(benchmark, nodes=60) == pytest.approx(paper, rel=2e-3)


def test_the_optimal_classifier_in_ten_bins_on_b2() -> None:
    """The evaluation on a known statistic: the Bayes classifier p_s/(p_s + p_b) in ten uniform bins
    gives 24.93 on B2 in the paper (Table 2, "optimal classifier"); we get it within 3%."""
    events, label = synthetic_3d(100_000, 100_000, np.random.default_rng(1))
    settings = benchmark_settings("B2")
    rows = with_variations(events, label, settings.nuisances)
    x = rows["features"].astype(np.float64)
    signal = np.exp(-(x[:, 0] ** 2 + x[:, 1] ** 2) / 2) * 2 * np.exp(-2 * x[:, 2])
    background = np.exp(-((x[:, 0] - 2) ** 2) / 10 - x[:, 1] ** 2 / 18) / math.sqrt(45) * 3 * np.exp(-3 * x[:, 2])
    bins = np.clip((signal / (signal + background) * 10).astype(np.int64), 0, 9)
    sigma = binned_uncertainty(bins, rows["label"], rows["variation"], 10, settings)
    assert sigma == pytest.approx(24.93, rel=0.03)
    assert sigma > fisher_bound("B2", nodes=40)


def test_a_short_inferno_training_beats_the_untrained_network() -> None:
    settings = benchmark_settings("B2")
    events, label = synthetic_3d(3000, 3000, np.random.default_rng(0))
    test_events, test_label = synthetic_3d(10_000, 10_000, np.random.default_rng(7))
    test = with_variations(test_events, test_label, settings.nuisances)

    def sigma(model: torch.nn.Module) -> float:
        return binned_uncertainty(network_bins(model, test["features"]), test["label"], test["variation"], 10, settings)

    untrained = sigma(network(10, seed=0))
    trained = sigma(
        train_inferno(with_variations(events, label, settings.nuisances), settings, epochs=3, events_per_batch=2000)
    )
    assert trained < untrained - 2
    assert trained < 21.0  # below the cross-entropy classifier's ~24 on B2


@pytest.mark.slow
def test_inferno_reaches_the_paper_on_b2() -> None:
    """Acceptance (methods §6a): σ(s) on B2 ≤ 17.5 after training (paper median 16.95)."""
    settings = benchmark_settings("B2")
    events, label = synthetic_3d(20_000, 20_000, np.random.default_rng(0))
    model = train_inferno(with_variations(events, label, settings.nuisances), settings, epochs=20)
    test_events, test_label = synthetic_3d(100_000, 100_000, np.random.default_rng(7))
    test = with_variations(test_events, test_label, settings.nuisances)
    sigma = binned_uncertainty(network_bins(model, test["features"]), test["label"], test["variation"], 10, settings)
    assert sigma <= 17.5


def test_the_term_checks_its_task_and_its_batch() -> None:
    config = TrainingConfig(loss=[LossTermConfig(name="inferno", **benchmark_settings("B1").model_dump())])
    with pytest.raises(ConfigError, match="summary_statistic"):
        build_terms(config.loss, Classification(["s", "b"]), TermContext(config))
    task = SummaryStatistic(3)
    (term,) = build_terms(config.loss, task, TermContext(config))
    outputs, label = torch.randn(6, 3), torch.tensor([0, 1, 1, 1, 0, 1])
    with pytest.raises(ConfigError, match="observer 'variation'"):
        term(outputs, {"label": label, "weight": torch.ones(6)}, task)
    batch = {"label": label, "weight": torch.ones(6), "observer:variation": torch.tensor([0, 0, 2, -2, 0, 0])}
    with pytest.raises(DataError, match="variation codes up to ±2 for 1 nuisances"):
        term(outputs, batch, task)
    batch["observer:variation"] = torch.tensor([0, 0, 1, 0, 0, 0])
    with pytest.raises(DataError, match="only one of the up/down variations of nuisance 1"):
        term(outputs, batch, task)
    with pytest.raises(ConfigError, match="B7"):
        benchmark_settings("B7")


def test_every_benchmark_has_settings() -> None:
    for name in BENCHMARKS:
        assert isinstance(benchmark_settings(name), InfernoSettings)
