"""Event-level samples in the CMS NanoAOD layout: one record per event, jagged object collections.

``generate_events`` makes one chunk of events of an event card; the driver
(``heplearn.generate.event_driver``) chunks, seeds, resumes and writes them like the jet generator.
Branch names and types follow CMS NanoAOD (https://cms-nanoaod-integration.web.cern.ch/autoDoc/),
so coffea's ``NanoEventsFactory`` with ``NanoAODSchema`` reads the ROOT files as they are:

- ``Jet_pt/eta/phi/mass``, ``Jet_hadronFlavour`` (ghost-associated B/C hadrons: 5, 4, 0),
  ``Jet_nConstituents``: anti-kT R = 0.4, pT > ``jet_pt_min``, |η| < 4.7, clustered from every
  visible particle except the isolated leptons and photons (which NanoAOD keeps as their own
  objects);
- ``Jet_btagged``: a b-tagging working point emulated from the hadron flavour (``btag_flags``);
- ``FatJet_pt/eta/phi/mass``, ``FatJet_msoftdrop`` (β = 0, z_cut = 0.1), ``FatJet_tau1..4``: R = 0.8,
  pT > ``fatjet_pt_min``, |η| < 2.4;
- ``Muon_*``, ``Electron_*`` (pt, eta, phi, mass, charge, pdgId, ``pfRelIso03_all``) and
  ``Photon_*`` (pt, eta, phi, ``pfRelIso03_all``): |η| < 2.4 (2.5), pT > ``lepton_pt_min``,
  isolated: the scalar pT sum of the other visible particles within ΔR < 0.3, over the object's
  pT, below ``ISOLATION_MAX`` (CMS's loose PF isolation, 0.25 for muons);
- ``MET_pt``, ``MET_phi``: minus the vector pT sum of everything visible (neutrinos escape);
- ``PV_npvs`` and ``fixedGridRhoFastjetAll`` (``heplearn.generate.pileup``; 1 vertex without pileup);
- ``genWeight`` (Pythia's event weight, 1 for these unweighted samples); ``run`` (1),
  ``luminosityBlock`` (the chunk index + 1) and ``event`` (the generated event's number in its
  chunk), which together identify an event, as NanoAOD's event ID;
- ``Tau_pt/eta/phi/mass/charge/decayMode`` (and isolation sums, ``Tau_genPartFlav``): τ_h
  reconstructed by hadrons plus strips in jet seeds (``heplearn.generate.taus``);
- ``GenPart_pdgId/status/genPartIdxMother/pt/eta/phi/mass``: the hard process (Pythia status
  21-23: incoming, intermediate and outgoing partons and resonances), mothers indexed within
  the event's GenPart list (-1 when the mother is not in it).

Collections are pT-ordered, as in NanoAOD. With a detector (``--detector``) the objects are made
from the reconstructed particles (tracks and calorimeter cells) instead.

Event cards (√s = 13 TeV by default, as the benchmarks they follow):

``wprime``
    W' → X Y with X → qq̄ and Y → qq̄ (the LHC Olympics 2020 R&D signal, arXiv:2101.08320:
    m_W' = 3.5 TeV, m_X = 500 GeV, m_Y = 100 GeV; masses are options). Pythia's W' decays to W Z,
    so the W plays X and the Z plays Y: their masses are set to m_X and m_Y, their widths forced
    to 1% of the mass, and both decay to quarks. The leading fat jet must have pT > 1.2 TeV, the
    benchmark's trigger-like cut.
``dijet_qcd``
    Its background: ``HardQCD:all`` with pT-hat > 1 TeV (so that the cut on the leading fat jet
    is nearly unbiased) and the same 1.2 TeV cut.
``ztautau``
    Z → ττ with both τ decaying to hadrons (``15:offIfAny = 11 13``), for τ identification:
    the truth is ``GenVisTau_*`` (visible τ four-momentum, charge, decay mode as ``status``).
``zmumu_jets``
    Z/γ* → μμ + jet (``WeakBosonAndParton:qqbar2gmZg`` and ``qg2gmZq``, pure Z) with pT-hat > 200
    GeV: the boosted Z+jets phase space of the OmniFold measurements (Andreassen et al.,
    arXiv:1911.09107; ATLAS, arXiv:2405.20041). Events need two muons.
``tth``, ``ttbb``, ``ttlf``
    The CMS tt̄H(bb̄) event classification (CMS, JHEP 03 (2019) 026, arXiv:1804.03682): tt̄H
    (``HiggsSM:gg2Httbar``, ``qqbar2Httbar``) with H → bb̄ (m_H an option), and tt̄ (``Top:gg2ttbar``,
    ``qqbar2ttbar``) split by its extra heavy flavour. All three decay single-leptonically: one W to
    eν or μν, the other to quarks (two Pythia instances, W⁺ → ℓ⁺ν with W⁻ → qq̄' and its charge
    conjugate, take turns batch by batch). Each event carries CMS's ``genTtbarId``
    (``heplearn.generate.ttbar``: GenJets holding b or c hadrons not from the top or W decays);
    ``ttbb`` keeps the tt̄ events with at least one additional b jet (``genTtbarId % 100`` 51-55:
    CMS's tt̄+b, tt̄+2b and tt̄+bb; select 53-55 for tt̄+bb alone) and ``ttlf`` those with no
    additional b or c jet (``genTtbarId % 100 == 0``). Pythia has no tt̄bb̄ matrix element: the extra
    b quarks come from g → bb̄ in the shower and the multiple interactions and from flavour
    excitation, which is known to underestimate the tt̄bb̄ rate of NLO tt̄bb̄ calculations (CMS,
    arXiv:2003.06467), and only about 2% of tt̄ events pass, so ``ttbb`` costs about 40 tt̄ events
    each (the selection runs on the generator record, before any reconstruction).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import awkward as ak
import numpy as np

from heplearn.errors import ConfigError, HeplearnError
from heplearn.generate import clustering, kinematics, substructure, taus, truth, ttbar
from heplearn.generate.detector import DetectorConfig, apply_detector
from heplearn.generate.events import EventRecord, FinalState, PythiaGenerator
from heplearn.generate.pileup import fixed_grid_rho
from heplearn.generate.processes import _COMMON_SETTINGS, check_pileup
from heplearn.generate.variations import parse_settings, variation_settings

ISOLATION_MAX = 0.25
ISOLATION_RADIUS = 0.3
JET_ETA_MAX = 4.7
FATJET_ETA_MAX = 2.4
MUON_ETA_MAX, ELECTRON_ETA_MAX, PHOTON_ETA_MAX = 2.4, 2.5, 2.5
TRIGGER_FATJET_PT = 1200.0  # LHC Olympics R&D: leading large-R jet pT > 1.2 TeV
MIN_BATCH, MAX_BATCH = 8, 200
MAX_EVENTS_WITHOUT_PASS = 20_000
BTAG_EFFICIENCY = {5: 0.75, 4: 0.15, 0: 0.01}  # b, c, light: ~ CMS DeepJet medium working point
BTAG_ETA_MAX = 2.5
BOTTOM_MASS, TOP_MASS = 4.8, 173.0  # GeV, Pythia's defaults (5:m0, 6:m0)
# Single-lepton tt̄: one W to eν or μν, the other to quarks (Pythia's onPos/onNeg switch the W⁺ and
# W⁻ channels apart); the charge-conjugate setting makes the other half of the events.
_SINGLE_LEPTON = (
    ("24:onMode = off", "24:onPosIfAny = 11 13", "24:onNegIfAny = 1 2 3 4 5"),
    ("24:onMode = off", "24:onNegIfAny = 11 13", "24:onPosIfAny = 1 2 3 4 5"),
)
_MASSES = {11: 0.000511, 13: 0.10566}


@dataclass(frozen=True)
class EventCard:
    """One event process: its Pythia settings (given the options) and its event selection."""

    name: str
    description: str
    pthat_min: float
    trigger_fatjet_pt: float | None = None
    min_muons: int = 0
    min_gen_taus: int = 0
    # tt̄ cards: single-lepton decays, genTtbarId stored; "b": keep ≥ 1 additional b jet, "lf": neither
    # additional b nor c jets, "any": keep all
    ttbar: str | None = None


EVENT_PROCESSES: dict[str, EventCard] = {
    card.name: card
    for card in (
        EventCard(
            "wprime",
            "W' → X(→qq̄) Y(→qq̄), the LHC Olympics R&D signal",
            pthat_min=0.0,
            trigger_fatjet_pt=TRIGGER_FATJET_PT,
        ),
        EventCard(
            "dijet_qcd",
            "QCD dijets with pT-hat > 1 TeV, the LHC Olympics background",
            pthat_min=1000.0,
            trigger_fatjet_pt=TRIGGER_FATJET_PT,
        ),
        EventCard(
            "ztautau", "Z → ττ, both τ decaying to hadrons, with the visible-τ truth", pthat_min=0.0, min_gen_taus=1
        ),
        EventCard("zmumu_jets", "Z → μμ + jet with pT-hat > 200 GeV (OmniFold Z+jets)", pthat_min=200.0, min_muons=2),
        EventCard("tth", "tt̄H with H → bb̄, single-lepton tt̄", pthat_min=0.0, ttbar="any"),
        EventCard(
            "ttbb",
            "tt̄ + at least one additional b jet (genTtbarId % 100 = 51-55), single lepton",
            pthat_min=0.0,
            ttbar="b",
        ),
        EventCard("ttlf", "tt̄ + light flavour (no additional b or c jet), single lepton", pthat_min=0.0, ttbar="lf"),
    )
}


def get_event_card(name: str) -> EventCard:
    """The event card called ``name``; a ConfigError lists the known ones otherwise."""
    card = EVENT_PROCESSES.get(str(name).strip().lower())
    if card is None:
        raise ConfigError(f"unknown event process {name!r}: choose from {', '.join(EVENT_PROCESSES)}")
    return card


@dataclass(frozen=True)
class EventOptions:
    """What the user may change for event samples (GeV)."""

    sqrt_s: float = 13_000.0
    mpi: bool = True
    wprime_mass: float = 3500.0
    x_mass: float = 500.0
    y_mass: float = 100.0
    higgs_mass: float = 125.0
    jet_pt_min: float = 20.0
    fatjet_pt_min: float = 200.0
    lepton_pt_min: float = 5.0
    pthat_min: float | None = None  # None: the card's
    detector: DetectorConfig | None = None
    variation: str | None = None
    pythia: tuple[str, ...] = ()
    pileup: float = 0.0  # μ (heplearn.generate.pileup)
    pileup_pool: int = 1000

    def __post_init__(self) -> None:
        check_pileup(self.pileup, self.pileup_pool)
        for name in (
            "sqrt_s",
            "wprime_mass",
            "x_mass",
            "y_mass",
            "higgs_mass",
            "jet_pt_min",
            "fatjet_pt_min",
            "lepton_pt_min",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if self.pthat_min is not None and not (math.isfinite(self.pthat_min) and self.pthat_min >= 0):
            raise ConfigError(f"pthat_min must be a non-negative number, got {self.pthat_min!r}")
        if min(self.x_mass, self.y_mass) < 20.0:
            raise ConfigError(
                f"m_X = {self.x_mass:g} and m_Y = {self.y_mass:g} GeV must be at least 20 GeV (X and Y decay to quarks)"
            )
        if self.x_mass + self.y_mass >= self.wprime_mass:
            raise ConfigError(
                f"W' → X Y is closed: m_X + m_Y = {self.x_mass + self.y_mass:g} GeV is not below "
                f"m_W' = {self.wprime_mass:g} GeV"
            )
        if self.wprime_mass >= self.sqrt_s:
            raise ConfigError(f"m_W' = {self.wprime_mass:g} GeV is out of reach at √s = {self.sqrt_s:g} GeV")
        if self.higgs_mass <= 2 * BOTTOM_MASS:
            raise ConfigError(
                f"H → bb̄ is closed: m_H = {self.higgs_mass:g} GeV is not above 2 m_b = {2 * BOTTOM_MASS:g} GeV"
            )
        if self.higgs_mass + 2 * TOP_MASS >= self.sqrt_s:
            raise ConfigError(
                f"tt̄H is out of reach: m_H + 2 m_t = {self.higgs_mass + 2 * TOP_MASS:g} GeV at √s = {self.sqrt_s:g} GeV"
            )
        variation_settings(self.variation)
        object.__setattr__(self, "pythia", parse_settings(self.pythia))

    def with_changes(self, **changes: Any) -> EventOptions:
        """A copy with these fields changed (validated again)."""
        return replace(self, **changes)

    def describe(self) -> dict[str, object]:
        """The settings as plain values, for the files' metadata and the settings hash."""
        values = asdict(self)
        values["detector"] = None if self.detector is None else self.detector.describe()
        values["pythia"] = list(self.pythia)
        values["variation"] = self.variation or "nominal"
        return values


