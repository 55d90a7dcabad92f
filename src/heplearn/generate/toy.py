"""The analytic Neyman–Pearson toy: a labelled dataset whose likelihood ratio is known exactly.

By the Neyman–Pearson lemma the likelihood ratio p_s(x)/p_b(x) is the most powerful test
statistic, so a classifier trained on this toy can be compared with the best possible one: the
exact log-likelihood ratio is stored per event in ``aux_log_lr``.

In ``d`` dimensions (features ``x0 .. x{d-1}``):

- background: one Gaussian, mean 0, covariance Σ_b[i, j] = 0.3^|i-j|;
- signal: an equal mixture of two Gaussians with means +μ and μ', where μ_i = 0.8 and
  μ'_i = 0.8 (-1)^i, sharing the covariance Σ_s[i, j] = 0.7 · 0.6^|i-j|.

Signal and background therefore differ in location, width and correlation; no single feature or
linear cut is optimal. Labels are ``label_signal`` / ``label_background`` (one-hot), half the
events of each class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import heplearn
from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.generate.driver import SPLITS, check_split_fractions, output_suffix, split_bounds

BACKGROUND_CORRELATION = 0.3
SIGNAL_CORRELATION = 0.6
SIGNAL_SCALE = 0.7
SIGNAL_SHIFT = 0.8
MAX_DIMENSIONS = 64


@dataclass(frozen=True)
class ToyModel:
    """The closed-form densities of the toy in ``dimensions`` dimensions."""

    dimensions: int

    @property
    def background_covariance(self) -> np.ndarray:
        """The background's covariance matrix."""
        return _toeplitz(BACKGROUND_CORRELATION, self.dimensions)

    @property
    def signal_covariance(self) -> np.ndarray:
        """The covariance matrix of each signal component."""
        return SIGNAL_SCALE * _toeplitz(SIGNAL_CORRELATION, self.dimensions)

    @property
    def signal_means(self) -> tuple[np.ndarray, np.ndarray]:
        """The means of the two signal components."""
        alternating = (-1.0) ** np.arange(self.dimensions)
        return np.full(self.dimensions, SIGNAL_SHIFT), SIGNAL_SHIFT * alternating

    def log_background(self, x: np.ndarray) -> np.ndarray:
        """log p(x | background) of each row of ``x``."""
        return np.atleast_1d(multivariate_normal(np.zeros(self.dimensions), self.background_covariance).logpdf(x))

    def log_signal(self, x: np.ndarray) -> np.ndarray:
        """log p(x | signal) of each row of ``x`` (an equal mixture of the two components)."""
        terms = [
            np.atleast_1d(multivariate_normal(mean, self.signal_covariance).logpdf(x)) for mean in self.signal_means
        ]
        return logsumexp(np.stack(terms), axis=0, b=0.5)

    def log_likelihood_ratio(self, x: np.ndarray) -> np.ndarray:
        """log p_s(x) - log p_b(x) for each row of ``x``."""
        return self.log_signal(x) - self.log_background(x)

    def sample(self, n_signal: int, n_background: int, rng: np.random.Generator) -> np.ndarray:
        """``n_signal`` signal then ``n_background`` background points, drawn with ``rng``."""
        component = rng.integers(0, 2, n_signal)
        means = np.stack(self.signal_means)[component]
        signal = means + rng.multivariate_normal(np.zeros(self.dimensions), self.signal_covariance, n_signal)
        background = rng.multivariate_normal(np.zeros(self.dimensions), self.background_covariance, n_background)
        return np.concatenate([signal, background])


def _toeplitz(rho: float, dimensions: int) -> np.ndarray:
    index = np.arange(dimensions)
    return rho ** np.abs(index[:, None] - index[None, :])


def generate_toy(events: int, dimensions: int = 4, *, seed: int = 0) -> ak.Array:
    """``events`` toy events (shuffled, half signal) with features, labels and ``aux_log_lr``."""
    if isinstance(events, bool) or not isinstance(events, int | np.integer) or events < 2:
        raise ConfigError(f"toy events must be an integer of at least 2, got {events!r}")
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int | np.integer)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise ConfigError(f"toy dimensions must be an integer within 1-{MAX_DIMENSIONS}, got {dimensions!r}")
    model = ToyModel(int(dimensions))
    rng = np.random.default_rng(seed)
    n_signal = int(events) // 2
    x = model.sample(n_signal, int(events) - n_signal, rng)
    is_signal = np.arange(int(events)) < n_signal
    order = rng.permutation(int(events))
    x, is_signal = x[order], is_signal[order]
    columns: dict[str, Any] = {f"x{i}": np.ascontiguousarray(x[:, i]) for i in range(model.dimensions)}
    columns["label_signal"] = is_signal
    columns["label_background"] = ~is_signal
    columns["aux_log_lr"] = model.log_likelihood_ratio(x)
    return ak.zip(columns, depth_limit=1)


def write_toy(
    output_dir: str | Path,
    events: int,
    dimensions: int = 4,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    file_format: str = "parquet",
) -> dict[str, Path]:
    """Generate the toy and write ``train/val/test`` files with provenance; returns the paths."""
    split_fractions = check_split_fractions(fractions)
    suffix = output_suffix(file_format)
    data = generate_toy(events, dimensions, seed=seed)
    provenance = {
        "generator": "heplearn.generate.toy",
        "heplearn_version": heplearn.__version__,
        "events": int(events),
        "dimensions": int(dimensions),
        "seed": seed,
        "split_fractions": dict(zip(SPLITS, split_fractions, strict=True)),
        "model": {
            "background": f"N(0, Σ_b), Σ_b[i,j] = {BACKGROUND_CORRELATION}^|i-j|",
            "signal": (
                f"0.5 N(μ, Σ_s) + 0.5 N(μ', Σ_s), μ_i = {SIGNAL_SHIFT}, μ'_i = {SIGNAL_SHIFT}(-1)^i, "
                f"Σ_s[i,j] = {SIGNAL_SCALE}·{SIGNAL_CORRELATION}^|i-j|"
            ),
        },
    }
    paths = {}
    for split, (low, high) in split_bounds(len(data), split_fractions).items():
        if high > low:
            path = Path(output_dir) / f"{split}{suffix}"
            io.write(data[low:high], path, provenance={**provenance, "split": split})
            paths[split] = path
    return paths
