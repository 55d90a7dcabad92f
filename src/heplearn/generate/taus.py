"""Reconstructed hadronic τ decays (τ_h): NanoAOD's ``Tau_*`` collection, by a hadrons-plus-strips method.

A simplified version of CMS's hadrons-plus-strips (HPS) algorithm (CMS, "Performance of
reconstruction and identification of τ leptons decaying to hadrons and ν_τ in pp collisions at
√s = 13 TeV", JINST 13 (2018) P10005, arXiv:1809.02816), run on the visible particles:

1. seeds: anti-kT R = 0.4 jets with pT > ``SEED_PT_MIN`` and |η| < ``TAU_ETA_MAX``;
2. charged hadrons: charged constituents other than e and μ with pT > ``HADRON_PT_MIN``;
3. strips (the π⁰ → γγ, with conversions spread in φ by the field): the hardest unused photon or
   electron with pT > ``STRIP_SEED_PT`` opens a strip that takes every other one within
   |Δη| < ``STRIP_DETA`` and |Δφ| < ``STRIP_DPHI`` of it; strips with pT > ``STRIP_PT_MIN`` are π⁰
   candidates (their mass set to m_π⁰, as HPS does);
4. decay-mode hypotheses from the hardest hadrons and strips: h± (mode 0), h± π⁰ (1), h± π⁰ π⁰ (2),
   h± h∓ h± (10) and h± h∓ h± π⁰ (11), each with its visible-mass window (HPS: ρ(770) for mode 1,
   a1(1260) for modes 2, 10, 11; the three prongs must have charge ±1) and every member inside the
   signal cone ΔR < clamp(3 GeV / pT, 0.05, 0.10) of the candidate;
5. of the hypotheses that pass, the one of highest pT is the τ_h (as HPS chooses).

Stored per τ_h (pT-ordered per event, NanoAOD names): ``Tau_pt, Tau_eta, Tau_phi, Tau_mass,
Tau_charge, Tau_decayMode``, ``Tau_chargedIso`` and ``Tau_neutralIso`` (scalar pT sums of the
charged and the neutral visible particles within ΔR < 0.5 of the τ_h but outside its members, the
ingredients of the HPS isolation discriminant), ``Tau_leadTkPtOverTauPt``, ``Tau_genPartFlav`` (5
when a ``GenVisTau`` lies within ΔR < 0.2, else 0, as NanoAOD's hadronic-τ match) and ``Tau_genPartIdx``
(the index of that ``GenVisTau`` in its event, -1 without one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from heplearn.generate import clustering, kinematics
from heplearn.generate.events import FinalState

SEED_PT_MIN = 15.0  # GeV
TAU_PT_MIN = 18.0  # GeV, NanoAOD's τ threshold
TAU_ETA_MAX = 2.3
HADRON_PT_MIN = 0.5
STRIP_SEED_PT, STRIP_PT_MIN = 0.5, 2.5
STRIP_DETA, STRIP_DPHI = 0.05, 0.20
ISOLATION_RADIUS = 0.5
GEN_MATCH_RADIUS = 0.2
PION_MASS, PI0_MASS = 0.13957, 0.13498
# Visible-mass windows (GeV) of each decay mode, after HPS (JINST 13 (2018) P10005, Sec. 3.1).
MASS_WINDOWS = {0: (0.0, np.inf), 1: (0.3, 1.3), 2: (0.4, 1.5), 10: (0.8, 1.5), 11: (0.9, 1.6)}
# (charged hadrons, strips) of each decay mode
MODES = {0: (1, 0), 1: (1, 1), 2: (1, 2), 10: (3, 0), 11: (3, 1)}
TAU_FIELDS = (
    "pt",
    "eta",
    "phi",
    "mass",
    "charge",
    "decayMode",
    "chargedIso",
    "neutralIso",
    "leadTkPtOverTauPt",
    "genPartFlav",
)


@dataclass
class TauCandidate:
    """One reconstructed τ_h (four-momentum in GeV)."""

    event: int
    px: float
    py: float
    pz: float
    energy: float
    charge: int
    decay_mode: int
    lead_track_pt: float
    members: np.ndarray  # flat particle indices of the hadrons and strip photons


def signal_cone(pt: float) -> float:
    """HPS signal cone: ΔR < 3 GeV / pT, between 0.05 and 0.10."""
    return float(np.clip(3.0 / max(pt, 1e-6), 0.05, 0.10))


def _four_momenta(particles: FinalState, index: np.ndarray, mass: float) -> np.ndarray:
    """(n, 4) px, py, pz, E of particles with the given mass."""
    p = np.stack([particles.px[index], particles.py[index], particles.pz[index]], axis=1)
    return np.concatenate([p, np.sqrt((p**2).sum(axis=1) + mass**2)[:, None]], axis=1)


def build_strips(particles: FinalState, index: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Strips of the photons and electrons ``index`` (pT-ordered): (four-momentum as a π⁰, members)."""
    pt = kinematics.pt(particles.px[index], particles.py[index])
    index = index[np.argsort(-pt, kind="stable")]
    eta = kinematics.pseudorapidity(particles.px[index], particles.py[index], particles.pz[index])
    phi = kinematics.azimuth(particles.px[index], particles.py[index])
    pt = kinematics.pt(particles.px[index], particles.py[index])
    free = pt > STRIP_SEED_PT
    strips = []
    while free.any():
        seed = int(np.flatnonzero(free)[0])
        inside = (
            free & (np.abs(eta - eta[seed]) < STRIP_DETA) & (np.abs(kinematics.wrap_phi(phi - phi[seed])) < STRIP_DPHI)
        )
        free &= ~inside
        members = index[inside]
        p = np.array([particles.px[members].sum(), particles.py[members].sum(), particles.pz[members].sum()])
        if np.hypot(p[0], p[1]) > STRIP_PT_MIN:
            strips.append((np.append(p, np.sqrt(p @ p + PI0_MASS**2)), members))
    return strips


