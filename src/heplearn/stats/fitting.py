"""``heplearn fit``: the signal fraction and signal strength of "data" from a tagger's templates.

The inputs are the values of one observable (a run's score, or any column) for three samples:
signal and background (the templates) and the data, plus the same samples under systematic
variations (an alternative tune or detector, scored by the same run). They come from a run
applied in memory to labelled jets (``inputs_from_run``) or from ``heplearn predict`` outputs
(``inputs_from_score_files``). ``fit_inputs`` then

1. fits the fraction α unbinned (iminuit, fine-histogram densities of the templates) and binned
   (pyhf, Barlow–Beeston MC statistics), beside the Cramér–Rao expectation for this observable;
2. builds the HistFactory model: signal α₀N·p_S × μ (α₀ the expected fraction), background
   (1 − α₀)N·p_B with a free normalisation (or a ``normsys`` when its uncertainty is given),
   a shape-only ``histosys`` per variation, the luminosity and the MC statistics, written as
   ``workspace.json`` (and ``workspace_stat_only.json`` without the variations);
3. reads from pyhf the best fit, the μ profile with and without systematics, the 2-D profile of μ
   and the background normalisation, pulls and impacts, q₀ and the CLs limit;
4. writes ``results.json``, the plots and ``report.html``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pyhf

from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import effective_count
from heplearn.evaluation.plots import PlotStyle, save_figure
from heplearn.evaluation.report import embed_png, environment, jsonable, write_json, write_report
from heplearn.stats import plots
from heplearn.stats.fraction import (
    FractionFit,
    binned_fisher_uncertainty,
    fit_fraction,
    fit_fraction_binned,
    fraction_from_yields,
)
from heplearn.stats.model import (
    ModelSettings,
    Parameter,
    Sample,
    Systematic,
    build_workspace,
    model_and_data,
    used_bins,
    write_workspace,
)
from heplearn.stats.results import (
    Discovery,
    FitResult,
    Impact,
    Pull,
    Scan,
    UpperLimit,
    discovery,
    fit,
    impacts,
    profile_scan,
    pulls,
    scan_interval,
    upper_limit,
)
from heplearn.stats.templates import Binning, Template, histogram_density, make_template, merge_sparse_bins, read_column

log = logging.getLogger(__name__)

FINE_BINS = 200  # bins of the template densities of the unbinned fit (sparse ones merged)
BACKGROUND_NORM = "background_norm"


@dataclass(frozen=True)
class Values:
    """One sample's observable values and weights."""

    values: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        keep = ~np.isnan(np.asarray(self.values, np.float64))
        object.__setattr__(self, "values", np.asarray(self.values, np.float64)[keep])
        object.__setattr__(self, "weights", np.asarray(self.weights, np.float64)[keep])


@dataclass(frozen=True)
class FitInputs:
    """The three samples of a fit, their variations (name -> (signal, background)) and where they came from."""

    signal: Values
    background: Values
    data: Values
    systematics: Mapping[str, tuple[Values | None, Values | None]] = field(default_factory=dict)
    signal_name: str = "signal"
    background_name: str = "background"
    observable: str = "Tagger score"
    true_fraction: float | None = None  # when the data carry labels (a generated mixture)
    files: Mapping[str, list[str]] = field(default_factory=dict)
    # the −1σ samples of some of the variations (name -> (signal, background)); without one, the +1σ is mirrored
    systematics_down: Mapping[str, tuple[Values | None, Values | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.systematics_down) - set(self.systematics))
        if unknown:
            raise ConfigError(f"systematic(s) {', '.join(unknown)}: a −1σ sample needs the +1σ one of the same name")


