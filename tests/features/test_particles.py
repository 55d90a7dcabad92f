"""Flat-array built-ins: the same numbers as the awkward ones, bit for bit, truncated or not."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplearn.errors import DataError
from heplearn.expressions import Expression
from heplearn.features.particles import BUILTINS, FlatParticles, VariableTable
from tests.conftest import make_jets

PER_PARTICLE = sorted(name for name, builtin in BUILTINS.items() if builtin.per_particle)


def derived_only(jets: ak.Array) -> ak.Array:
    """The jets without their stored Δη, Δφ: those are derived from the momenta."""
    return jets[[name for name in jets.fields if name not in ("part_deta", "part_dphi")]]


@pytest.mark.parametrize("jet_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", [None, 7])
def test_flat_builtins_equal_the_awkward_ones(jet_dtype: type, length: int | None) -> None:
    jets = derived_only(make_jets(50, seed=4))
    for name in ("jet_pt", "jet_eta", "jet_phi", "jet_energy"):
        jets = ak.with_field(jets, ak.values_astype(jets[name], jet_dtype), name)
    table = VariableTable(jets, {})
    particles = FlatParticles.of(table, "part_logpt", length, "test")
    keep = slice(None, length)
    for name in PER_PARTICLE:
        expected = ak.to_numpy(ak.flatten(table[name][:, keep], axis=1))
        flat = particles[name]
        assert flat.dtype == expected.dtype, name
        np.testing.assert_array_equal(flat, expected, err_msg=name)
    counts = ak.to_numpy(ak.num(jets["part_px"]))
    np.testing.assert_array_equal(particles.counts, np.minimum(counts, length) if length else counts)


def test_fields_and_new_variables_shadow_builtins() -> None:
    jets = make_jets(20, seed=5)
    new = {"part_logpt": Expression("part_px * 0 + 1")}
    table = VariableTable(jets, new)
    particles = FlatParticles.of(table, "part_deta", None, "test")
    np.testing.assert_array_equal(particles["part_deta"], ak.to_numpy(ak.flatten(jets["part_deta"])))
    assert (particles["part_logpt"] == 1).all()
    assert not particles.is_per_particle("jet_pt") and particles.is_per_particle("part_deltaR")


def test_particle_counts_must_agree() -> None:
    jets = make_jets(10, seed=6)
    jets = ak.with_field(jets, jets["part_px"][:, :2], "part_py")
    particles = FlatParticles.of(VariableTable(jets, {}), "part_px", None, "file.parquet")
    with pytest.raises(DataError, match=r"file\.parquet: 'part_py' has 20 particles"):
        particles["part_pt"]