def event_settings(card: EventCard, options: EventOptions, seed: int, conjugate: bool = False) -> list[str]:
    """The Pythia settings of one chunk of ``card`` (``conjugate``: the tt̄ cards' W⁺ ↔ W⁻ twin)."""
    if card.name == "tth":
        process = [
            "HiggsSM:gg2Httbar = on",
            "HiggsSM:qqbar2Httbar = on",
            f"25:m0 = {options.higgs_mass:.6g}",
            "25:onMode = off",
            "25:onIfMatch = 5 -5",
            *_SINGLE_LEPTON[conjugate],
        ]
    elif card.ttbar is not None:
        process = ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_SINGLE_LEPTON[conjugate]]
    elif card.name == "wprime":
        process = [
            "NewGaugeBoson:ffbar2Wprime = on",
            "Wprime:coup2WZ = 1",  # off by default
            f"34:m0 = {options.wprime_mass:.6g}",
            "34:onMode = off",
            "34:onIfAll = 23 24",  # W' → W Z, the W as X and the Z as Y
            f"24:m0 = {options.x_mass:.6g}",
            "24:doForceWidth = on",
            f"24:mWidth = {0.01 * options.x_mass:.6g}",
            f"24:mMin = {0.5 * options.x_mass:.6g}",
            f"24:mMax = {1.5 * options.x_mass:.6g}",
            f"23:m0 = {options.y_mass:.6g}",
            "23:doForceWidth = on",
            f"23:mWidth = {0.01 * options.y_mass:.6g}",
            f"23:mMin = {0.5 * options.y_mass:.6g}",
            f"23:mMax = {1.5 * options.y_mass:.6g}",
            "24:onMode = off",
            "24:onIfAny = 1 2 3 4 5",
            "23:onMode = off",
            "23:onIfAny = 1 2 3 4 5",
        ]
    elif card.name == "dijet_qcd":
        process = ["HardQCD:all = on"]
    elif card.name == "ztautau":
        process = [
            "WeakSingleBoson:ffbar2gmZ = on",
            "WeakZ0:gmZmode = 2",
            "23:onMode = off",
            "23:onIfAny = 15",
            "15:offIfAny = 11 13",
        ]  # hadronic τ decays only
    else:
        process = [
            "WeakBosonAndParton:qqbar2gmZg = on",
            "WeakBosonAndParton:qg2gmZq = on",
            "WeakZ0:gmZmode = 2",
            "23:onMode = off",
            "23:onIfAny = 13",
        ]
    pthat = card.pthat_min if options.pthat_min is None else options.pthat_min
    return [
        *_COMMON_SETTINGS,
        f"Random:seed = {seed}",
        f"Beams:eCM = {options.sqrt_s:.6g}",
        *process,
        f"PhaseSpace:pTHatMin = {pthat:.6g}",
        f"PartonLevel:MPI = {'on' if options.mpi else 'off'}",
        *variation_settings(options.variation),
        *options.pythia,
    ]


