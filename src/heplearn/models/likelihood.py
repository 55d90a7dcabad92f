"""Projective likelihood classifier, TMVA's ``MethodLikelihood`` (TMVA Users Guide §8.2).

Each class k gets a one-dimensional density p_k,j per input variable j, and the likelihood of an
event is their product, L_k(x) = Π_j p_k,j(x_j): the variables are treated as independent, which is
exact only when they are independent within each class. The binary output is TMVA's likelihood ratio

    y_L = L_S / (L_S + L_B),

(equal class priors, as TMVA normalises each class to unit area); for K classes the probability of
class k is L_k / Σ_i L_i. ``decision_function`` returns log(L_S / L_B), a monotone transform of
y_L that does not saturate at 0 and 1 (TMVA's "TransformOutput" option serves the same purpose).

Densities (TMVA's PDF options, Users Guide §5.2): weighted histograms read at the event's value by
linear interpolation between bin centres, or a Gaussian kernel density estimate
(``scipy.stats.gaussian_kde``) tabulated on a fine grid at fit time. Outside the training range the
outermost value is used.

Correlations are lost by the projection. ``decorrelate=True`` first applies TMVA's square-root
decorrelation (Users Guide §4.1.2, "VarTransform=D"): with the covariance matrix C = S D Sᵀ of a
reference class (S orthogonal, D diagonal), x → C^(-1/2) x where C^(-1/2) = S D^(-1/2) Sᵀ. This
removes linear correlations of the reference class exactly; when both classes share the same
linear correlation the projected likelihood becomes exact for Gaussian inputs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp, softmax
from scipy.stats import gaussian_kde

from heplearn.errors import DataError
from heplearn.models.base import (
    FloatArray,
    JetClassifier,
    LabelledSample,
    check_choice,
    check_number,
)

logger = logging.getLogger(__name__)

# a class's density is floored at this fraction of its peak, so that a value never seen in one
# class gives a large but finite log-likelihood instead of log(0)
_DENSITY_FLOOR = 1e-9
_DECORRELATION_REFERENCES = ("background", "signal", "all")


class ProjectiveLikelihood(JetClassifier):
    """Product of per-variable class densities and their ratio (TMVA ``MethodLikelihood``).

    Parameters
    ----------
    density:
        "histogram" (weighted histograms, linear interpolation between bin centres) or "kde"
        (Gaussian kernel density estimate per variable and class).
    n_bins:
        Histogram bins per variable (``density="histogram"``).
    binning:
        "uniform" (equal width between the training minimum and maximum, as TMVA) or "quantile"
        (bins holding equal numbers of training events: for long tails such as jet pT, at the cost
        of coarse outermost bins where the class ratio of near-Gaussian variables is decided).
    kde_bandwidth:
        ``bw_method`` of ``scipy.stats.gaussian_kde``: "scott", "silverman" or a number.
    kde_grid_size:
        Points on which each kernel density is tabulated for prediction.
    decorrelate:
        Apply the square-root decorrelation C^(-1/2) before projecting.
    decorrelation_reference:
        Covariance to decorrelate: "background" (class 0), "signal" (class 1) or "all" (the
        average of the per-class covariance matrices).
    """

    def __init__(
        self,
        *,
        density: Literal["histogram", "kde"] = "histogram",
        n_bins: int = 40,
        binning: Literal["uniform", "quantile"] = "uniform",
        kde_bandwidth: Literal["scott", "silverman"] | float = "scott",
        kde_grid_size: int = 512,
        decorrelate: bool = False,
        decorrelation_reference: Literal["background", "signal", "all"] = "background",
    ) -> None:
        self.density = density
        self.n_bins = n_bins
        self.binning = binning
        self.kde_bandwidth = kde_bandwidth
        self.kde_grid_size = kde_grid_size
        self.decorrelate = decorrelate
        self.decorrelation_reference = decorrelation_reference

    # fitted: per variable, the grid of x values and the (n_classes, grid) densities on it
    grids_: list[FloatArray]
    densities_: list[FloatArray]
    decorrelation_matrix_: FloatArray | None
    decorrelation_offset_: FloatArray | None

    def _check_hyperparameters(self) -> None:
        check_choice("density", self.density, ("histogram", "kde"))
        check_choice("binning", self.binning, ("quantile", "uniform"))
        check_number("n_bins", self.n_bins, 1, 1_000_000, integer=True)
        check_number("kde_grid_size", self.kde_grid_size, 2, 1_000_000, integer=True)
        if not isinstance(self.kde_bandwidth, str):
            check_number("kde_bandwidth", self.kde_bandwidth, 1e-6)
        else:
            check_choice("kde_bandwidth", self.kde_bandwidth, ("scott", "silverman"))
        check_choice("decorrelate", self.decorrelate, (True, False))
        check_choice("decorrelation_reference", self.decorrelation_reference, _DECORRELATION_REFERENCES)

    # -- fit -----------------------------------------------------------------------------------

    def _fit(self, train: LabelledSample, validation: LabelledSample | None) -> None:
        if validation is not None:
            logger.info("the projective likelihood has nothing to tune: the validation split is not used")
        if self.decorrelation_reference == "signal" and self.n_classes_ != 2 and self.decorrelate:
            logger.info("decorrelation_reference='signal' uses class 1 of %d classes", self.n_classes_)
        self.decorrelation_matrix_ = self.decorrelation_offset_ = None
        features = train.features
        if self.decorrelate:
            self.decorrelation_offset_, self.decorrelation_matrix_ = self._square_root_decorrelation(train)
            features = self._transform(features)
        self.grids_, self.densities_ = [], []
        for j in range(features.shape[1]):
            fit_variable = self._histogram_density if self.density == "histogram" else self._kde_density
            grid, density = fit_variable(features[:, j], train, self.feature_names_[j])
            floor = _DENSITY_FLOOR * density.max(axis=1, keepdims=True)
            self.grids_.append(grid)
            self.densities_.append(np.maximum(density, floor))

    def _square_root_decorrelation(self, train: LabelledSample) -> tuple[FloatArray, FloatArray]:
        """Offset and C^(-1/2) of the reference covariance (TMVA Users Guide §4.1.2)."""
        classes = {"background": [0], "signal": [1], "all": list(range(self.n_classes_))}[
            str(self.decorrelation_reference)
        ]
        covariances, means = [], []
        for k in classes:
            in_class = train.labels == k
            means.append(np.average(train.features[in_class], axis=0, weights=train.weights[in_class]))
            covariances.append(
                np.atleast_2d(np.cov(train.features[in_class], rowvar=False, aweights=train.weights[in_class]))
            )
        covariance = np.mean(covariances, axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        if eigenvalues.min() <= 1e-12 * max(eigenvalues.max(), 0.0) or eigenvalues.max() <= 0:
            raise DataError(
                "decorrelate=True: the reference covariance matrix is singular (a constant variable or "
                "linearly dependent variables); drop the redundant variables"
            )
        inverse_sqrt = eigenvectors @ np.diag(eigenvalues**-0.5) @ eigenvectors.T
        return np.mean(means, axis=0), inverse_sqrt

    def _transform(self, features: FloatArray) -> FloatArray:
        if self.decorrelation_matrix_ is None or self.decorrelation_offset_ is None:
            return features
        return (features - self.decorrelation_offset_) @ self.decorrelation_matrix_

    def _histogram_density(self, values: FloatArray, train: LabelledSample, name: str) -> tuple[FloatArray, FloatArray]:
        """Bin centres and per-class densities (probability per unit length) of one variable."""
        if self.binning == "quantile":
            edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, int(self.n_bins) + 1)))
        else:
            edges = np.linspace(values.min(), values.max(), int(self.n_bins) + 1)
        if len(edges) < 2 or edges[-1] <= edges[0]:
            edges = np.array([values.min() - 0.5, values.min() + 0.5])  # a constant variable: one bin
            logger.warning("variable %s is constant in the training sample: it cannot separate classes", name)
        widths = np.diff(edges)
        density = np.empty((self.n_classes_, len(widths)))
        for k in range(self.n_classes_):
            in_class = train.labels == k
            counts, _ = np.histogram(values[in_class], bins=edges, weights=train.weights[in_class])
            density[k] = counts / counts.sum() / widths
        return 0.5 * (edges[:-1] + edges[1:]), density

    def _kde_density(self, values: FloatArray, train: LabelledSample, name: str) -> tuple[FloatArray, FloatArray]:
        """A grid over the training range (plus three bandwidths) and each class's KDE on it."""
        estimates = []
        for k in range(self.n_classes_):
            in_class = train.labels == k
            try:
                estimates.append(
                    gaussian_kde(values[in_class], bw_method=self.kde_bandwidth, weights=train.weights[in_class])
                )
            except (np.linalg.LinAlgError, ValueError) as error:
                raise DataError(
                    f"density='kde': cannot estimate the density of {name} for class {k} ({error}); "
                    "a constant or single-valued variable needs density='histogram'"
                ) from None
        margin = 3.0 * max(np.sqrt(e.covariance[0, 0]) for e in estimates)
        grid = np.linspace(values.min() - margin, values.max() + margin, int(self.kde_grid_size))
        return grid, np.stack([e(grid) for e in estimates])

    # -- predict -------------------------------------------------------------------------------

    def log_likelihoods(self, X: ArrayLike) -> FloatArray:
        """log L_k(x) = Σ_j log p_k,j(x_j) for each event and class, shape ``(n, n_classes)``."""
        return self._log_likelihoods(self._checked_input(X))

    def _log_likelihoods(self, X: FloatArray) -> FloatArray:
        features = self._transform(X)
        total = np.zeros((len(features), self.n_classes_))
        for j, (grid, density) in enumerate(zip(self.grids_, self.densities_, strict=True)):
            for k in range(self.n_classes_):
                total[:, k] += np.log(np.interp(features[:, j], grid, density[k]))
        return total

    def _predict_proba(self, X: FloatArray) -> FloatArray:
        return softmax(self._log_likelihoods(X), axis=1)

    def _decision_function(self, X: FloatArray) -> FloatArray:
        log_l = self._log_likelihoods(X)
        if self.n_classes_ == 2:
            return log_l[:, 1] - log_l[:, 0]  # log(L_S / L_B)
        return log_l - logsumexp(log_l, axis=1, keepdims=True)

    # -- persistence ---------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        for j, (grid, density) in enumerate(zip(self.grids_, self.densities_, strict=True)):
            arrays[f"grid_{j}"] = grid
            arrays[f"density_{j}"] = density
        if self.decorrelation_matrix_ is not None and self.decorrelation_offset_ is not None:
            arrays["decorrelation_matrix"] = self.decorrelation_matrix_
            arrays["decorrelation_offset"] = self.decorrelation_offset_
        return {"decorrelated": self.decorrelation_matrix_ is not None}, arrays

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], directory: Path) -> None:
        try:
            self.grids_ = [arrays[f"grid_{j}"] for j in range(self.n_features_in_)]
            self.densities_ = [arrays[f"density_{j}"] for j in range(self.n_features_in_)]
            self.decorrelation_matrix_ = arrays["decorrelation_matrix"] if state["decorrelated"] else None
            self.decorrelation_offset_ = arrays["decorrelation_offset"] if state["decorrelated"] else None
        except KeyError as error:
            raise DataError(f"{directory}: saved likelihood lacks array {error}") from None
