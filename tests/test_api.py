"""The notebook interface and the curated public API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import heplearn
from heplearn.data import io
from tests.conftest import make_jets


def test_public_api_is_small_and_importable() -> None:
    assert set(heplearn.__all__) == {"__version__", "Classifier", "load_jets", "TrainedModel", "train",
                                     "load_run_config", "load_data_config", "DataConfig", "HeplearnError"}
    for name in heplearn.__all__:
        assert getattr(heplearn, name) is not None


@pytest.mark.parametrize(("name", "parameters"), [("bdt", {"n_estimators": 30}),
                                                  ("mlp", {"preset": "small", "epochs": 2})])
def test_classifier_fit_predict_save_load(tmp_path: Path, name: str, parameters: dict) -> None:
    files = {split: io.write(make_jets(n, seed=s), tmp_path / f"{split}.parquet")
             for split, n, s in (("train", 1500, 31), ("val", 400, 32), ("test", 400, 33))}
    data = heplearn.load_data_config({"inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
                                      "labels": {"classes": ["label_top", "label_qcd"]}})
    train, val, test = (heplearn.load_jets([files[s]], data) for s in ("train", "val", "test"))
    classifier = heplearn.Classifier(name, **parameters).fit(train, val)
    probabilities = classifier.predict_proba(test)
    assert probabilities.shape == (len(test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert roc_auc_score(test.arrays.label == 0, probabilities[:, 0]) > 0.9
    again = heplearn.Classifier.load(classifier.save(tmp_path / "saved"))
    np.testing.assert_allclose(again.predict_proba(test), probabilities, rtol=1e-5, atol=1e-6)


def test_predict_before_fit_is_an_error(jets) -> None:
    with pytest.raises(heplearn.HeplearnError, match="not fitted"):
        heplearn.Classifier("bdt").predict_proba(None)  # type: ignore[arg-type]
