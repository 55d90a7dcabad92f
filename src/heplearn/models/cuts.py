"""Rectangular cut optimisation, the method of TMVA's ``MethodCuts`` (TMVA Users Guide §8.1).

A cut set keeps an event when every variable lies in a window ``lower <= x < upper``. For each
target background efficiency ε_B on a grid, the optimiser looks for the cut set with the largest
weighted signal efficiency ε_S among those with ε_B <= target; the working points together trace
the ROC curve of rectangular cuts. As in TMVA's ``VarProp`` option, each variable gets a lower bound,
an upper bound, or both: "auto" (TMVA's ``FSmart``) keeps the side where the signal mean lies.

The search (TMVA offers Monte Carlo sampling, a genetic algorithm and simulated annealing, §8.1.2):

1. each variable is cut only at its quantiles on the training sample (``n_bins`` per variable), so a
   cut set is a vector of integers and the events collapse into occupied cells of the quantile grid;
2. for each target, ``scipy.optimize.differential_evolution`` (an evolutionary algorithm, close in
   spirit to TMVA's GA) maximises ε_S under the constraint by Deb's feasibility rule: a cut set with
   ε_B above the target ranks below every cut set that meets it (no penalty weight to tune);
3. a coordinate line search then polishes the best cut set: each bound in turn moves to its best
   quantile with the others fixed, until nothing improves.

Targets are solved from the tightest up, and the best cut set of one target seeds the search of the
next (it is feasible there too), so the achieved ε_S never decreases as ε_B grows.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import differential_evolution

from heplearn.errors import ConfigError, DataError
from heplearn.models.base import (
    FloatArray,
    IntArray,
    JetClassifier,
    LabelledSample,
    check_choice,
    check_features,
    check_number,
    float_from_json,
)

logger = logging.getLogger(__name__)

Direction = Literal["auto", "lower", "upper", "both"]
DIRECTIONS: tuple[str, ...] = ("auto", "lower", "upper", "both")
DEFAULT_BACKGROUND_EFFICIENCIES = tuple(np.round(np.linspace(0.01, 0.99, 99), 2).tolist())

# efficiencies are sums in different orders; a cut set is feasible up to this rounding
_TOLERANCE = 1e-9
# cut grids up to this many points use a cumulative table (two float64 tables of 32 MB at most)
_DENSE_LIMIT = 2**22
# population members evaluated at once: bounds the (members x cells) boolean pass matrix
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class WorkingPoint:
    """One optimised cut set: keep events with ``lower <= x < upper`` for every variable.

    ``cuts`` maps each variable name to ``(lower, upper)``; ``-inf`` / ``inf`` mean no bound. The
    efficiencies are the weighted fractions of training signal and background that pass; the
    ``validation_*`` ones are measured on the validation split when ``fit`` was given one (a
    large difference means the cuts were tuned to fluctuations of the training sample).
    """

    target_background_efficiency: float
    signal_efficiency: float
    background_efficiency: float
    cuts: dict[str, tuple[float, float]] = field(default_factory=dict)
    validation_signal_efficiency: float | None = None
    validation_background_efficiency: float | None = None

    def passes(self, X: ArrayLike) -> np.ndarray:
        """Boolean mask of the events (rows of ``X``, columns in the order of ``cuts``) that pass."""
        features = check_features(X, "X", len(self.cuts))
        bounds = np.array(list(self.cuts.values()), dtype=np.float64).reshape(-1, 2)
        return _passes(features, bounds[:, 0], bounds[:, 1])


def _passes(features: FloatArray, lower: FloatArray, upper: FloatArray) -> np.ndarray:
    return np.all((features >= lower) & (features < upper), axis=1)


@dataclass(frozen=True)
class _Bound:
    """One optimisation parameter: a lower or upper bound on variable ``variable``."""

    variable: int
    side: Literal["lower", "upper"]


class _QuantileGrid:
    """The training events on a grid of per-variable quantile bins.

    A lower bound at integer ``c`` keeps bin indices ``>= c`` (``c = 0``: no cut); an upper bound
    at ``c`` keeps indices ``< c`` (``c = n_bins``: no cut). With ``edges = [-inf, inner..., inf]``
    these are the cuts ``x >= edges[c]`` and ``x < edges[c]`` on the original values.

    The events collapse into the occupied cells of the grid. When the grid is small enough, the
    efficiency of a box comes from a cumulative (summed-area) table by inclusion–exclusion over its
    2^d corners, whatever the number of events; otherwise every occupied cell is tested.
    """

    def __init__(self, sample: LabelledSample, n_bins: int) -> None:
        features = sample.features
        signal, background = sample.labels == 1, sample.labels == 0
        # quantiles of each class, merged, so that eps_S and eps_B both move in steps of at most
        # 2 / n_bins whatever the class sizes
        levels = np.linspace(0.0, 1.0, max(2, n_bins // 2) + 1)[1:-1]
        self.edges: list[FloatArray] = []
        codes = np.empty(features.shape, dtype=np.int64)
        for j in range(features.shape[1]):
            quantiles = [np.quantile(features[in_class, j], levels) for in_class in (signal, background)]
            inner = np.unique(np.concatenate(quantiles))
            codes[:, j] = np.searchsorted(inner, features[:, j], side="right")
            self.edges.append(np.concatenate(([-np.inf], inner, [np.inf])))
        self.cells, inverse = np.unique(codes, axis=0, return_inverse=True)
        per_cell = np.bincount(inverse.ravel(), weights=sample.weights * signal, minlength=len(self.cells))
        self.signal_weight = per_cell / per_cell.sum()
        per_cell = np.bincount(inverse.ravel(), weights=sample.weights * background, minlength=len(self.cells))
        self.background_weight = per_cell / per_cell.sum()
        self.shape = tuple(self.n_bins(j) for j in range(features.shape[1]))
        self.tables: list[FloatArray] | None = None
        if np.prod(np.array(self.shape, dtype=np.float64) + 1) <= _DENSE_LIMIT:
            self.tables = [self._cumulative(w) for w in (self.signal_weight, self.background_weight)]

    def n_bins(self, variable: int) -> int:
        return len(self.edges[variable]) - 1

    def _cumulative(self, cell_weights: FloatArray) -> FloatArray:
        """table[i_1, ..., i_d] = weight of the bins k with k_j < i_j for every j."""
        table = np.zeros(tuple(n + 1 for n in self.shape))
        table[(slice(1, None),) * len(self.shape)][tuple(self.cells.T)] = cell_weights
        for axis in range(table.ndim):
            np.cumsum(table, axis=axis, out=table)
        return table

    def efficiencies(self, bounds: list[_Bound], params: IntArray) -> tuple[FloatArray, FloatArray]:
        """Signal and background efficiency of each cut set (rows of ``params``)."""
        if self.tables is not None:
            return self._box_sums(bounds, params)
        signal = np.empty(len(params))
        background = np.empty(len(params))
        chunk = max(1, _CHUNK_ELEMENTS // max(1, len(self.cells)))
        for start in range(0, len(params), chunk):
            block = params[start : start + chunk]
            keep = np.ones((len(block), len(self.cells)), dtype=bool)
            for p, bound in enumerate(bounds):
                column = self.cells[:, bound.variable][None, :]
                cut = block[:, p][:, None]
                keep &= (column >= cut) if bound.side == "lower" else (column < cut)
            signal[start : start + chunk] = keep @ self.signal_weight
            background[start : start + chunk] = keep @ self.background_weight
        return signal, background

    def _box_sums(self, bounds: list[_Bound], params: IntArray) -> tuple[FloatArray, FloatArray]:
        assert self.tables is not None
        low = np.zeros((len(params), len(self.shape)), dtype=np.int64)
        high = np.tile(np.array(self.shape, dtype=np.int64), (len(params), 1))
        for p, bound in enumerate(bounds):
            (low if bound.side == "lower" else high)[:, bound.variable] = params[:, p]
        high = np.maximum(high, low)  # a lower bound above the upper one: an empty box
        sums = [np.zeros(len(params)), np.zeros(len(params))]
        for corner in itertools.product((False, True), repeat=len(self.shape)):
            index = tuple(np.where(use_high, high[:, j], low[:, j]) for j, use_high in enumerate(corner))
            sign = -1.0 if (len(corner) - sum(corner)) % 2 else 1.0
            for k, table in enumerate(self.tables):
                sums[k] += sign * table[index]
        return np.clip(sums[0], 0.0, 1.0), np.clip(sums[1], 0.0, 1.0)

    def keep(self, bounds: list[_Bound], params: IntArray, skip: int | None = None) -> np.ndarray:
        """Which cells pass one cut set (all bounds but ``skip``)."""
        keep = np.ones(len(self.cells), dtype=bool)
        for p, bound in enumerate(bounds):
            if p != skip:
                column = self.cells[:, bound.variable]
                keep &= (column >= params[p]) if bound.side == "lower" else (column < params[p])
        return keep

    def scan(self, bounds: list[_Bound], params: IntArray, p: int) -> tuple[FloatArray, FloatArray]:
        """Efficiencies of one cut set for every value ``0..n_bins`` of bound ``p``, in O(cells).

        With the other bounds fixed, the events they keep are histogrammed in the bin index of
        bound ``p``'s variable; a lower bound at c keeps the bins >= c (a suffix sum), an upper
        bound the bins < c (a prefix sum).
        """
        bound = bounds[p]
        keep = self.keep(bounds, params, skip=p)
        column = self.cells[keep, bound.variable]
        n_bins = self.n_bins(bound.variable)
        result = []
        for weights in (self.signal_weight, self.background_weight):
            histogram = np.bincount(column, weights=weights[keep], minlength=n_bins)
            prefix = np.concatenate(([0.0], np.cumsum(histogram)))
            result.append(prefix[-1] - prefix if bound.side == "lower" else prefix)
        return result[0], result[1]

    def cut_values(self, bounds: list[_Bound], params: IntArray, n_features: int) -> tuple[FloatArray, FloatArray]:
        """Per-variable ``(lower, upper)`` in the original units for one cut set."""
        lower = np.full(n_features, -np.inf)
        upper = np.full(n_features, np.inf)
        for bound, c in zip(bounds, params, strict=True):
            value = self.edges[bound.variable][int(c)]
            if bound.side == "lower":
                lower[bound.variable] = value
            else:
                upper[bound.variable] = value
        return lower, upper


class RectangularCuts(JetClassifier):
    """Rectangular cuts optimised per target background efficiency (TMVA ``MethodCuts``).

    Parameters
    ----------
    background_efficiencies:
        Target ε_B of the working points, each in (0, 1]; default 0.01, 0.02, ..., 0.99.
    directions:
        Which bounds each variable gets: "lower" (``x >= cut``), "upper" (``x < cut``), "both"
        (a window) or "auto" (the side of the signal mean: "lower" when the weighted signal mean
        exceeds the background mean, TMVA's ``FSmart``). One value for all variables or one per
        variable.
    n_bins:
        Cut resolution: bounds sit on ``n_bins / 2`` quantiles of each class in each variable, so
        that eps_S and eps_B move in steps of at most ``2 / n_bins`` along any variable.
    popsize, maxiter:
        Differential-evolution population size (per parameter) and generations per target.
    seed:
        Seed of the evolutionary search.

    Binary only: label 1 is signal, 0 background. ``decision_function`` is ``1 - target ε_B`` of
    the tightest working point an event passes (0 if none), so thresholds on it walk along the
    working points; ``predict_proba`` returns ``[1 - score, score]``, a ranking, not a calibrated
    probability.
    """

    max_classes = 2

    def __init__(
        self,
        *,
        background_efficiencies: ArrayLike = DEFAULT_BACKGROUND_EFFICIENCIES,
        directions: Direction | list[Direction] | tuple[Direction, ...] = "auto",
        n_bins: int = 100,
        popsize: int = 15,
        maxiter: int = 100,
        seed: int | None = 0,
    ) -> None:
        self.background_efficiencies = background_efficiencies
        self.directions = directions
        self.n_bins = n_bins
        self.popsize = popsize
        self.maxiter = maxiter
        self.seed = seed

    working_points_: list[WorkingPoint]
    directions_: list[str]

    @property
    def working_points(self) -> list[WorkingPoint]:
        """The optimised working points, tightest (smallest target ε_B) first."""
        self._check_fitted()
        return list(self.working_points_)

    def cuts_at(self, background_efficiency: float) -> WorkingPoint:
        """The loosest working point whose target ε_B does not exceed ``background_efficiency``."""
        self._check_fitted()
        eligible = [
            wp for wp in self.working_points_ if wp.target_background_efficiency <= background_efficiency + 1e-12
        ]
        if not eligible:
            tightest = self.working_points_[0].target_background_efficiency
            raise ConfigError(
                f"background_efficiency={background_efficiency} is below the tightest working point "
                f"({tightest}); refit with a finer background_efficiencies grid"
            )
        return eligible[-1]

    # -- fit -----------------------------------------------------------------------------------

    def _targets(self) -> FloatArray:
        try:
            targets = np.asarray(self.background_efficiencies, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ConfigError(f"background_efficiencies={self.background_efficiencies!r} must be numbers") from None
        if targets.size == 0 or not np.all((targets > 0) & (targets <= 1)):
            raise ConfigError("background_efficiencies must be a non-empty list of values in (0, 1]")
        return np.unique(targets)

    def _check_hyperparameters(self) -> None:
        self._targets()
        directions = [self.directions] if isinstance(self.directions, str) else list(self.directions)
        for direction in directions:
            check_choice("directions", direction, DIRECTIONS)
        check_number("n_bins", self.n_bins, 2, 100_000, integer=True)
        check_number("popsize", self.popsize, 2, 10_000, integer=True)
        check_number("maxiter", self.maxiter, 0, 1_000_000, integer=True)
        if self.seed is not None:
            check_number("seed", self.seed, 0, 2**63, integer=True)

    def _resolve_directions(self, train: LabelledSample) -> list[str]:
        n_features = train.features.shape[1]
        if isinstance(self.directions, str):
            requested = [self.directions] * n_features
        else:
            requested = list(self.directions)
            if len(requested) != n_features:
                raise ConfigError(f"directions: {len(requested)} values for {n_features} variables")
        signal, background = train.labels == 1, train.labels == 0
        mean_signal = np.average(train.features[signal], axis=0, weights=train.weights[signal])
        mean_background = np.average(train.features[background], axis=0, weights=train.weights[background])
        return [
            ("lower" if mean_signal[j] > mean_background[j] else "upper") if d == "auto" else d
            for j, d in enumerate(requested)
        ]

    def _fit(self, train: LabelledSample, validation: LabelledSample | None) -> None:
        self.directions_ = self._resolve_directions(train)
        grid = _QuantileGrid(train, int(self.n_bins))
        bounds = [
            _Bound(j, side)
            for j, direction in enumerate(self.directions_)
            for side in (("lower", "upper") if direction == "both" else (direction,))
        ]
        upper_limits = np.array([grid.n_bins(b.variable) for b in bounds])
        # the cut set that rejects everything is feasible for every target: the search starts there
        best = np.where([b.side == "lower" for b in bounds], upper_limits, 0).astype(np.int64)
        rng = np.random.default_rng(self.seed)
        logger.info(
            "cut optimisation: %d bounds (%s), %d occupied cells, %d targets",
            len(bounds),
            ", ".join(f"{self.feature_names_[b.variable]}:{b.side}" for b in bounds),
            len(grid.cells),
            len(self._targets()),
        )
        working_points = []
        best_signal = 0.0
        for target in self._targets():
            candidate = self._optimise(grid, bounds, float(target), start=best, rng=rng)
            signal, background = (float(e[0]) for e in grid.efficiencies(bounds, candidate[None, :]))
            if background <= target + _TOLERANCE and signal >= best_signal:  # never worse than the tighter target
                best, best_signal = candidate, signal
            signal, background = (float(e[0]) for e in grid.efficiencies(bounds, best[None, :]))
            lower, upper = grid.cut_values(bounds, best, train.features.shape[1])
            working_points.append(self._working_point(float(target), (signal, background), (lower, upper), validation))
            logger.debug("target eps_B=%.3f: eps_S=%.4f eps_B=%.4f", target, signal, background)
        self.working_points_ = working_points

    def _optimise(
        self,
        grid: _QuantileGrid,
        bounds: list[_Bound],
        target: float,
        *,
        start: IntArray,
        rng: np.random.Generator,
    ) -> IntArray:
        """The best cut set for one target: evolutionary search seeded at ``start``, then polish."""

        def energy(params: np.ndarray) -> FloatArray | float:
            # Deb's feasibility rule as one number: feasible sets score -eps_S in [-1, 0], infeasible
            # ones 1 + their excess eps_B, so any feasible set beats any infeasible one
            population = np.atleast_2d(np.rint(params).T).astype(np.int64)
            signal, background = grid.efficiencies(bounds, population)
            result = np.where(background <= target + _TOLERANCE, -signal, 1.0 + background - target)
            return result if params.ndim > 1 else float(result[0])

        best = start
        if self.maxiter > 0:
            result = differential_evolution(
                energy,
                bounds=[(0, grid.n_bins(b.variable)) for b in bounds],
                integrality=np.ones(len(bounds), dtype=bool),
                x0=start,
                popsize=int(self.popsize),
                maxiter=int(self.maxiter),
                polish=False,
                vectorized=True,
                updating="deferred",
                rng=rng,
            )
            found = np.rint(result.x).astype(np.int64)
            if energy(found.astype(np.float64)) <= energy(start.astype(np.float64)):
                best = found
        return self._line_search(grid, bounds, target, best)

    @staticmethod
    def _line_search(grid: _QuantileGrid, bounds: list[_Bound], target: float, params: IntArray) -> IntArray:
        """Coordinate ascent: move each bound to its best quantile with the others fixed."""
        params = params.copy()
        signal, background = (float(e[0]) for e in grid.efficiencies(bounds, params[None, :]))
        current = signal if background <= target + _TOLERANCE else -1.0
        for _sweep in range(50):
            improved = False
            for p in range(len(bounds)):
                signal_eff, background_eff = grid.scan(bounds, params, p)
                score = np.where(background_eff <= target + _TOLERANCE, signal_eff, -1.0)
                choice = int(np.argmax(score))
                if score[choice] > current + 1e-12:
                    params[p], current, improved = choice, float(score[choice]), True
            if not improved:
                break
        return params

    def _working_point(
        self,
        target: float,
        efficiencies: tuple[float, float],
        bounds: tuple[FloatArray, FloatArray],
        validation: LabelledSample | None,
    ) -> WorkingPoint:
        (signal, background), (lower, upper) = efficiencies, bounds
        cuts = {name: (float(lo), float(hi)) for name, lo, hi in zip(self.feature_names_, lower, upper, strict=True)}
        validation_signal = validation_background = None
        if validation is not None:
            keep = _passes(validation.features, lower, upper)
            validation_signal = _efficiency(keep, validation, 1)
            validation_background = _efficiency(keep, validation, 0)
        return WorkingPoint(target, signal, background, cuts, validation_signal, validation_background)

    # -- predict -------------------------------------------------------------------------------

    def _decision_function(self, X: FloatArray) -> FloatArray:
        score = np.zeros(len(X))
        decided = np.zeros(len(X), dtype=bool)
        for wp in self.working_points_:  # tightest first: the first one passed sets the score
            bounds = np.array(list(wp.cuts.values())).reshape(-1, 2)
            newly = ~decided & _passes(X, bounds[:, 0], bounds[:, 1])
            score[newly] = 1.0 - wp.target_background_efficiency
            decided |= newly
        return score

    def _predict_proba(self, X: FloatArray) -> FloatArray:
        score = self._decision_function(X)
        return np.column_stack([1.0 - score, score])

    # -- persistence ---------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        points = [
            {
                "target_background_efficiency": wp.target_background_efficiency,
                "signal_efficiency": wp.signal_efficiency,
                "background_efficiency": wp.background_efficiency,
                "validation_signal_efficiency": wp.validation_signal_efficiency,
                "validation_background_efficiency": wp.validation_background_efficiency,
            }
            for wp in self.working_points_
        ]
        bounds = np.array([list(wp.cuts.values()) for wp in self.working_points_], dtype=np.float64)
        return {"directions": self.directions_, "working_points": points}, {"cut_bounds": bounds}

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], directory: Path) -> None:
        self.directions_ = list(state["directions"])
        bounds = arrays["cut_bounds"]
        if bounds.shape != (len(state["working_points"]), self.n_features_in_, 2):
            raise DataError(f"{directory}: cut bounds of shape {bounds.shape} do not match the working points")
        self.working_points_ = [
            WorkingPoint(
                float_from_json(point["target_background_efficiency"]),
                float_from_json(point["signal_efficiency"]),
                float_from_json(point["background_efficiency"]),
                {name: (float(lo), float(hi)) for name, (lo, hi) in zip(self.feature_names_, cut, strict=True)},
                point["validation_signal_efficiency"],
                point["validation_background_efficiency"],
            )
            for point, cut in zip(state["working_points"], bounds, strict=True)
        ]


def _efficiency(keep: np.ndarray, sample: LabelledSample, label: int) -> float | None:
    in_class = sample.labels == label
    total = sample.weights[in_class].sum()
    return float(sample.weights[in_class & keep].sum() / total) if total > 0 else None