@dataclass(frozen=True)
class FitSettings:
    """How ``heplearn fit`` bins, models and reports."""

    binning: Binning = field(default_factory=lambda: Binning(20, 0.0, 1.0))
    expected_fraction: float | None = None  # α₀ of μ = α/α₀; None: the binned stat-only fraction
    background_uncertainty: float | None = None  # None: the background normalisation floats freely
    lumi_uncertainty: float = 0.0
    mc_statistics: str = "staterror"
    min_entries: int = 10  # simulated events per bin and sample, at least (sparse bins are merged)
    poi_bounds: tuple[float, float] = (0.0, 10.0)
    scan_points: int = 21  # of each μ profile; the 2-D profile takes ⌈scan_points / 3⌉² points
    limit_points: int = 8  # CLs points in each of the two ranges of the limit scan (then 5 around each limit)
    scan_2d: bool = True
    unbinned: bool = True
    limit: bool = True
    impacts: bool = True
    discovery: bool = True  # the discovery test q₀ (its background-only fit)
    style: PlotStyle = field(default_factory=PlotStyle)


@dataclass
class FitOutcome:
    """Everything ``fit_inputs`` found, and the files it wrote."""

    unbinned: FractionFit | None
    binned: FractionFit
    expected_uncertainty: float  # Cramér–Rao σ(α) of the binned fit at the fitted α
    fraction: FractionFit  # from the full model (with systematics)
    stat_only: FitResult
    full: FitResult
    scans: dict[str, Scan]
    scan_2d: Scan | None
    pulls: list[Pull]
    impacts: list[Impact]
    discovery: Discovery | None
    limit: UpperLimit | None
    metrics: dict[str, Any]
    output: Path
    report: Path


def _template(values: Values, settings: FitSettings, name: str, label: str) -> Template:
    return make_template(values.values, values.weights, settings.binning, name, label)


def _shape_only(variation: Template, nominal: Template) -> Template:
    """A variation scaled to the nominal's yield: independent samples' sizes carry no physics."""
    if variation.total <= 0:
        raise DataError(f"the variation of {nominal.name!r} is empty inside the binning")
    return variation.scaled(nominal.total / variation.total, nominal.name)


def _samples(
    inputs: FitInputs,
    settings: FitSettings,
    signal: Template,
    background: Template,
    fraction: float,
    events: float,
    with_systematics: bool,
) -> list[Sample]:
    signal_nominal = signal.scaled(fraction * events / signal.total)
    background_nominal = background.scaled((1 - fraction) * events / background.total)
    signal_systematics: list[Systematic] = []
    background_systematics: list[Systematic] = []

    def shape(values: Values | None, sample_name: str, nominal: Template) -> Template | None:
        if values is None:
            return None
        return _shape_only(_template(values, settings, sample_name, inputs.observable), nominal)

    for name, (signal_up, background_up) in inputs.systematics.items() if with_systematics else ():
        signal_down, background_down = inputs.systematics_down.get(name, (None, None))
        if signal_up is not None:
            signal_systematics.append(
                Systematic(
                    name,
                    up=shape(signal_up, inputs.signal_name, signal_nominal),
                    down=shape(signal_down, inputs.signal_name, signal_nominal),
                )
            )
        if background_up is not None:
            background_systematics.append(
                Systematic(
                    name,
                    up=shape(background_up, inputs.background_name, background_nominal),
                    down=shape(background_down, inputs.background_name, background_nominal),
                )
            )
    background_factors: tuple[str, ...] = (BACKGROUND_NORM,)
    if settings.background_uncertainty is not None:
        sigma = settings.background_uncertainty
        background_systematics.append(Systematic(BACKGROUND_NORM, normalisation=(1 - sigma, 1 + sigma)))
        background_factors = ()
    return [
        Sample(signal_nominal, ("mu",), tuple(signal_systematics)),
        Sample(background_nominal, background_factors, tuple(background_systematics)),
    ]


def _model_settings(settings: FitSettings) -> ModelSettings:
    parameters = [Parameter("mu", settings.poi_bounds, 1.0)]
    if settings.background_uncertainty is None:
        parameters.append(Parameter(BACKGROUND_NORM, (0.0, 5.0), 1.0))
    return ModelSettings(
        parameters=tuple(parameters), lumi_uncertainty=settings.lumi_uncertainty, mc_statistics=settings.mc_statistics
    )


