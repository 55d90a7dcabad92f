"""HistFactory models and pyhf's answers about them, against closed-form known answers.

Counting experiments (Cowan, Cranmer, Gross & Vitells, arXiv:1007.1727): σ_μ = √(s+b)/s at μ = 1,
the Asimov discovery significance √(2[(s+b) ln(1+s/b) − s]) (0.9840 for s = 10, b = 100), and the
median CLs limit where the background-only Asimov q_μ,A = 2[μs − b ln(1 + μs/b)] reaches
Φ⁻¹(0.975)².
"""

from __future__ import annotations

import json
from pathlib import Path

import hist
import numpy as np
import pyhf
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from heplearn.errors import ConfigError, DataError, FitError
from heplearn.evaluation.significance import asimov_significance
from heplearn.stats.model import (
    ModelSettings,
    Parameter,
    Sample,
    Systematic,
    build_workspace,
    model_and_data,
    read_workspace,
    write_workspace,
)
from heplearn.stats.results import discovery, fit, impacts, profile_scan, pulls, scan_interval, upper_limit
from heplearn.stats.templates import Template

PLAIN = ModelSettings(mc_statistics="none")


def counts(values: list[float], name: str, variances: list[float] | None = None) -> Template:
    """A template with these bin contents (and variances, default: the contents)."""
    histogram = hist.Hist(hist.axis.Regular(len(values), 0, 1), storage=hist.storage.Weight())
    histogram.view()["value"] = values
    histogram.view()["variance"] = values if variances is None else variances
    return Template(name, histogram, int(sum(values)))


def counting_model(s: float, b: float, n: float, **background: object) -> tuple[pyhf.pdf.Model, list[float]]:
    samples = [
        Sample(counts([s], "signal"), ("mu",), lumi=False, mc_statistics=False),
        Sample(counts([b], "background"), lumi=False, mc_statistics=False, **background),
    ]  # type: ignore[arg-type]
    return model_and_data(build_workspace(samples, [n], PLAIN))


def normalisation_model(
    signal: list[float],
    background: list[float],
    observed: list[float],
) -> tuple[pyhf.pdf.Model, list[float]]:
    """Signal with μ, background with a 10% normalisation uncertainty, no MC statistics."""
    samples = [
        Sample(counts(signal, "signal"), ("mu",), lumi=False, mc_statistics=False),
        Sample(
            counts(background, "background"),
            lumi=False,
            mc_statistics=False,
            systematics=(Systematic("background_norm", normalisation=(0.9, 1.1)),),
        ),
    ]
    return model_and_data(build_workspace(samples, observed, PLAIN))


def test_one_bin_counting_gives_sqrt_s_plus_b_over_s() -> None:
    s, b = 10.0, 100.0
    result = fit(*counting_model(s, b, s + b))
    assert result.value() == pytest.approx(1.0, abs=1e-4)
    assert result.uncertainty() == pytest.approx(np.sqrt(s + b) / s, rel=1e-3)  # 1.0488


def test_asimov_discovery_significance_is_0_9840() -> None:
    s, b = 10.0, 100.0
    closed_form = np.sqrt(2 * ((s + b) * np.log(1 + s / b) - s))
    assert closed_form == pytest.approx(0.9840, abs=5e-5)
    result = discovery(*counting_model(s, b, s + b))  # the Asimov data set of μ = 1
    assert result.observed_z == pytest.approx(closed_form, abs=5e-4)
    assert result.expected_z == pytest.approx(closed_form, abs=5e-4)
    # the evaluation report's Z_A is the same number
    assert float(asimov_significance(s, b)) == pytest.approx(result.observed_z, abs=5e-4)


def test_hessian_and_likelihood_scan_agree_for_a_near_gaussian_model() -> None:
    # two bins, a background normalisation uncertainty constrained by the signal-free bin
    model, data = normalisation_model([0.0, 100.0], [1000.0, 1000.0], [1000.0, 1100.0])
    result = fit(model, data)
    scan = profile_scan(model, data, "mu", np.linspace(0.0, 2.0, 81), result)
    low, high = scan_interval(scan)
    assert (high - low) / 2 == pytest.approx(result.uncertainty(), rel=0.05)
    assert scan.delta_nll.min() > -1e-6


def test_pulls_and_impacts_of_a_constrained_normalisation() -> None:
    # bin 1 measures the background 5% above nominal with 3.16% statistical precision; the prior is 10%:
    # Gaussian combination: θ̂ = 0.5 · 0.1² / (0.1² + 0.0316²) = 0.455, σ̂/σ_prior = 0.0316 / √(0.1² + 0.0316²) = 0.302
    model, data = normalisation_model([0.0, 50.0], [1000.0, 100.0], [1050.0, 155.0])
    result = fit(model, data)
    (pull,) = pulls(model, result)
    assert pull.name == "background_norm"
    assert pull.pull == pytest.approx(0.455, rel=0.05)
    assert pull.constraint == pytest.approx(0.302, rel=0.05)
    (impact,) = impacts(model, data, result)
    # moving θ by +σ̂ raises the background in bin 2 by ≈ 100 · 0.1 · σ̂, which μ gives back: Δμ ≈ −0.060
    assert impact.up == pytest.approx(-100 * 0.1 * 0.302 / 50, rel=0.1)
    assert impact.down == pytest.approx(-impact.up, rel=0.1)


