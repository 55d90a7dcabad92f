"""The notebook interface and the curated public API."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

import heplearn
from heplearn import classifier as classifier_module
from heplearn.data import io
from heplearn.data.in_memory import InMemoryJets
from heplearn.errors import ConfigError, DataError
from heplearn.models import registry
from heplearn.models.bdt import BoostedDecisionTrees
from heplearn.models.cuts import RectangularCuts
from tests.conftest import make_jets


def test_public_api_is_small_and_importable() -> None:
    assert set(heplearn.__all__) == {
        "__version__",
        "Classifier",
        "load_jets",
        "TrainedModel",
        "train",
        "load_run_config",
        "load_data_config",
        "DataConfig",
        "HeplearnError",
        "evaluate_run",
        "compare_runs",
        "export_run",
        "predict_files",
        "serve",
        "fit_inputs",
        "run_analysis",
    }
    for name in heplearn.__all__:
        assert getattr(heplearn, name) is not None


def test_the_docstring_examples_run() -> None:
    for module in (classifier_module, registry):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# --- on jets from load_jets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parameters"),
    [("bdt", {"model": {"n_estimators": 30, "n_jobs": 1}}), ("mlp", {"preset": "small", "training": {"epochs": 2}})],
)
def test_classifier_fit_predict_save_load(tmp_path: Path, name: str, parameters: dict) -> None:
    files = {
        split: io.write(make_jets(n, seed=s), tmp_path / f"{split}.parquet")
        for split, n, s in (("train", 1500, 31), ("val", 400, 32), ("test", 400, 33))
    }
    data = heplearn.load_data_config(
        {
            "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
        }
    )
    train, val, test = (heplearn.load_jets([files[s]], data) for s in ("train", "val", "test"))
    classifier = heplearn.Classifier(name, **parameters).fit(train, val)
    probabilities = classifier.predict_proba(test)
    assert probabilities.shape == (len(test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert roc_auc_score(test.arrays.label == 0, probabilities[:, 0]) > 0.9
    assert list(classifier.classes_) == [0, 1] and classifier.class_names_ == ["top", "qcd"]
    np.testing.assert_array_equal(classifier.predict(test), probabilities.argmax(axis=1))
    again = heplearn.Classifier.load(classifier.save(tmp_path / "saved"))
    np.testing.assert_allclose(again.predict_proba(test), probabilities, rtol=1e-5, atol=1e-6)


# Small, fast settings for every registered model. A model added to the registry must be added
# here too (test_every_registered_model_has_round_trip_settings), so none is silently skipped.
NETWORK = {"preset": "small", "training": {"epochs": 1, "batch_size": 64, "max_steps_per_epoch": 3}}
ROUND_TRIP: dict[str, dict[str, Any]] = {
    "cuts": {"model": {"background_efficiencies": [0.1, 0.3, 0.5], "maxiter": 10}},
    "likelihood": {},
    "bdt": {"model": {"n_estimators": 20, "n_jobs": 1}},
    "mlp": NETWORK,
    "pfn": NETWORK,
    "efn": NETWORK,
    "particlenet": NETWORK,
    "part": NETWORK,
    "cnn": NETWORK,
    "rnn": NETWORK,
    "autoencoder": NETWORK,  # on labelled jets, its bottleneck network ends in a classification head
    "vae": NETWORK,  # likewise: a classification head on the sampled latent
    "cicada": {**NETWORK, "model": {"regions": [8, 8]}},  # a bottleneck classifier on the 8 × 8 jet image
}


def test_every_registered_model_has_round_trip_settings() -> None:
    assert set(ROUND_TRIP) == set(registry.model_names())


@pytest.fixture(scope="module")
def every_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[InMemoryJets, InMemoryJets, InMemoryJets]:
    """Train, validation and test jets with every input group a model may read."""
    folder = tmp_path_factory.mktemp("every_input")
    particles = {"length": 24}
    data = heplearn.load_data_config(
        {
            "inputs": {
                "jet": {"variables": ["jet_sdmass", "jet_nparticles"]},
                "particles": {**particles, "variables": ["part_deta", "part_dphi", "part_logpt"]},
                "points": {**particles, "variables": ["part_deta", "part_dphi"], "standardize": False},
                "vectors": {
                    **particles,
                    "variables": ["part_px", "part_py", "part_pz", "part_energy"],
                    "standardize": False,
                },
                "image": {"image": {"bins": 8}},
            },
            "labels": {"classes": ["label_top", "label_qcd"]},
        }
    )
    splits = [io.write(make_jets(n, seed=s), folder / f"{s}.parquet") for n, s in ((300, 41), (100, 42), (100, 43))]
    train, val, test = (heplearn.load_jets([path], data) for path in splits)
    return train, val, test


@pytest.mark.parametrize("name", registry.model_names())
def test_every_model_round_trips_through_a_run_directory(
    name: str, tmp_path: Path, every_input: tuple[InMemoryJets, ...]
) -> None:
    train, val, test = every_input
    classifier = heplearn.Classifier(name, **ROUND_TRIP[name]).fit(train, val)
    probabilities = classifier.predict_proba(test)
    assert probabilities.shape == (len(test), 2) and np.isfinite(probabilities).all()
    again = heplearn.Classifier.load(classifier.save(tmp_path / name))
    np.testing.assert_allclose(again.predict_proba(test), probabilities, rtol=1e-6, atol=1e-7)
    assert again.get_params() == classifier.get_params()  # loaded with the settings it was made with
    assert again.class_names_ == classifier.class_names_ and list(again.classes_) == [0, 1]


def test_other_tasks_are_not_classifiers(tmp_path: Path) -> None:
    path = io.write(make_jets(200, seed=44), tmp_path / "jets.parquet")
    data = {"train": str(path), "labels": {"type": "none"}, "inputs": {"jet": {"variables": ["jet_sdmass"]}}}
    with pytest.raises(ConfigError, match=r"data\.labels\.type: 'none'; Classifier trains classifiers"):
        heplearn.Classifier("mlp", preset="small").fit(heplearn.load_jets([path], heplearn.load_data_config(data)))
    config = heplearn.load_run_config(
        {
            "data": data,
            "model": {"name": "autoencoder", "preset": "small"},
            "training": {"epochs": 1, "max_steps_per_epoch": 2},
        }
    )
    run = heplearn.train(config, name="ae", runs_dir=tmp_path, progress=False).run_dir
    with pytest.raises(DataError, match="holds a reconstruction model, not a classifier"):
        heplearn.Classifier.load(run)


def test_predict_before_fit_is_an_error() -> None:
    with pytest.raises(heplearn.HeplearnError, match="not fitted"):
        heplearn.Classifier("bdt").predict_proba(None)  # type: ignore[arg-type]


# --- every setting goes where its name says, or is an error -------------------------------------


def binary_toy(n: int = 900, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x0 separates (signal N(+1, 1) with label 1, background N(-1, 1)); x1, x2 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 3))
    X[:, 0] += np.where(y == 1, 1.0, -1.0)
    return X, y


def test_settings_reach_the_model_and_the_trainer() -> None:
    X, y = binary_toy(300)
    bdt = heplearn.Classifier("bdt", model={"learning_rate": 0.05, "n_estimators": 50, "seed": 3}, n_jobs=1)
    fitted = bdt.fit(X, y).trained_.classical
    assert (fitted.learning_rate, fitted.n_estimators, fitted.seed, fitted.n_jobs) == (0.05, 50, 3, 1)
    mlp = heplearn.Classifier(
        "mlp", preset="small", hidden=[8], learning_rate=0.02, epochs=1, training={"batch_size": 100, "seed": 4}
    ).fit(X, y)
    config = mlp.trained_.config
    assert config.model.hyperparameters == {"hidden": [8]} and mlp.trained_.network.hparams.hidden == (8,)
    assert (
        config.training.learning_rate,
        config.training.epochs,
        config.training.batch_size,
        config.training.seed,
    ) == (0.02, 1, 100, 4)


@pytest.mark.parametrize(
    ("name", "parameters", "message"),
    [
        ("bdt", {"learning_rate": 0.05}, r"'learning_rate' is both .* model=\{'learning_rate'.* training="),
        ("bdt", {"seed": 3}, r"'seed' is both"),
        ("cuts", {"seed": 3}, r"'seed' is both"),
        ("bdt", {"epochs": 5}, r"without the trainer.*'epochs'"),
        ("likelihood", {"training": {"batch_size": 5}}, r"without the trainer.*'batch_size'"),
        ("bdt", {"preset": "small"}, r"bdt has no presets"),
        ("bdt", {"n_estimatorz": 5}, r"'n_estimatorz' is neither .* did you mean 'n_estimators'"),
        ("mlp", {"epoch": 5}, r"'epoch' is neither .* did you mean 'epochs'"),
        ("bdt", {"model": {"depth": 3}}, r"'depth' is not a hyper-parameter of bdt"),
        ("mlp", {"model": {"preset": "small"}}, r"give preset= as an argument of its own"),
        ("mlp", {"model": {"epochs": 5}}, r"'epochs' is not a hyper-parameter of mlp"),
        ("mlp", {"training": {"hidden": [8]}}, r"training\.hidden: unknown key"),
        ("mlp", {"training": {"epochs": 0}}, r"training\.epochs"),
        ("mlp", {"preset": "huge"}, r"unknown preset 'huge'"),
        ("bdt", {"model": {"n_estimators": 5}, "n_estimators": 6}, r"'n_estimators' is given twice"),
        ("mlp", {"model": ["hidden"]}, r"model= takes a dict"),
        ("nope", {}, r"unknown model 'nope'"),
    ],
)
def test_a_setting_in_no_place_or_in_two_is_an_error(name: str, parameters: dict[str, Any], message: str) -> None:
    classifier = heplearn.Classifier(name, **parameters)  # stored as given, checked by fit (as in scikit-learn)
    assert classifier.get_params(deep=False) == {
        "name": name,
        "preset": None,
        "model": None,
        "training": None,
        **parameters,
    }
    with pytest.raises(ConfigError, match=message):
        classifier.fit(*binary_toy(50))


# --- a scikit-learn estimator -------------------------------------------------------------------


def test_get_params_set_params_and_clone() -> None:
    model = {"n_estimators": 30}
    bdt = heplearn.Classifier("bdt", model=model, max_depth=2)
    assert bdt.get_params() == {"name": "bdt", "preset": None, "model": model, "training": None, "max_depth": 2}
    assert bdt.model is model  # stored as given, as scikit-learn requires
    assert "max_depth=2" in repr(bdt)
    copy = clone(bdt)
    assert copy.get_params() == bdt.get_params() and copy.model is not model
    assert bdt.set_params(max_depth=3, reg_lambda=2.0, model={"n_estimators": 10}) is bdt
    assert bdt.get_params() == {
        "name": "bdt",
        "preset": None,
        "model": {"n_estimators": 10},
        "training": None,
        "max_depth": 3,
        "reg_lambda": 2.0,
    }
    with pytest.raises(ConfigError, match=r"'max_dept' is neither .* did you mean 'max_depth'"):
        bdt.set_params(max_dept=3)  # a name that no value can make right fails at once
    X, y = binary_toy(200)
    with pytest.raises(ConfigError, match="'learning_rate' is both"):
        clone(bdt).set_params(learning_rate=0.1).fit(X, y)
    bdt.fit(X, y)
    check_is_fitted(bdt)
    assert bdt.trained_.classical.max_depth == 3 and bdt.trained_.classical.reg_lambda == 2.0
    assert not hasattr(clone(bdt), "trained_")


def test_cross_val_score_gives_the_auc_of_the_toy() -> None:
    X, y = binary_toy()  # the exact likelihood ratio reaches an AUC of 0.92
    bdt = heplearn.Classifier("bdt", model={"n_estimators": 50, "learning_rate": 0.1, "n_jobs": 1})
    assert np.all(cross_val_score(bdt, X, y, cv=3, scoring="roc_auc") > 0.85)
    mlp = heplearn.Classifier("mlp", preset="small", training={"epochs": 3, "batch_size": 64, "learning_rate": 1e-2})
    assert np.all(cross_val_score(mlp, X, y, cv=3, scoring="roc_auc") > 0.85)


def test_in_a_pipeline_and_a_grid_search() -> None:
    raw, y = binary_toy()
    X = raw * [100.0, 0.01, 1.0] + [500.0, 0.0, -3.0]  # scales that a scaler in front takes out
    pipeline = make_pipeline(StandardScaler(), heplearn.Classifier("likelihood"))
    assert np.all(cross_val_score(pipeline, X, y, cv=3, scoring="roc_auc") > 0.85)
    region = raw[:, 0] > 0.5  # background weighted up there: a lower signal probability there
    unweighted = pipeline.fit(X, y).predict_proba(X)[region, 1].mean()
    weights = np.where((y == 0) & region, 20.0, 1.0)
    assert pipeline.fit(X, y, classifier__sample_weight=weights).predict_proba(X)[region, 1].mean() < unweighted - 0.1
    search = GridSearchCV(heplearn.Classifier("bdt", n_jobs=1), {"n_estimators": [2, 40]}, cv=3, scoring="roc_auc")
    assert search.fit(X, y).best_params_ == {"n_estimators": 40}
    assert search.best_estimator_.trained_.classical.n_estimators == 40


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("bdt", lambda: BoostedDecisionTrees(n_estimators=20, n_jobs=1)),
        ("cuts", lambda: RectangularCuts(background_efficiencies=[0.2, 0.5], maxiter=10)),  # class 1 is the signal
    ],
)
def test_on_arrays_a_classical_model_gives_what_it_gives_alone(name: str, reference: Any) -> None:
    X, y = binary_toy(600)
    weights = np.random.default_rng(5).uniform(0.5, 2.0, len(y))
    model = reference()
    ours = heplearn.Classifier(name, model=model.get_params()).fit(X, y, weights)
    np.testing.assert_allclose(ours.predict_proba(X), model.fit(X, y, weights).predict_proba(X), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), model.predict(X))


def test_any_labels_multiclass_validation_and_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    names = np.array(["gluon", "quark", "top"])
    y = names[rng.integers(0, 3, 900)]
    X = rng.normal(size=(900, 2)) + (y[:, None] == names[None, 1:]) * 2.0
    bdt = heplearn.Classifier("bdt", model={"n_estimators": 20, "n_jobs": 1})
    bdt.fit(X[:600], y[:600], X_val=X[600:], y_val=y[600:])
    assert list(bdt.classes_) == ["gluon", "quark", "top"] and bdt.n_features_in_ == 2
    assert bdt.score(X[600:], y[600:]) > 0.7
    assert "val_auc" in bdt.history_[0] or "val_accuracy" in bdt.history_[0]
    again = heplearn.Classifier.load(bdt.save(tmp_path / "bdt"))
    assert list(again.classes_) == list(bdt.classes_) and again.n_features_in_ == 2
    np.testing.assert_array_equal(again.predict_proba(X), bdt.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), bdt.predict(X))


def test_binary_labels_follow_scikit_learn_and_survive_save_load(tmp_path: Path) -> None:
    X, y = binary_toy(600)
    labels = np.where(y == 1, "signal", "background")
    mlp = heplearn.Classifier("mlp", preset="small", training={"epochs": 2, "batch_size": 64}).fit(X, labels)
    assert list(mlp.classes_) == ["background", "signal"] and mlp.class_names_ == ["signal", "background"]
    probabilities = mlp.predict_proba(X)
    assert roc_auc_score(y, probabilities[:, 1]) > 0.85  # the second column is classes_[1]
    again = heplearn.Classifier.load(mlp.save(tmp_path / "mlp"))
    np.testing.assert_allclose(again.predict_proba(X), probabilities, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(again.predict(X), mlp.predict(X))


def test_bad_array_input_is_an_error_that_says_so(tmp_path: Path) -> None:
    X, y = binary_toy(200)
    with pytest.raises(ConfigError, match=r"particlenet.\) reads .* give jets from heplearn\.load_jets"):
        heplearn.Classifier("particlenet", preset="small").fit(X, y)
    with pytest.raises(DataError, match="labels y are needed"):
        heplearn.Classifier("likelihood").fit(X)
    with pytest.raises(DataError, match="only one class"):
        heplearn.Classifier("likelihood").fit(X, np.zeros(len(X)))
    with pytest.raises(DataError, match="labels for"):
        heplearn.Classifier("likelihood").fit(X, y[:-1])
    with pytest.raises(DataError, match="continuous values, not classes"):
        heplearn.Classifier("likelihood").fit(X, X[:, 0])
    with pytest.raises(DataError, match=r"y: .*NaN"):
        heplearn.Classifier("likelihood").fit(X, np.where(y == 1, np.nan, 0.0))
    with pytest.raises(DataError, match=r"y_val: label\(s\) \[7\]"):
        heplearn.Classifier("likelihood").fit(X, y, X_val=X, y_val=np.full(len(y), 7))
    with pytest.raises(DataError, match="negative"):
        heplearn.Classifier("likelihood").fit(X, y, -np.ones(len(y)))
    fitted = heplearn.Classifier("likelihood").fit(X, y)
    with pytest.raises(DataError, match="has 2 features, the model was fitted on 3"):
        fitted.predict_proba(X[:, :2])
    jets = heplearn.load_jets(
        [io.write(make_jets(200, seed=3), tmp_path / "jets.parquet")],
        heplearn.load_data_config(
            {"inputs": {"jet": {"variables": ["jet_sdmass"]}}, "labels": {"classes": ["label_top", "label_qcd"]}}
        ),
    )
    with pytest.raises(DataError, match="validation split"):
        heplearn.Classifier("likelihood").fit(jets, jets.arrays.label)
    with pytest.raises(DataError, match="carry their weights"):
        heplearn.Classifier("likelihood").fit(jets, sample_weight=np.ones(len(jets)))
