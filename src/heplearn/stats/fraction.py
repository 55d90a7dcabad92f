"""The signal fraction of a mixture: f(x | α) = α f_S(x) + (1 − α) f_B(x), fitted to data.

- Unbinned (``fit_fraction``): the likelihood Π_i [α f_S(x_i) + (1 − α) f_B(x_i)] maximised by
  MINUIT (iminuit's ``UnbinnedNLL``), with f_S and f_B analytic, fine histograms or kernel
  densities of the templates (``heplearn.stats.templates``). σ(α) from HESSE, and the asymmetric
  MINOS interval.
- Binned (``fit_fraction_binned``): a Poisson likelihood on the templates in pyhf, the yields
  ν_S and ν_B free, with the templates' finite Monte-Carlo statistics as Barlow–Beeston terms
  (``staterror`` or ``shapesys``, as ROOT's TFractionFitter does); α = ν_S / (ν_S + ν_B).
- Expected σ(α) from the Fisher information (Cramér–Rao bound),
  I(α) = N ∫ (f_S − f_B)² / (α f_S + (1 − α) f_B) dx (a sum over bins when binned): the better
  the observable separates signal from background, the smaller σ(α).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from iminuit import Minuit
from iminuit.cost import UnbinnedNLL
from scipy.integrate import quad

from heplearn.errors import ConfigError, DataError, FitError
from heplearn.stats.model import ModelSettings, Parameter, Sample, build_workspace, model_and_data
from heplearn.stats.results import FitResult, fit
from heplearn.stats.templates import Density, Template, check_same_binning, check_template


@dataclass(frozen=True)
class FractionFit:
    """A fitted signal fraction: HESSE σ, and the MINOS interval when asked for (else ``None``)."""

    fraction: float
    uncertainty: float
    lower: float | None  # MINOS: α̂ − lower ... α̂ + upper is the ΔNLL = ½ interval
    upper: float | None
    events: float
    method: str  # "unbinned" or "binned"
    at_bound: bool = False  # α̂ on a bound: HESSE's σ is not meaningful, use the MINOS interval


def fit_fraction(
    data: np.ndarray,
    signal: Density,
    background: Density,
    start: float = 0.5,
    bounds: tuple[float, float] = (0.0, 1.0),
    minos: bool = False,
) -> FractionFit:
    """The unbinned maximum-likelihood signal fraction of ``data`` (unweighted values).

    ``signal`` and ``background`` are normalised densities (callables of an array). Data where both
    vanish (outside every template's range) make the likelihood zero: that is an error naming how
    many values, not a silent cut.
    """
    data = np.asarray(data, np.float64).ravel()
    data = data[~np.isnan(data)]
    if len(data) == 0:
        raise DataError("the data to fit are empty")
    low, high = bounds
    if not low < high or not low <= start <= high:
        raise ConfigError(f"fraction start {start} must lie inside bounds [{low}, {high}]")
    densities = np.vstack([signal(data), background(data)])
    if not np.all(np.isfinite(densities)) or np.any(densities < 0):
        raise DataError("the signal or background density is negative or not finite on the data")
    nowhere = int(np.sum((densities[0] <= 0) & (densities[1] <= 0)))
    if nowhere:
        raise DataError(
            f"{nowhere} of {len(data)} data values lie where both templates vanish "
            "(outside their range or in empty bins): widen the templates' binning"
        )

    def log_mixture(pair: np.ndarray, fraction: float) -> np.ndarray:
        with np.errstate(divide="ignore"):  # ln 0 = −∞ at a bound where one density vanishes
            return np.log(fraction * pair[0] + (1 - fraction) * pair[1])

    # the log-density form: numpy's vectorised log, 50× faster than iminuit's per-event one
    cost = UnbinnedNLL(densities, log_mixture, log=True)
    minuit = Minuit(cost, fraction=start)
    minuit.limits["fraction"] = bounds
    minuit.migrad()
    if not minuit.valid:
        raise FitError(f"the unbinned fraction fit did not converge (MINUIT: {minuit.fmin})")
    fraction = float(minuit.values["fraction"])
    at_bound = bool(np.isclose(fraction, low, atol=1e-6) or np.isclose(fraction, high, atol=1e-6))
    # HESSE with the bounds lifted: MINUIT's transform of a bounded parameter distorts the Hessian
    minuit.limits["fraction"] = (None, None)
    minuit.hesse()
    if not at_bound and not minuit.accurate:
        raise FitError(f"the fraction fit's covariance is not accurate (MINUIT: {minuit.fmin})")
    uncertainty = float(minuit.errors["fraction"])
    lower = upper = None
    if minos:
        minuit.limits["fraction"] = bounds
        minuit.minos("fraction")
        error = minuit.merrors["fraction"]
        if not error.is_valid and not (error.at_lower_limit or error.at_upper_limit):
            raise FitError(f"MINOS found no valid interval for the fraction ({error})")
        lower, upper = float(-error.lower), float(error.upper)
    return FractionFit(fraction, uncertainty, lower, upper, float(len(data)), "unbinned", at_bound)


def fit_fraction_binned(
    data: Template, signal: Template, background: Template, mc_statistics: str = "staterror"
) -> tuple[FractionFit, FitResult]:
    """The binned signal fraction of ``data`` with the templates' MC statistics (pyhf).

    The templates are normalised to the data's total, each with a free yield factor; α and its
    σ follow from the two fitted yields and their covariance. Returns the fraction and pyhf's fit.
    """
    check_template(data, "data")
    for template in (signal, background):
        check_template(template, "fraction fit")
    check_same_binning([signal, background, data], "fraction fit")
    events = data.total
    samples = [
        Sample(signal.scaled(events / signal.total), ("signal_yield",), lumi=False),
        Sample(background.scaled(events / background.total), ("background_yield",), lumi=False),
    ]
    settings = ModelSettings(
        poi="signal_yield",
        mc_statistics=mc_statistics,
        parameters=(Parameter("signal_yield", (0.0, 3.0), 0.5), Parameter("background_yield", (0.0, 3.0), 0.5)),
    )
    model, observed = model_and_data(build_workspace(samples, data, settings))
    result = fit(model, observed)
    return fraction_from_yields(result, ("signal_yield", events), ("background_yield", events), "binned"), result


def fraction_from_yields(
    result: FitResult, signal: tuple[str, float], background: tuple[str, float], method: str
) -> FractionFit:
    """α = ν_S / (ν_S + ν_B) from a fit where ν = (normfactor) × (nominal yield), σ(α) from the covariance.

    ``signal`` and ``background`` are (parameter name, nominal yield) pairs.
    """
    (signal_name, signal_yield), (background_name, background_yield) = signal, background
    nominal = np.array([signal_yield, background_yield])
    yields = np.array([result.value(signal_name), result.value(background_name)]) * nominal
    indices = [result.index(signal_name), result.index(background_name)]
    covariance = result.covariance[np.ix_(indices, indices)] * np.outer(nominal, nominal)
    total = yields.sum()
    if total <= 0:
        raise FitError("the fit returned no events at all: no fraction to report")
    fraction = yields[0] / total
    gradient = np.array([yields[1], -yields[0]]) / total**2  # ∂α/∂ν_S, ∂α/∂ν_B
    uncertainty = float(np.sqrt(gradient @ covariance @ gradient))
    return FractionFit(
        float(fraction),
        uncertainty,
        None,
        None,
        float(total),
        method,
        bool(np.isclose(fraction, 0.0) or np.isclose(fraction, 1.0)),
    )


def fisher_uncertainty(
    signal: Callable[[float], float],
    background: Callable[[float], float],
    fraction: float,
    events: float,
    domain: tuple[float, float] = (-np.inf, np.inf),
) -> float:
    """The Cramér–Rao σ(α) = 1/√I(α) of the unbinned fit, I(α) = N ∫ (f_S − f_B)²/f dx (scipy quad)."""

    def integrand(x: float) -> float:
        s, b = signal(x), background(x)
        total = fraction * s + (1 - fraction) * b
        return (s - b) ** 2 / total if total > 0 else 0.0

    information, _ = quad(integrand, *domain, limit=200)
    return float(1 / np.sqrt(events * information))


def binned_fisher_uncertainty(signal: Template, background: Template, fraction: float, events: float) -> float:
    """The Cramér–Rao σ(α) of the binned fit with exact templates: I(α) = N Σ_i (p_S,i − p_B,i)²/p_i."""
    check_same_binning([signal, background], "Fisher information")
    p_signal, p_background = signal.probabilities(), background.probabilities()
    mixture = fraction * p_signal + (1 - fraction) * p_background
    used = mixture > 0
    information = events * np.sum((p_signal[used] - p_background[used]) ** 2 / mixture[used])
    return float(1 / np.sqrt(information))
