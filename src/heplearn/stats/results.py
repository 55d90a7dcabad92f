"""What a HistFactory model says about the data, as pyhf computes it.

Every number here is pyhf's (with MINUIT, through iminuit, as the minimiser): the best fit with its
Hessian uncertainties and correlations, profile-likelihood scans in one and two parameters, pulls
and impacts of the nuisance parameters, the discovery test q₀ and CLs upper limits with the
expected band, in the asymptotic approximation of Cowan, Cranmer, Gross & Vitells
(arXiv:1007.1727). heplearn only builds the models and reads the answers; a minimisation that
MINUIT does not call valid is a ``FitError``, never a number.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyhf
from scipy.stats import norm

from heplearn.errors import ConfigError, FitError
from heplearn.progress import progress_bar

CLS_LEVEL = 0.05


@contextlib.contextmanager
def minuit_backend(model: pyhf.pdf.Model | None = None) -> Iterator[None]:
    """pyhf's numpy backend with MINUIT for the duration of a computation; the previous one restored after.

    pyhf's MINUIT interface cannot fit a model with every parameter fixed (it asks for a Hessian
    that MINUIT does not make), which the POI-fixed fits of a test statistic do when ``model`` has
    no nuisance parameter: such a model gets pyhf's SciPy optimiser, which checks convergence too.
    """
    tensorlib, optimizer = pyhf.get_backend()
    only_poi = model is not None and sum(not fixed for fixed in model.config.suggested_fixed()) <= 1
    chosen = (
        pyhf.optimize.scipy_optimizer()
        if only_poi
        else pyhf.optimize.minuit_optimizer(verbose=0, strategy=1, tolerance=0.01)
    )
    pyhf.set_backend("numpy", chosen)
    try:
        yield
    finally:
        pyhf.set_backend(tensorlib, optimizer)


def parameter_names(model: pyhf.pdf.Model) -> list[str]:
    """One name per fit parameter, in pyhf's order: ``staterror_score[3]`` for vector parameters."""
    names = []
    for name in model.config.par_order:
        size = model.config.param_set(name).n_parameters
        names.extend([name] if size == 1 else [f"{name}[{index}]" for index in range(size)])
    return names


@dataclass(frozen=True)
class FitResult:
    """A maximum-likelihood fit: values, Hessian uncertainties and correlations of every parameter."""

    names: list[str]
    values: np.ndarray
    uncertainties: np.ndarray
    correlations: np.ndarray
    twice_nll: float
    poi: str

    def index(self, name: str) -> int:
        """The position of parameter ``name``; an unknown name is a ``ConfigError`` listing the parameters."""
        if name not in self.names:
            raise ConfigError(f"no parameter {name!r} in the model (it has {', '.join(self.names)})")
        return self.names.index(name)

    def value(self, name: str | None = None) -> float:
        """The fitted value of ``name`` (default: the parameter of interest)."""
        return float(self.values[self.index(name or self.poi)])

    def uncertainty(self, name: str | None = None) -> float:
        """The uncertainty of ``name`` (default: the parameter of interest)."""
        return float(self.uncertainties[self.index(name or self.poi)])

    @property
    def covariance(self) -> np.ndarray:
        """The covariance matrix of the parameters."""
        return self.correlations * np.outer(self.uncertainties, self.uncertainties)


def _fixed(model: pyhf.pdf.Model, fixed: dict[str, float] | None) -> tuple[list[float], list[bool]]:
    init = list(model.config.suggested_init())
    mask = list(model.config.suggested_fixed())
    names = parameter_names(model)
    for name, value in (fixed or {}).items():
        if name not in names:
            raise ConfigError(f"no parameter {name!r} to fix (the model has {', '.join(names)})")
        low, high = model.config.suggested_bounds()[names.index(name)]
        if not low <= value <= high:
            raise ConfigError(f"parameter {name!r} = {value:g} is outside its bounds [{low:g}, {high:g}]")
        init[names.index(name)] = float(value)
        mask[names.index(name)] = True
    return init, mask