def provenance_settings(card: EventCard, options: EventOptions) -> list[str]:
    """The Pythia settings recorded in the provenance (seed 0); the tt̄ cards' charge-conjugate
    instance follows its own marker line."""
    settings = event_settings(card, options, 0)
    if card.ttbar is not None:
        settings += ["# charge-conjugate instance (W+ <-> W-):", *event_settings(card, options, 0, conjugate=True)]
    return settings


# ----------------------------------------------------------------------------- generation
def generate_events(
    card: EventCard,
    options: EventOptions,
    n_events: int,
    seed: int,
    *,
    detector_seed: int = 0,
    report: Any = None,
    pileup_pool: str | None = None,
) -> ak.Array:
    """``n_events`` events of ``card`` passing its selection, as a NanoAOD-layout record array."""
    from heplearn.generate.chunk import PYTHIA_SEED_MAX, PileupOverlay

    generators = [PythiaGenerator(event_settings(card, options, seed))]
    if card.ttbar is not None:  # the charge-conjugate decays, from a second seed
        twin_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]) % PYTHIA_SEED_MAX
        generators.append(PythiaGenerator(event_settings(card, options, twin_seed, conjugate=True)))
    rng = np.random.default_rng(detector_seed)
    btag_rng = np.random.default_rng([detector_seed, 3])
    overlay = PileupOverlay(options.pileup, pileup_pool, detector_seed)
    pieces: list[ak.Array] = []
    n_found = n_tried = since_pass = 0
    acceptance = 0.5
    while n_found < n_events:
        batch_size = int(
            np.clip(math.ceil(1.1 * (n_events - n_found) / max(acceptance, 0.01)) + 2, MIN_BATCH, MAX_BATCH)
        )
        found = []
        n_batch_events = 0
        for generator in generators:  # the tt̄ cards' two charge-conjugate instances share each batch
            record, particles = generator.next_batch(max(batch_size // len(generators), 1))
            particles, n_vertices = overlay(particles)
            if options.detector is not None:
                particles = apply_detector(particles, options.detector, rng)
            found.append(
                events_of_batch(
                    card, options, record, particles, first_event=n_tried, n_vertices=n_vertices, rng=btag_rng
                )
            )
            n_tried += record.n_events
            n_batch_events += record.n_events
        events = _interleave(found)
        n_found += len(events)
        since_pass = 0 if len(events) else since_pass + n_batch_events
        if since_pass >= MAX_EVENTS_WITHOUT_PASS:
            raise HeplearnError(
                f"{card.name}: no event passed the selection in {since_pass} events; "
                "check the masses, the pT-hat minimum and the object thresholds"
            )
        if len(events):
            pieces.append(events)
        acceptance = n_found / max(n_tried, 1)
        if report is not None:
            report(min(n_found, n_events))
    return ak.concatenate(pieces)[:n_events]


def _interleave(pieces: list[ak.Array]) -> ak.Array:
    """The events of several generators alternately (a0, b0, a1, b1, ...), so that any first n mix them."""
    pieces = [piece for piece in pieces if len(piece)]
    if len(pieces) <= 1:
        return pieces[0] if pieces else ak.Array([])
    rank = np.concatenate([np.arange(len(piece)) for piece in pieces])
    source = np.concatenate([np.full(len(piece), k) for k, piece in enumerate(pieces)])
    return ak.concatenate(pieces)[np.lexsort((source, rank))]


def events_of_batch(
    card: EventCard,
    options: EventOptions,
    record: EventRecord,
    particles: FinalState,
    *,
    first_event: int = 0,
    n_vertices: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> ak.Array:
    """The NanoAOD-layout records of the events of one batch that pass the card's selection.

    ``event`` numbers the generated events of the chunk from 1 (``first_event`` before this batch);
    the driver sets ``run`` and ``luminosityBlock`` (the chunk).
    """
    numbers = np.arange(first_event + 1, first_event + 1 + particles.n_events, dtype=np.uint64)
    extra: dict[str, Any] = {}
    if card.ttbar is not None:
        # Classify on the generator record first: only the selected events are reconstructed.
        gen_id = ttbar.gen_ttbar_id(record)
        selected = ttbar_selection(card, gen_id)
        record, particles = select_events(record, selected), select_final_state(particles, selected)
        numbers, n_vertices = numbers[selected], None if n_vertices is None else n_vertices[selected]
        extra["genTtbarId"] = gen_id[selected].astype(np.int32)
        if not selected.any():
            return ak.Array([])  # nothing to reconstruct in this batch
    event = np.repeat(np.arange(particles.n_events), particles.counts)
    pt = kinematics.pt(particles.px, particles.py)
    eta = kinematics.pseudorapidity(particles.px, particles.py, particles.pz)
    phi = kinematics.azimuth(particles.px, particles.py)
    absolute = np.abs(particles.pid)
    candidate = ((absolute == 11) | (absolute == 13) | (particles.pid == 22)) & (pt > options.lepton_pt_min)
    isolation = relative_isolation(event, pt, eta, phi, particles.n_events, candidate)
    isolated = isolation < ISOLATION_MAX
    muon = (absolute == 13) & (pt > options.lepton_pt_min) & (np.abs(eta) < MUON_ETA_MAX) & isolated
    electron = (absolute == 11) & (pt > options.lepton_pt_min) & (np.abs(eta) < ELECTRON_ETA_MAX) & isolated
    photon = (particles.pid == 22) & (pt > max(options.lepton_pt_min, 10.0)) & (np.abs(eta) < PHOTON_ETA_MAX) & isolated

    columns: dict[str, Any] = {"event": numbers, **extra}
    columns.update(_objects("Muon", particles, event, muon, pt, eta, phi, isolation, leptons=True))
    columns.update(_objects("Electron", particles, event, electron, pt, eta, phi, isolation, leptons=True))
    columns.update(_objects("Photon", particles, event, photon, pt, eta, phi, isolation, leptons=False))
    hadronic = _subset(particles, ~(muon | electron | photon))
    ghosts = truth.find_heavy_hadrons(record)
    columns.update(_jets("Jet", hadronic, 0.4, options.jet_pt_min, JET_ETA_MAX, ghosts))
    columns["Jet_btagged"] = btag_flags(
        columns["Jet_hadronFlavour"], columns["Jet_eta"], np.random.default_rng(first_event) if rng is None else rng
    )
    columns.update(_jets("FatJet", particles, 0.8, options.fatjet_pt_min, FATJET_ETA_MAX, ghosts))
    met_x = -np.bincount(event, weights=particles.px, minlength=particles.n_events)
    met_y = -np.bincount(event, weights=particles.py, minlength=particles.n_events)
    columns["MET_pt"] = np.hypot(met_x, met_y).astype(np.float32)
    columns["MET_phi"] = np.arctan2(met_y, met_x).astype(np.float32)
    columns["genWeight"] = np.ones(particles.n_events, dtype=np.float32)
    columns["PV_npvs"] = (np.ones(particles.n_events) if n_vertices is None else n_vertices).astype(np.int32)
    columns["fixedGridRhoFastjetAll"] = fixed_grid_rho(particles).astype(np.float32)
    columns.update(_gen_particles(record))
    columns.update(gen_visible_taus(record))
    columns.update(taus.reconstruct_taus(particles, columns["GenVisTau_eta"], columns["GenVisTau_phi"]))
    events = ak.zip(columns, depth_limit=1)
    keep = np.ones(len(events), dtype=bool)
    if card.trigger_fatjet_pt is not None:
        keep &= ak.to_numpy(ak.fill_none(ak.max(events.FatJet_pt, axis=1), 0.0)) > card.trigger_fatjet_pt
    if card.min_muons:
        keep &= ak.to_numpy(events.nMuon) >= card.min_muons
    if card.min_gen_taus:
        keep &= ak.to_numpy(events.nGenVisTau) >= card.min_gen_taus
    return events[keep]


def btag_flags(flavour: ak.Array, eta: ak.Array, rng: np.random.Generator) -> ak.Array:
    """``Jet_btagged``: a b-tagging working point emulated from the hadron flavour (as Delphes does).

    A jet with |η| < ``BTAG_ETA_MAX`` is tagged with the probability of its flavour, ``BTAG_EFFICIENCY``:
    about CMS DeepJet's medium working point (ε_b ≈ 75%, c mistag ≈ 15%, light mistag ≈ 1%; CMS-DP-2018-058).
    """
    flat_flavour = ak.to_numpy(ak.flatten(flavour))
    probability = np.select(
        [flat_flavour == 5, flat_flavour == 4], [BTAG_EFFICIENCY[5], BTAG_EFFICIENCY[4]], BTAG_EFFICIENCY[0]
    )
    tagged = (rng.random(len(flat_flavour)) < probability) & (np.abs(ak.to_numpy(ak.flatten(eta))) < BTAG_ETA_MAX)
    return ak.unflatten(tagged, ak.num(flavour))


def ttbar_selection(card: EventCard, gen_id: np.ndarray) -> np.ndarray:
    """The events a tt̄ card keeps, from their ``genTtbarId``."""
    additional = gen_id % 100
    if card.ttbar == "b":
        return additional >= 51
    if card.ttbar == "lf":
        return additional == 0
    return np.ones(len(gen_id), dtype=bool)


def select_events(record: EventRecord, keep: np.ndarray) -> EventRecord:
    """The events of ``record`` where ``keep`` is true (per-event indices stay valid)."""
    counts = np.diff(record.offsets)
    flat = np.repeat(keep, counts)

    def take(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[flat]

    return EventRecord(
        pid=record.pid[flat],
        status=record.status[flat],
        mother1=record.mother1[flat],
        daughter1=record.daughter1[flat],
        daughter2=record.daughter2[flat],
        px=record.px[flat],
        py=record.py[flat],
        pz=record.pz[flat],
        energy=record.energy[flat],
        offsets=np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
        pthat=record.pthat[keep],
        vx=take(record.vx),
        vy=take(record.vy),
        vz=take(record.vz),
        mother2=take(record.mother2),
    )


def select_final_state(particles: FinalState, keep: np.ndarray) -> FinalState:
    """The events of ``particles`` where ``keep`` is true."""
    return particles.take(np.repeat(keep, particles.counts), particles.counts[keep])


def relative_isolation(
    event: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, n_events: int, candidate: np.ndarray
) -> np.ndarray:
    """Σ pT of the other particles within ΔR < 0.3, over the particle's pT (``pfRelIso03_all``).

    Computed for the ``candidate`` particles (leptons and photons above threshold, a few per
    event) and inf for the rest.
    """
    isolation = np.full(len(pt), np.inf)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=n_events))])
    for index in np.flatnonzero(candidate):
        start, stop = offsets[event[index]], offsets[event[index] + 1]
        near = kinematics.delta_r(eta[index], phi[index], eta[start:stop], phi[start:stop]) < ISOLATION_RADIUS
        isolation[index] = (pt[start:stop][near].sum() - pt[index]) / pt[index]
    return isolation


