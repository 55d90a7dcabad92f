"""tt̄ + heavy flavour: the CMS ``genTtbarId`` of each event, from additional b- and c-hadron GenJets.

CMS labels tt̄ events by the generator-level jets that hold heavy hadrons *not* from the top-quark
or W-boson decays (``GenTtbarCategorizer`` with ``GenHFHadronMatcher``, CMSSW TopQuarkAnalysis;
used by the tt̄H(bb̄) analyses, e.g. CMS, JHEP 03 (2019) 026, arXiv:1804.03682, and the tt̄bb̄
cross-section measurements, arXiv:2003.06467). We follow it:

1. Every last B hadron and every last C hadron not from a B decay (``truth.last_heavy_hadrons``) is
   traced to its origin: up through the heavier states of its own kind (B* → B γ), to the string
   that made it, to the heavy quark of that string whose sign matches the hadron's content, then up
   that quark's chain of copies (shower emissions and recoils keep the quark as mother) to the first
   ancestor that is not the same quark: a top (t → W b) or a W (W → c s̄, W → u b̄) makes the hadron
   "from top" or "from W"; anything else (a gluon splitting g → bb̄ in the shower or in a multiple
   interaction, the Higgs in tt̄H, an incoming b of flavour excitation) makes it *additional*.
2. GenJets: anti-kT R = 0.4 on every stable particle but neutrinos, the hadrons clustered as ghosts;
   a jet counts when pT > 20 GeV and |η| < 2.4 (CMS's ``genJetPtMin`` and ``genJetAbsEtaMax``).
3. A jet with a b hadron from top is a b jet from top; otherwise with one from a W a b jet from W;
   otherwise with an additional b hadron an *additional b jet*. Jets with no b hadron and a c hadron
   are c jets from W or additional c jets in the same way.
4. ``genTtbarId`` = 10000 n(c jets from W) + 1000 n(b jets from W) + 100 n(b jets from top) + the
   additional-jet code: 51 (one additional b jet, one b hadron in it), 52 (one, with ≥ 2 b hadrons:
   a collinear g → bb̄), 53/54/55 (≥ 2 additional b jets with none/one/two of the two richest holding
   ≥ 2 b hadrons), 41-45 the same for c jets when there is no additional b jet, 0 for neither.

So ``genTtbarId % 100`` is 0 for tt̄ + light flavour (tt̄lf), 41-45 for tt̄ + cc̄ and 51-55 for
tt̄ + b(b̄): CMS's tt̄+b (51), tt̄+2b (52) and tt̄+bb (53-55).
"""

from __future__ import annotations

import numpy as np

from heplearn.generate import clustering
from heplearn.generate.events import NEUTRINOS, EventRecord, FinalState
from heplearn.generate.truth import BOTTOM, CHARM, TOP, W_BOSON, HeavyHadrons, contains_quark, last_heavy_hadrons

GENJET_RADIUS = 0.4
GENJET_PT_MIN = 20.0  # GeV, CMS GenTtbarCategorizer genJetPtMin
GENJET_ETA_MAX = 2.4  # CMS genJetAbsEtaMax
_MAX_DEPTH = 200
ADDITIONAL = 0  # origin code of a hadron not from a top or W decay


