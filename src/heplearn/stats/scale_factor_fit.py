"""``heplearn fit --working-point``: data/simulation scale factors of a tagger in bins of jet pT.

The inputs are tables (``heplearn predict`` outputs with the jets' columns, or any Parquet/ROOT
file) of three samples: simulated signal, simulated background and data, each with the tagger's
score, the observable fitted in the pass and fail categories (the soft-drop mass, say) and the
binned variable (jet pT). For every pT bin, jets with score ≥ the working point pass;
``heplearn.stats.scale_factors.measure_scale_factor`` fits the data's observable in pass and fail
with the simulated templates (one pyhf model) and returns ε_data, ε_sim and SF = ε_data / ε_sim
with the statistical uncertainty (the fit's and the simulation's binomial one).

Systematic uncertainties come from varied simulation (an alternative tune or detector scored the
same way): the SF is measured again with the varied templates and efficiencies, and each
variation's shift |SF_varied − SF| adds in quadrature (the template-variation method of
CMS-BTV-16-002, arXiv:1712.07158, §7). ``scale_factor_report`` writes ``scale_factors.json``,
the plot and ``report.html``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import effective_count
from heplearn.evaluation.plots import PlotStyle, save_figure
from heplearn.evaluation.report import embed_png, environment, jsonable, write_json, write_report
from heplearn.stats import plots
from heplearn.stats.scale_factors import BinnedScaleFactor, Category, ScaleFactor, measure_scale_factor
from heplearn.stats.templates import Binning, make_template, read_column


@dataclass(frozen=True)
class Jets:
    """Per jet: the tagger score, the fitted observable, the binned variable and the weight."""

    score: np.ndarray
    observable: np.ndarray
    variable: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        lengths = {len(self.score), len(self.observable), len(self.variable), len(self.weight)}
        if len(lengths) != 1:
            raise DataError(f"jets: the score, observable, variable and weight columns differ in length ({lengths})")

    def select(self, keep: np.ndarray) -> Jets:
        """The jets where ``keep`` is true."""
        return Jets(self.score[keep], self.observable[keep], self.variable[keep], self.weight[keep])


@dataclass(frozen=True)
class ScaleFactorInputs:
    """Simulated signal and background, data, and varied simulation (name -> (signal, background))."""

    signal: Jets
    background: Jets
    data: Jets
    systematics: Mapping[str, tuple[Jets | None, Jets | None]] = field(default_factory=dict)
    score: str = "score"
    observable: str = "observable"
    variable: str = "jet_pt"
    files: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ScaleFactorSettings:
    """The working point (score ≥ it passes), the variable's bin edges and the observable's binning."""

    working_point: float
    edges: tuple[float, ...]
    binning: Binning = field(default_factory=lambda: Binning(20, 0.0, 300.0))
    mc_statistics: str = "staterror"
    style: PlotStyle = field(default_factory=PlotStyle)


@dataclass(frozen=True)
class ScaleFactorRow:
    """One bin's SF: the measurement (statistical σ), each variation's shift, the systematic σ and the total."""

    low: float
    high: float
    result: ScaleFactor
    shifts: dict[str, float]
    systematic: float

    @property
    def total(self) -> float:
        """Statistical and systematic σ in quadrature."""
        return float(np.hypot(self.result.uncertainty, self.systematic))


def read_jets(
    files: Sequence[str | os.PathLike[str]], score: str, observable: str, variable: str, weight: str | None = None
) -> Jets:
    """The score, observable, variable (and weight) columns of ``files`` (globs expanded)."""
    score_values, weights = read_column(files, score, weight)
    return Jets(score_values, read_column(files, observable)[0], read_column(files, variable)[0], weights)


def scale_factor_inputs(
    signal_files: Sequence[str],
    background_files: Sequence[str],
    data_files: Sequence[str],
    score: str,
    observable: str,
    variable: str = "jet_pt",
    weight: str | None = None,
    systematics: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> ScaleFactorInputs:
    """The samples of a scale-factor measurement from files; ``systematics`` maps a name to the
    varied simulation's (signal, background) files (either may be empty: that side stays nominal)."""

    def jets(files: Sequence[str], use_weight: bool = True) -> Jets:
        return read_jets(files, score, observable, variable, weight if use_weight else None)

    varied = {
        name: (jets(signal) if signal else None, jets(background) if background else None)
        for name, (signal, background) in (systematics or {}).items()
    }
    files = {
        "simulated signal": list(signal_files),
        "simulated background": list(background_files),
        "data": list(data_files),
        **{f"systematic {name}": [*s, *b] for name, (s, b) in (systematics or {}).items()},
    }
    return ScaleFactorInputs(
        jets(signal_files),
        jets(background_files),
        jets(data_files, use_weight=False),
        varied,
        score,
        observable,
        variable,
        files,
    )


