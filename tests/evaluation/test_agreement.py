"""Agreement of two samples (issue 18: the domain-agreement figure of ``heplearn evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from scipy.stats import ks_2samp, norm

from heplearn.data import io
from heplearn.evaluation.agreement import agreement, binned, chi2_ndf
from heplearn.evaluation.evaluate import EvaluationSettings, evaluate_run
from heplearn.evaluation.plots import PlotStyle
from tests.evaluation.conftest import make_overlapping_jets

FAST = EvaluationSettings(style=PlotStyle(formats=("png",), dpi=50), bootstrap=20, importance=False)


def test_separation_auc_of_shifted_gaussians_is_the_analytic_value() -> None:
    rng = np.random.default_rng(3)
    reference, other = rng.normal(0, 1, 100_000), rng.normal(0.5, 1, 100_000)
    result = agreement(reference, other)
    assert result.separation_auc == pytest.approx(norm.cdf(0.5 / np.sqrt(2)), abs=0.004)  # 0.6382
    assert result.ks.statistic == pytest.approx(ks_2samp(reference, other).statistic)
    assert result.chi2_ndf > 50
    # the likelihood ratio of shifted Gaussians is monotonic in x: the best classifier is x itself
    assert result.classifier_auc == pytest.approx(norm.cdf(0.5 / np.sqrt(2)), abs=0.005)


def test_the_domain_classifier_sees_a_change_of_width_that_the_variable_alone_does_not() -> None:
    rng = np.random.default_rng(5)
    reference, other = rng.normal(0, 1, 100_000), rng.normal(0, 2, 100_000)
    result = agreement(reference, other, edges=np.linspace(-8, 8, 81))
    assert result.separation_auc == pytest.approx(0.5, abs=0.005)  # same mean: the ordering says nothing
    # the best classifier cuts on |x|: P(|Z₂| < 2|Z₁|) = (2/π)·arctan 2 = 0.7048
    assert result.classifier_auc == pytest.approx(2 / np.pi * np.arctan(2.0), abs=0.005)


def test_identical_distributions_agree_and_chi2_ndf_averages_one() -> None:
    rng = np.random.default_rng(4)
    values = [
        agreement(rng.normal(0, 1, 5000), rng.normal(0, 1, 5000), edges=np.linspace(-3, 3, 21)) for _ in range(40)
    ]
    assert np.mean([v.chi2_ndf for v in values]) == pytest.approx(1.0, abs=0.15)
    assert np.mean([v.separation_auc for v in values]) == pytest.approx(0.5, abs=0.005)
    # cross-validated: the ratio fitted on one half does not flatter the other half
    assert np.mean([v.classifier_auc for v in values]) == pytest.approx(0.5, abs=0.005)
    assert np.mean([v.ks.pvalue < 0.05 for v in values]) < 0.2


def clustered_sample(rng: np.random.Generator, jets: int) -> tuple[np.ndarray, np.ndarray]:
    """Particles in jets: each jet has 1 + Poisson(20) particles around its own offset, so the
    particles of one jet fall in the same bins together (as a jet's constituents do)."""
    counts = 1 + rng.poisson(20, jets)
    events = np.repeat(np.arange(jets), counts)
    values = rng.normal(0, 1, jets)[events] + rng.normal(0, 0.5, events.size)
    return values, events


def test_particles_of_one_jet_are_not_counted_as_independent_entries() -> None:
    """Two samples of the same jets: with the jets as the units, χ²/ndf of the particle
    histograms averages 1; counting particles as independent entries inflates it (here 3.6)."""
    rng = np.random.default_rng(8)
    edges = np.linspace(-3, 3, 21)
    clustered, naive = [], []
    for _ in range(40):
        (a, a_events), (b, b_events) = clustered_sample(rng, 2000), clustered_sample(rng, 2000)
        a_weight, b_weight = rng.uniform(0.5, 1.5, a.size), np.ones(b.size)
        clustered.append(chi2_ndf(binned(a, a_weight, edges, a_events), binned(b, b_weight, edges, b_events)))
        naive.append(chi2_ndf(binned(a, a_weight, edges), binned(b, b_weight, edges)))
    assert np.mean(clustered) == pytest.approx(1.0, abs=0.15)
    assert np.mean(naive) > 2.5
    # one entry per event: the grouped variance is the multinomial one, close to Σw² for small shares
    values = rng.normal(0, 1, 10_000)
    sums, variance = binned(values, np.ones(values.size), edges, np.arange(values.size))
    np.testing.assert_allclose(variance, sums * (1 - sums / sums.sum()), rtol=1e-9)


def test_weights_enter_every_figure() -> None:
    """N(0,1) weighted by the density ratio to N(0.5,1) agrees with a N(0.5,1) sample."""
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, 100_000)
    weight = np.exp(0.5 * reference - 0.125)
    other = rng.normal(0.5, 1, 100_000)
    unweighted, weighted = agreement(reference, other), agreement(reference, other, weight)
    assert weighted.separation_auc == pytest.approx(0.5, abs=0.006)
    assert unweighted.separation_auc == pytest.approx(0.638, abs=0.006)
    assert weighted.chi2_ndf < 3 < unweighted.chi2_ndf
    assert weighted.ks.pvalue > 1e-3 > unweighted.ks.pvalue


def _unlabelled(jets: ak.Array, path: Path, mass_scale: float = 1.0) -> str:
    """The jets without their labels (data), the soft-drop mass scaled as by another detector response."""
    fields = {name: jets[name] for name in jets.fields if not name.startswith("label_")}
    fields["jet_sdmass"] = jets["jet_sdmass"] * np.float32(mass_scale)
    return str(io.write(ak.zip(fields, depth_limit=1), path))


def test_evaluate_reports_the_score_on_another_domain(
    tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path
) -> None:
    jets = make_overlapping_jets(1200, seed=77)
    same = _unlabelled(jets, tmp_path / "same.parquet")
    shifted = _unlabelled(jets, tmp_path / "shifted.parquet", mass_scale=1.6)
    figures = {}
    for name, path in (("same", same), ("shifted", shifted)):
        result = evaluate_run(
            tagging_runs["bdt"],
            [tagging_files["test"]],
            tmp_path / name,
            settings=FAST,
            progress=False,
            domain_files=[path],
        )
        figures[name] = json.loads((tmp_path / name / "metrics.json").read_text())["domain_agreement"]
        assert figures[name]["jets"] == 1200 and figures[name]["files"] == [path]
        assert "domain_agreement.png" in {plot.name for plot in result.plots}
        assert "Domain agreement" in result.report.read_text()
    assert abs(figures["same"]["separation_auc"] - 0.5) < 0.04
    assert abs(figures["shifted"]["separation_auc"] - 0.5) > 2 * abs(figures["same"]["separation_auc"] - 0.5)
    assert figures["shifted"]["chi2_ndf"] > 2 * figures["same"]["chi2_ndf"]
    assert figures["same"]["ks_pvalue"] > 0.05 and figures["shifted"]["ks_pvalue"] < 1e-6