def reconstruct_jet(particles: FinalState, event: int, constituents: np.ndarray) -> TauCandidate | None:
    """The best HPS hypothesis among the constituents of one seed jet, or None."""
    absolute = np.abs(particles.pid[constituents])
    pt = kinematics.pt(particles.px[constituents], particles.py[constituents])
    charged = (particles.charge[constituents] != 0) & (absolute != 11) & (absolute != 13) & (pt > HADRON_PT_MIN)
    hadrons = constituents[charged][np.argsort(-pt[charged], kind="stable")]
    if len(hadrons) == 0:
        return None
    strips = build_strips(particles, constituents[(particles.pid[constituents] == 22) | (absolute == 11)])
    hadron_p = _four_momenta(particles, hadrons, PION_MASS)
    best: TauCandidate | None = None
    for mode, (n_hadrons, n_strips) in MODES.items():
        if len(hadrons) < n_hadrons or len(strips) < n_strips:
            continue
        charge = int(particles.charge[hadrons[:n_hadrons]].sum())
        if abs(charge) != 1:
            continue
        parts = [hadron_p[:n_hadrons], *(strip[0][None, :] for strip in strips[:n_strips])]
        momenta = np.concatenate(parts)
        total = momenta.sum(axis=0)
        tau_pt = float(np.hypot(total[0], total[1]))
        mass = float(kinematics.mass(*total))
        low, high = MASS_WINDOWS[mode]
        if not low <= mass < high:
            continue
        eta = kinematics.pseudorapidity(momenta[:, 0], momenta[:, 1], momenta[:, 2])
        phi = kinematics.azimuth(momenta[:, 0], momenta[:, 1])
        axis_eta = kinematics.pseudorapidity(total[0], total[1], total[2])
        axis_phi = kinematics.azimuth(total[0], total[1])
        if np.any(kinematics.delta_r(eta, phi, axis_eta, axis_phi) > signal_cone(tau_pt)):
            continue
        if best is None or tau_pt > np.hypot(best.px, best.py):
            members = np.concatenate([hadrons[:n_hadrons], *(strip[1] for strip in strips[:n_strips])])
            best = TauCandidate(
                event=event,
                px=total[0],
                py=total[1],
                pz=total[2],
                energy=total[3],
                charge=charge,
                decay_mode=mode,
                lead_track_pt=float(np.hypot(*hadron_p[0, :2])),
                members=members,
            )
    return best