def test_two_parameter_scan_has_its_minimum_at_the_best_fit() -> None:
    model, data = normalisation_model([0.0, 50.0], [1000.0, 100.0], [1000.0, 150.0])
    result = fit(model, data)
    scan = profile_scan(
        model, data, ("mu", "background_norm"), (np.linspace(0.6, 1.4, 5), np.linspace(-1, 1, 5)), result
    )
    assert scan.delta_nll.shape == (5, 5)
    assert scan.delta_nll[2, 2] == pytest.approx(0.0, abs=1e-3)  # (μ̂, θ̂) = (1, 0) on the grid
    assert scan.delta_nll.min() > -1e-6
    # along θ = 0 the 2-D scan is the profile in μ with θ fixed: ΔNLL(μ) ≈ ½ ((μ − 1) s)² / (s + b)
    assert scan.delta_nll[0, 2] == pytest.approx(0.5 * (0.4 * 50) ** 2 / 150, rel=0.1)


def test_cls_limit_of_a_counting_experiment_matches_the_asymptotic_formula() -> None:
    s, b = 10.0, 100.0

    def asimov_limit(band: float) -> float:
        """The limit of the expected band ``band`` (σ units): √q_μ,A(μ) = Φ⁻¹(1 − 0.05 Φ(band)) + band.

        q_μ,A = 2[μs − b ln(1 + μs/b)] on the background-only Asimov data; for band = 0 the CLs
        median is p_μ = 0.025 (arXiv:1007.1727, Eqs. 87–89 with CLs = p_μ / (1 − p_b)).
        """
        target = (norm.isf(0.05 * norm.cdf(band)) + band) ** 2
        return brentq(lambda mu: 2 * (mu * s - b * np.log1p(mu * s / b)) - target, 1e-3, 100)

    assert asimov_limit(0.0) == pytest.approx(2.090, abs=0.001)
    limit = upper_limit(*counting_model(s, b, b), scan=np.linspace(0.5, 5.0, 91))
    assert limit.observed == pytest.approx(asimov_limit(0.0), rel=0.005)  # n = b: observed is the median
    reference = [asimov_limit(band) for band in (-2, -1, 0, 1, 2)]
    np.testing.assert_allclose(limit.expected, reference, rtol=0.01)


def test_histosys_from_varied_templates_and_a_workspace_that_pyhf_reads(tmp_path: Path) -> None:
    nominal = counts([100.0, 50.0, 10.0], "background")
    up = counts([90.0, 55.0, 14.0], "background")
    samples = [
        Sample(counts([1.0, 5.0, 10.0], "signal"), ("mu",)),
        Sample(nominal, systematics=(Systematic("tune", up=up), Systematic("xsec", normalisation=(0.95, 1.05)))),
    ]
    workspace = build_workspace(samples, [101.0, 56.0, 20.0], ModelSettings(lumi_uncertainty=0.02))
    modifiers = {m["name"]: m for m in workspace["channels"][0]["samples"][1]["modifiers"]}
    assert modifiers["tune"]["data"] == {"hi_data": [90.0, 55.0, 14.0], "lo_data": [110.0, 45.0, 6.0]}  # mirrored
    assert modifiers["xsec"]["data"] == {"hi": 1.05, "lo": 0.95}
    assert {"lumi", "staterror_score"} <= set(modifiers)
    path = tmp_path / "workspace.json"
    write_workspace(workspace, path)
    assert json.loads(path.read_text()) == workspace
    again = pyhf.Workspace(read_workspace(path))
    model = again.model()
    assert set(model.config.par_names) >= {"mu", "tune", "xsec", "lumi"}
    result = fit(*model_and_data(workspace))
    assert np.isfinite(result.uncertainty())


def test_bad_models_are_refused() -> None:
    signal, background = counts([1.0, 2.0], "signal"), counts([10.0, 10.0], "background")
    with pytest.raises(ConfigError, match="other binning"):
        build_workspace([Sample(signal, ("mu",)), Sample(counts([1.0, 2.0, 3.0], "background"))], [1, 1, 1])
    with pytest.raises(DataError, match="negative yields"):
        build_workspace([Sample(signal, ("mu",)), Sample(counts([10.0, -1.0], "background"))], [1, 1])
    with pytest.raises(DataError, match=r"'background'.*is empty"):
        build_workspace([Sample(signal, ("mu",)), Sample(counts([0.0, 0.0], "background"))], [1, 1])
    with pytest.raises(ConfigError, match="other binning"):
        build_workspace(
            [
                Sample(signal, ("mu",)),
                Sample(background, systematics=(Systematic("tune", up=counts([1.0], "background")),)),
            ],
            [1, 1],
        )
    with pytest.raises(ConfigError, match="parameter of interest 'mu'"):
        build_workspace([Sample(signal), Sample(background)], [1, 1])
    with pytest.raises(ConfigError, match="outside its bounds"):
        build_workspace(
            [Sample(signal, ("mu",)), Sample(background)],
            [1, 1],
            ModelSettings(parameters=(Parameter("mu", (0, 10), 20),)),
        )
    model, data = counting_model(10.0, 100.0, 110.0)
    with pytest.raises(ConfigError, match="outside its bounds"):
        fit(model, data, fixed={"mu": 11.0})


def test_a_fit_that_fails_is_an_error_not_a_number() -> None:
    model, _ = counting_model(10.0, 100.0, 110.0)
    with pytest.raises(FitError, match="did not converge"):
        fit(model, [float("nan")])


def test_postfit_yields_follow_pyhf_sample_order() -> None:
    from heplearn.stats.fitting import postfit_yields

    # pyhf orders samples by name: "background" before "signal", whatever order they were given in
    model, data = normalisation_model([0.0, 50.0], [1000.0, 100.0], [1000.0, 160.0])
    assert model.config.samples == ["background", "signal"]
    result = fit(model, data)
    by_sample, sigma = postfit_yields(model, result)
    signal = by_sample[model.config.samples.index("signal")]
    np.testing.assert_allclose(signal, np.array([0.0, 50.0]) * result.value(), rtol=1e-6)
    assert np.all(sigma > 0)