def _subset(particles: FinalState, keep: np.ndarray) -> FinalState:
    return particles.subset(keep)


def _jagged(values: np.ndarray, counts: np.ndarray, dtype: type) -> ak.Array:
    return ak.unflatten(np.asarray(values).astype(dtype), counts)


def _objects(
    name: str,
    particles: FinalState,
    event: np.ndarray,
    selected: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    isolation: np.ndarray,
    *,
    leptons: bool,
) -> dict[str, Any]:
    index = np.flatnonzero(selected)
    index = index[np.lexsort((-pt[index], event[index]))]  # by event, then decreasing pT
    counts = np.bincount(event[index], minlength=particles.n_events)
    columns: dict[str, Any] = {
        f"n{name}": counts.astype(np.int32),
        f"{name}_pt": _jagged(pt[index], counts, np.float32),
        f"{name}_eta": _jagged(eta[index], counts, np.float32),
        f"{name}_phi": _jagged(phi[index], counts, np.float32),
        f"{name}_pfRelIso03_all": _jagged(isolation[index], counts, np.float32),
    }
    if leptons:  # NanoAOD photons have no mass branch
        absolute = np.abs(particles.pid[index])
        columns[f"{name}_mass"] = _jagged(np.where(absolute == 13, _MASSES[13], _MASSES[11]), counts, np.float32)
        columns[f"{name}_charge"] = _jagged(particles.charge[index], counts, np.int32)
        columns[f"{name}_pdgId"] = _jagged(particles.pid[index], counts, np.int32)
    return columns


