"""Paired generator/detector-level jet observables (``heplearn.generate.paired``): hand-made events
with known answers, the perfect-detector identity, and a few real Z+jets events."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from heplearn.errors import ConfigError
from heplearn.generate.detector import DetectorConfig, load_detector
from heplearn.generate.events import FinalState
from heplearn.generate.paired import DUMMY, generate_paired, leading_jet_observables, paired_observables, write_paired

CHARGE = {211: 1.0, -211: -1.0, 13: -1.0, -13: 1.0, 22: 0.0}
# no inefficiency and no smearing: only the calorimeter cells' merging is left
PERFECT = replace(
    DetectorConfig(),
    tracking_efficiency=(1.0, 1.0),
    **{name: (0.0, 0.0) for name in ("track_resolution_constant", "track_resolution_slope")},
    **{name: (0.0, 0.0, 0.0) for name in ("ecal_stochastic", "ecal_constant", "hcal_stochastic", "hcal_constant")},
)


def final_state(*events: list[tuple[int, float, float, float]]) -> FinalState:
    """Massless particles given as (pdg id, pT, η, φ), event by event."""
    rows = [row for event in events for row in event]
    pid = np.array([row[0] for row in rows], dtype=np.int64)
    pt, eta, phi = (np.array([row[i] for row in rows], dtype=float) for i in (1, 2, 3))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return FinalState(
        px=px,
        py=py,
        pz=pz,
        energy=np.sqrt(px**2 + py**2 + pz**2),
        pid=pid,
        charge=np.array([CHARGE[p] for p in pid.tolist()]),
        counts=np.array([len(event) for event in events], dtype=np.int64),
    )


def test_two_particle_jet_has_its_closed_form_observables() -> None:
    # event 0: a 120 + 60 GeV pair 0.2 apart in η (a jet), and a 300 GeV muon that must not be in it;
    # event 1: only a muon and a 40 GeV pion, no jet above 150 GeV.
    events = final_state(
        [(211, 120.0, 0.0, 0.0), (-211, 60.0, 0.2, 0.0), (13, 300.0, 0.0, 3.0)],
        [(13, 200.0, 0.5, 1.0), (211, 40.0, 0.0, 0.0)],
    )
    values = leading_jet_observables(events, pt_min=150.0)
    assert values["pass"].tolist() == [1.0, 0.0]
    assert all(values[name][1] == DUMMY for name in ("pt", "mass", "mult", "width", "tau21", "zg", "lnrho"))
    # m² = 2 pT1 pT2 (cosh Δη − cos Δφ); the jet axis is the E-scheme sum of the two
    mass = np.sqrt(2 * 120 * 60 * (np.cosh(0.2) - 1))
    momenta = np.array([[120.0, 0.0, 120 * np.sinh(0.0)], [60.0, 0.0, 60 * np.sinh(0.2)]])
    total = momenta.sum(axis=0)
    axis_eta = np.arcsinh(total[2] / np.hypot(total[0], total[1]))
    width = (120 * abs(axis_eta) + 60 * abs(0.2 - axis_eta)) / 180
    assert values["mass"][0] == pytest.approx(mass, rel=1e-6)
    assert values["mult"][0] == 2 and values["pt"][0] == pytest.approx(np.hypot(*total[:2]), rel=1e-9)
    assert values["width"][0] == pytest.approx(width, rel=1e-6)
    assert values["zg"][0] == pytest.approx(60 / 180)  # both prongs pass z_cut = 0.1: z_g = 1/3
    assert values["tau21"][0] == pytest.approx(0.0, abs=1e-9)  # two axes on two particles: τ2 = 0
    # nothing groomed away: m_SD = m, so ln ρ = ln(m² / pT²)
    assert values["lnrho"][0] == pytest.approx(np.log(mass**2 / values["pt"][0] ** 2), rel=1e-6)


def test_a_soft_prong_is_groomed_and_ln_rho_is_floored() -> None:
    values = leading_jet_observables(final_state([(211, 200.0, 0.0, 0.0), (22, 10.0, 0.0, 0.3)]))
    assert values["zg"][0] == 0.0 and values["lnrho"][0] == -14.0  # 10/210 < 0.1: one massless prong left
    assert values["mass"][0] > 10


def test_a_perfect_detector_gives_the_generator_values_for_charged_jets() -> None:
    events = final_state([(211, 120.0, 0.0, 0.0), (-211, 60.0, 0.2, 0.1), (211, 30.0, -0.1, 0.2)])
    columns = paired_observables(events, PERFECT, np.random.default_rng(0))
    for name in ("pt", "mass", "mult", "width", "tau21", "zg", "lnrho", "pass"):
        assert columns[f"reco_{name}"] == pytest.approx(columns[f"gen_{name}"], rel=1e-5), name


def test_zjets_events_pair_both_levels(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    columns = generate_paired(40, seed=5, detector=load_detector("alt"), progress=False)
    assert {len(values) for values in columns.values()} == {40}
    passed = (columns["gen_pass"] == 1) & (columns["reco_pass"] == 1)
    assert passed.mean() > 0.7  # pT-hat > 200 GeV: nearly every event has a 150 GeV jet at both levels
    # the detector moves the observables but keeps them close: same jet, a few GeV of pT
    assert np.median(np.abs(columns["reco_pt"][passed] / columns["gen_pt"][passed] - 1)) < 0.1
    assert not np.array_equal(columns["reco_mult"][passed], columns["gen_mult"][passed])
    path = write_paired(tmp_path / "zjets.parquet", columns, {"detector": "alt"})
    table = pq.read_table(path)
    assert table.num_rows == 40 and table.schema.metadata[b"heplearn.detector"] == b"alt"
    assert not list(tmp_path.glob("*.tmp*"))


def test_bad_paired_requests() -> None:
    with pytest.raises(ConfigError, match="n_events must be at least 1"):
        generate_paired(0, seed=1, detector=PERFECT)
    with pytest.raises(ConfigError, match="unknown process 'zee'"):
        generate_paired(5, seed=1, detector=PERFECT, process="zee")