def fit(
    model: pyhf.pdf.Model,
    data: Sequence[float],
    fixed: dict[str, float] | None = None,
    init: dict[str, float] | None = None,
) -> FitResult:
    """The maximum-likelihood fit of ``model`` to ``data`` (pyhf + MINUIT, HESSE uncertainties).

    ``fixed`` holds parameters at given values (their uncertainty is then 0); ``init`` sets starts.
    """
    init_pars, fixed_mask = _fixed(model, fixed)
    names = parameter_names(model)
    for name, value in (init or {}).items():
        init_pars[names.index(name)] = float(value)
    with minuit_backend():
        try:
            values, twice_nll, result = pyhf.infer.mle.fit(
                data,
                model,
                init_pars=init_pars,
                fixed_params=fixed_mask,
                return_uncertainties=True,
                return_fitted_val=True,
                return_result_obj=True,
            )
        except pyhf.exceptions.FailedMinimization as error:
            raise FitError(
                f"the fit of {model.config.poi_name or 'the model'} did not converge "
                f"(MINUIT: {error.result.message}); fixed {fixed or {}}"
            ) from error
    # HESSE again with the bounds lifted: MINUIT's transform of bounded parameters distorts the
    # Hessian near a bound (σ_μ = 1.028 instead of √(s+b)/s = 1.049 for μ̂ = 1 in [0, 10])
    minuit = result.minuit
    minuit.limits = [(-np.inf, np.inf)] * len(names)
    minuit.hesse()
    if not minuit.valid or not minuit.fmin.has_posdef_covar or not minuit.fmin.has_accurate_covar:
        raise FitError(
            f"the fit converged but MINUIT's covariance is not accurate and positive definite "
            f"(fixed {fixed or {}}): the uncertainties would be wrong"
        )
    free = ~np.asarray(fixed_mask)
    uncertainties = np.where(free, np.asarray(minuit.errors, np.float64), 0.0)
    correlations = np.asarray(minuit.covariance.correlation(), np.float64)
    correlations[~free, :] = 0.0
    correlations[:, ~free] = 0.0
    correlations[np.diag_indices_from(correlations)] = 1.0
    return FitResult(
        names,
        np.asarray(values, np.float64)[:, 0],
        uncertainties,
        correlations,
        float(twice_nll),
        model.config.poi_name,
    )


@dataclass(frozen=True)
class Scan:
    """ΔNLL = −ln L(θ) + ln L(θ̂) along a grid of one or two parameters, the others profiled."""

    parameters: tuple[str, ...]
    values: tuple[np.ndarray, ...]  # the grid of each parameter
    delta_nll: np.ndarray  # shape (len(values[0]),) or (len(values[0]), len(values[1]))
    best: tuple[float, ...]


def profile_scan(
    model: pyhf.pdf.Model,
    data: Sequence[float],
    parameters: str | Sequence[str],
    values: Sequence[np.ndarray] | np.ndarray,
    best: FitResult | None = None,
    progress: bool = False,
) -> Scan:
    """The profile likelihood along ``values`` of one parameter, or on the grid of two."""
    names = (parameters,) if isinstance(parameters, str) else tuple(parameters)
    grids = (
        (np.asarray(values, np.float64),)
        if isinstance(parameters, str)
        else tuple(np.asarray(v, np.float64) for v in values)
    )
    if len(names) not in (1, 2) or len(grids) != len(names):
        raise ConfigError(f"a scan takes one or two parameters with one grid each, got {names}")
    best = best or fit(model, data)
    points = list(np.ndindex(*(len(grid) for grid in grids)))
    delta = np.empty(tuple(len(grid) for grid in grids))
    for point in progress_bar(points, desc=f"scanning {', '.join(names)}", disable=not progress, leave=False):
        fixed = {name: float(grid[i]) for name, grid, i in zip(names, grids, point, strict=True)}
        delta[point] = (fit_nll(model, data, fixed) - best.twice_nll) / 2
    return Scan(names, grids, delta, tuple(best.value(name) for name in names))


def fit_nll(model: pyhf.pdf.Model, data: Sequence[float], fixed: dict[str, float]) -> float:
    """−2 ln L at the best fit with ``fixed`` parameters held (no covariance needed)."""
    init_pars, fixed_mask = _fixed(model, fixed)
    if all(fixed_mask):  # nothing left to profile
        return float(np.asarray(pyhf.infer.mle.twice_nll(np.asarray(init_pars), data, model)).ravel()[0])
    with minuit_backend():
        try:
            _, twice_nll = pyhf.infer.mle.fit(
                data, model, init_pars=init_pars, fixed_params=fixed_mask, return_fitted_val=True
            )
        except pyhf.exceptions.FailedMinimization as error:
            raise FitError(f"the profile fit at {fixed} did not converge (MINUIT: {error.result.message})") from error
    return float(twice_nll)