def _jets(
    name: str, particles: FinalState, radius: float, pt_min: float, eta_max: float, ghosts: truth.HeavyHadrons
) -> dict[str, Any]:
    jets = clustering.cluster(particles, radius, "antikt", pt_min, ghosts=ghosts)
    jets = jets.select(np.abs(jets.eta) < eta_max)
    counts = np.bincount(jets.event, minlength=particles.n_events)
    # cluster() returns jets in FastJet's order; NanoAOD orders each event's jets by pT.
    order = np.lexsort((-jets.pt, jets.event))
    jets = _reorder(jets, order)
    columns: dict[str, Any] = {
        f"n{name}": counts.astype(np.int32),
        f"{name}_pt": _jagged(jets.pt, counts, np.float32),
        f"{name}_eta": _jagged(jets.eta, counts, np.float32),
        f"{name}_phi": _jagged(jets.phi, counts, np.float32),
        f"{name}_mass": _jagged(jets.mass, counts, np.float32),
    }
    if name == "Jet":
        columns["Jet_hadronFlavour"] = _jagged(jets.hadron_flavour, counts, np.int32)
        columns["Jet_nConstituents"] = _jagged(jets.n_constituents, counts, np.int32)
    else:
        shapes = substructure.substructure_fields(clustering.constituents_awkward(particles, jets), radius)
        columns[f"{name}_msoftdrop"] = _jagged(shapes["jet_sdmass"], counts, np.float32)
        for order_n in substructure.TAU_ORDERS:
            columns[f"{name}_tau{order_n}"] = _jagged(shapes[f"jet_tau{order_n}"], counts, np.float32)
    return columns


