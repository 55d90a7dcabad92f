"""One suite run over every classical jet-level classifier (the scikit-learn common-test idea).

The cases come from the registry (``heplearn.models.registry.CLASSICAL_MODELS``), so every
registered classical model runs every check. ``SMALL`` holds each one's fast settings and
``INVALID_PARAMS`` an invalid value for it; a registered model missing from either fails
``test_every_registered_model_is_in_the_suite``, so none is silently left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from heplearn.errors import ConfigError, DataError, HeplearnError
from heplearn.models import registry
from heplearn.models.base import JetClassifier, NotFittedError, load_model
from heplearn.models.cuts import RectangularCuts
from heplearn.models.likelihood import ProjectiveLikelihood

# Per registered classical model: small, fast hyper-parameters ({}: its defaults are fast).
SMALL: dict[str, dict[str, object]] = {
    "cuts": {"background_efficiencies": np.linspace(0.05, 0.95, 10), "maxiter": 20},
    "likelihood": {},
    "bdt": {"n_estimators": 30, "n_jobs": 1},
}
# Further configurations that run the whole suite too: case -> (registered name, hyper-parameters).
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "likelihood-kde-decorrelated": ("likelihood", {"density": "kde", "decorrelate": True, "kde_grid_size": 128}),
}
CASES: dict[str, tuple[str, dict[str, object]]] = {
    **{name: (name, SMALL.get(name, {})) for name in registry.CLASSICAL_MODELS},
    **VARIANTS,
}

# one invalid hyper-parameter value per case
INVALID_PARAMS: dict[str, dict[str, object]] = {
    "cuts": {"directions": "sideways"},
    "likelihood": {"density": "spline"},
    "likelihood-kde-decorrelated": {"decorrelation_reference": "muons"},
    "bdt": {"learning_rate": -1.0},
}


def test_every_registered_model_is_in_the_suite() -> None:
    assert set(SMALL) == set(registry.CLASSICAL_MODELS), "give each registered classical model its SMALL settings"
    assert set(INVALID_PARAMS) == set(CASES), "give each case an invalid hyper-parameter value"
    for case, (name, parameters) in CASES.items():
        assert set(parameters) | set(INVALID_PARAMS[case]) <= set(registry.hyperparameter_names(name)), case


@pytest.fixture(params=sorted(CASES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_model(case: str) -> JetClassifier:
    name, parameters = CASES[case]
    return registry.model_class(name)(**parameters)


def binary_toy(n_per_class: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x0 separates (signal N(+1, 1), background N(-1, 1)); x1, x2 are noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([1, 0], n_per_class)
    X = rng.normal(size=(2 * n_per_class, 3))
    X[:, 0] += np.where(y == 1, 1.0, -1.0)
    return X, y


def test_shapes_and_probabilities(name: str) -> None:
    X, y = binary_toy()
    model = make_model(name).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    predicted = model.predict(X)
    assert predicted.shape == (len(X),)
    assert set(np.unique(predicted)) <= {0, 1}
    score = model.decision_function(X)
    assert score.shape == (len(X),)
    # the score ranks events like the signal probability does
    order = np.argsort(score, kind="stable")
    assert np.all(np.diff(proba[order, 1]) >= -1e-6)
    assert roc_auc_score(y, score) > 0.85  # the exact likelihood ratio reaches 0.92 on this toy
    assert model.n_features_in_ == 3
    assert list(model.classes_) == [0, 1]


def test_save_load_gives_identical_predictions(name: str, tmp_path: Path) -> None:
    X, y = binary_toy()
    model = make_model(name).fit(X, y, feature_names=["mass", "tau21", "pt"])
    model.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert all(f.endswith((".json", ".safetensors")) for f in files), files  # no pickle
    json.loads((tmp_path / "model" / "model.json").read_text())

    for loaded in (type(model).load(tmp_path / "model"), load_model(tmp_path / "model")):
        assert type(loaded) is type(model)
        assert loaded.feature_names_ == ["mass", "tau21", "pt"]
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
        assert _plain(loaded.get_params()) == _plain(model.get_params())


def _plain(params: dict[str, object]) -> dict[str, object]:
    return {key: np.asarray(value).tolist() for key, value in params.items()}


def test_load_rejects_wrong_class_and_missing_directory(name: str, tmp_path: Path) -> None:
    X, y = binary_toy(300)
    make_model(name).fit(X, y).save(tmp_path)
    other = ProjectiveLikelihood if not isinstance(make_model(name), ProjectiveLikelihood) else RectangularCuts
    with pytest.raises(DataError, match="holds a"):
        other.load(tmp_path)
    with pytest.raises(DataError, match=r"model\.json"):
        load_model(tmp_path / "nowhere")


def test_upweighting_background_in_a_region_lowers_signal_probability_there(name: str) -> None:
    X, y = binary_toy()
    weights = np.where((y == 0) & (X[:, 0] > 0.5), 20.0, 1.0)
    region = (X[:, 0] > 0.5) & (X[:, 0] < 2.0)
    unweighted = make_model(name).fit(X, y).predict_proba(X)[region, 1].mean()
    weighted = make_model(name).fit(X, y, sample_weight=weights).predict_proba(X)[region, 1].mean()
    assert weighted < unweighted - 0.1


def test_a_common_weight_factor_changes_nothing(name: str) -> None:
    X, y = binary_toy(500)
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.5, 2.0, len(y))
    once = make_model(name).fit(X, y, sample_weight=weights).predict_proba(X)
    scaled = make_model(name).fit(X, y, sample_weight=7.0 * weights).predict_proba(X)
    np.testing.assert_allclose(scaled, once, atol=1e-5)


def test_clone_and_params(name: str) -> None:
    model = make_model(name)
    copy = clone(model)
    assert _plain(copy.get_params()) == _plain(model.get_params())
    key = next(iter(INVALID_PARAMS[name]))
    copy.set_params(**{key: model.get_params()[key]})
    assert not hasattr(copy, "n_classes_")


def test_works_inside_scikit_learn_tools(name: str) -> None:
    X, y = binary_toy(300)
    scores = cross_val_score(make_pipeline(StandardScaler(), make_model(name)), X, y, cv=3, scoring="roc_auc")
    assert np.all(scores > 0.8)


def test_feature_names(name: str) -> None:
    X, y = binary_toy(300)
    assert make_model(name).fit(X, y).feature_names_ == ["x0", "x1", "x2"]
    with pytest.raises(DataError, match="feature_names"):
        make_model(name).fit(X, y, feature_names=["a", "b"])
    with pytest.raises(DataError, match="unique"):
        make_model(name).fit(X, y, feature_names=["a", "a", "b"])


def test_predict_before_fit(name: str) -> None:
    X, _ = binary_toy(10)
    model = make_model(name)
    for method in (model.predict_proba, model.predict, model.decision_function):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(X)
    with pytest.raises(HeplearnError):
        model.save("unused")


def test_invalid_hyperparameter(name: str) -> None:
    X, y = binary_toy(100)
    model = make_model(name).set_params(**INVALID_PARAMS[name])
    key = next(iter(INVALID_PARAMS[name]))
    with pytest.raises(ConfigError, match=key):
        model.fit(X, y)


def _with_nan(X: np.ndarray) -> np.ndarray:
    X = X.copy()
    X[5, 1] = np.nan
    return X


BAD_FITS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], dict[str, object]], str]] = {
    "nan-in-X": (lambda X, y: {"X": _with_nan(X), "y": y}, "non-finite"),
    "inf-in-X": (lambda X, y: {"X": np.where(X > 2.5, np.inf, X), "y": y}, "non-finite"),
    "1-D X": (lambda X, y: {"X": X[:, 0], "y": y}, "2-D"),
    "3-D X": (lambda X, y: {"X": X[:, :, None], "y": y}, "2-D"),
    "short y": (lambda X, y: {"X": X, "y": y[:-1]}, "labels for"),
    "negative label": (lambda X, y: {"X": X, "y": y - 1}, "integers 0..K-1"),
    "fractional label": (lambda X, y: {"X": X, "y": y * 0.5}, "integers 0..K-1"),
    "one class": (lambda X, y: {"X": X, "y": np.zeros_like(y)}, "one class"),
    "negative weight": (lambda X, y: {"X": X, "y": y, "sample_weight": np.full(len(y), -1.0)}, "negative"),
    "nan weight": (lambda X, y: {"X": X, "y": y, "sample_weight": np.full(len(y), np.nan)}, "NaN"),
    "short weights": (lambda X, y: {"X": X, "y": y, "sample_weight": np.ones(3)}, "sample_weight"),
    "class without weight": (
        lambda X, y: {"X": X, "y": y, "sample_weight": (y == 1).astype(float)},
        "zero total weight",
    ),
    "X_val without y_val": (lambda X, y: {"X": X, "y": y, "X_val": X}, "together"),
    "X_val wrong width": (lambda X, y: {"X": X, "y": y, "X_val": X[:, :2], "y_val": y}, "X_val"),
    "unseen y_val class": (lambda X, y: {"X": X, "y": y, "X_val": X, "y_val": y + 1}, "y_val"),
    "strings": (lambda X, y: {"X": np.full(X.shape, "a"), "y": y}, "numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_bad_training_input(name: str, case: str) -> None:
    X, y = binary_toy(100)
    make_arguments, message = BAD_FITS[case]
    with pytest.raises(DataError, match=message):
        make_model(name).fit(**make_arguments(X, y))  # type: ignore[arg-type]


def test_bad_prediction_input(name: str) -> None:
    X, y = binary_toy(200)
    model = make_model(name).fit(X, y)
    with pytest.raises(DataError, match="fitted on 3"):
        model.predict_proba(X[:, :2])
    with pytest.raises(DataError, match="non-finite"):
        model.decision_function(_with_nan(X))
    with pytest.raises(DataError, match="2-D"):
        model.predict(X[0])


def test_one_hot_labels_equal_integer_labels(name: str) -> None:
    X, y = binary_toy(300)
    one_hot = np.eye(2)[y]
    np.testing.assert_array_equal(
        make_model(name).fit(X, one_hot).predict_proba(X), make_model(name).fit(X, y).predict_proba(X)
    )


def test_a_failed_refit_leaves_the_model_unfitted(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = binary_toy(200)
    model = make_model(name).fit(X, y)
    model.set_params(**INVALID_PARAMS[name])
    with pytest.raises(ConfigError):
        model.fit(X, y)
    model.predict(X)  # hyper-parameters are checked before the fitted state changes

    def failing_fit(*args: object) -> None:
        raise DataError("the fit failed half way")

    model = make_model(name).fit(X, y)
    monkeypatch.setattr(model, "_fit", failing_fit)
    with pytest.raises(DataError, match="half way"):
        model.fit(X, y)
    with pytest.raises(NotFittedError):
        model.predict(X)
