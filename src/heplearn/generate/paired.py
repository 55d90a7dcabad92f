"""Paired generator- and detector-level jet observables of the same events, for unfolding.

OmniFold (Andreassen, Komiske, Metodiev, Nachman, Thaler, PRL 124 (2020) 182001,
arXiv:1911.09107) needs simulated events with both levels, row by row. Each generated event here
is clustered twice: its stable visible particles (generator level, ``gen_*``) and the same
particles after the parametric detector (``heplearn.generate.detector``: tracks and calorimeter
cells; detector level, ``reco_*``). Muons are left out at both levels (in the Z → μμ + jet events
they are the Z's decay products).

At each level the leading anti-kT R = 0.4 jet with |η| < ``ETA_MAX`` and pT > ``pt_min`` gives the
six substructure observables of the PRL's Z+jets demonstration:

``mass``
    the jet's invariant mass m (GeV);
``mult``
    the number of its constituents M;
``width``
    w = Σᵢ pT,ᵢ ΔRᵢ / Σᵢ pT,ᵢ, ΔRᵢ from the jet axis (τ₁ with β = 1 about the jet axis, not
    normalised by R);
``tau21``
    τ₂/τ₁ with β = 1 (fastjet-contrib's normalised N-subjettiness, kT axes; 0 when τ₁ = 0);
``zg``
    soft drop's groomed momentum fraction, z_cut = 0.1, β = 0 (0 when nothing passes);
``lnrho``
    ln ρ = ln(m_SD² / pT²) with the soft-drop mass of the same grooming, floored at ``LN_RHO_MIN``
    (a groomed jet of one massless constituent has m_SD = 0).

``pt`` is written too. An event without such a jet at a level has ``<level>_pass = 0`` and the
dummy value ``DUMMY`` in every observable of that level (the convention of the OmniFold examples):
a detector-level failure is an inefficiency, a generator-level one a fake.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from heplearn.errors import ConfigError
from heplearn.generate import clustering, kinematics, substructure
from heplearn.generate.detector import DetectorConfig, apply_detector
from heplearn.generate.events import FinalState, PythiaGenerator
from heplearn.generate.nanoaod import EVENT_PROCESSES, EventOptions, event_settings

__all__ = [
    "DUMMY",
    "ETA_MAX",
    "JET_RADIUS",
    "LN_RHO_MIN",
    "OBSERVABLES",
    "generate_paired",
    "leading_jet_observables",
    "paired_observables",
    "write_paired",
]

OBSERVABLES = ("pt", "mass", "mult", "width", "tau21", "zg", "lnrho")
JET_RADIUS = 0.4
ETA_MAX = 2.5
LN_RHO_MIN = -14.0
DUMMY = -10.0
MUON = 13
_BATCH = 100


def leading_jet_observables(particles: FinalState, pt_min: float = 150.0) -> dict[str, np.ndarray]:
    """The observables of each event's leading jet (see the module docstring) and ``pass`` (0/1).

    Parameters
    ----------
    particles
        The visible particles (or reconstructed objects) of a batch of events; muons are dropped here.
    pt_min
        The leading jet's minimum pT (GeV).
    """
    particles = particles.subset(np.abs(particles.pid) != MUON)
    n_events = particles.n_events
    columns = {name: np.full(n_events, DUMMY) for name in OBSERVABLES}
    columns["pass"] = np.zeros(n_events)
    jets = clustering.cluster(particles, JET_RADIUS, "antikt", pt_min)
    jets = jets.select(np.abs(jets.eta) < ETA_MAX)
    if len(jets) == 0:
        return columns
    # the hardest jet of each event: sort by (event, -pT) and keep each event's first
    order = np.lexsort((-jets.pt, jets.event))
    first = order[np.r_[True, jets.event[order][1:] != jets.event[order][:-1]]]
    leading = jets.select(np.isin(np.arange(len(jets)), first))
    events = leading.event
    constituents = clustering.constituents_awkward(particles, leading)
    index = leading.constituents
    jet_of = np.repeat(np.arange(len(leading)), leading.n_constituents)
    pt_i = kinematics.pt(particles.px[index], particles.py[index])
    eta_i = kinematics.pseudorapidity(particles.px[index], particles.py[index], particles.pz[index])
    phi_i = kinematics.azimuth(particles.px[index], particles.py[index])
    distance = kinematics.delta_r(eta_i, phi_i, leading.eta[jet_of], leading.phi[jet_of])
    width = np.bincount(jet_of, pt_i * distance, len(leading)) / np.bincount(jet_of, pt_i, len(leading))
    taus = substructure.jet_nsubjettiness(constituents, JET_RADIUS, orders=(1, 2))
    groomed = substructure.jet_soft_drop(constituents, JET_RADIUS, beta=0.0, z_cut=0.1)
    pt = leading.pt
    rho = np.maximum(groomed["msoftdrop"] ** 2 / pt**2, np.exp(LN_RHO_MIN))
    values = {
        "pt": pt,
        "mass": np.maximum(leading.mass, 0.0),
        "mult": leading.n_constituents.astype(np.float64),
        "width": width,
        "tau21": np.divide(taus[:, 1], taus[:, 0], out=np.zeros(len(leading)), where=taus[:, 0] > 0),
        "zg": groomed["zg"],
        "lnrho": np.log(rho),
    }
    for name, value in values.items():
        columns[name][events] = value
    columns["pass"][events] = 1.0
    return columns


def paired_observables(
    particles: FinalState, detector: DetectorConfig, rng: np.random.Generator, pt_min: float = 150.0
) -> dict[str, np.ndarray]:
    """``gen_*`` from ``particles`` and ``reco_*`` from the same events through ``detector``."""
    gen = leading_jet_observables(particles, pt_min)
    reco = leading_jet_observables(apply_detector(particles, detector, rng), pt_min)
    return {**{f"gen_{k}": v for k, v in gen.items()}, **{f"reco_{k}": v for k, v in reco.items()}}


def generate_paired(
    n_events: int,
    *,
    seed: int,
    detector: DetectorConfig,
    process: str = "zmumu_jets",
    pythia: Sequence[str] = (),
    variation: str | None = None,
    pt_min: float = 150.0,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """``n_events`` events of an event card with paired generator/detector observables.

    Parameters
    ----------
    n_events
        Generated events (every one is kept: the pass flags say which levels have a jet).
    seed
        Pythia's seed; the detector's randomness is seeded from it too.
    detector
        The detector profile (``load_detector("nominal" | "alt" | file)``).
    process
        An event card of ``heplearn.generate.nanoaod.EVENT_PROCESSES`` (its Pythia settings only:
        the card's object selection is not applied).
    pythia, variation
        Extra Pythia settings (a tune: ``Tune:pp = 21``) and a named variation, read after the card.
    pt_min
        The leading jet's minimum pT at both levels (GeV).
    progress
        A progress bar over the events.
    """
    from heplearn.generate.variations import parse_settings
    from heplearn.progress import progress_bar

    if n_events < 1:
        raise ConfigError(f"paired generation: n_events must be at least 1, got {n_events}")
    card = EVENT_PROCESSES.get(process)
    if card is None:
        raise ConfigError(f"paired generation: unknown process {process!r}: choose from {', '.join(EVENT_PROCESSES)}")
    options = EventOptions(variation=variation, pythia=parse_settings(pythia))
    generator = PythiaGenerator(event_settings(card, options, seed))
    rng = np.random.default_rng([seed, 1])
    pieces: list[dict[str, np.ndarray]] = []
    done = 0
    with progress_bar(total=n_events, desc=f"{process} (paired)", unit="events", disable=not progress) as bar:
        while done < n_events:
            _, particles = generator.next_batch(min(_BATCH, n_events - done))
            if particles.n_events == 0:
                continue
            pieces.append(paired_observables(particles, detector, rng, pt_min))
            done += particles.n_events
            bar.update(particles.n_events)
    columns = {name: np.concatenate([piece[name] for piece in pieces])[:n_events] for name in pieces[0]}
    return {name: values.astype(np.float32) for name, values in columns.items()}


def write_paired(path: str | os.PathLike[str], columns: dict[str, np.ndarray], metadata: dict[str, str]) -> Path:
    """Write the columns to a Parquet file atomically (a temporary name, then renamed), with metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from heplearn.data.files import atomic_path

    table = pa.table(columns).replace_schema_metadata({f"heplearn.{k}": v for k, v in metadata.items()})
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)
    return Path(path)