def reconstruct_taus(
    particles: FinalState, gen_eta: ak.Array | None = None, gen_phi: ak.Array | None = None
) -> dict[str, Any]:
    """The ``nTau``/``Tau_*`` columns of a batch (``gen_eta``/``gen_phi``: GenVisTau per event, for
    ``Tau_genPartFlav``)."""
    jets = clustering.cluster(particles, 0.4, "antikt", SEED_PT_MIN)
    jets = jets.select(np.abs(jets.eta) < TAU_ETA_MAX + 0.1)
    candidates = []
    for j in range(len(jets)):
        members = jets.constituents[jets.constituent_offsets[j] : jets.constituent_offsets[j + 1]]
        tau = reconstruct_jet(particles, int(jets.event[j]), members)
        if tau is not None:
            candidates.append(tau)
    pt = np.array([np.hypot(tau.px, tau.py) for tau in candidates])
    eta = np.array([kinematics.pseudorapidity(tau.px, tau.py, tau.pz) for tau in candidates])
    keep = [k for k in range(len(candidates)) if pt[k] > TAU_PT_MIN and abs(eta[k]) < TAU_ETA_MAX]
    candidates = [candidates[k] for k in keep]
    event = np.array([tau.event for tau in candidates], dtype=np.int64)
    pt, eta = pt[keep], eta[keep]
    order = np.lexsort((-pt, event))
    candidates = [candidates[k] for k in order]
    event, pt, eta = event[order], pt[order], eta[order]
    phi = np.array([kinematics.azimuth(tau.px, tau.py) for tau in candidates])
    mass = np.array([kinematics.mass(tau.px, tau.py, tau.pz, tau.energy) for tau in candidates])
    charged_iso, neutral_iso = _isolation(particles, candidates, eta, phi)
    flavour = np.zeros(len(candidates), dtype=np.int64)
    gen_index = np.full(len(candidates), -1, dtype=np.int64)
    if gen_eta is not None and gen_phi is not None and candidates:
        for k in range(len(candidates)):
            gen = (ak.to_numpy(gen_eta[event[k]]), ak.to_numpy(gen_phi[event[k]]))
            distance = kinematics.delta_r(eta[k], phi[k], *gen) if len(gen[0]) else np.zeros(0)
            if len(distance) and distance.min() < GEN_MATCH_RADIUS:
                flavour[k], gen_index[k] = 5, int(distance.argmin())
    counts = np.bincount(event, minlength=particles.n_events)

    def jagged(values: Any, dtype: type) -> ak.Array:
        return ak.unflatten(np.asarray(values, dtype=np.float64).astype(dtype), counts)

    return {
        "nTau": counts.astype(np.int32),
        "Tau_pt": jagged(pt, np.float32),
        "Tau_eta": jagged(eta, np.float32),
        "Tau_phi": jagged(phi, np.float32),
        "Tau_mass": jagged(mass, np.float32),
        "Tau_charge": jagged([tau.charge for tau in candidates], np.int32),
        "Tau_decayMode": jagged([tau.decay_mode for tau in candidates], np.int32),
        "Tau_chargedIso": jagged(charged_iso, np.float32),
        "Tau_neutralIso": jagged(neutral_iso, np.float32),
        "Tau_leadTkPtOverTauPt": jagged([tau.lead_track_pt for tau in candidates] / np.maximum(pt, 1e-6), np.float32),
        "Tau_genPartFlav": jagged(flavour, np.uint8),
        "Tau_genPartIdx": jagged(gen_index, np.int32),
    }


