"""Generator truth: which parton or resonance made each jet.

Resonances (t, W, Z, H) are taken at their *last copy* in the event record, the one that decays:
Pythia copies a particle each time the shower or the recoil changes its momentum, and the decay
products are the daughters of the final copy. For the top, the decay quarks are the b and the
two quarks of the W (followed to its own last copy). Partons of QCD and Z+jet events are the
outgoing partons of the hardest scattering (status ±23).

Everything works on flat arrays of a whole batch; loops run over copy depth or the number of
candidates per event (a handful), never over events or particles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heplearn.generate import kinematics
from heplearn.generate.events import EventRecord

# Pythia status codes (absolute values): 21 incoming, 22 intermediate, 23 outgoing of the
# hardest process (and of the resonance decays that follow it).
STATUS_INTERMEDIATE = 22
STATUS_OUTGOING = 23
GLUON = 21
TOP, W_BOSON = 6, 24
_MAX_COPY_DEPTH = 200


@dataclass
class TruthObjects:
    """Truth particles of a batch, sorted by event, with the directions of their decay products."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    pdgid: np.ndarray
    daughter_eta: np.ndarray  # (n, k): k = 3 for top, 2 for W/Z/H, 0 for partons
    daughter_phi: np.ndarray

    def __len__(self) -> int:
        return len(self.event)


@dataclass
class JetTruth:
    """The truth assigned to each jet; ``keep`` says whether the jet carries the card's label."""

    keep: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    pdgid: np.ndarray
    dr: np.ndarray
    max_daughter_dr: np.ndarray


def last_copies(record: EventRecord, index: np.ndarray) -> np.ndarray:
    """Follow each particle down its chain of copies (daughters with the same pdg id)."""
    index = np.asarray(index, dtype=np.int64).copy()
    if len(index) == 0:
        return index
    start = record.offsets[record.event_of(index)]
    for _ in range(_MAX_COPY_DEPTH):
        local1, local2 = record.daughter1[index], record.daughter2[index]
        first, second = start + local1, start + local2
        same_first = (local1 > 0) & (record.pid[first] == record.pid[index])
        same_second = (local2 > 0) & (record.pid[second] == record.pid[index])
        following = np.where(same_first, first, np.where(same_second, second, index))
        if np.array_equal(following, index):
            return index
        index = following
    return index


