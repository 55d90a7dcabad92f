"""Jet clustering with FastJet on whole batches of events, and the per-jet JetClass fields.

The events of a batch go to FastJet in one awkward array (``fastjet.ClusterSequence`` on a
jagged array clusters every event in C++). Jets come back with the indices of their
constituents, so every per-particle quantity (pdg id, charge) is gathered with NumPy.

FastJet: M. Cacciari, G. P. Salam, G. Soyez, Eur. Phys. J. C72 (2012) 1896 [arXiv:1111.6097];
anti-kT: JHEP 04 (2008) 063 [arXiv:0802.1189].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import awkward as ak
import numpy as np

from heplearn.generate import kinematics
from heplearn.generate._fastjet import fastjet
from heplearn.generate.events import FinalState
from heplearn.generate.truth import HeavyHadrons

logger = logging.getLogger(__name__)

_ALGORITHMS = {
    "antikt": fastjet.antikt_algorithm,
    "kt": fastjet.kt_algorithm,
    "cambridge": fastjet.cambridge_algorithm,
}


def jet_definition(algorithm: str, radius: float) -> fastjet.JetDefinition:
    """A FastJet jet definition: ``algorithm`` (``antikt``, ``kt``, ``cambridge``) with radius ``radius``."""
    return fastjet.JetDefinition(_ALGORITHMS[algorithm], float(radius))


def to_awkward(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, counts: np.ndarray) -> ak.Array:
    """Flat four-momenta grouped by ``counts`` into the jagged record FastJet expects."""
    flat = ak.zip({"px": px, "py": py, "pz": pz, "E": energy}, with_name="Momentum4D")
    return ak.unflatten(flat, counts)


@dataclass
class Jets:
    """Jets of a batch (flat arrays, ordered by event) and their pT-ordered constituents.

    ``constituents`` holds flat indices into the ``FinalState`` arrays; the constituents of
    jet ``j`` are ``constituents[constituent_offsets[j]:constituent_offsets[j + 1]]``.
    ``hadron_flavour`` is 5 (b), 4 (c) or 0 (light) from the ghost-associated heavy hadrons.
    """

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    constituents: np.ndarray
    constituent_offsets: np.ndarray
    hadron_flavour: np.ndarray

    def __len__(self) -> int:
        return len(self.event)

    @property
    def pt(self) -> np.ndarray:
        """Transverse momenta (GeV)."""
        return kinematics.pt(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        """Pseudorapidities."""
        return kinematics.pseudorapidity(self.px, self.py, self.pz)

    @property
    def phi(self) -> np.ndarray:
        """Azimuths (radians)."""
        return kinematics.azimuth(self.px, self.py)

    @property
    def mass(self) -> np.ndarray:
        """Invariant masses (GeV)."""
        return kinematics.mass(self.px, self.py, self.pz, self.energy)

    @property
    def n_constituents(self) -> np.ndarray:
        """Constituents per jet."""
        return np.diff(self.constituent_offsets)

    def select(self, mask: np.ndarray) -> Jets:
        """The jets where ``mask`` is true, constituents included."""
        counts = self.n_constituents
        per_constituent = np.repeat(mask, counts)
        kept_counts = counts[mask]
        values = {
            f.name: getattr(self, f.name)[mask]
            for f in fields(self)
            if f.name not in ("constituents", "constituent_offsets")
        }
        return Jets(
            **values,
            constituents=self.constituents[per_constituent],
            constituent_offsets=np.concatenate([[0], np.cumsum(kept_counts)]).astype(np.int64),
        )


# Ghosts carry the direction of a heavy hadron with a vanishing momentum: they join a jet
# without changing it (infrared safety of the algorithm; Cacciari, Salam, Soyez, arXiv:0802.1188).
GHOST_SCALE = 1e-18


def cluster(
    particles: FinalState, radius: float, algorithm: str, pt_min: float, ghosts: HeavyHadrons | None = None
) -> Jets:
    """Cluster every event of the batch; keep jets with pT ≥ ``pt_min``.

    ``ghosts`` (heavy hadrons) are clustered along as ghosts and give each jet its hadron flavour;
    they are not constituents.
    """
    return cluster_with_ghosts(particles, radius, algorithm, pt_min, ghosts)[0]


def cluster_with_ghosts(
    particles: FinalState, radius: float, algorithm: str, pt_min: float, ghosts: HeavyHadrons | None = None
) -> tuple[Jets, np.ndarray]:
    """``cluster``, and for each ghost the index of the jet that holds it (-1: in no jet above ``pt_min``)."""
    inputs, source = _with_ghosts(particles, ghosts)
    events = to_awkward(*inputs)
    sequence = fastjet.ClusterSequence(events, jet_definition(algorithm, radius))
    jets = sequence.inclusive_jets(pt_min)
    local_index = sequence.constituent_index(pt_min)

    jets_per_event = ak.to_numpy(ak.num(jets)).astype(np.int64)
    event = np.repeat(np.arange(len(jets_per_event)), jets_per_event)
    flat_jets = ak.flatten(jets)
    per_jet = ak.flatten(local_index, axis=1)
    counts = ak.to_numpy(ak.num(per_jet)).astype(np.int64)
    particle_offsets = np.concatenate([[0], np.cumsum(inputs[4])])
    flat_index = ak.to_numpy(ak.flatten(per_jet)).astype(np.int64)
    flat_index += np.repeat(particle_offsets[event], counts)
    flavour = np.zeros(len(counts), dtype=np.int64)
    ghost_jet = np.full(0 if ghosts is None else len(ghosts), -1, dtype=np.int64)
    if source is not None and ghosts is not None:
        original = source[flat_index]  # index into (particles..., ghosts...)
        ghost = original >= len(particles)
        jet_of_entry = np.repeat(np.arange(len(counts)), counts)
        np.maximum.at(flavour, jet_of_entry[ghost], ghosts.flavour[original[ghost] - len(particles)])
        ghost_jet[original[ghost] - len(particles)] = jet_of_entry[ghost]
        flat_index = original[~ghost]
        counts = np.bincount(jet_of_entry[~ghost], minlength=len(counts)).astype(np.int64)

    # Order each jet's constituents by decreasing pT (stable, so ties keep the input order).
    jet_of = np.repeat(np.arange(len(counts)), counts)
    constituent_pt = kinematics.pt(particles.px[flat_index], particles.py[flat_index])
    order = np.lexsort((-constituent_pt, jet_of))
    jets_found = Jets(
        event=event,
        px=ak.to_numpy(flat_jets.px).astype(np.float64),
        py=ak.to_numpy(flat_jets.py).astype(np.float64),
        pz=ak.to_numpy(flat_jets.pz).astype(np.float64),
        energy=ak.to_numpy(flat_jets.E).astype(np.float64),
        constituents=flat_index[order],
        constituent_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        hadron_flavour=flavour,
    )
    empty = jets_found.n_constituents == 0  # a jet of ghosts alone (only when pt_min ≈ 0)
    if not empty.any():
        return jets_found, ghost_jet
    renumber = np.where(empty, -1, np.cumsum(~empty) - 1)
    return jets_found.select(~empty), np.where(ghost_jet >= 0, renumber[np.maximum(ghost_jet, 0)], -1)


def _with_ghosts(
    particles: FinalState, ghosts: HeavyHadrons | None
) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """(px, py, pz, E, counts) of the particles with the ghosts added to their events, and for each
    entry its index in (particles..., ghosts...); ``None`` without ghosts."""
    plain = (particles.px, particles.py, particles.pz, particles.energy, particles.counts)
    if ghosts is None or len(ghosts) == 0:
        return plain, None
    event = np.concatenate([np.repeat(np.arange(particles.n_events), particles.counts), ghosts.event])
    source = np.argsort(event, kind="stable")
    ghost_p = [GHOST_SCALE * component for component in (ghosts.px, ghosts.py, ghosts.pz)]
    ghost_energy = np.sqrt(ghost_p[0] ** 2 + ghost_p[1] ** 2 + ghost_p[2] ** 2)
    columns = [
        np.concatenate([mine, theirs])[source] for mine, theirs in zip(plain[:4], [*ghost_p, ghost_energy], strict=True)
    ]
    counts = np.bincount(event, minlength=particles.n_events).astype(np.int64)
    return (*columns, counts), source


def in_window(jets: Jets, pt_min: float, pt_max: float, eta_max: float) -> np.ndarray:
    """pT_min ≤ pT < pT_max and |η| < η_max."""
    pt = jets.pt
    return (pt >= pt_min) & (pt < pt_max) & (np.abs(jets.eta) < eta_max)


def constituents_awkward(particles: FinalState, jets: Jets) -> ak.Array:
    """All constituents of each jet as a jagged Momentum4D array (one list per jet)."""
    index = jets.constituents
    return to_awkward(
        particles.px[index], particles.py[index], particles.pz[index], particles.energy[index], jets.n_constituents
    )


def particle_fields(particles: FinalState, jets: Jets, max_particles: int) -> dict[str, ak.Array]:
    """The JetClass ``part_*`` fields: the ``max_particles`` hardest constituents of each jet."""
    index, stored, jet_of = stored_constituents(jets, max_particles)

    px, py, pz = particles.px[index], particles.py[index], particles.pz[index]
    pid = particles.pid[index]
    charge = particles.charge[index]
    absolute = np.abs(pid)
    is_electron = absolute == 11
    is_muon = absolute == 13
    is_photon = pid == 22
    charged = charge != 0
    deta = kinematics.pseudorapidity(px, py, pz) - jets.eta[jet_of]
    dphi = kinematics.wrap_phi(kinematics.azimuth(px, py) - jets.phi[jet_of])

    columns: dict[str, np.ndarray] = {
        "part_px": px,
        "part_py": py,
        "part_pz": pz,
        "part_energy": particles.energy[index],
        "part_deta": deta,
        "part_dphi": dphi,
        "part_charge": charge,
        "part_isChargedHadron": charged & ~is_electron & ~is_muon,
        "part_isNeutralHadron": ~charged & ~is_photon,
        "part_isPhoton": is_photon,
        "part_isElectron": is_electron,
        "part_isMuon": is_muon,
    }
    result = {name: ak.unflatten(values.astype(np.float32), stored) for name, values in columns.items()}
    result["part_pid"] = ak.unflatten(pid.astype(np.int32), stored)
    return result


def stored_constituents(jets: Jets, max_particles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat particle index, count per jet, jet of each) of the ``max_particles`` hardest constituents."""
    counts = jets.n_constituents
    rank = np.arange(len(jets.constituents)) - np.repeat(jets.constituent_offsets[:-1], counts)
    index = jets.constituents[rank < max_particles]
    stored = np.minimum(counts, max_particles)
    return index, stored, np.repeat(np.arange(len(jets)), stored)


def jet_fields(jets: Jets) -> dict[str, np.ndarray]:
    """The JetClass per-jet kinematics (from all constituents, before truncation)."""
    return {
        "jet_pt": jets.pt.astype(np.float32),
        "jet_eta": jets.eta.astype(np.float32),
        "jet_phi": jets.phi.astype(np.float32),
        "jet_energy": jets.energy.astype(np.float32),
        "jet_mass": jets.mass.astype(np.float32),
    }
