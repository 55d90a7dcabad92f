"""The all-Gaussian unfolding problem, solved exactly: the known answer of the OmniFold and IBU tests.

Generator z ~ N(m₀, s₀²), detector x = z + N(0, e²), truth N(μ_T, σ_T²), so the data are
x ~ N(μ_T, σ_D²) with σ_D² = σ_T² + e². With perfect classifiers (or infinitely fine bins) and
infinite statistics an OmniFold / IBU iteration is the EM step of the deconvolution:

    p_{n+1}(z) = p_n(z) ∫ dx  p(x | z) p_D(x) / q_n(x),     q_n = p_n ⊛ N(0, e²).

If p_n = N(m, s²) then q_n = N(m, s² + e²) and the posterior of z given x is
N(m + k (x − m), k e²) with the gain k = s² / (s² + e²), so p_{n+1} is the posterior averaged over
the data — again Gaussian, with

    m_{n+1} = m + k (μ_T − m),        s²_{n+1} = k² σ_D² + k e²

(the mean of the posterior mean over the data, plus the posterior variance). The fixed point is
(μ_T, σ_T): there k = σ_T² / σ_D², and k² σ_D² + k e² = k (σ_T² + e²) = k σ_D² = σ_T².
"""

from __future__ import annotations

import numpy as np

# generator N(0, 1), truth N(0.2, 0.8²), smearing 0.5 (the hep-lbdl OmniFold Gaussian example)
GENERATOR = (0.0, 1.0)
TRUTH = (0.2, 0.8)
SMEARING = 0.5
# the unfolded (mean, σ) after iterations 1, 2, 3, 5, 10 (issue 19), asserted against the recursion
TABLE = {1: (0.1600, 0.8773), 2: (0.1902, 0.8341), 3: (0.1974, 0.8158), 5: (0.1998, 0.8036), 10: (0.2000, 0.8001)}


def gaussian_iterates(
    iterations: int,
    generator: tuple[float, float] = GENERATOR,
    truth: tuple[float, float] = TRUTH,
    smearing: float = SMEARING,
) -> list[tuple[float, float]]:
    """(mean, σ) of the unfolded generator density after iterations 1 … ``iterations``."""
    mean, variance = generator[0], generator[1] ** 2
    data_variance = truth[1] ** 2 + smearing**2
    iterates = []
    for _ in range(iterations):
        gain = variance / (variance + smearing**2)
        mean, variance = mean + gain * (truth[0] - mean), gain**2 * data_variance + gain * smearing**2
        iterates.append((mean, float(np.sqrt(variance))))
    return iterates


def weighted_moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The weighted mean and standard deviation of ``values``."""
    mean = float(np.average(values, weights=weights))
    return mean, float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))