def _reorder(jets: clustering.Jets, order: np.ndarray) -> clustering.Jets:
    """The jets in ``order``, constituents moved along."""
    counts = jets.n_constituents[order]
    starts = jets.constituent_offsets[:-1][order]
    gather = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    return clustering.Jets(
        event=jets.event[order],
        px=jets.px[order],
        py=jets.py[order],
        pz=jets.pz[order],
        energy=jets.energy[order],
        constituents=jets.constituents[gather],
        constituent_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        hadron_flavour=jets.hadron_flavour[order],
    )


TAU = 15
PI0 = 111
_DECAY_DEPTH = 8


def gen_visible_taus(record: EventRecord) -> dict[str, Any]:
    """``GenVisTau_*``: the visible part of each hadronically decaying τ, with its decay mode.

    ``GenVisTau_status`` is NanoAOD's decay mode 5 (n_charged − 1) + n_π⁰: 0 one prong, 1 one
    prong + π⁰, 2 one prong + 2 π⁰, 10 three prongs, 11 three prongs + π⁰ (Pythia's τ decays,
    with π⁰ counted before they decay to photons). Leptonic τ decays are left out.
    """
    event = np.repeat(np.arange(record.n_events), np.diff(record.offsets))
    mother = record.offsets[event] + record.mother1
    tau = np.abs(record.pid) == TAU
    has_tau_child = np.zeros(len(tau), dtype=bool)
    children = np.flatnonzero(tau & (record.mother1 > 0))
    has_tau_child[mother[children]] = True
    last_tau = np.flatnonzero(tau & ~has_tau_child)
    # Label every decay product with the τ it comes from, following mothers a few generations.
    origin = np.full(len(tau), -1, dtype=np.int64)
    origin[last_tau] = last_tau
    decay_product = (np.abs(record.status) >= 91) & (record.mother1 > 0)
    for _ in range(_DECAY_DEPTH):
        inherit = decay_product & (origin < 0) & (origin[np.where(decay_product, mother, 0)] >= 0)
        if not inherit.any():
            break
        origin[inherit] = origin[mother[inherit]]
    product = (origin >= 0) & (origin != np.arange(len(origin)))
    final = product & (record.status > 0) & ~np.isin(np.abs(record.pid), (12, 14, 16))
    absolute = np.abs(record.pid)
    leptonic = np.zeros(len(tau), dtype=bool)
    direct = product & (mother == origin)  # τ → ℓ ν ν̄, not a π⁰ Dalitz decay further down
    leptonic[origin[direct & ((absolute == 11) | (absolute == 13))]] = True
    charged = final & ~np.isin(absolute, (22, 130, 310, 2112, 3122))  # stable neutral hadrons and photons
    n_charged = np.bincount(origin[charged], minlength=len(tau))
    n_pi0 = np.bincount(origin[product & (absolute == PI0)], minlength=len(tau))
    hadronic = last_tau[~leptonic[last_tau]]
    hadronic = hadronic[np.argsort(event[hadronic], kind="stable")]
    sums = [
        np.bincount(origin[final], weights=values[final], minlength=len(tau))[hadronic]
        for values in (record.px, record.py, record.pz, record.energy)
    ]
    counts = np.bincount(event[hadronic], minlength=record.n_events)
    mode = 5 * (n_charged[hadronic] - 1) + np.minimum(n_pi0[hadronic], 4)
    charge = -np.sign(record.pid[hadronic])  # τ⁻ has pdg id +15
    return {
        "nGenVisTau": counts.astype(np.int32),
        "GenVisTau_pt": _jagged(kinematics.pt(sums[0], sums[1]), counts, np.float32),
        "GenVisTau_eta": _jagged(kinematics.pseudorapidity(*sums[:3]), counts, np.float32),
        "GenVisTau_phi": _jagged(kinematics.azimuth(sums[0], sums[1]), counts, np.float32),
        "GenVisTau_mass": _jagged(kinematics.mass(*sums), counts, np.float32),
        "GenVisTau_charge": _jagged(charge, counts, np.int32),
        "GenVisTau_status": _jagged(mode, counts, np.int32),
    }


