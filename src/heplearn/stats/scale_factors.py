"""Data/simulation scale factors of a tagger's working point, from template fits in pass and fail.

In a control sample the jets that pass the working point and those that fail it are two
categories (channels) of one HistFactory model; in each, the data's distribution of an observable
(the jet mass, say) is fitted with signal and background templates with free yields (and the
templates' MC statistics). The signal efficiency in data is the fitted passing yield over the
total, ε_data = ν_pass / (ν_pass + ν_fail), its σ from the fit's covariance; in simulation
ε_sim = N_pass / (N_pass + N_fail) with the binomial σ of the effective counts. The scale factor
SF = ε_data / ε_sim carries both (the tag-and-probe and template methods of CMS-BTV-16-002,
arXiv:1712.07158, §7). ``scale_factors_in_bins`` repeats it per bin of, e.g., the jet pT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heplearn.errors import ConfigError
from heplearn.stats.fraction import fraction_from_yields
from heplearn.stats.model import ModelSettings, Parameter, Sample, build_workspace, model_and_data
from heplearn.stats.results import fit
from heplearn.stats.templates import Template


@dataclass(frozen=True)
class Category:
    """The templates and the data of one category (the jets passing, or failing, the working point).

    ``signal_entries`` are the signal template's effective number of simulated jets (Σw)²/Σw², for
    the binomial uncertainty of ε_sim (default: its summed weight, unit-weight simulation).
    """

    signal: Template
    background: Template
    data: Template
    signal_entries: float | None = None


@dataclass(frozen=True)
class ScaleFactor:
    """ε in data and simulation and their ratio, with uncertainties (data: the fit; simulation: binomial)."""

    efficiency_data: float
    efficiency_data_uncertainty: float
    efficiency_simulation: float
    efficiency_simulation_uncertainty: float
    scale_factor: float
    uncertainty: float  # both in quadrature
    fit_uncertainty: float  # from the data fit alone


def _channel(category: Category, name: str, mc_statistics: str) -> dict[str, Any]:
    signal_yield, background_yield = f"signal_{name}", f"background_{name}"
    events = category.data.total
    settings = ModelSettings(
        poi=signal_yield,
        mc_statistics=mc_statistics,
        channel=name,
        parameters=(
            Parameter(signal_yield, (0.0, max(5.0, 5 * events / category.signal.total)), 1.0),
            Parameter(background_yield, (0.0, max(5.0, 5 * events / category.background.total)), 1.0),
        ),
    )
    samples = [
        Sample(category.signal.scaled(1.0, "signal"), (signal_yield,), lumi=False),
        Sample(category.background.scaled(1.0, "background"), (background_yield,), lumi=False),
    ]
    return build_workspace(samples, category.data, settings)


def measure_scale_factor(passing: Category, failing: Category, mc_statistics: str = "staterror") -> ScaleFactor:
    """The scale factor of one working point from the pass and fail categories (one pyhf fit of both)."""
    workspaces = [_channel(passing, "pass", mc_statistics), _channel(failing, "fail", mc_statistics)]
    parameters = [p for w in workspaces for p in w["measurements"][0]["config"]["parameters"]]
    workspace = {
        "channels": [c for w in workspaces for c in w["channels"]],
        "observations": [o for w in workspaces for o in w["observations"]],
        "measurements": [{"name": "scale_factor", "config": {"poi": "signal_pass", "parameters": parameters}}],
        "version": "1.0.0",
    }
    model, data = model_and_data(workspace)
    result = fit(model, data)
    simulated_pass, simulated_fail = passing.signal.total, failing.signal.total
    efficiency = fraction_from_yields(
        result, ("signal_pass", simulated_pass), ("signal_fail", simulated_fail), "pass/fail"
    )
    simulation = simulated_pass / (simulated_pass + simulated_fail)
    entries = (passing.signal_entries or simulated_pass) + (failing.signal_entries or simulated_fail)
    simulation_sigma = float(np.sqrt(simulation * (1 - simulation) / entries))
    ratio = efficiency.fraction / simulation
    fit_sigma = efficiency.uncertainty / simulation
    total_sigma = ratio * float(np.hypot(efficiency.uncertainty / efficiency.fraction, simulation_sigma / simulation))
    return ScaleFactor(
        efficiency.fraction, efficiency.uncertainty, simulation, simulation_sigma, ratio, total_sigma, fit_sigma
    )


@dataclass(frozen=True)
class BinnedScaleFactor:
    """A scale factor in one bin of a variable (e.g. jet pT in GeV)."""

    low: float
    high: float
    result: ScaleFactor


def scale_factors_in_bins(
    edges: Sequence[float], categories: Sequence[tuple[Category, Category]], mc_statistics: str = "staterror"
) -> list[BinnedScaleFactor]:
    """One scale factor per bin [edges[i], edges[i+1]) from that bin's (passing, failing) categories."""
    if len(categories) != len(edges) - 1:
        raise ConfigError(f"{len(edges) - 1} bins but {len(categories)} pairs of categories")
    return [
        BinnedScaleFactor(float(edges[i]), float(edges[i + 1]), measure_scale_factor(*pair, mc_statistics))
        for i, pair in enumerate(categories)
    ]
