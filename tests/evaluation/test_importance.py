"""Permutation importance on a stand-in model whose dependence on each feature is known."""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.data.jets import JetArrays
from heplearn.evaluation.importance import permutation_importance, permuted

VARIABLES = {
    "jet": ["jet_useful", "jet_useless"],
    "particles": ["part_deta", "part_useful", "part_useless"],
    "points": ["part_deta"],
}


def make_arrays(n: int = 3000, length: int = 12, seed: int = 0) -> JetArrays:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    signal = (label == 0)[:, None]
    counts = rng.integers(2, length + 1, n)
    mask = np.arange(length)[None, :] < counts[:, None]
    particles = rng.normal(0, 1, (n, length, 3)).astype(np.float32)
    particles[..., 1] += 0.8 * signal
    particles[~mask] = 0.0
    points = particles[..., :1].copy()
    jet = np.column_stack([rng.normal(label == 0, 1.0), rng.normal(0, 1, n)]).astype(np.float32)
    return JetArrays({"jet": jet, "particles": particles, "points": points}, mask, label, np.ones(n, np.float32))


class Probe:
    """p(signal) from the mean of ``part_useful`` over real particles, ``jet_useful``, and the
    difference of the two copies of ``part_deta`` (zero unless they are permuted differently)."""

    def predict(self, arrays: JetArrays) -> np.ndarray:
        mask = arrays.mask
        assert mask is not None
        real = mask.sum(axis=1)
        useful = (arrays.inputs["particles"][..., 1] * mask).sum(axis=1) / real
        copies = np.abs(arrays.inputs["particles"][..., 0] - arrays.inputs["points"][..., 0]).sum(axis=1)
        logit = useful + arrays.inputs["jet"][:, 0] - 10 * copies
        probability = 1 / (1 + np.exp(-logit))
        return np.column_stack([probability, 1 - probability])


def test_only_the_features_the_model_uses_matter() -> None:
    arrays = make_arrays()
    ranking = permutation_importance(Probe(), arrays, VARIABLES, repeats=2, seed=1, progress=False)
    drops = {feature.name: feature for feature in ranking.features}
    assert set(drops) == {"jet_useful", "jet_useless", "part_deta", "part_useful", "part_useless"}
    assert drops["jet_useful"].auc_drop > 0.05 and drops["jet_useful"].kind == "jet"
    assert drops["part_useful"].auc_drop > 0.05 and drops["part_useful"].kind == "particle"
    for name in ("jet_useless", "part_useless", "part_deta"):  # part_deta: both copies moved together
        assert drops[name].auc_drop == pytest.approx(0.0, abs=1e-12), name
    assert drops["part_deta"].groups == ("particles", "points")
    assert ranking.features[0].name in {"jet_useful", "part_useful"}
    again = permutation_importance(Probe(), arrays, VARIABLES, repeats=2, seed=1, progress=False)
    assert again == ranking


def test_a_particle_permutation_moves_only_real_particles_across_jets() -> None:
    arrays = make_arrays(200)
    shuffled = permuted(arrays, [("particles", 1)], np.random.default_rng(0))
    mask = arrays.mask
    assert mask is not None
    before, after = arrays.inputs["particles"][..., 1], shuffled.inputs["particles"][..., 1]
    np.testing.assert_array_equal(np.sort(before[mask]), np.sort(after[mask]))  # the same values
    assert not np.array_equal(before[mask], after[mask])
    np.testing.assert_array_equal(after[~mask], 0.0)  # padding untouched
    np.testing.assert_array_equal(shuffled.inputs["particles"][..., [0, 2]], arrays.inputs["particles"][..., [0, 2]])
    assert shuffled.inputs["jet"] is arrays.inputs["jet"]


def test_jets_are_subsampled_reproducibly() -> None:
    ranking = permutation_importance(Probe(), make_arrays(), VARIABLES, repeats=1, max_jets=500, progress=False)
    assert ranking.jets == 500 and ranking.repeats == 1