def _gen_particles(record: EventRecord) -> dict[str, Any]:
    """``GenPart_*``: the hard process (|status| 21-23), mothers re-indexed within the list."""
    event = np.repeat(np.arange(record.n_events), np.diff(record.offsets))
    status = np.abs(record.status)
    keep = (status >= 21) & (status <= 23)
    index = np.flatnonzero(keep)
    counts = np.bincount(event[index], minlength=record.n_events)
    # position of each kept particle inside its event's GenPart list; -1 for the others
    position = np.full(len(record.pid), -1, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position[index] = np.arange(len(index)) - np.repeat(first, counts)
    mother = record.offsets[event[index]] + record.mother1[index]
    mother_position = np.where(record.mother1[index] > 0, position[mother], -1)
    px, py, pz, energy = record.px[index], record.py[index], record.pz[index], record.energy[index]
    return {
        "nGenPart": counts.astype(np.int32),
        "GenPart_pdgId": _jagged(record.pid[index], counts, np.int32),
        "GenPart_status": _jagged(status[index], counts, np.int32),
        "GenPart_genPartIdxMother": _jagged(mother_position, counts, np.int32),
        "GenPart_pt": _jagged(kinematics.pt(px, py), counts, np.float32),
        "GenPart_eta": _jagged(kinematics.pseudorapidity(px, py, pz), counts, np.float32),
        "GenPart_phi": _jagged(kinematics.azimuth(px, py), counts, np.float32),
        "GenPart_mass": _jagged(kinematics.mass(px, py, pz, energy), counts, np.float32),
    }
