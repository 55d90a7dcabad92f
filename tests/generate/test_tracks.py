"""Track impact parameters, hadron-flavour ghosts and the b-tagging cards."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.data.schema import DEFAULT_TREE
from heplearn.errors import ConfigError
from heplearn.generate import clustering
from heplearn.generate.chunk import generate_jets
from heplearn.generate.driver import generate
from heplearn.generate.events import EventRecord, FinalState
from heplearn.generate.processes import GeneratorOptions, get_card
from heplearn.generate.tracks import measured_impact_parameters, resolution, true_impact_parameters
from heplearn.generate.truth import HeavyHadrons, contains_quark, find_heavy_hadrons, flavour_labels
from heplearn.generate.vertices import PION_MASS, secondary_vertices

BJETS = GeneratorOptions(pt_min=30.0, pt_max=250.0, mpi=False)


# ----------------------------------------------------------------------------- geometry
def test_impact_parameter_geometry() -> None:
    # (vertex, momentum, jet) -> (d0, dz), straight lines, mm
    cases = [
        ((1.0, 0.0, 0.0), (0.0, 5.0, 0.0), (1.0, 0.0, 0.0), (1.0, 0.0)),  # PCA (1, 0) along the jet
        ((1.0, 0.0, 0.0), (0.0, 5.0, 0.0), (-1.0, 0.0, 0.0), (-1.0, 0.0)),  # behind the jet: negative
        ((1.0, 1.0, 0.0), (3.0, 3.0, 0.0), (1.0, 1.0, 0.0), (0.0, 0.0)),  # pointing back at the beam line
        ((2.0, 0.0, 3.0), (1.0, 0.0, 1.0), (1.0, 0.0, 1.0), (0.0, 1.0)),  # z at closest approach 3 − 2
        ((2.0, 0.0, 3.0), (1.0, 0.0, 1.0), (1.0, 0.0, -1.0), (0.0, -1.0)),  # jet going backwards in z
        ((0.0, 0.0, 0.0), (4.0, 1.0, 2.0), (1.0, 0.0, 0.0), (0.0, 0.0)),  # prompt
    ]
    for vertex, momentum, jet, expected in cases:
        d0, dz = true_impact_parameters(*(np.array([value]) for value in (*momentum, *vertex, *jet)))
        np.testing.assert_allclose([d0[0], dz[0]], expected, atol=1e-12, err_msg=str((vertex, momentum, jet)))


def test_smearing_follows_the_resolution() -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    pt = rng.uniform(0.5, 50.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * rng.normal(size=n)
    vx, vy, vz = (rng.normal(0, 0.5, n) for _ in range(3))
    charged = rng.random(n) < 0.6
    # The sign is that of the closest point's projection on the jet, which is ⟂ the track: the jet
    # axis must not be exactly the track direction.
    jet = (np.cos(phi + 0.1), np.sin(phi + 0.1), np.ones(n))
    measured = measured_impact_parameters(
        px,
        py,
        pz,
        vx,
        vy,
        vz,
        charged,
        *jet,
        d0_resolution=(0.01, 0.09),
        dz_resolution=(0.03, 0.11),
        rng=np.random.default_rng(1),
    )
    d0, dz = true_impact_parameters(px, py, pz, vx, vy, vz, *jet)
    np.testing.assert_allclose(measured.d0err[charged], np.hypot(0.01, 0.09 / pt[charged]))
    np.testing.assert_allclose(
        resolution(np.array([1.0, 100.0]), (0.01, 0.09)), [np.hypot(0.01, 0.09), np.hypot(0.01, 0.0009)]
    )
    for value, error, truth in ((measured.d0val, measured.d0err, d0), (measured.dzval, measured.dzerr, dz)):
        pull = (value - truth)[charged] / error[charged]
        assert abs(pull.mean()) < 0.02 and pull.std() == pytest.approx(1.0, abs=0.02)
        assert np.all(value[~charged] == 0) and np.all(error[~charged] == 0)  # no track, no IP (JetClass)


# ----------------------------------------------------------------------------- hadron flavour
def test_contains_quark() -> None:
    codes = np.array([511, -521, 5122, 531, 421, -4122, 443, 211, 2212, 130, 541])
    np.testing.assert_array_equal(contains_quark(codes, 5), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(contains_quark(codes, 4), [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1])


def heavy_record() -> EventRecord:
    """One event: B*0 → B0 γ, B0 → D− π+ (and D− → K+ π− π−), a prompt D0, a soft B+, a pion."""
    rows = [  # pid, status, mother1, pT, φ
        (90, -11, 0, 0.0, 0.0),
        (513, -83, 0, 60.0, 0.3),  # 1: B*0 from hadronisation
        (511, -91, 1, 58.0, 0.3),  # 2: B0, decays weakly -> a ghost
        (22, 91, 1, 2.0, 0.3),
        (-411, -91, 2, 30.0, 0.31),  # 4: D− from the B decay -> a c ghost (inside the b jet)
        (211, 91, 2, 20.0, 0.29),
        (421, -84, 0, 40.0, 2.0),  # 6: prompt D0 -> a c ghost
        (521, -84, 0, 3.0, -2.0),  # 7: a B+ below 5 GeV: no ghost
        (211, 84, 0, 10.0, -1.0),
    ]
    pid, status, mother, pt, phi = (np.array(column) for column in zip(*rows, strict=True))
    zeros = np.zeros(len(rows), dtype=np.int64)
    return EventRecord(
        pid=pid,
        status=status,
        mother1=mother,
        daughter1=zeros,
        daughter2=zeros,
        px=pt * np.cos(phi),
        py=pt * np.sin(phi),
        pz=np.zeros(len(rows)),
        energy=pt + 1.0,
        offsets=np.array([0, len(rows)]),
        pthat=np.array([50.0]),
    )


def test_last_heavy_hadrons_are_the_ghosts() -> None:
    hadrons = find_heavy_hadrons(heavy_record())
    found = sorted(zip(hadrons.flavour.tolist(), np.round(np.hypot(hadrons.px, hadrons.py), 3).tolist(), strict=True))
    assert found == [(4, 30.0), (4, 40.0), (5, 58.0)]  # no B*, no soft B+, no light hadron


def test_ghosts_label_jets_without_changing_them() -> None:
    # Two clusters of pions in one event; a B ghost in the first, a C ghost in the second, none near a third.
    rows = [(50.0, 0.0, 0.0), (30.0, 0.1, 0.05), (40.0, 0.0, 2.0), (20.0, 0.05, 2.1), (25.0, 1.5, -2.0)]
    pt, eta, phi = (np.array(column) for column in zip(*rows, strict=True))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    particles = FinalState(
        px=px,
        py=py,
        pz=pz,
        energy=np.sqrt(px**2 + py**2 + pz**2),
        pid=np.full(5, 211),
        charge=np.ones(5),
        counts=np.array([5]),
    )
    ghosts = HeavyHadrons(
        event=np.array([0, 0]),
        px=np.array([10 * np.cos(0.02), 10 * np.cos(2.05)]),
        py=np.array([10 * np.sin(0.02), 10 * np.sin(2.05)]),
        pz=np.array([0.0, 0.0]),
        flavour=np.array([5, 4]),
    )
    plain = clustering.cluster(particles, 0.4, "antikt", 10.0)
    tagged = clustering.cluster(particles, 0.4, "antikt", 10.0, ghosts=ghosts)
    assert len(plain) == len(tagged) == 3
    np.testing.assert_allclose(tagged.pt, plain.pt, rtol=1e-12)
    np.testing.assert_array_equal(tagged.constituents, plain.constituents)
    flavour = dict(zip(np.round(tagged.pt).tolist(), tagged.hadron_flavour.tolist(), strict=True))
    assert flavour == {80.0: 5, 60.0: 4, 25.0: 0}
    assert np.all(plain.hadron_flavour == 0)
    labels = flavour_labels(tagged.hadron_flavour)
    assert sum(labels.values()).tolist() == [1, 1, 1]


# ----------------------------------------------------------------------------- physics
@pytest.fixture(scope="module")
def bjets() -> ak.Array:
    return generate_jets(get_card("bjets"), BJETS, 300, seed=3)


def displaced_fraction(jets: ak.Array) -> float:
    """Fraction of the charged constituents with signed d0/σ(d0) > 3."""
    charged = ak.to_numpy(ak.flatten(jets.part_charge)) != 0
    d0, error = (ak.to_numpy(ak.flatten(jets[name]))[charged] for name in ("part_d0val", "part_d0err"))
    return float(np.mean(d0 / error > 3))


def test_b_jet_tracks_are_displaced(bjets: ak.Array) -> None:
    flavour = ak.to_numpy(bjets.aux_hadron_flavour)
    assert {int(f) for f in flavour} == {0, 4, 5} and (flavour == 5).sum() > 50 and (flavour == 0).sum() > 50
    fraction = {f: displaced_fraction(bjets[flavour == f]) for f in (5, 4, 0)}
    # b hadrons fly ≈ 0.45 mm × βγ: a third of b-jet tracks are displaced at 3σ, against a few
    # per mille of light-jet tracks (resolution tails only); c jets sit in between.
    assert fraction[5] > 5 * fraction[0], fraction
    assert fraction[5] > fraction[4] > 2 * fraction[0], fraction


def test_flavour_labels_are_one_hot(bjets: ak.Array) -> None:
    labels = np.stack([ak.to_numpy(bjets[name]) for name in ("label_b", "label_c", "label_light")], axis=1)
    np.testing.assert_array_equal(labels.sum(axis=1), 1)
    np.testing.assert_array_equal(labels[:, 0], ak.to_numpy(bjets.aux_hadron_flavour) == 5)
    assert "label_bjets" not in bjets.fields
    # Track fields exist for every constituent; neutrals have none.
    neutral = ak.flatten(bjets.part_charge == 0)
    assert np.all(ak.to_numpy(ak.flatten(bjets.part_d0err))[ak.to_numpy(neutral)] == 0)


def test_driver_writes_flavour_labels_only(tmp_path: Path) -> None:
    generate(["bjets"], 6, tmp_path, seed=2, options=BJETS, progress=False, fractions=(0.5, 0.5, 0.0))
    jets = io.open_source(tmp_path / "train.parquet").read()
    assert {"label_b", "label_c", "label_light", "part_d0val"} <= set(jets.fields)
    assert not [name for name in jets.fields if name.startswith("label_") and name[6:] not in ("b", "c", "light")]
    with pytest.raises(ConfigError, match="cannot be mixed with top"):
        generate(["bjets", "top"], 6, tmp_path / "mixed", options=BJETS, progress=False)
    assert not (tmp_path / "mixed").exists()


# ----------------------------------------------------------------------------- secondary vertices
def test_vertex_fit_finds_a_known_vertex() -> None:
    """Three tracks from (2, 0, 0.3) mm in a jet along that flight direction, one prompt track: the fit
    returns the vertex and the tracks' mass."""
    vertex = np.array([2.0, 0.0, 0.3])
    momenta = np.array([[10.0, 2.0, 1.0], [8.0, -1.0, 0.5], [12.0, 0.5, -1.0], [15.0, 0.0, 0.0]])
    starts = np.array([vertex, vertex, vertex, [0.0, 0.0, 0.0]])
    px, py, pz = momenta.T
    vx, vy, vz = starts.T
    jet = 45.0 * vertex / np.linalg.norm(vertex)
    jet_of = np.zeros(4, dtype=np.int64)
    measured = measured_impact_parameters(
        px,
        py,
        pz,
        vx,
        vy,
        vz,
        np.ones(4, bool),
        *(np.full(4, c) for c in jet),
        d0_resolution=(1e-4, 0.0),
        dz_resolution=(1e-4, 0.0),
        rng=np.random.default_rng(0),
    )
    fields = secondary_vertices(jet_of, 1, px, py, pz, np.ones(4, bool), measured, *(np.array([c]) for c in jet))
    assert fields["sv_n"][0] == 1 and fields["sv_ntracks"][0].tolist() == [3]  # the prompt track fails the seed
    assert fields["sv_dxy"][0][0] == pytest.approx(2.0, abs=1e-3)
    assert fields["sv_d3d"][0][0] == pytest.approx(np.linalg.norm(vertex), abs=1e-3)
    displaced = momenta[:3]
    energy = np.sqrt((displaced**2).sum(axis=1) + PION_MASS**2).sum()
    expected_mass = np.sqrt(energy**2 - (displaced.sum(axis=0) ** 2).sum())
    assert fields["sv_mass"][0][0] == pytest.approx(expected_mass, rel=1e-5)
    assert fields["sv_dxysig"][0][0] > 1000 and fields["sv_normchi2"][0][0] < 10