def _check_settings(settings: FitSettings) -> None:
    low, high = settings.poi_bounds
    if not low < 1.0 < high:
        raise ConfigError(f"the POI bounds [{low}, {high}] must contain the nominal μ = 1")
    if settings.expected_fraction is not None and not 0 < settings.expected_fraction < 1:
        raise ConfigError(f"the expected signal fraction must lie in (0, 1), got {settings.expected_fraction}")
    if settings.background_uncertainty is not None and not 0 < settings.background_uncertainty < 1:
        raise ConfigError(f"the background uncertainty must lie in (0, 1), got {settings.background_uncertainty}")
    if settings.scan_points < 5:
        raise ConfigError(f"a scan needs at least 5 points, got {settings.scan_points}")


def fit_inputs(
    inputs: FitInputs, output: str | os.PathLike[str], settings: FitSettings | None = None, progress: bool = True
) -> FitOutcome:
    """Fit the data of ``inputs`` and write the workspace, results, plots and report into ``output``."""
    settings = settings or FitSettings()
    _check_settings(settings)
    output = Path(output)
    (output / "plots").mkdir(parents=True, exist_ok=True)
    label = inputs.observable
    # bins without simulated events of a sample, but with data, would make the likelihood zero
    edges = merge_sparse_bins(
        settings.binning.axis().edges, [inputs.signal.values, inputs.background.values], settings.min_entries
    )
    if len(edges) != len(settings.binning.axis().edges):
        log.info("merged sparse bins: %d bins left of %d", len(edges) - 1, len(settings.binning.axis().edges) - 1)
    settings = replace(settings, binning=Binning(edges=tuple(edges)))
    signal = _template(inputs.signal, settings, inputs.signal_name, label)
    background = _template(inputs.background, settings, inputs.background_name, label)
    data = _template(inputs.data, settings, "data", label)

    unbinned = None
    if settings.unbinned:
        if not np.allclose(inputs.data.weights, 1.0):
            raise ConfigError("the unbinned fit takes unweighted data; weighted data: fit binned (--no-unbinned)")
        low, high = data.edges[[0, -1]]
        fine = Binning(
            edges=tuple(
                merge_sparse_bins(
                    Binning(FINE_BINS, low, high).axis().edges,
                    [inputs.signal.values, inputs.background.values],
                    settings.min_entries,
                )
            )
        )
        inside = (inputs.data.values >= low) & (inputs.data.values <= high)
        unbinned = fit_fraction(
            inputs.data.values[inside],
            histogram_density(make_template(inputs.signal.values, inputs.signal.weights, fine)),
            histogram_density(make_template(inputs.background.values, inputs.background.weights, fine)),
            minos=True,
        )
    binned, _ = fit_fraction_binned(data, signal, background, settings.mc_statistics)
    expected_sigma = binned_fisher_uncertainty(signal, background, binned.fraction, data.total)

    fraction = settings.expected_fraction or binned.fraction
    events = data.total
    model_settings = _model_settings(settings)
    workspaces = {}
    for name, with_systematics in (("stat_only", False), ("full", True)):
        samples = _samples(inputs, settings, signal, background, fraction, events, with_systematics)
        workspaces[name] = (build_workspace(samples, data, model_settings), samples)
    write_workspace(workspaces["full"][0], output / "workspace.json")
    write_workspace(workspaces["stat_only"][0], output / "workspace_stat_only.json")

    results: dict[str, FitResult] = {}
    scans: dict[str, Scan] = {}
    models = {}
    for name, (workspace, _) in workspaces.items():
        model, observed = model_and_data(workspace)
        models[name] = (model, observed)
        results[name] = fit(model, observed)
        center, sigma = results[name].value(), results[name].uncertainty()
        grid = np.linspace(
            max(settings.poi_bounds[0], center - 3 * sigma),
            min(settings.poi_bounds[1], center + 3 * sigma),
            settings.scan_points,
        )
        scans["stat. only" if name == "stat_only" else "stat. + syst."] = profile_scan(
            model, observed, "mu", grid, results[name], progress=progress
        )
    model, observed = models["full"]
    full = results["full"]
    background_parameter = (BACKGROUND_NORM, (1 - fraction) * events)
    fraction_fit = fraction_from_yields(full, ("mu", fraction * events), background_parameter, "binned, full model")
    scan_2d = None
    if settings.scan_2d and settings.background_uncertainty is None:
        index, points = full.index(BACKGROUND_NORM), -(-settings.scan_points // 3)
        grids = [
            np.linspace(*_window(full.value(), full.uncertainty(), settings.poi_bounds), points),
            np.linspace(*_window(full.values[index], full.uncertainties[index], (0.0, 5.0)), points),
        ]
        scan_2d = profile_scan(model, observed, ("mu", BACKGROUND_NORM), grids, full, progress=progress)
    nuisance_pulls = pulls(model, full)
    nuisance_impacts = (
        impacts(model, observed, full, skip=("staterror", "shapesys"), progress=progress) if settings.impacts else []
    )
    significance = discovery(model, observed) if settings.discovery else None
    limit = (
        upper_limit(model, observed, _limit_scan(full, settings), refine=5, progress=progress)
        if settings.limit
        else None
    )

    intervals = {name: _interval_or_none(scan) for name, scan in scans.items()}
    metrics = jsonable(
        {
            "observable": label,
            "signal": inputs.signal_name,
            "background": inputs.background_name,
            "true_fraction": inputs.true_fraction,
            "data_events": events,
            "binning": {"edges": signal.edges},
            "fraction": {
                "unbinned": unbinned,
                "binned_stat_only": binned,
                "full_model": fraction_fit,
                "expected_uncertainty": expected_sigma,
            },
            "expected_fraction": fraction,
            "mu": {
                name: {
                    "value": results[key].value(),
                    "uncertainty": results[key].uncertainty(),
                    "interval": intervals[name],
                }
                for name, key in (("stat. only", "stat_only"), ("stat. + syst.", "full"))
            },
            "parameters": [
                {"name": n, "value": v, "uncertainty": u}
                for n, v, u in zip(full.names, full.values, full.uncertainties, strict=True)
            ],
            "pulls": nuisance_pulls,
            "impacts": nuisance_impacts,
            "discovery": significance,
            "upper_limit": None
            if limit is None
            else {"observed": limit.observed, "expected": limit.expected, "level": limit.level},
            "systematics": sorted(inputs.systematics),
            "settings": {
                "mc_statistics": settings.mc_statistics,
                "lumi_uncertainty": settings.lumi_uncertainty,
                "background_uncertainty": settings.background_uncertainty,
                "poi_bounds": settings.poi_bounds,
            },
        }
    )
    write_json(output / "results.json", metrics)
    figures = _plots(
        output,
        inputs,
        settings,
        signal,
        background,
        data,
        model,
        observed,
        full,
        workspaces["full"][1],
        scans,
        scan_2d,
        nuisance_pulls,
        nuisance_impacts,
        limit,
    )
    report = write_report(
        output / "report.html",
        "fit.html.j2",
        {
            "title": f"Template fit: {inputs.signal_name} fraction",
            "m": _report_context(metrics, inputs, signal, background, data),
            "plots": figures,
        },
    )
    return FitOutcome(
        unbinned,
        binned,
        expected_sigma,
        fraction_fit,
        results["stat_only"],
        full,
        scans,
        scan_2d,
        nuisance_pulls,
        nuisance_impacts,
        significance,
        limit,
        metrics,
        output,
        report,
    )


def _window(center: float, sigma: float, bounds: tuple[float, float], width: float = 3.0) -> tuple[float, float]:
    return max(bounds[0], center - width * sigma), min(bounds[1], center + width * sigma)


def _limit_scan(result: FitResult, settings: FitSettings) -> np.ndarray:
    """CLs scan points where the limits lie: [0, 4.5σ] for the expected band, [μ̂, μ̂ + 3σ] for the observed.

    The expected +2σ limit of a Gaussian measurement is σ(Φ⁻¹(1 − 0.05 Φ(2)) + 2) ≈ 3.7σ
    (arXiv:1007.1727, Eq. 89); the observed one lies about 1.6σ–2σ above μ̂.
    """
    low, high = max(settings.poi_bounds[0], 0.0), settings.poi_bounds[1]
    sigma, best = result.uncertainty(), max(result.value(), 0.0)
    points = np.concatenate(
        [
            np.linspace(low, 4.5 * sigma, settings.limit_points),
            np.linspace(best, best + 3 * sigma, settings.limit_points),
        ]
    )
    return np.unique(np.clip(points, low, high))


def _interval_or_none(scan: Scan) -> tuple[float, float] | None:
    try:
        return scan_interval(scan)
    except ConfigError:
        return None


def postfit_yields(model: pyhf.pdf.Model, result: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """Post-fit expected yields per sample (samples, bins) and the σ of their sum per bin.

    The uncertainty propagates the fit's covariance linearly through the expected yields (the
    Jacobian by central differences of pyhf's ``expected_data``), as cabinetry's post-fit plots do.
    """
    by_sample = np.asarray(model.main_model.expected_data(result.values, return_by_sample=True), np.float64)
    steps = np.maximum(1e-3 * result.uncertainties, 1e-9)
    jacobian = np.zeros((by_sample.shape[1], len(result.values)))
    for index in np.flatnonzero(result.uncertainties > 0):
        shifted_up, shifted_down = result.values.copy(), result.values.copy()
        shifted_up[index] += steps[index]
        shifted_down[index] -= steps[index]
        difference = np.asarray(model.main_model.expected_data(shifted_up), np.float64) - np.asarray(
            model.main_model.expected_data(shifted_down), np.float64
        )
        jacobian[:, index] = difference / (2 * steps[index])
    variance = np.einsum("bi,ij,bj->b", jacobian, result.covariance, jacobian)
    return by_sample, np.sqrt(np.maximum(variance, 0.0))


def _plots(
    output: Path,
    inputs: FitInputs,
    settings: FitSettings,
    signal: Template,
    background: Template,
    data: Template,
    model: pyhf.pdf.Model,
    observed: Sequence[float],
    full: FitResult,
    samples: list[Sample],
    scans: dict[str, Scan],
    scan_2d: Scan | None,
    nuisance_pulls: list[Pull],
    nuisance_impacts: list[Impact],
    limit: UpperLimit | None,
) -> list[dict[str, Any]]:
    style, directory, label = settings.style, output / "plots", inputs.observable
    figures = []

    def add(figure: Any, stem: str, title: str, caption: str) -> None:
        paths = save_figure(figure, directory, stem, style)
        png = next((path for path in paths if path.suffix == ".png"), None)
        figures.append(
            {
                "stem": stem,
                "title": title,
                "caption": caption,
                "uri": embed_png(png) if png else "",
                "files": [f"plots/{path.name}" for path in paths],
            }
        )

    keep = used_bins(samples)
    by_sample, sigma = postfit_yields(model, full)
    expanded = np.zeros((len(samples), len(keep)))
    expanded[:, keep] = by_sample
    uncertainty = np.zeros(len(keep))
    uncertainty[keep] = sigma
    by_name = dict(zip(model.config.samples, expanded, strict=True))  # pyhf orders the samples by name
    stack = {name: by_name[name] for name in (inputs.background_name, inputs.signal_name)}
    add(
        plots.plot_postfit(data.edges, stack, data.counts, uncertainty, style, label),
        "postfit",
        "Post-fit templates",
        f"The data against the fitted {inputs.background_name} and {inputs.signal_name} templates; the band is "
        "the post-fit uncertainty of the model (all parameters, correlations included).",
    )
    add(
        plots.plot_templates(
            data.edges,
            {inputs.signal_name: signal.counts, inputs.background_name: background.counts, "data": data.counts},
            style,
            label,
        ),
        "templates",
        "Templates",
        "The shapes the fit separates, each normalised to unit area.",
    )
    add(
        plots.plot_scan(scans, style, r"Signal strength $\mu$"),
        "scan_mu",
        "Profile likelihood of μ",
        "−Δln L with every other parameter profiled, with and without the systematic variations; the "
        "crossings of ½ and 2 give the 1σ and 2σ intervals.",
    )
    if scan_2d is not None:
        axes = (r"Signal strength $\mu$", f"{inputs.background_name} normalisation")
        add(
            plots.plot_scan_2d(scan_2d, style, axes),
            "scan_mu_background",
            "μ and the background normalisation",
            "68% and 95% contours of the two-parameter profile likelihood (2Δln L = 2.30, 5.99).",
        )
    if nuisance_pulls:
        add(
            plots.plot_pulls(nuisance_pulls, nuisance_impacts, style),
            "pulls",
            "Pulls and impacts",
            "Nuisance parameters after the fit in units of their prior width (bars: post-fit constraint), "
            "and the shift of μ̂ when each is held at its post-fit ±1σ.",
        )
    if limit is not None:
        add(
            plots.plot_brazil(limit, style),
            "cls",
            "CLs upper limit",
            f"CLs against μ (q̃_μ, asymptotic): the limit at {limit.level:.0%} is where CLs crosses the line.",
        )
    return figures


def _report_context(
    metrics: dict[str, Any], inputs: FitInputs, signal: Template, background: Template, data: Template
) -> dict[str, Any]:
    info = environment()
    for package in ("pyhf", "iminuit", "hist"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    classes = [
        {
            "name": name,
            "jets": template.entries,
            "weight": template.total,
            "effective_jets": effective_count(values.weights),
        }
        for name, template, values in (
            (inputs.signal_name, signal, inputs.signal),
            (inputs.background_name, background, inputs.background),
            ("data", data, inputs.data),
        )
    ]
    files = [file for group in inputs.files.values() for file in group]
    return {
        **metrics,
        "environment": info,
        "data": {
            "files": files,
            "jets": data.entries,
            "classes": classes,
            "selection": None,
            "weights": None,
            "observers": {},
            "inputs": {},
        },
    }


# -- where the values come from ------------------------------------------------------------------------------


def inputs_from_run(
    run_dir: str | os.PathLike[str],
    template_files: Sequence[str | os.PathLike[str]],
    data_files: Sequence[str | os.PathLike[str]],
    systematics: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
    signal: str | None = None,
    observable: str | None = None,
    progress: bool = True,
) -> FitInputs:
    """The run's score (or ``observable``) of labelled template jets, data jets and varied jets.

    The signal is the run's first class unless ``signal`` names another; every other class is
    background. The data need no labels; when every data file has the run's label fields, they
    give the true fraction for the report.
    """
    from heplearn.runs import RunDirectory
    from heplearn.stats.templates import has_fields, run_observable

    values, labels, weights, class_names, label = run_observable(run_dir, template_files, observable, progress)
    if len(class_names) < 2:
        raise DataError(
            f"{run_dir}: the run records {len(class_names)} class(es) ({class_names}) in model.json; "
            "templates need a signal and a background class"
        )
    signal_name = signal or class_names[0]
    if signal_name not in class_names:
        raise ConfigError(f"signal class {signal_name!r} is not a class of the run (it has {class_names})")
    signal_index = class_names.index(signal_name)
    others = [name for name in class_names if name != signal_name]

    def split(values: np.ndarray, labels: np.ndarray, weights: np.ndarray, where: str) -> tuple[Values, Values]:
        is_signal = labels == signal_index
        if not is_signal.any() or is_signal.all():
            raise DataError(f"{where}: the files need both {signal_name} and {', '.join(others)} jets for templates")
        return Values(values[is_signal], weights[is_signal]), Values(values[~is_signal], weights[~is_signal])

    signal_values, background_values = split(values, labels, weights, "template files")
    # real data carry no labels; a labelled mixture tells the true fraction
    config = RunDirectory(Path(run_dir)).read_config()
    label_fields = list(config.data.labels.classes or []) if config.data.labels.has_classes else []
    labelled = all(isinstance(name, str) for name in label_fields) and has_fields(
        data_files, label_fields, config.data.treename
    )
    data_values, data_labels, data_weights, _, _ = run_observable(run_dir, data_files, observable, progress, labelled)
    true_fraction = float(data_weights[data_labels == signal_index].sum() / data_weights.sum()) if labelled else None
    varied: dict[str, tuple[Values | None, Values | None]] = {}
    for name, files in (systematics or {}).items():
        varied_values, varied_labels, varied_weights, _, _ = run_observable(run_dir, files, observable, progress)
        varied[name] = split(varied_values, varied_labels, varied_weights, f"systematic {name!r}")
    files = {
        "templates": [str(f) for f in template_files],
        "data": [str(f) for f in data_files],
        **{f"systematic {name}": [str(f) for f in group] for name, group in (systematics or {}).items()},
    }
    return FitInputs(
        signal_values,
        background_values,
        Values(data_values, np.ones_like(data_values)),
        varied,
        signal_name,
        "+".join(others) if len(others) < 3 else "background",
        label,
        true_fraction,
        files,
    )


def inputs_from_score_files(
    signal_files: Sequence[str | os.PathLike[str]],
    background_files: Sequence[str | os.PathLike[str]],
    data_files: Sequence[str | os.PathLike[str]],
    column: str,
    weight: str | None = None,
    systematics: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
    signal_name: str = "signal",
    background_name: str = "background",
    systematics_down: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> FitInputs:
    """The ``column`` of score files (``heplearn predict`` outputs): one file set per sample.

    ``systematics`` maps a name to the (signal, background) files of the +1σ samples; either may
    be empty when only one sample varies. ``systematics_down`` gives the −1σ ones of some of them
    (the +1σ shape is mirrored for the others).
    """

    def values(files: Sequence[str | os.PathLike[str]], use_weight: bool = True) -> Values:
        column_values, column_weights = read_column(files, column, weight if use_weight else None)
        return Values(column_values, column_weights)

    def varied(
        groups: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None,
    ) -> dict[str, tuple[Values | None, Values | None]]:
        return {
            name: (values(signal) if signal else None, values(background) if background else None)
            for name, (signal, background) in (groups or {}).items()
        }

    files = {
        "signal": [str(f) for f in signal_files],
        "background": [str(f) for f in background_files],
        "data": [str(f) for f in data_files],
    }
    return FitInputs(
        values(signal_files),
        values(background_files),
        values(data_files, use_weight=False),
        varied(systematics),
        signal_name,
        background_name,
        column,
        None,
        files,
        varied(systematics_down),
    )


def summary_line(outcome: FitOutcome) -> str:
    """One line for the terminal: the fitted fraction(s), μ, Z and the limit."""
    parts = []
    if outcome.unbinned is not None:
        parts.append(f"α unbinned {outcome.unbinned.fraction:.4f} ± {outcome.unbinned.uncertainty:.4f}")
    parts.append(
        f"binned {outcome.binned.fraction:.4f} ± {outcome.binned.uncertainty:.4f} "
        f"(expected ± {outcome.expected_uncertainty:.4f})"
    )
    parts.append(f"full model {outcome.fraction.fraction:.4f} ± {outcome.fraction.uncertainty:.4f}")
    parts.append(f"μ {outcome.full.value():.3f} ± {outcome.full.uncertainty():.3f}")
    if outcome.discovery is not None:
        parts.append(f"Z obs {outcome.discovery.observed_z:.2f} (exp {outcome.discovery.expected_z:.2f})")
    if outcome.limit is not None:
        parts.append(f"μ < {outcome.limit.observed:.3g} (exp {outcome.limit.expected[2]:.3g}) at 95% CLs")
    return "; ".join(parts)


__all__ = [
    "FitInputs",
    "FitOutcome",
    "FitSettings",
    "Values",
    "fit_inputs",
    "inputs_from_run",
    "inputs_from_score_files",
    "postfit_yields",
    "summary_line",
]
