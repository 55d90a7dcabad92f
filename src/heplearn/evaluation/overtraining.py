"""The overtraining check of TMVA: the same figures on the training and the test jets.

A model that learnt statistical fluctuations of its training sample does better on it than on
independent jets. TMVA's evaluation prints the signal efficiency at background efficiencies of 1%,
10% and 30% for the test and the training sample side by side, and compares the score
distributions of each class on both samples with a Kolmogorov–Smirnov test (TMVA Users Guide,
§3.1.4 "Overtraining"). A small p-value flags a difference; with weighted events the weighted
variant below uses the effective numbers of events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp, kstwo

from heplearn.evaluation.metrics import (
    DEFAULT_BACKGROUND_EFFICIENCIES,
    binomial_uncertainty,
    effective_count,
    roc,
)


@dataclass(frozen=True)
class KsResult:
    """A two-sample Kolmogorov–Smirnov test: the statistic and its p-value."""

    statistic: float  # the largest distance between the two cumulative distributions
    pvalue: float


@dataclass(frozen=True)
class EfficiencyRow:
    """Signal efficiencies on the test and the training samples at one background efficiency (TMVA's table)."""

    background_efficiency: float
    signal_efficiency_test: float
    signal_efficiency_train: float
    uncertainty_test: float
    uncertainty_train: float


@dataclass(frozen=True)
class OvertrainingCheck:
    """TMVA's overtraining check: the efficiency table and a KS test per class, train vs test."""

    rows: list[EfficiencyRow]
    ks: dict[str, KsResult]  # class name -> KS test of its score distribution, train vs test
    auc_test: float
    auc_train: float


def ks_test(
    first: np.ndarray,
    second: np.ndarray,
    first_weight: np.ndarray | None = None,
    second_weight: np.ndarray | None = None,
) -> KsResult:
    """Two-sample Kolmogorov–Smirnov test; unweighted it is exactly ``scipy.stats.ks_2samp``.

    With weights, the statistic is the largest distance between the two weighted empirical
    distribution functions and the p-value the asymptotic one of ``ks_2samp(method="asymp")``
    with the effective numbers of events in place of the counts.
    """
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first_weight is None and second_weight is None:
        result = ks_2samp(first, second)
        return KsResult(float(result.statistic), float(result.pvalue))
    first_weight = np.ones(len(first)) if first_weight is None else np.asarray(first_weight, np.float64)
    second_weight = np.ones(len(second)) if second_weight is None else np.asarray(second_weight, np.float64)
    points = np.union1d(first, second)
    distance = np.max(np.abs(_weighted_cdf(first, first_weight, points) - _weighted_cdf(second, second_weight, points)))
    n_first, n_second = sorted([effective_count(first_weight), effective_count(second_weight)], reverse=True)
    events = n_first * n_second / (n_first + n_second)
    return KsResult(float(distance), float(kstwo.sf(distance, max(1, round(events)))))


def _weighted_cdf(values: np.ndarray, weight: np.ndarray, points: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(weight[order])])
    return cumulative[np.searchsorted(values[order], points, side="right")] / cumulative[-1]


def overtraining_check(
    test_score: np.ndarray,
    test_label: np.ndarray,
    train_score: np.ndarray,
    train_label: np.ndarray,
    class_names: list[str],
    test_weight: np.ndarray | None = None,
    train_weight: np.ndarray | None = None,
    signal_class: int = 0,
    background_efficiencies: tuple[float, ...] = DEFAULT_BACKGROUND_EFFICIENCIES,
    weighted: bool = False,
) -> OvertrainingCheck:
    """TMVA's table (ε_S at each ε_B, test and train) and a KS test per class of the signal score.

    ``weighted`` selects the weighted KS test; the efficiencies always use the weights.
    """
    test_weight = np.ones(len(test_score)) if test_weight is None else np.asarray(test_weight, np.float64)
    train_weight = np.ones(len(train_score)) if train_weight is None else np.asarray(train_weight, np.float64)
    test_signal, train_signal = np.asarray(test_label) == signal_class, np.asarray(train_label) == signal_class
    test_roc = roc(test_signal, test_score, test_weight)
    train_roc = roc(train_signal, train_score, train_weight)
    test_events = effective_count(test_weight[test_signal])
    train_events = effective_count(train_weight[train_signal])
    rows = []
    for background in background_efficiencies:
        on_test, on_train = test_roc.signal_efficiency_at(background), train_roc.signal_efficiency_at(background)
        rows.append(
            EfficiencyRow(
                background,
                on_test,
                on_train,
                float(binomial_uncertainty(on_test, test_events)),
                float(binomial_uncertainty(on_train, train_events)),
            )
        )
    ks = {}
    for index, name in enumerate(class_names):
        in_test, in_train = np.asarray(test_label) == index, np.asarray(train_label) == index
        if not in_test.any() or not in_train.any():
            continue
        if weighted:
            ks[name] = ks_test(test_score[in_test], train_score[in_train], test_weight[in_test], train_weight[in_train])
        else:
            ks[name] = ks_test(test_score[in_test], train_score[in_train])
    return OvertrainingCheck(rows, ks, test_roc.auc, train_roc.auc)