def test_no_vertex_from_prompt_tracks() -> None:
    rng = np.random.default_rng(4)
    n = 12
    px, py, pz = rng.uniform(5, 20, n), rng.normal(0, 1, n), rng.normal(0, 1, n)
    zeros = np.zeros(n)
    jet_of = np.repeat(np.arange(4), 3)
    measured = measured_impact_parameters(
        px,
        py,
        pz,
        zeros,
        zeros,
        zeros,
        np.ones(n, bool),
        np.ones(n),
        zeros,
        zeros,
        d0_resolution=(0.01, 0.09),
        dz_resolution=(0.03, 0.11),
        rng=rng,
    )
    fields = secondary_vertices(jet_of, 4, px, py, pz, np.ones(n, bool), measured, np.ones(4), np.zeros(4), np.zeros(4))
    assert fields["sv_n"].tolist() == [0, 0, 0, 0] and ak.num(fields["sv_mass"]).tolist() == [0, 0, 0, 0]


def test_two_vertices_of_a_cascade() -> None:
    """A b → c cascade: three tracks from (2, 0, 0) mm and three from (5, 0.4, 0) mm in one jet give two
    vertices, ordered by decreasing flight significance, with the tracks shared out."""
    momenta = np.array(
        [[10.0, 2.0, 1.0], [8.0, -1.5, 0.5], [12.0, 0.5, -1.0], [9.0, 1.5, 0.3], [11.0, -0.5, 0.8], [7.0, 0.2, -0.6]]
    )
    starts = np.array([[2.0, 0.0, 0.0]] * 3 + [[5.0, 0.4, 0.0]] * 3)
    px, py, pz = momenta.T
    vx, vy, vz = starts.T
    jet = momenta.sum(axis=0)
    measured = measured_impact_parameters(
        px,
        py,
        pz,
        vx,
        vy,
        vz,
        np.ones(6, bool),
        *(np.full(6, c) for c in jet),
        d0_resolution=(1e-4, 0.0),
        dz_resolution=(1e-4, 0.0),
        rng=np.random.default_rng(0),
    )
    fields = secondary_vertices(
        np.zeros(6, dtype=np.int64), 1, px, py, pz, np.ones(6, bool), measured, *(np.array([c]) for c in jet)
    )
    assert fields["sv_n"].tolist() == [2] and fields["sv_ntracks"][0].tolist() == [3, 3]
    assert sorted(fields["sv_dxy"][0].tolist()) == pytest.approx([2.0, np.hypot(5.0, 0.4)], abs=1e-3)
    significance = fields["sv_dxysig"][0].tolist()
    assert significance[0] >= significance[1]


