"""Physics of the generated jets: mass peaks, substructure, truth, schema, kinematic closure.

One module-scoped fixture generates a few hundred jets per process (fixed seeds) and every test
reads it, so Pythia runs once for the whole module.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplearn.data.schema import PARTICLE_TYPES
from heplearn.generate.chunk import generate_jets
from heplearn.generate.processes import GeneratorOptions, get_card

OPTIONS = GeneratorOptions()  # 14 TeV, 550-650 GeV, |η| < 2, MPI on
SIZES = {"top": 250, "w": 250, "qcd": 250, "quark": 150, "gluon": 150}


@pytest.fixture(scope="module")
def samples() -> dict[str, ak.Array]:
    return {name: generate_jets(get_card(name), OPTIONS, n, seed=1000 + i) for i, (name, n) in enumerate(SIZES.items())}


def peak(values: ak.Array, low: float, high: float, width: float = 10.0) -> float:
    """Centre of the most populated bin of a histogram."""
    counts, edges = np.histogram(ak.to_numpy(values), bins=np.arange(low, high + width, width))
    best = int(np.argmax(counts))
    return float(0.5 * (edges[best] + edges[best + 1]))


def test_requested_number_of_jets(samples: dict[str, ak.Array]) -> None:
    assert {name: len(jets) for name, jets in samples.items()} == SIZES


def test_top_mass_peak(samples: dict[str, ak.Array]) -> None:
    assert 160 <= peak(samples["top"].jet_mass, 100, 300) <= 185
    assert 160 <= peak(samples["top"].jet_sdmass, 100, 300) <= 185


def test_w_mass_peak(samples: dict[str, ak.Array]) -> None:
    assert 70 <= peak(samples["w"].jet_sdmass, 40, 200) <= 90


def test_qcd_mass_falls(samples: dict[str, ak.Array]) -> None:
    # Above the Sudakov peak the plain mass falls; the groomed mass falls from zero.
    plain = density(samples["qcd"].jet_mass, [100, 150, 200, 300])
    groomed = density(samples["qcd"].jet_sdmass, [0, 40, 100, 300])
    assert np.all(np.diff(plain) < 0), plain
    assert np.all(np.diff(groomed) < 0), groomed


def density(values: ak.Array, edges: list[float]) -> np.ndarray:
    """Jets per GeV in each bin."""
    counts, _ = np.histogram(ak.to_numpy(values), bins=edges)
    return counts / np.diff(edges)


def mean_ratio(jets: ak.Array, numerator: str, denominator: str) -> float:
    return float(np.mean(ak.to_numpy(jets[numerator]) / ak.to_numpy(jets[denominator])))


def test_tau32_lower_for_top_than_qcd(samples: dict[str, ak.Array]) -> None:
    assert mean_ratio(samples["top"], "jet_tau3", "jet_tau2") < mean_ratio(samples["qcd"], "jet_tau3", "jet_tau2") - 0.1


def test_tau21_lower_for_w_than_qcd(samples: dict[str, ak.Array]) -> None:
    assert mean_ratio(samples["w"], "jet_tau2", "jet_tau1") < mean_ratio(samples["qcd"], "jet_tau2", "jet_tau1") - 0.1


def test_gluon_jets_have_more_constituents(samples: dict[str, ak.Array]) -> None:
    gluon = float(ak.mean(samples["gluon"].aux_jet_nconstituents))
    quark = float(ak.mean(samples["quark"].aux_jet_nconstituents))
    assert gluon > 1.2 * quark


def test_jets_inside_the_window(samples: dict[str, ak.Array]) -> None:
    for jets in samples.values():
        pt = ak.to_numpy(jets.jet_pt)
        assert np.all((pt >= OPTIONS.pt_min) & (pt < OPTIONS.pt_max))
        assert np.all(np.abs(ak.to_numpy(jets.jet_eta)) < OPTIONS.eta_max)


def test_jet_four_momentum_is_sum_of_constituents(samples: dict[str, ak.Array]) -> None:
    for jets in samples.values():
        complete = jets[jets.aux_jet_nconstituents == jets.jet_nparticles]
        assert len(complete) > 0.9 * len(jets)
        px, py = ak.sum(complete.part_px, axis=1), ak.sum(complete.part_py, axis=1)
        pz, energy = ak.sum(complete.part_pz, axis=1), ak.sum(complete.part_energy, axis=1)
        np.testing.assert_allclose(np.hypot(px, py), complete.jet_pt, rtol=1e-4)
        np.testing.assert_allclose(energy, complete.jet_energy, rtol=1e-4)
        mass = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0))
        np.testing.assert_allclose(mass, complete.jet_mass, rtol=2e-3, atol=0.2)


def test_constituents_are_pt_ordered_and_truncated(samples: dict[str, ak.Array]) -> None:
    for jets in samples.values():
        pt = np.hypot(jets.part_px, jets.part_py)
        assert ak.all(pt[:, 1:] <= pt[:, :-1])
        assert ak.all(ak.num(jets.part_px) == jets.jet_nparticles)
        assert ak.all(jets.jet_nparticles <= OPTIONS.max_particles)


def test_relative_coordinates(samples: dict[str, ak.Array]) -> None:
    jets = samples["top"]
    px, py, pz = jets.part_px, jets.part_py, jets.part_pz
    eta = np.arcsinh(pz / np.hypot(px, py))
    np.testing.assert_allclose(ak.flatten(eta - jets.jet_eta), ak.flatten(jets.part_deta), atol=1e-4)
    dphi = ak.to_numpy(ak.flatten(jets.part_dphi))
    assert np.all((dphi >= -np.pi) & (dphi < np.pi))
    # Anti-kT measures distances in rapidity y (not η); its jets are cones of radius R around the
    # axis, up to rare soft particles that were merged with each other before joining the jet.
    energy = ak.values_astype(jets.part_energy, np.float64)
    rapidity = 0.5 * np.log((energy + pz) / (energy - pz))
    jet_pz = jets.jet_pt * np.sinh(ak.values_astype(jets.jet_eta, np.float64))
    jet_rapidity = 0.5 * np.log((jets.jet_energy + jet_pz) / (jets.jet_energy - jet_pz))
    distance = np.hypot(ak.to_numpy(ak.flatten(rapidity - jet_rapidity)), dphi)
    assert np.mean(distance > 0.8 + 1e-3) < 0.005
    assert np.max(distance) < 2 * 0.8


def test_particle_types_are_one_hot(samples: dict[str, ak.Array]) -> None:
    jets = samples["qcd"]
    total = sum(ak.flatten(jets[name]) for name in PARTICLE_TYPES)
    assert np.all(ak.to_numpy(total) == 1)
    charged = ak.to_numpy(ak.flatten(jets.part_charge)) != 0
    neutral_hadron = ak.to_numpy(ak.flatten(jets.part_isNeutralHadron)) == 1
    assert not np.any(charged & neutral_hadron)
    pid = ak.to_numpy(ak.flatten(jets.part_pid))
    assert not np.any(np.isin(np.abs(pid), [12, 14, 16]))  # neutrinos are invisible


def test_truth_of_resonance_jets(samples: dict[str, ak.Array]) -> None:
    for name, pdgid in (("top", 6), ("w", 24)):
        jets = samples[name]
        assert np.all(np.abs(ak.to_numpy(jets.aux_parton_pdgid)) == pdgid)
        assert np.all(ak.to_numpy(jets.aux_daughters_max_dr) < 0.8)
        assert np.all(ak.to_numpy(jets.aux_parton_dr) < 0.8)
    np.testing.assert_allclose(np.median(ak.to_numpy(samples["top"].aux_parton_mass)), 172.5, atol=3)


def test_truth_of_quark_and_gluon_jets(samples: dict[str, ak.Array]) -> None:
    assert set(np.abs(ak.to_numpy(samples["quark"].aux_parton_pdgid))) <= {1, 2, 3}
    assert set(ak.to_numpy(samples["gluon"].aux_parton_pdgid)) == {21}
    assert np.all(ak.to_numpy(samples["gluon"].aux_parton_dr) < 0.4)


def test_schema_fields(samples: dict[str, ak.Array]) -> None:
    fields = set(samples["top"].fields)
    expected = {
        "part_px",
        "part_py",
        "part_pz",
        "part_energy",
        "part_deta",
        "part_dphi",
        "part_charge",
        *PARTICLE_TYPES,
        "part_pid",
        "jet_pt",
        "jet_eta",
        "jet_phi",
        "jet_energy",
        "jet_mass",
        "jet_nparticles",
        "jet_sdmass",
        "jet_tau1",
        "jet_tau2",
        "jet_tau3",
        "jet_tau4",
        "aux_parton_pt",
        "aux_parton_pdgid",
        "aux_pthat",
    }
    assert expected <= fields


@pytest.mark.parametrize(("process", "pdgid", "mass_range"), [("z", 23, (80, 100)), ("hbb", 25, (105, 135))])
def test_z_and_higgs_jets(process: str, pdgid: int, mass_range: tuple[float, float]) -> None:
    jets = generate_jets(get_card(process), OPTIONS.with_changes(mpi=False), 60, seed=77)
    assert set(np.abs(ak.to_numpy(jets.aux_parton_pdgid)).tolist()) == {pdgid}
    assert np.all(ak.to_numpy(jets.aux_daughters_max_dr) < 0.8)
    groomed = ak.to_numpy(jets.jet_sdmass)
    assert mass_range[0] <= np.median(groomed[groomed > 40]) <= mass_range[1]