def _check(settings: ScaleFactorSettings) -> None:
    edges = np.asarray(settings.edges, np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"scale factors: the bin edges must increase, got {list(settings.edges)}")
    if not np.isfinite(settings.working_point):
        raise ConfigError(f"scale factors: the working point must be a number, got {settings.working_point}")


def _categories(
    signal: Jets, background: Jets, data: Jets, settings: ScaleFactorSettings, where: str
) -> tuple[Category, Category]:
    """The (passing, failing) categories of one bin of the variable."""
    made = []
    for passing in (True, False):
        name = "pass" if passing else "fail"
        selected = [
            jets.select((jets.score >= settings.working_point) == passing) for jets in (signal, background, data)
        ]
        for jets, sample in zip(selected, ("simulated signal", "simulated background", "data"), strict=True):
            if len(jets.score) == 0:
                raise DataError(
                    f"scale factors, {where}: no {sample} jets {name} the working point "
                    f"{settings.working_point:g}; choose wider bins or another working point"
                )
        templates = [
            make_template(jets.observable, jets.weight, settings.binning, sample)
            for jets, sample in zip(selected, ("signal", "background", "data"), strict=True)
        ]
        made.append(Category(*templates, signal_entries=effective_count(selected[0].weight)))
    return made[0], made[1]


def measure_scale_factors(inputs: ScaleFactorInputs, settings: ScaleFactorSettings) -> list[ScaleFactorRow]:
    """The SF in every bin of the variable, with each variation's shift and the systematic σ."""
    _check(settings)
    rows = []
    for low, high in zip(settings.edges[:-1], settings.edges[1:], strict=True):
        where = f"{inputs.variable} in [{low:g}, {high:g})"

        def in_bin(jets: Jets, low: float = low, high: float = high) -> Jets:
            return jets.select((jets.variable >= low) & (jets.variable < high))

        signal, background, data = in_bin(inputs.signal), in_bin(inputs.background), in_bin(inputs.data)
        nominal = measure_scale_factor(*_categories(signal, background, data, settings, where), settings.mc_statistics)
        shifts = {}
        for name, (varied_signal, varied_background) in inputs.systematics.items():
            varied = measure_scale_factor(
                *_categories(
                    in_bin(varied_signal) if varied_signal is not None else signal,
                    in_bin(varied_background) if varied_background is not None else background,
                    data,
                    settings,
                    f"{where}, systematic {name!r}",
                ),
                settings.mc_statistics,
            )
            shifts[name] = varied.scale_factor - nominal.scale_factor
        systematic = float(np.sqrt(sum(shift**2 for shift in shifts.values())))
        rows.append(ScaleFactorRow(float(low), float(high), nominal, shifts, systematic))
    return rows


@dataclass
class ScaleFactorOutcome:
    """The measured rows and the files written."""

    rows: list[ScaleFactorRow]
    metrics: dict[str, Any]
    output: Path
    report: Path


