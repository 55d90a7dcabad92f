"""Process cards: which Pythia 8 hard process makes each jet class, and the generator options.

A card holds the Pythia settings of one hard process (with its forced decays) and the truth
requirement a jet must meet to carry the card's label. The options (`GeneratorOptions`) hold
everything the user may change: beam energy, the jet pT window, |η|, jet radius and algorithm,
MPI, the number of stored constituents, the pT-hat range and the optional detector.

Cards (√s = 14 TeV, jets with 550 ≤ pT < 650 GeV and |η| < 2 by default):

``top``
    Hadronic tt̄ (``Top:gg2ttbar``, ``Top:qqbar2ttbar``; both W forced to quarks). A jet is a top
    jet when the top (last copy before its decay) and its three decay quarks (b, q, q̄') are all
    within ΔR < R of the jet axis, as in the top-tagging reference dataset (arXiv:1902.09914).
``w``, ``z``
    Boosted hadronic di-boson production, ``WeakDoubleBoson:ffbar2WW`` and ``ffbar2gmZgmZ``
    (pure Z, ``WeakZ0:gmZmode = 2``), both bosons forced to quarks. In the pT-hat window the two
    bosons recoil against each other, so an event can give two labelled jets. A jet is a W (Z)
    jet when the boson and both decay quarks are within ΔR < R.
``hbb``
    Boosted Higgs-strahlung ``HiggsSM:ffbar2HZ`` with H → bb̄ and Z → νν̄ (the VH(bb̄) topology
    of the boosted searches); the Higgs and both b quarks within ΔR < R.
``qcd``
    ``HardQCD:all``: every jet in the window is kept; the nearest outgoing parton of the hard
    scattering (within R) is stored as truth.
``hcc``
    As ``hbb`` with H → cc̄ (``25:onIfMatch = 4 -4``).
``bjets``
    The b-tagging sample: tt̄ in all decay modes (two b jets per event, c and light jets from the
    W decays), R = 0.4. Every jet in the window is kept and labelled ``label_b``, ``label_c`` or
    ``label_light`` by its ghost-associated B or C hadron (``aux_hadron_flavour`` 5, 4, 0), not by
    the process; choose the pT range with the jet window (``--pt-min 30 --pt-max 250``).
``bjets_qcd``
    The same labelling on inclusive QCD (``HardQCD:all``, R = 0.4): mostly light and gluon jets,
    with b and c jets from gluon splitting and flavour excitation. Mixes with ``bjets`` (both are
    labelled by flavour), not with the process-labelled cards.
``quark``, ``gluon``
    Z(→νν̄) + jet, the quark–gluon benchmark of Komiske, Metodiev and Thaler (arXiv:1810.05165):
    ``WeakBosonAndParton:qg2gmZq`` for light-quark (u, d, s) jets and ``qqbar2gmZg`` for gluon
    jets. The jet must be within ΔR < R of the outgoing parton of the stated flavour. R = 0.4.

Every card uses the standard LHC definition of a stable particle: hadrons with cτ > 10 mm are not
decayed (``ParticleDecays:limitTau0``), so K⁰_S and Λ reach the final state as in the experiments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from heplearn.errors import ConfigError
from heplearn.generate.variations import parse_settings, variation_settings

if TYPE_CHECKING:
    from heplearn.generate.detector import DetectorConfig

TruthKind = Literal["resonance", "parton", "flavour"]
ALGORITHMS = ("antikt", "kt", "cambridge")
DEFAULT_CHUNK_SIZE = 1000  # jets per chunk: the unit of parallel work and of restart

# Force W and Z to quarks (d, u, s, c, b; no top).
_HADRONIC_W = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_HADRONIC_Z = ("23:onMode = off", "23:onIfAny = 1 2 3 4 5")
_INVISIBLE_Z = ("WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 12 14 16")


@dataclass(frozen=True)
class ProcessCard:
    """One jet class: its Pythia settings and the truth a jet must match to be labelled."""

    name: str
    description: str
    settings: tuple[str, ...]
    truth: TruthKind
    # truth == "resonance": the |pdg id| of the decaying particle that must sit inside the jet.
    resonance_id: int = 0
    # truth == "parton": the |pdg id|s of hard outgoing partons the jet may match (None: any,
    # and a jet without a match is kept, as for inclusive QCD).
    # truth == "flavour": every jet is kept and labelled b, c or light by its hadron flavour.
    parton_ids: frozenset[int] | None = None
    default_radius: float = 0.8
    # A first guess of accepted jets per event, to size the first Pythia batch.
    jets_per_event_guess: float = 0.5


def _higgs_card(quark: str, pdgid: int) -> ProcessCard:
    """Boosted ff̄ → HZ with H → qq̄ (q = b or c) and Z → νν̄: H and both quarks inside the jet."""
    return ProcessCard(
        f"h{quark}{quark}",
        f"ff̄ → HZ with H → {quark}{quark}̄ and Z → νν̄; H and both {quark} inside the jet",
        ("HiggsSM:ffbar2HZ = on", "25:onMode = off", f"25:onIfMatch = {pdgid} -{pdgid}", *_INVISIBLE_Z),
        truth="resonance",
        resonance_id=25,
        jets_per_event_guess=0.4,
    )


PROCESSES: dict[str, ProcessCard] = {
    card.name: card
    for card in (
        ProcessCard(
            "top",
            "hadronic tt̄; top and its three decay quarks inside the jet",
            ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W),
            truth="resonance",
            resonance_id=6,
            jets_per_event_guess=0.6,
        ),
        ProcessCard(
            "w",
            "ff̄ → W⁺W⁻, both W → qq̄'; W and both quarks inside the jet",
            ("WeakDoubleBoson:ffbar2WW = on", *_HADRONIC_W),
            truth="resonance",
            resonance_id=24,
            jets_per_event_guess=0.8,
        ),
        ProcessCard(
            "z",
            "ff̄ → ZZ, both Z → qq̄; Z and both quarks inside the jet",
            ("WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2", *_HADRONIC_Z),
            truth="resonance",
            resonance_id=23,
            jets_per_event_guess=0.8,
        ),
        _higgs_card("b", 5),
        _higgs_card("c", 4),
        ProcessCard(
            "bjets",
            "tt̄ in all decay modes; every jet, labelled b, c or light by its hadron flavour",
            ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
            truth="flavour",
            default_radius=0.4,
            jets_per_event_guess=1.0,
        ),
        ProcessCard(
            "bjets_qcd",
            "inclusive QCD 2 → 2; every jet, labelled b, c or light by its hadron flavour",
            ("HardQCD:all = on",),
            truth="flavour",
            default_radius=0.4,
            jets_per_event_guess=1.0,
        ),
        ProcessCard(
            "qcd",
            "inclusive QCD 2 → 2 (HardQCD:all)",
            ("HardQCD:all = on",),
            truth="parton",
            parton_ids=None,
            jets_per_event_guess=0.8,
        ),
        ProcessCard(
            "quark",
            "Z(→νν̄) + light-quark jet (qg → Zq, q = u, d, s)",
            ("WeakBosonAndParton:qg2gmZq = on", *_INVISIBLE_Z),
            truth="parton",
            parton_ids=frozenset({1, 2, 3}),
            default_radius=0.4,
            jets_per_event_guess=0.4,
        ),
        ProcessCard(
            "gluon",
            "Z(→νν̄) + gluon jet (qq̄ → Zg)",
            ("WeakBosonAndParton:qqbar2gmZg = on", *_INVISIBLE_Z),
            truth="parton",
            parton_ids=frozenset({21}),
            default_radius=0.4,
            jets_per_event_guess=0.4,
        ),
    )
}


def get_card(name: str) -> ProcessCard:
    """The card called ``name``; a ConfigError lists the known processes otherwise."""
    card = PROCESSES.get(name.strip().lower())
    if card is None:
        raise ConfigError(
            f"unknown process {name!r}: choose from {', '.join(PROCESSES)} (or 'toy' on the command line)"
        )
    return card


# The default pT-hat window around the jet pT window: [0.85 pT_min, 1.2 pT_max]. A jet carries
# less pT than its parton (out-of-cone radiation) or more (ISR recoil, a second hard parton
# inside the jet), so jets in the pT window come from a wide pT-hat range. Measured in pT-hat
# slices at 14 TeV (R = 0.8, 550-650 GeV, MPI on), the default window keeps about 78% of the
# in-window QCD jets from pT-hat > 275 GeV and 84% of the top jets; above 1.2 pT_max less than
# 1% is lost. The QCD jets from lower pT-hat are more often two hard partons in one jet (22% vs
# 13% with soft-drop mass above 140 GeV), so the default QCD sample is slightly easier to tell
# from tops than an unbiased one. Lowering ``pthat_min`` removes this bias at a steep cost: the
# in-window yield per event falls from about 0.5 to 0.02 jets below 0.85 pT_min (about 6 times
# more CPU for an unbiased sample).
PTHAT_LOWER_FRACTION = 0.85
PTHAT_UPPER_FRACTION = 1.2


@dataclass(frozen=True)
class GeneratorOptions:
    """What the user may change. Energies and momenta in GeV; angles in radians.

    ``radius=None`` takes the process card's default (0.8; 0.4 for quark and gluon jets).
    ``pthat_min``/``pthat_max`` = None derive the hard-process window from the jet window.
    ``detector=None`` keeps particle-level (truth) jets; pass a ``DetectorConfig`` to smear.
    ``pileup`` (μ > 0) overlays Poisson(μ) minimum-bias interactions from a pool of ``pileup_pool``
    events (``heplearn.generate.pileup``).
    ``variation`` names a set of Pythia changes (``fsr-up``, ... see ``heplearn.generate.variations``)
    and ``pythia`` holds any further ``"KEY = VALUE"`` Pythia settings, read last (they win).
    """

    sqrt_s: float = 14_000.0
    pt_min: float = 550.0
    pt_max: float = 650.0
    eta_max: float = 2.0
    radius: float | None = None
    algorithm: str = "antikt"
    mpi: bool = True
    max_particles: int = 128
    pthat_min: float | None = None
    pthat_max: float | None = None
    detector: DetectorConfig | None = field(default=None)
    variation: str | None = None
    pythia: tuple[str, ...] = ()
    pileup: float = 0.0  # μ, mean number of minimum-bias interactions overlaid per event
    pileup_pool: int = 1000  # minimum-bias events generated once and drawn from

    def __post_init__(self) -> None:
        check_pileup(self.pileup, self.pileup_pool)
        variation_settings(self.variation)  # an unknown name is a ConfigError
        if self.variation is not None:
            name = self.variation.strip().lower()
            object.__setattr__(self, "variation", None if name == "nominal" else name)
        if isinstance(self.pythia, str):
            raise ConfigError(f"pythia must be a list of KEY=VALUE settings, got the string {self.pythia!r}")
        object.__setattr__(self, "pythia", parse_settings(self.pythia))
        _check_positive("sqrt_s", self.sqrt_s)
        _check_positive("pt_min", self.pt_min, allow_zero=True)
        _check_positive("pt_max", self.pt_max)
        if not self.pt_max > self.pt_min:
            raise ConfigError(
                f"bad jet pT window: pt_max ({self.pt_max:g}) must be larger than pt_min ({self.pt_min:g})"
            )
        if 2 * self.pt_min >= self.sqrt_s:
            raise ConfigError(f"pt_min {self.pt_min:g} GeV is out of reach at √s = {self.sqrt_s:g} GeV")
        _check_positive("eta_max", self.eta_max)
        if self.eta_max > 5:
            raise ConfigError(f"eta_max {self.eta_max:g} is beyond the detector (|η| ≤ 5)")
        if self.radius is not None and not 0.05 <= self.radius <= 2.0:
            raise ConfigError(f"radius {self.radius:g} is outside 0.05-2.0")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown jet algorithm {self.algorithm!r}: choose from {', '.join(ALGORITHMS)}")
        if isinstance(self.max_particles, bool) or not isinstance(self.max_particles, int) or self.max_particles < 1:
            raise ConfigError(f"max_particles must be a positive integer, got {self.max_particles!r}")
        for name in ("pthat_min", "pthat_max"):
            value = getattr(self, name)
            if value is not None:
                _check_positive(name, value)
        low, high = self.pthat_range()
        if not high > low:
            raise ConfigError(f"bad pT-hat range: pthat_max ({high:g}) must be larger than pthat_min ({low:g})")

    def radius_for(self, card: ProcessCard) -> float:
        """The jet radius for ``card``: the option's, or the process's default."""
        return card.default_radius if self.radius is None else self.radius

    def pthat_range(self) -> tuple[float, float]:
        """The hard-process pT window: the user's, or derived from the jet pT window."""
        low = PTHAT_LOWER_FRACTION * self.pt_min if self.pthat_min is None else self.pthat_min
        high = PTHAT_UPPER_FRACTION * self.pt_max if self.pthat_max is None else self.pthat_max
        return low, high

    def with_changes(self, **changes: object) -> GeneratorOptions:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> dict[str, object]:
        """A JSON-ready view for provenance."""
        low, high = self.pthat_range()
        return {
            "sqrt_s": self.sqrt_s,
            "pt_min": self.pt_min,
            "pt_max": self.pt_max,
            "eta_max": self.eta_max,
            "radius": self.radius,
            "algorithm": self.algorithm,
            "mpi": self.mpi,
            "max_particles": self.max_particles,
            "pthat_min": low,
            "pthat_max": high,
            "detector": None if self.detector is None else self.detector.describe(),
            "variation": self.variation or "nominal",
            "pythia": list(self.pythia),
            "pileup": self.pileup,
            "pileup_pool": self.pileup_pool if self.pileup > 0 else None,
        }


