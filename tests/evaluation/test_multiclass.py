"""Multiclass figures against sklearn and the discriminant against its formula."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import roc_auc_score

from heplearn.errors import ConfigError
from heplearn.evaluation.multiclass import confusion_matrix, discriminant, one_vs_one, one_vs_rest

CLASSES = ["top", "w", "qcd"]


@pytest.fixture(scope="module")
def tagger() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 6000)
    logits = rng.normal(0, 1, (6000, 3)) + 1.5 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities, rng.uniform(0.5, 2, 6000)


def test_one_vs_rest_and_one_vs_one_equal_sklearn(tagger: tuple[np.ndarray, ...]) -> None:
    labels, probabilities, weight = tagger
    rest = one_vs_rest(labels, probabilities, CLASSES, weight)
    for index, name in enumerate(CLASSES):
        assert rest[name].auc == pytest.approx(
            roc_auc_score(labels == index, probabilities[:, index], sample_weight=weight)
        )
    pairs = one_vs_one(labels, probabilities, CLASSES, weight)
    assert set(pairs) == {"top_vs_w", "top_vs_qcd", "w_vs_qcd"}
    selected = labels != 2
    ratio = probabilities[selected, 0] / (probabilities[selected, 0] + probabilities[selected, 1])
    assert pairs["top_vs_w"].auc == pytest.approx(
        roc_auc_score(labels[selected] == 0, ratio, sample_weight=weight[selected])
    )


def test_confusion_matrix_equals_sklearn(tagger: tuple[np.ndarray, ...]) -> None:
    labels, probabilities, weight = tagger
    expected = sklearn_confusion_matrix(labels, probabilities.argmax(axis=1), sample_weight=weight, normalize="true")
    np.testing.assert_allclose(confusion_matrix(labels, probabilities, weight), expected)
    counts = confusion_matrix(labels, probabilities, normalize=False)
    assert counts.sum() == len(labels)


def test_discriminant_formula_and_fractions(tagger: tuple[np.ndarray, ...]) -> None:
    _, probabilities, _ = tagger
    # ATLAS DL1-style: D = ln(p_b / (f_c p_c + (1 - f_c) p_light)) with f_c = 0.2
    expected = np.log(probabilities[:, 0] / (0.2 * probabilities[:, 1] + 0.8 * probabilities[:, 2]))
    np.testing.assert_allclose(discriminant(probabilities, 0, [0.0, 0.2, 0.8]), expected)
    np.testing.assert_allclose(discriminant(probabilities, 0, {1: 1.0, 2: 4.0}), expected)  # normalised
    equal = np.log(probabilities[:, 0] / probabilities[:, 1:].mean(axis=1))
    np.testing.assert_allclose(discriminant(probabilities), equal)
    binary = np.column_stack([probabilities[:, 0], 1 - probabilities[:, 0]])
    assert np.all(np.diff(discriminant(binary)[np.argsort(binary[:, 0])]) >= 0)  # monotonic in p_sig
    with pytest.raises(ConfigError, match="2 values for 3 classes"):
        discriminant(probabilities, 0, [0.5, 0.5])
    with pytest.raises(ConfigError, match="non-negative"):
        discriminant(probabilities, 0, [0.0, -1.0, 1.0])