def scan_interval(scan: Scan, level: float = 0.5) -> tuple[float, float]:
    """The ΔNLL = ``level`` crossings of a 1-D scan either side of its minimum (linear interpolation)."""
    if len(scan.parameters) != 1:
        raise ConfigError("an interval comes from a one-parameter scan")
    grid, delta = scan.values[0], scan.delta_nll
    lowest = int(np.argmin(delta))
    left, right = delta[: lowest + 1], delta[lowest:]
    if left.max() < level or right.max() < level:
        raise ConfigError(
            f"the scan of {scan.parameters[0]} over [{grid[0]:g}, {grid[-1]:g}] does not reach "
            f"ΔNLL = {level} on both sides: widen it"
        )
    low = np.interp(level, left[::-1], grid[: lowest + 1][::-1])
    high = np.interp(level, right, grid[lowest:])
    return float(low), float(high)


@dataclass(frozen=True)
class Pull:
    """A constrained nuisance parameter after the fit, in units of its prior width."""

    name: str
    pull: float  # (θ̂ − θ₀) / σ_prior
    constraint: float  # σ̂ / σ_prior


def pulls(model: pyhf.pdf.Model, result: FitResult) -> list[Pull]:
    """The pulls of every constrained parameter (normsys, histosys, lumi, MC statistics)."""
    rows = []
    init = model.config.suggested_init()
    for name in model.config.par_order:
        parameter_set = model.config.param_set(name)
        if not getattr(parameter_set, "constrained", False):
            continue
        widths = np.atleast_1d(parameter_set.width())
        start = model.config.par_slice(name).start
        for offset, width in enumerate(widths):
            index = start + offset
            label = result.names[index]
            rows.append(
                Pull(
                    label,
                    float((result.values[index] - init[index]) / width),
                    float(result.uncertainties[index] / width),
                )
            )
    return rows


@dataclass(frozen=True)
class Impact:
    """The POI's shift when a nuisance parameter is held at its post-fit ±1σ values."""

    name: str
    up: float
    down: float


def impacts(
    model: pyhf.pdf.Model, data: Sequence[float], result: FitResult, skip: Sequence[str] = (), progress: bool = False
) -> list[Impact]:
    """Post-fit impacts on the POI of every constrained parameter (but those whose name starts with an
    entry of ``skip``, e.g. ``"staterror"``), largest first."""
    rows = []
    bounds = model.config.suggested_bounds()
    chosen = [pull for pull in pulls(model, result) if not pull.name.startswith(tuple(skip))]
    for pull in progress_bar(chosen, desc="impacts", disable=not progress, leave=False):
        index = result.index(pull.name)
        value, sigma = result.values[index], result.uncertainties[index]
        low, high = bounds[index]
        shifts = []
        for target in (min(value + sigma, high), max(value - sigma, low)):
            refit = fit_values(model, data, {pull.name: float(target)})
            shifts.append(refit[result.index(result.poi)] - result.value())
        rows.append(Impact(pull.name, float(shifts[0]), float(shifts[1])))
    return sorted(rows, key=lambda row: -max(abs(row.up), abs(row.down)))


def fit_values(model: pyhf.pdf.Model, data: Sequence[float], fixed: dict[str, float]) -> np.ndarray:
    """The best-fit parameters with ``fixed`` held (no covariance needed)."""
    init_pars, fixed_mask = _fixed(model, fixed)
    if all(fixed_mask):
        return np.asarray(init_pars, np.float64)
    with minuit_backend():
        try:
            values = pyhf.infer.mle.fit(data, model, init_pars=init_pars, fixed_params=fixed_mask)
        except pyhf.exceptions.FailedMinimization as error:
            raise FitError(f"the fit at {fixed} did not converge (MINUIT: {error.result.message})") from error
    return np.asarray(values, np.float64)


@dataclass(frozen=True)
class Discovery:
    """The discovery test of μ = 0 (q₀): p-values and significances, observed and expected (μ = 1)."""

    observed_p: float
    observed_z: float
    expected_p: float
    expected_z: float


