"""Boosted decision trees (XGBoost): correlations, early stopping, multiclass, the saved format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from heplearn.models.bdt import XGBOOST_FILE, BoostedDecisionTrees
from heplearn.models.likelihood import ProjectiveLikelihood


def correlated_toy(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Signal correlated (+0.8), background anti-correlated (-0.8): invisible to the marginals."""
    rng = np.random.default_rng(seed)
    signal = rng.multivariate_normal([0.3, 0.3], [[1.0, 0.8], [0.8, 1.0]], n_per_class)
    background = rng.multivariate_normal([0.0, 0.0], [[1.0, -0.8], [-0.8, 1.0]], n_per_class)
    return np.vstack([signal, background]), np.repeat([1, 0], n_per_class)


def test_beats_the_projective_likelihood_on_correlated_inputs() -> None:
    X, y = correlated_toy(3000, seed=0)
    X_val, y_val = correlated_toy(1000, seed=1)
    X_test, y_test = correlated_toy(3000, seed=2)
    bdt = BoostedDecisionTrees(n_estimators=150, max_depth=3, n_jobs=1).fit(X, y, X_val=X_val, y_val=y_val)
    likelihood = ProjectiveLikelihood().fit(X, y)
    bdt_auc = roc_auc_score(y_test, bdt.decision_function(X_test))
    likelihood_auc = roc_auc_score(y_test, likelihood.decision_function(X_test))
    assert bdt_auc > likelihood_auc + 0.1
    assert bdt_auc > 0.85  # the exact likelihood ratio reaches about 0.89


def test_early_stopping_on_noise_stops_early_and_keeps_the_best_round() -> None:
    rng = np.random.default_rng(3)
    X, X_val = rng.normal(size=(2000, 4)), rng.normal(size=(1000, 4))
    y, y_val = rng.integers(0, 2, 2000), rng.integers(0, 2, 1000)
    model = BoostedDecisionTrees(n_estimators=300, early_stopping_rounds=10, n_jobs=1)
    model.fit(X, y, X_val=X_val, y_val=y_val)
    assert model.n_rounds_ < 60
    assert model.n_rounds_ == model.best_iteration_ + 11  # ten rounds without improvement after the best
    assert model.booster_.num_boosted_rounds() == model.best_iteration_ + 1
    assert len(model.validation_loss_) == model.n_rounds_
    assert model.validation_loss_[model.best_iteration_] == min(model.validation_loss_)


def test_without_validation_all_rounds_are_boosted() -> None:
    X, y = correlated_toy(300, seed=4)
    model = BoostedDecisionTrees(n_estimators=25, n_jobs=1).fit(X, y)
    assert model.n_rounds_ == 25
    assert model.booster_.num_boosted_rounds() == 25
    assert model.validation_loss_ == []


def test_multiclass_three_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 3000)
    centres = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [0.0, 2.5, 0.0]])
    X = rng.normal(size=(3000, 3)) + centres[y]
    X_test = rng.normal(size=(3000, 3)) + centres[y]
    model = BoostedDecisionTrees(n_estimators=60, max_depth=3, n_jobs=1).fit(X, y, X_val=X_test, y_val=y)
    proba = model.predict_proba(X_test)
    assert proba.shape == (3000, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.mean(model.predict(X_test) == y) > 0.8  # the Bayes rate is about 0.87
    assert model.decision_function(X_test).shape == (3000, 3)
    model.save(tmp_path)
    np.testing.assert_array_equal(BoostedDecisionTrees.load(tmp_path).predict_proba(X_test), proba)


def test_feature_importances_by_name() -> None:
    rng = np.random.default_rng(6)
    n = 3000
    y = rng.integers(0, 2, n)
    X = np.column_stack([rng.normal(size=n) + 1.5 * y, rng.normal(size=n) + 0.3 * y, np.full(n, 2.0)])
    model = BoostedDecisionTrees(n_estimators=40, n_jobs=1).fit(X, y, feature_names=["jet_sdmass", "jet_tau21", "c"])
    importances = model.feature_importances
    assert list(importances) == ["jet_sdmass", "jet_tau21", "c"]
    assert importances["c"] == 0.0  # a constant is never split on
    assert importances["jet_sdmass"] > importances["jet_tau21"] > 0


def test_saved_model_is_plain_xgboost_json(tmp_path: Path) -> None:
    X, y = correlated_toy(500, seed=7)
    model = BoostedDecisionTrees(n_estimators=20, n_jobs=1).fit(X, y)
    model.save(tmp_path)
    booster = xgb.Booster(model_file=str(tmp_path / XGBOOST_FILE))  # any XGBoost reads it
    assert (tmp_path / XGBOOST_FILE).read_text().lstrip().startswith("{")
    np.testing.assert_allclose(booster.predict(xgb.DMatrix(X)), model.predict_proba(X)[:, 1], rtol=1e-6)


def test_balance_classes_gives_equal_prior_probabilities() -> None:
    # 9:1 background to signal on pure noise: balanced weights give p(signal) about 1/2, not 1/10
    rng = np.random.default_rng(8)
    X = rng.normal(size=(4000, 2))
    y = (np.arange(4000) % 10 == 0).astype(int)
    balanced = BoostedDecisionTrees(n_estimators=20, max_depth=1, n_jobs=1).fit(X, y)
    raw = BoostedDecisionTrees(n_estimators=20, max_depth=1, balance_classes=False, n_jobs=1).fit(X, y)
    assert abs(balanced.predict_proba(X)[:, 1].mean() - 0.5) < 0.05
    assert abs(raw.predict_proba(X)[:, 1].mean() - 0.1) < 0.03