def _isolation(
    particles: FinalState, candidates: list[TauCandidate], eta: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Charged and neutral scalar pT sums within ΔR < 0.5 of each τ_h, its members left out."""
    offsets = np.concatenate([[0], np.cumsum(particles.counts)])
    charged_iso, neutral_iso = np.zeros(len(candidates)), np.zeros(len(candidates))
    for k, tau in enumerate(candidates):
        index = np.arange(offsets[tau.event], offsets[tau.event + 1])
        index = index[~np.isin(index, tau.members)]
        p_eta = kinematics.pseudorapidity(particles.px[index], particles.py[index], particles.pz[index])
        p_phi = kinematics.azimuth(particles.px[index], particles.py[index])
        near = index[kinematics.delta_r(p_eta, p_phi, eta[k], phi[k]) < ISOLATION_RADIUS]
        pt = kinematics.pt(particles.px[near], particles.py[near])
        charged = particles.charge[near] != 0
        charged_iso[k], neutral_iso[k] = pt[charged].sum(), pt[~charged].sum()
    return charged_iso, neutral_iso


# ----------------------------------------------------------------------------- τ_h tagger samples
TAU_CLASSES = ("label_tau_1prong", "label_tau_1prong_pi0", "label_tau_3prong", "label_jet")
CANDIDATE_FIELDS = ("pt", "eta", "mass", "decayMode", "chargedIso", "neutralIso", "leadTkPtOverTauPt")


def tau_candidates(events: ak.Array) -> ak.Array:
    """One row per reconstructed τ_h candidate of NanoAOD-layout ``events``, for a τ_h tagger.

    Fields ``tau_<name>`` (the ``Tau_*`` values) and one-hot labels from the generator: the
    decay mode of the matched ``GenVisTau`` (``label_tau_1prong``: h±; ``label_tau_1prong_pi0``: h± + π⁰s;
    ``label_tau_3prong``: three prongs with or without π⁰s) or ``label_jet`` (no visible τ within
    ΔR < 0.2: a quark or gluon jet faking a τ_h).
    """
    counts = ak.to_numpy(events.nTau)
    rows = {f"tau_{name}": ak.to_numpy(ak.flatten(events[f"Tau_{name}"])) for name in CANDIDATE_FIELDS}
    index = ak.to_numpy(ak.flatten(events.Tau_genPartIdx)).astype(np.int64)
    first = np.repeat(np.cumsum(ak.to_numpy(events.nGenVisTau)) - ak.to_numpy(events.nGenVisTau), counts)
    modes = ak.to_numpy(ak.flatten(events.GenVisTau_status))
    mode = np.where(index >= 0, modes[np.where(index >= 0, first + index, 0)] if len(modes) else -1, -1)
    matched = index >= 0
    rows["label_tau_1prong"] = matched & (mode == 0)
    rows["label_tau_1prong_pi0"] = matched & (mode > 0) & (mode < 5)
    rows["label_tau_3prong"] = matched & (mode >= 10)  # five prongs (≈0.1%) join the three
    rows["label_jet"] = ~matched
    return ak.zip(rows, depth_limit=1)


def write_tau_candidates(events_dir: str | Path, output_dir: str | Path) -> dict[str, Path]:
    """``tau_candidates`` of the train/val/test event files of ``events_dir`` (Parquet), written to
    ``output_dir`` with the events' provenance."""
    from heplearn.data import io

    written = {}
    for split in ("train", "val", "test"):
        source = io.open_source(Path(events_dir) / f"{split}.parquet")
        provenance = {**source.provenance(), "rows": "one per reconstructed tau_h (heplearn.generate.taus)"}
        written[split] = io.write(tau_candidates(source.read()), Path(output_dir) / f"{split}.parquet", provenance)
    return written
