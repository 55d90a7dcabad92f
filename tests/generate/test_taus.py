"""Reconstructed τ_h (hadrons plus strips) against hand-made decays and against GenVisTau in Z → ττ."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.generate import kinematics
from heplearn.generate.events import FinalState
from heplearn.generate.nanoaod import EventOptions, generate_events, get_event_card
from heplearn.generate.taus import (
    PION_MASS,
    TAU_CLASSES,
    reconstruct_jet,
    reconstruct_taus,
    tau_candidates,
    write_tau_candidates,
)


def particles_at(rows: list[tuple[float, float, float, int, float]]) -> FinalState:
    """One event of (pT, η, φ, pdg id, charge) massless (photons) or pion-mass particles."""
    pt, eta, phi, pid, charge = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    mass = np.where(pid == 22, 0.0, PION_MASS)
    return FinalState(
        px=px,
        py=py,
        pz=pz,
        energy=np.sqrt(px**2 + py**2 + pz**2 + mass**2),
        pid=pid.astype(np.int64),
        charge=charge,
        counts=np.array([len(rows)]),
    )


def test_rho_decay_is_mode_one_with_its_mass() -> None:
    # τ → ρ ν → π± π⁰ ν: a 25 GeV pion and two photons in a strip (within Δη 0.05, Δφ 0.2).
    event = particles_at([(25.0, 0.30, 1.00, 211, 1.0), (9.0, 0.32, 1.03, 22, 0.0), (4.0, 0.31, 1.05, 22, 0.0)])
    tau = reconstruct_jet(event, 0, np.arange(3))
    assert tau is not None and tau.decay_mode == 1 and tau.charge == 1
    strip = event.px[1:].sum(), event.py[1:].sum(), event.pz[1:].sum()
    strip_energy = np.sqrt(sum(c**2 for c in strip) + 0.13498**2)  # the strip gets the π⁰ mass
    total = (event.px[0] + strip[0], event.py[0] + strip[1], event.pz[0] + strip[2], event.energy[0] + strip_energy)
    assert kinematics.mass(*total) == pytest.approx(float(kinematics.mass(tau.px, tau.py, tau.pz, tau.energy)))
    assert 0.3 < kinematics.mass(*total) < 1.3


def test_three_prongs_need_charge_one() -> None:
    rows = [(15.0, 0.0, 0.0, 211, 1.0), (10.0, 0.04, 0.03, -211, -1.0), (8.0, -0.03, 0.04, 211, 1.0)]  # m ≈ 1.1 GeV
    tau = reconstruct_jet(particles_at(rows), 0, np.arange(3))
    assert tau is not None and tau.decay_mode == 10 and tau.charge == 1
    same_sign = reconstruct_jet(particles_at([*rows[:1], (10.0, 0.04, 0.03, 211, 1.0), rows[2]]), 0, np.arange(3))
    assert same_sign is not None and same_sign.decay_mode == 0  # +3 is no τ: the one-prong hypothesis remains


def test_wide_jet_is_not_a_tau() -> None:
    # Hadrons 0.3 apart fail the signal cone (≤ 0.1); the lone leading hadron is a one-prong candidate only.
    rows = [(20.0, 0.0, 0.0, 211, 1.0), (18.0, 0.3, 0.0, -211, -1.0), (15.0, 0.0, 0.3, 211, 1.0)]
    taus = reconstruct_taus(particles_at(rows))
    assert ak.to_numpy(taus["nTau"]).tolist() == [1] and ak.to_numpy(taus["Tau_decayMode"][0]).tolist() == [0]
    assert float(taus["Tau_chargedIso"][0][0]) == pytest.approx(33.0, rel=1e-4)  # the other two, inside 0.5


def test_taus_match_the_visible_generator_taus() -> None:
    events = generate_events(get_event_card("ztautau"), EventOptions(mpi=False), 60, seed=2)
    gen = {
        name: ak.to_numpy(ak.flatten(events[f"GenVisTau_{name}"])) for name in ("pt", "eta", "phi", "status", "charge")
    }
    owner = np.repeat(np.arange(len(events)), ak.to_numpy(events.nGenVisTau))
    accepted = (gen["pt"] > 25) & (np.abs(gen["eta"]) < 2.1)
    matched, response, charge_ok, mode_pairs = 0, [], [], []
    for k in np.flatnonzero(accepted):
        reco = {
            name: ak.to_numpy(events[f"Tau_{name}"][owner[k]]) for name in ("pt", "eta", "phi", "charge", "decayMode")
        }
        if len(reco["pt"]) == 0:
            continue
        distance = kinematics.delta_r(reco["eta"], reco["phi"], gen["eta"][k], gen["phi"][k])
        best = int(distance.argmin())
        if distance[best] < 0.2:
            matched += 1
            response.append(reco["pt"][best] / gen["pt"][k])
            charge_ok.append(reco["charge"][best] == gen["charge"][k])
            mode_pairs.append((int(gen["status"][k]), int(reco["decayMode"][best])))
    # HPS performance (JINST 13 (2018) P10005): ~90% reconstructed for visible pT > 20 GeV, the visible
    # pT measured (particle level: no resolution), the charge right in ~99%, the number of prongs in
    # ~95% and the π⁰ count merged (h π⁰ vs h π⁰ π⁰) right in ~85-90%.
    assert accepted.sum() > 20 and matched / accepted.sum() > 0.75
    assert abs(np.median(response) - 1) < 0.05
    assert np.mean(charge_ok) > 0.95
    generated, reconstructed = (np.array(column) for column in zip(*mode_pairs, strict=True))
    assert np.mean((generated >= 10) == (reconstructed >= 10)) > 0.85
    merged = np.minimum(generated % 5, 1) + 10 * (generated >= 10) == np.minimum(reconstructed % 5, 1) + 10 * (
        reconstructed >= 10
    )
    assert np.mean(merged) > 0.75, mode_pairs
    flavour = ak.to_numpy(ak.flatten(events.Tau_genPartFlav))
    assert np.mean(flavour == 5) > 0.8  # a few τ_h candidates are jets or the τ's photons
    index = ak.to_numpy(ak.flatten(events.Tau_genPartIdx))
    assert np.array_equal(index >= 0, flavour == 5)  # the index of the matched GenVisTau
    first = np.repeat(
        np.cumsum(ak.to_numpy(events.nGenVisTau)) - ak.to_numpy(events.nGenVisTau), ak.to_numpy(events.nTau)
    )
    tau_eta = ak.to_numpy(ak.flatten(events.Tau_eta))
    assert np.all(np.abs(gen["eta"][(first + index)[index >= 0]] - tau_eta[index >= 0]) < 0.2)


def test_tau_candidate_rows_take_the_matched_decay_mode(tmp_path: Path) -> None:
    # Event 0: two GenVisTau (modes 1 and 10), candidates matched to the second and to none;
    # event 1: one GenVisTau (mode 0), its candidate matched; event 2: no candidate.
    values = {
        name: [[1.0, 2.0], [3.0], []] for name in ("pt", "eta", "mass", "chargedIso", "neutralIso", "leadTkPtOverTauPt")
    }
    events = ak.zip(
        {
            "nTau": [2, 1, 0],
            "Tau_decayMode": [[10, 0], [0], []],
            "Tau_genPartIdx": [[1, -1], [0], []],
            "nGenVisTau": [2, 1, 0],
            "GenVisTau_status": [[1, 10], [0], []],
            **{f"Tau_{name}": column for name, column in values.items()},
        },
        depth_limit=1,
    )
    rows = tau_candidates(events)
    assert len(rows) == 3 and ak.to_numpy(rows.tau_pt).tolist() == [1.0, 2.0, 3.0]
    labels = np.stack([ak.to_numpy(rows[name]) for name in TAU_CLASSES], axis=1)
    np.testing.assert_array_equal(labels, [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]])
    source = tmp_path / "events"
    for split in ("train", "val", "test"):
        io.write(events, source / f"{split}.parquet", {"generator": "test"})
    written = write_tau_candidates(source, tmp_path / "rows")
    back = io.open_source(written["test"])
    assert len(back.read()) == 3 and back.provenance()["generator"] == "test"