def discovery(model: pyhf.pdf.Model, data: Sequence[float]) -> Discovery:
    """pyhf's asymptotic q₀ test; the expected figures are the median under μ = 1 (the Asimov data)."""
    with minuit_backend(model):
        try:
            observed, expected = pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True)
        except pyhf.exceptions.FailedMinimization as error:
            raise FitError(f"the discovery test's fit did not converge (MINUIT: {error.result.message})") from error
    observed, expected = float(observed), float(expected)
    return Discovery(observed, float(norm.isf(observed)), expected, float(norm.isf(expected)))


@dataclass(frozen=True)
class UpperLimit:
    """The CLs upper limit on the POI: observed, and the expected median with its ±1σ, ±2σ band."""

    observed: float
    expected: np.ndarray  # −2σ, −1σ, median, +1σ, +2σ
    scan: np.ndarray
    observed_cls: np.ndarray
    expected_cls: np.ndarray  # (5, len(scan))
    level: float = CLS_LEVEL


def upper_limit(
    model: pyhf.pdf.Model,
    data: Sequence[float],
    scan: np.ndarray | None = None,
    level: float = CLS_LEVEL,
    refine: int = 0,
    progress: bool = False,
) -> UpperLimit:
    """pyhf's CLs limit (q̃_μ, asymptotics) from a scan of the POI, interpolated at CLs = ``level``.

    ``refine`` > 0 adds that many points around each limit found on the first scan (a second pass,
    for a coarse first scan) before the limits are interpolated again.
    """
    low, high = model.config.suggested_bounds()[model.config.poi_index]
    scan = np.linspace(max(low, 0.0), high, 41) if scan is None else np.asarray(scan, np.float64)
    if scan.min() < low or scan.max() > high:
        raise ConfigError(f"the CLs scan [{scan.min():g}, {scan.max():g}] leaves the POI's bounds [{low:g}, {high:g}]")
    points: dict[float, tuple[float, list[float]]] = {}

    def evaluate(values: np.ndarray) -> None:
        with minuit_backend(model):
            for mu in progress_bar(values, desc="CLs scan", disable=not progress, leave=False):
                if float(mu) in points:
                    continue
                try:
                    observed, expected = pyhf.infer.hypotest(
                        float(mu), data, model, test_stat="qtilde", return_expected_set=True
                    )
                except pyhf.exceptions.FailedMinimization as error:
                    raise FitError(
                        f"the CLs fit at μ = {mu:g} did not converge (MINUIT: {error.result.message})"
                    ) from error
                points[float(mu)] = (float(observed), [float(value) for value in expected])

    def limits() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        grid = np.array(sorted(points))
        observed_cls = np.array([points[mu][0] for mu in grid])
        expected_cls = np.array([points[mu][1] for mu in grid]).T
        found = [_crossing(grid, observed_cls, level)] + [_crossing(grid, band, level) for band in expected_cls]
        return grid, observed_cls, expected_cls, found

    evaluate(scan)
    grid, _, _, found = limits()
    if refine > 0:
        step = float(np.max(np.diff(grid))) if len(grid) > 1 else 0.0
        extra = [np.linspace(max(low, value - step), min(high, value + step), refine) for value in found]
        evaluate(np.unique(np.concatenate(extra)))
    grid, observed_cls, expected_cls, found = limits()
    return UpperLimit(found[0], np.asarray(found[1:]), grid, observed_cls, expected_cls, level)


def _crossing(scan: np.ndarray, cls: np.ndarray, level: float) -> float:
    """The POI where CLs falls through ``level`` (linear interpolation in the scan)."""
    below = np.flatnonzero(cls < level)
    if len(below) == 0:
        raise FitError(f"CLs stays above {level} up to μ = {scan[-1]:g}: extend the scan (or the POI's bounds)")
    first = below[0]
    if first == 0:
        raise FitError(f"CLs is already below {level} at μ = {scan[0]:g}: start the scan lower")
    # CLs falls about exponentially in μ: interpolate its logarithm
    logs = np.log(np.maximum([cls[first], cls[first - 1]], 1e-300))
    return float(np.interp(np.log(level), logs, [scan[first], scan[first - 1]]))