def check_pileup(mu: object, pool_size: object) -> None:
    """Pileup μ a finite non-negative number, the pool size a positive integer."""
    if isinstance(mu, bool) or not isinstance(mu, int | float) or not math.isfinite(mu) or mu < 0:
        raise ConfigError(f"pileup μ must be a non-negative number, got {mu!r}")
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigError(f"pileup_pool must be a positive integer, got {pool_size!r}")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value:g}")


# Hadrons with cτ above 10 mm are "stable" at the LHC (ATLAS/CMS particle-level definition).
_COMMON_SETTINGS = (
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
)


def pythia_settings(card: ProcessCard, options: GeneratorOptions, seed: int) -> list[str]:
    """The full list of Pythia ``readString`` settings for one chunk.

    The variation's settings and then the user's ``pythia`` settings come last, so they win.
    """
    low, high = options.pthat_range()
    return [
        *_COMMON_SETTINGS,
        f"Random:seed = {seed}",
        f"Beams:eCM = {options.sqrt_s:.6g}",
        *card.settings,
        f"PhaseSpace:pTHatMin = {low:.6g}",
        f"PhaseSpace:pTHatMax = {high:.6g}",
        f"PartonLevel:MPI = {'on' if options.mpi else 'off'}",
        *variation_settings(options.variation),
        *options.pythia,
    ]