def _daughters(record: EventRecord, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the two decay products of each (last-copy) particle."""
    start = record.offsets[record.event_of(index)]
    local1 = record.daughter1[index]
    local2 = np.where(record.daughter2[index] > 0, record.daughter2[index], local1)
    return start + local1, start + local2


def find_resonances(record: EventRecord, resonance_id: int) -> TruthObjects:
    """The resonances ``|pdg id| == resonance_id`` of the hard process and their decay quarks."""
    first = np.flatnonzero((np.abs(record.pid) == resonance_id) & (np.abs(record.status) == STATUS_INTERMEDIATE))
    last = last_copies(record, first)
    one, two = _daughters(record, last)
    if resonance_id == TOP:
        # t → W b, then W → q q̄': the three quarks are b and the W's daughters.
        w_first = np.where(np.abs(record.pid[one]) == W_BOSON, one, two)
        bottom = np.where(w_first == one, two, one)
        quark1, quark2 = _daughters(record, last_copies(record, w_first))
        products = np.stack([bottom, quark1, quark2], axis=1)
    else:
        products = np.stack([one, two], axis=1)
    return _objects(record, last, products)


def find_hard_partons(record: EventRecord) -> TruthObjects:
    """Outgoing quarks and gluons of the hardest scattering (status ±23)."""
    absolute = np.abs(record.pid)
    is_parton = (absolute <= TOP) | (absolute == GLUON)
    index = np.flatnonzero(is_parton & (np.abs(record.status) == STATUS_OUTGOING))
    return _objects(record, index, np.zeros((len(index), 0), dtype=np.int64))


def _objects(record: EventRecord, index: np.ndarray, products: np.ndarray) -> TruthObjects:
    px, py, pz, energy = record.px, record.py, record.pz, record.energy
    return TruthObjects(
        event=record.event_of(index),
        pt=kinematics.pt(px[index], py[index]),
        eta=kinematics.pseudorapidity(px[index], py[index], pz[index]),
        phi=kinematics.azimuth(px[index], py[index]),
        mass=kinematics.mass(px[index], py[index], pz[index], energy[index]),
        pdgid=record.pid[index],
        daughter_eta=kinematics.pseudorapidity(px[products], py[products], pz[products]),
        daughter_phi=kinematics.azimuth(px[products], py[products]),
    )


def match_jets(
    jet_event: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    truth: TruthObjects,
    radius: float,
    *,
    contained: bool,
    allowed_ids: frozenset[int] | None,
) -> JetTruth:
    """Assign to each jet the nearest truth object of its event within ΔR < radius.

    ``contained``: the object's decay products must also lie within ΔR < radius of the jet axis
    (top, W, Z, H jets). ``allowed_ids``: a matched parton must have one of these |pdg id|s.
    A jet is kept when it has a match that passes these requirements; with neither requirement
    (inclusive QCD) every jet is kept and the match is stored when there is one.
    """
    n_jets = len(jet_event)
    best = np.full(n_jets, -1, dtype=np.int64)
    best_dr = np.full(n_jets, np.inf)
    best_daughter_dr = np.zeros(n_jets)
    first = np.searchsorted(truth.event, jet_event, side="left")
    stop = np.searchsorted(truth.event, jet_event, side="right")
    most = int((stop - first).max()) if n_jets else 0
    for slot in range(most):
        candidate = first + slot
        valid = candidate < stop
        candidate = np.where(valid, candidate, 0)
        if len(truth) == 0:
            break
        dr = kinematics.delta_r(jet_eta, jet_phi, truth.eta[candidate], truth.phi[candidate])
        daughter_dr = kinematics.delta_r(
            jet_eta[:, None],
            jet_phi[:, None],
            truth.daughter_eta[candidate],
            truth.daughter_phi[candidate],
        )
        max_daughter_dr = daughter_dr.max(axis=1, initial=0.0)
        good = valid & (dr < radius)
        if contained:
            good &= max_daughter_dr < radius
        better = good & (dr < best_dr)
        best = np.where(better, candidate, best)
        best_dr = np.where(better, dr, best_dr)
        best_daughter_dr = np.where(better, max_daughter_dr, best_daughter_dr)

    matched = best >= 0
    safe = np.where(matched, best, 0)

    def pick(values: np.ndarray, missing: float = 0.0) -> np.ndarray:
        if len(truth) == 0:
            return np.full(n_jets, missing)
        return np.where(matched, values[safe], missing)

    pdgid = pick(truth.pdgid, 0).astype(np.int64)
    if contained:
        keep = matched
    elif allowed_ids is not None:
        keep = matched & np.isin(np.abs(pdgid), sorted(allowed_ids))
    else:
        keep = np.ones(n_jets, dtype=bool)
    return JetTruth(
        keep=keep,
        pt=pick(truth.pt),
        eta=pick(truth.eta),
        phi=pick(truth.phi),
        mass=pick(truth.mass),
        pdgid=pdgid,
        dr=np.where(matched, best_dr, 0.0),
        max_daughter_dr=best_daughter_dr,
    )


# ----------------------------------------------------------------------------- hadron flavour
BOTTOM, CHARM = 5, 4
# Heavy hadrons lighter than this do not label a jet (ATLAS and CMS use pT > 5 GeV).
HEAVY_HADRON_PT_MIN = 5.0
_HADRON_STATUS_MIN = 81  # Pythia: 81-89 made in hadronisation, 91-99 in decays


@dataclass
class HeavyHadrons:
    """Weakly decaying B and C hadrons of a batch: the ghosts that give jets their flavour."""

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    flavour: np.ndarray  # 5 (B hadron) or 4 (C hadron)

    def __len__(self) -> int:
        return len(self.event)


def contains_quark(pid: np.ndarray, quark: int) -> np.ndarray:
    """Whether each hadron code (PDG numbering scheme: digits n_q1 n_q2 n_q3 n_J) holds ``quark``."""
    code = np.abs(pid) % 10_000
    q1, q2, q3 = (code // 1000) % 10, (code // 100) % 10, (code // 10) % 10
    return (q1 == quark) | (q2 == quark) | (q3 == quark)


def last_heavy_hadrons(record: EventRecord) -> tuple[np.ndarray, np.ndarray]:
    """(flat index, flavour 5 or 4) of the last B and C hadrons of each decay chain, by event.

    A hadron is last when no hadron of its kind is among its daughters (B* → B γ keeps the B);
    C hadrons are those without a b quark.
    """
    event = np.repeat(np.arange(record.n_events), np.diff(record.offsets))
    hadron = np.flatnonzero(np.abs(record.status) >= _HADRON_STATUS_MIN)
    bottom = contains_quark(record.pid[hadron], BOTTOM)
    charm = ~bottom & contains_quark(record.pid[hadron], CHARM)
    selected = []
    for kind, flavour in ((hadron[bottom], BOTTOM), (hadron[charm], CHARM)):
        is_parent = np.zeros(len(record.pid), dtype=bool)
        with_mother = kind[record.mother1[kind] > 0]
        is_parent[record.offsets[event[with_mother]] + record.mother1[with_mother]] = True
        selected.append((kind[~is_parent[kind]], flavour))
    index = np.concatenate([chosen for chosen, _ in selected]).astype(np.int64)
    flavours = np.concatenate([np.full(len(chosen), flavour) for chosen, flavour in selected]).astype(np.int64)
    order = np.argsort(event[index], kind="stable")
    return index[order], flavours[order]


def find_heavy_hadrons(record: EventRecord, pt_min: float = HEAVY_HADRON_PT_MIN) -> HeavyHadrons:
    """The last B and C hadrons of each decay chain (those with no heavy hadron of their kind as daughter).

    The hadron-based flavour of CMS (``Jet_hadronFlavour``) and ATLAS: a jet holding a ghost of a
    weakly decaying B hadron is a b jet, else one holding a C hadron is a c jet (Cacciari, Salam,
    Soyez, "The catchment area of jets", JHEP 04 (2008) 005, for ghost association). A C hadron from
    a B decay sits in the same jet as its B, so the b label wins.
    """
    index, flavours = last_heavy_hadrons(record)
    keep = kinematics.pt(record.px[index], record.py[index]) > pt_min
    index, flavours = index[keep], flavours[keep]
    return HeavyHadrons(
        event=record.event_of(index), px=record.px[index], py=record.py[index], pz=record.pz[index], flavour=flavours
    )


FLAVOUR_LABELS = {"label_b": BOTTOM, "label_c": CHARM, "label_light": 0}


def flavour_labels(hadron_flavour: np.ndarray) -> dict[str, np.ndarray]:
    """One-hot ``label_b``, ``label_c``, ``label_light`` from the hadron flavour (5, 4, 0)."""
    return {name: np.asarray(hadron_flavour) == value for name, value in FLAVOUR_LABELS.items()}