def heavy_quark_sign(pid: np.ndarray, quark: int) -> np.ndarray:
    """+1 when hadron ``pid`` holds the quark ``quark``, −1 the antiquark, 0 for quarkonia (both).

    PDG numbering: baryons (four digits) hold quarks; in a meson n_q2 n_q3 the heavier quark n_q2 is
    a quark when up-type (D⁰ = cū, 421) and an antiquark when down-type (B⁰ = db̄, 511).
    """
    code = np.abs(pid) % 10_000
    baryon = code >= 1000
    q2, q3 = (code // 100) % 10, (code // 10) % 10
    meson = np.where(q2 % 2 == 0, 1, -1)
    sign = np.sign(pid) * np.where(baryon, 1, meson)
    return np.where(~baryon & (q2 == quark) & (q3 == quark), 0, sign).astype(np.int64)


def hadron_origins(record: EventRecord, index: np.ndarray, quark: int) -> tuple[np.ndarray, np.ndarray]:
    """(origin, from_bottom) of the hadrons ``index`` holding ``quark`` (5 or 4).

    ``origin`` is 6 (from a top decay), 24 (from a W decay) or 0 (additional); ``from_bottom`` says
    that the hadron comes from the decay of a B hadron (for C hadrons).
    """
    index = np.asarray(index, dtype=np.int64)
    if record.mother2 is None:
        raise ValueError("hadron_origins needs the event record's second mothers (EventRecord.mother2)")
    start = record.offsets[record.event_of(index)]
    absolute = np.abs(record.pid)
    hadron = absolute > 100
    current = index.copy()
    for _ in range(_MAX_DEPTH):  # up through B** → B* → B (or the D*'s of a D)
        local = record.mother1[current]
        mother = start + local
        step = (local > 0) & hadron[mother] & contains_quark(record.pid[mother], quark)
        if not step.any():
            break
        current = np.where(step, mother, current)
    mother = start + record.mother1[current]
    from_bottom = (record.mother1[current] > 0) & hadron[mother] & contains_quark(record.pid[mother], BOTTOM)

    # The heavy quark of the string (or the hadron-decay partons) among the hadron's mothers.
    first = record.mother1[current]
    second = np.where(record.mother2[current] > 0, record.mother2[current], first)
    low, high = start + np.minimum(first, second), start + np.maximum(first, second)
    quarks = np.flatnonzero(absolute == quark)
    wanted = heavy_quark_sign(record.pid[current], quark) * quark
    lo, hi = np.searchsorted(quarks, low, side="left"), np.searchsorted(quarks, high, side="right")
    chosen = np.full(len(index), -1, dtype=np.int64)
    fallback = chosen.copy()  # a quark of the other sign, when none has the hadron's
    for slot in range(int((hi - lo).max(initial=0))):
        position = lo + slot
        valid = (position < hi) & (first > 0)
        candidate = quarks[np.minimum(position, len(quarks) - 1)]
        exact = valid & ((wanted == 0) | (record.pid[candidate] == wanted))
        chosen = np.where((chosen < 0) & exact, candidate, chosen)
        fallback = np.where((fallback < 0) & valid, candidate, fallback)
    chosen = np.where(chosen >= 0, chosen, fallback)
    found = chosen >= 0
    parton = np.where(found, chosen, 0)
    parton_start = np.where(found, start, 0)
    for _ in range(_MAX_DEPTH):  # up the quark's copies to its first different ancestor
        local = record.mother1[parton]
        mother = parton_start + local
        step = found & (local > 0) & (record.pid[mother] == record.pid[parton])
        if not step.any():
            break
        parton = np.where(step, mother, parton)
    local = record.mother1[parton]
    ancestor = np.abs(record.pid[parton_start + local])
    from_bottom |= found & (local > 0) & (ancestor > 100) & contains_quark(record.pid[parton_start + local], BOTTOM)
    origin = np.where(found & (local > 0) & np.isin(ancestor, (TOP, W_BOSON)), ancestor, ADDITIONAL)
    return origin.astype(np.int64), from_bottom


def generator_particles(record: EventRecord) -> FinalState:
    """The stable particles of the record but neutrinos: the input of CMS's ak4GenJetsNoNu."""
    keep = (record.status > 0) & ~np.isin(np.abs(record.pid), NEUTRINOS)
    event = np.repeat(np.arange(record.n_events), np.diff(record.offsets))
    return FinalState(
        px=record.px[keep],
        py=record.py[keep],
        pz=record.pz[keep],
        energy=record.energy[keep],
        pid=record.pid[keep],
        charge=np.zeros(int(keep.sum())),
        counts=np.bincount(event[keep], minlength=record.n_events).astype(np.int64),
    )


def gen_ttbar_id(record: EventRecord) -> np.ndarray:
    """CMS's ``genTtbarId`` of every event of the batch (see the module docstring)."""
    n_events = record.n_events
    index, flavour = last_heavy_hadrons(record)
    origin = np.zeros(len(index), dtype=np.int64)
    from_bottom = np.zeros(len(index), dtype=bool)
    for quark in (BOTTOM, CHARM):
        mine = flavour == quark
        origin[mine], from_bottom[mine] = hadron_origins(record, index[mine], quark)
    keep = (flavour == BOTTOM) | ~from_bottom  # C hadrons from B decays do not count (as in CMS)
    index, flavour, origin = index[keep], flavour[keep], origin[keep]
    ghosts = HeavyHadrons(
        event=record.event_of(index), px=record.px[index], py=record.py[index], pz=record.pz[index], flavour=flavour
    )
    jets, ghost_jet = clustering.cluster_with_ghosts(
        generator_particles(record), GENJET_RADIUS, "antikt", GENJET_PT_MIN, ghosts
    )
    accepted = np.abs(jets.eta) < GENJET_ETA_MAX
    counted = (ghost_jet >= 0) & accepted[np.maximum(ghost_jet, 0)]
    n_jets = len(jets)

    def per_jet(selection: np.ndarray) -> np.ndarray:
        return np.bincount(ghost_jet[counted & selection], minlength=n_jets)

    b_top = per_jet((flavour == BOTTOM) & (origin == TOP)) > 0
    b_w = ~b_top & (per_jet((flavour == BOTTOM) & (origin == W_BOSON)) > 0)
    b_extra = per_jet((flavour == BOTTOM) & (origin == ADDITIONAL))
    b_extra = np.where(b_top | b_w, 0, b_extra)
    any_b = b_top | b_w | (b_extra > 0)
    c_w = ~any_b & (per_jet((flavour == CHARM) & (origin == W_BOSON)) > 0)
    c_extra = np.where(any_b | c_w, 0, per_jet((flavour == CHARM) & (origin == ADDITIONAL)))

    def per_event(values: np.ndarray) -> np.ndarray:
        return np.bincount(jets.event, weights=values, minlength=n_events).astype(np.int64)

    code = 100 * per_event(b_top) + 1000 * per_event(b_w) + 10_000 * per_event(c_w)
    extra_b = _additional_code(per_event(b_extra > 0), per_event(b_extra >= 2), per_event(b_extra == 1), 50)
    extra_c = _additional_code(per_event(c_extra > 0), per_event(c_extra >= 2), per_event(c_extra == 1), 40)
    return code + np.where(extra_b > 0, extra_b, extra_c)


def _additional_code(n_jets: np.ndarray, n_rich: np.ndarray, n_single: np.ndarray, base: int) -> np.ndarray:
    """x1/x2 for one additional jet with one / several hadrons; x3/x4/x5 for two or more jets of
    which none / one / at least two of the two richest hold several hadrons; 0 without one."""
    one = np.where(n_single == 1, base + 1, base + 2)
    several = base + 3 + np.minimum(n_rich, 2)
    return np.where(n_jets == 1, one, np.where(n_jets >= 2, several, 0)).astype(np.int64)