def test_b_jet_vertices_pass_the_charm_mass(bjets: ak.Array) -> None:
    flavour = ak.to_numpy(bjets.aux_hadron_flavour)
    found = ak.to_numpy(bjets.sv_n) >= 1
    efficiency = {f: float(found[flavour == f].mean()) for f in (5, 4, 0)}
    # b hadrons: a vertex in most b jets, with the B's charged decay products above m_D;
    # c jets: fewer vertices (shorter flight, fewer tracks), below ~2 GeV; light jets: rare fakes.
    assert efficiency[5] > 0.5 and efficiency[5] > 2.5 * efficiency[4] and efficiency[4] > 3 * efficiency[0], efficiency
    mass = ak.to_numpy(ak.fill_none(ak.max(bjets.sv_mass, axis=1), 0.0))  # the heaviest vertex of each jet
    assert np.mean(mass[found & (flavour == 5)] > 2.0) > 0.2
    assert np.mean(mass[found & (flavour == 4)] < 2.0) > 0.9


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".h5"])
def test_vertex_lists_round_trip(bjets: ak.Array, tmp_path: Path, suffix: str) -> None:
    """Several vertices per jet stay jagged through every writer and reader (ROOT: the sv group and its
    counter nsv beside part_* and npart)."""
    jets = bjets[:80]
    assert ak.max(jets.sv_n) >= 2  # some jets hold a b → c cascade
    path = io.write(jets, tmp_path / f"jets{suffix}")
    back = io.open_source(path).read()
    names = [name for name in jets.fields if name.startswith(("sv_", "part_"))]
    assert set(names) <= set(back.fields)
    for name in names:
        assert ak.array_equal(back[name], jets[name], dtype_exact=False), name  # HDF5 pads as float64
    np.testing.assert_array_equal(ak.to_numpy(ak.num(back.sv_mass)), ak.to_numpy(jets.sv_n))
    if suffix == ".root":
        import uproot

        with uproot.open(path) as file:
            assert {"nsv", "sv_mass", "npart", "part_px"} <= set(file[DEFAULT_TREE].keys())


def test_b_jets_have_more_vertices(bjets: ak.Array) -> None:
    flavour = ak.to_numpy(bjets.aux_hadron_flavour)
    count = ak.to_numpy(bjets.sv_n)
    # b hadrons decay through a c hadron that flies too: b jets hold more vertices than c and light jets.
    assert count[flavour == 5].mean() > 1.5 * count[flavour == 4].mean() > 0
    assert np.mean(count[flavour == 5] >= 2) > np.mean(count[flavour == 4] >= 2)
