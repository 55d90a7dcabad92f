"""The parametric detector: cells, tracking efficiency, resolutions, acceptance, seeding."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplearn.errors import ConfigError
from heplearn.generate.chunk import generate_jets
from heplearn.generate.detector import HCAL_CELL_PDGID, DetectorConfig, apply_detector
from heplearn.generate.events import FinalState
from heplearn.generate.processes import GeneratorOptions, get_card

PERFECT = DetectorConfig(
    tracking_efficiency=(1.0, 1.0),
    track_resolution_constant=(0.0, 0.0),
    track_resolution_slope=(0.0, 0.0),
    ecal_stochastic=(0.0, 0.0, 0.0),
    ecal_constant=(0.0, 0.0, 0.0),
    hcal_stochastic=(0.0, 0.0, 0.0),
    hcal_constant=(0.0, 0.0, 0.0),
)
CHARGE = {211: 1.0, -211: -1.0, 13: -1.0, 22: 0.0, 130: 0.0, 2112: 0.0, 11: -1.0}


def particles(*events: list[tuple[int, float, float, float]]) -> FinalState:
    """Events of (pdg id, pT, η, φ); massless except that pions get their mass."""
    rows = [row for event in events for row in event]
    pid = np.array([row[0] for row in rows], dtype=np.int64)
    pt, eta, phi = (np.array([row[i] for row in rows], dtype=float) for i in (1, 2, 3))
    mass = np.where(np.abs(pid) == 211, 0.1396, 0.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return FinalState(
        px=px,
        py=py,
        pz=pz,
        energy=np.sqrt(px**2 + py**2 + pz**2 + mass**2),
        pid=pid,
        charge=np.array([CHARGE[p] for p in pid.tolist()]),
        counts=np.array([len(event) for event in events]),
    )


def many(pid: int, n: int, pt: float, eta_range: tuple[float, float], seed: int = 0) -> FinalState:
    rng = np.random.default_rng(seed)
    eta = rng.uniform(*eta_range, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    return particles([(pid, pt, e, p) for e, p in zip(eta, phi, strict=True)])


def test_neutral_particles_in_one_cell_are_merged() -> None:
    event = [(22, 10.0, 0.100, 0.100), (22, 5.0, 0.102, 0.102), (22, 8.0, 1.0, 2.0), (130, 20.0, -0.5, 0.5)]
    result = apply_detector(particles(event), PERFECT, np.random.default_rng(0))
    assert result.counts.tolist() == [3]
    energy = np.sort(result.energy[result.pid == 22])
    np.testing.assert_allclose(energy, np.sort([8 * np.cosh(1.0), 10 * np.cosh(0.100) + 5 * np.cosh(0.102)]))
    assert np.sum(result.pid == HCAL_CELL_PDGID) == 1
    assert np.all(result.charge == 0)


def test_cells_of_different_events_stay_apart() -> None:
    same_place = [(22, 10.0, 0.1, 0.1)]
    result = apply_detector(particles(same_place, same_place, []), PERFECT, np.random.default_rng(0))
    assert result.counts.tolist() == [1, 1, 0]


def test_tracking_efficiency() -> None:
    config = DetectorConfig()
    result = apply_detector(many(211, 20_000, 10.0, (-1.0, 1.0)), config, np.random.default_rng(1))
    tracked = np.sum(result.pid == 211) / 20_000
    assert tracked == pytest.approx(0.95, abs=0.005)
    # Untracked charged hadrons still reach the HCAL.
    assert np.sum(result.pid == HCAL_CELL_PDGID) > 0


def test_track_momentum_resolution() -> None:
    config = DetectorConfig()
    sample = many(211, 20_000, 100.0, (-1.0, 1.0))
    result = apply_detector(sample, config, np.random.default_rng(2))
    tracks = result.pid == 211
    ratio = np.hypot(result.px[tracks], result.py[tracks]) / 100.0
    expected = np.hypot(0.005, 1.5e-4 * 100.0)
    assert np.std(ratio) == pytest.approx(expected, rel=0.05)
    assert np.mean(ratio) == pytest.approx(1.0, abs=5e-4)


def test_ecal_energy_resolution() -> None:
    # One photon per event, so every cell holds a single photon.
    rng = np.random.default_rng(3)
    eta = rng.uniform(-1, 1, 10_000)
    events = [[(22, 50.0 / np.cosh(e), e, 0.3)] for e in eta]
    result = apply_detector(particles(*events), DetectorConfig(), np.random.default_rng(4))
    ratio = result.energy / 50.0
    assert np.std(ratio) == pytest.approx(np.hypot(0.03 / np.sqrt(50.0), 0.005), rel=0.05)


def test_acceptance() -> None:
    event = [
        (22, 10.0, 5.5, 0.0),  # beyond the calorimeter: lost
        (211, 10.0, 3.2, 1.0),  # beyond the tracker: an HCAL cell
        (13, 20.0, 3.2, -1.0),  # untracked muon: lost
        (211, 0.3, 0.2, 2.0),  # below the tracking threshold in the tracker: lost
        (13, 20.0, 0.0, 0.0),  # tracked muon
    ]
    result = apply_detector(particles(event), PERFECT, np.random.default_rng(0))
    assert sorted(result.pid.tolist()) == [13, HCAL_CELL_PDGID]


def test_seeded() -> None:
    sample = many(211, 500, 20.0, (-2, 2))
    first = apply_detector(sample, DetectorConfig(), np.random.default_rng(5))
    again = apply_detector(sample, DetectorConfig(), np.random.default_rng(5))
    other = apply_detector(sample, DetectorConfig(), np.random.default_rng(6))
    np.testing.assert_array_equal(first.px, again.px)
    assert len(first.px) != len(other.px) or not np.array_equal(first.px, other.px)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tracking_efficiency": (1.5, 0.9)}, "within 0-1"),
        ({"ecal_cell": (0.0, 0.1)}, "cell sizes"),
        ({"hcal_stochastic": (1.0, 1.0)}, "3 non-negative numbers"),
        ({"tracker_eta_max": -1.0}, "tracker_eta_max"),
    ],
)
def test_bad_detector_config(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DetectorConfig(**changes)  # type: ignore[arg-type]


def test_detector_jets_end_to_end() -> None:
    options = GeneratorOptions(mpi=False, detector=DetectorConfig())
    jets = generate_jets(get_card("qcd"), options, 20, seed=11, detector_seed=12)
    assert len(jets) == 20
    pid = ak.to_numpy(ak.flatten(jets.part_pid))
    assert {22, HCAL_CELL_PDGID} <= set(np.abs(pid).tolist())
    assert ak.all((jets.jet_pt >= 550) & (jets.jet_pt < 650))
    again = generate_jets(get_card("qcd"), options, 20, seed=11, detector_seed=12)
    assert ak.array_equal(jets, again)