def scale_factor_report(
    inputs: ScaleFactorInputs, output: str | os.PathLike[str], settings: ScaleFactorSettings
) -> ScaleFactorOutcome:
    """Measure the scale factors and write ``scale_factors.json``, the plot and ``report.html`` in ``output``."""
    rows = measure_scale_factors(inputs, settings)
    output = Path(output)
    (output / "plots").mkdir(parents=True, exist_ok=True)
    metrics = jsonable(
        {
            "score": inputs.score,
            "observable": inputs.observable,
            "variable": inputs.variable,
            "working_point": settings.working_point,
            "edges": list(settings.edges),
            "observable_edges": settings.binning.axis().edges,
            "systematics": sorted(inputs.systematics),
            "mc_statistics": settings.mc_statistics,
            "bins": [
                {
                    "low": row.low,
                    "high": row.high,
                    "scale_factor": row.result.scale_factor,
                    "statistical": row.result.uncertainty,
                    "fit": row.result.fit_uncertainty,
                    "systematic": row.systematic,
                    "total": row.total,
                    "shifts": row.shifts,
                    "efficiency_data": row.result.efficiency_data,
                    "efficiency_data_uncertainty": row.result.efficiency_data_uncertainty,
                    "efficiency_simulation": row.result.efficiency_simulation,
                    "efficiency_simulation_uncertainty": row.result.efficiency_simulation_uncertainty,
                }
                for row in rows
            ],
        }
    )
    write_json(output / "scale_factors.json", metrics)
    # the plot's SF error bars: statistical and systematic in quadrature
    binned = [BinnedScaleFactor(row.low, row.high, replace(row.result, uncertainty=row.total)) for row in rows]
    paths = save_figure(
        plots.plot_scale_factors(binned, settings.style, _axis_label(inputs.variable)),
        output / "plots",
        "scale_factors",
        settings.style,
    )
    png = next((path for path in paths if path.suffix == ".png"), None)
    figure = {
        "stem": "scale_factors",
        "title": "Scale factors",
        "caption": f"Signal efficiency of {inputs.score} ≥ {settings.working_point:g} in data (pass/fail fit "
        f"of {inputs.observable}) and simulation, and SF = ε_data / ε_sim with the statistical "
        "and systematic uncertainties in quadrature.",
        "uri": embed_png(png) if png else "",
        "files": [f"plots/{path.name}" for path in paths],
    }
    classes = [
        {
            "name": name,
            "jets": len(jets.score),
            "weight": float(jets.weight.sum()),
            "effective_jets": effective_count(jets.weight),
        }
        for name, jets in (
            ("simulated signal", inputs.signal),
            ("simulated background", inputs.background),
            ("data", inputs.data),
        )
    ]
    context = {
        **metrics,
        "environment": environment(),
        "data": {
            "files": [f for group in inputs.files.values() for f in group],
            "jets": len(inputs.data.score),
            "classes": classes,
            "selection": None,
            "weights": None,
            "observers": {},
            "inputs": {},
        },
    }
    report = write_report(
        output / "report.html",
        "scale_factors.html.j2",
        {"title": f"Scale factors: {inputs.score} ≥ {settings.working_point:g}", "m": context, "plots": [figure]},
    )
    return ScaleFactorOutcome(rows, metrics, output, report)


def _axis_label(variable: str) -> str:
    return r"Jet $p_\mathrm{T}$ [GeV]" if variable in {"jet_pt", "pt", "FatJet_pt", "Jet_pt"} else variable


def summary_line(outcome: ScaleFactorOutcome) -> str:
    """One line per bin: SF ± stat ± syst."""
    return "\n".join(
        f"SF [{row.low:g}, {row.high:g}): {row.result.scale_factor:.3f} ± {row.result.uncertainty:.3f} "
        f"(stat.) ± {row.systematic:.3f} (syst.)"
        for row in outcome.rows
    )
