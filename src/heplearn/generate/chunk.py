"""One chunk of work: Pythia events → (detector) → jets → labelled JetClass records.

``generate_jets`` is deterministic given its seed: it asks Pythia for batches until it holds the
requested number of jets and keeps the first ones in event order; the batch sizes depend only on
the events so far. ``run_chunk`` wraps it for the driver and writes the chunk file atomically.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from heplearn.data import io
from heplearn.errors import HeplearnError
from heplearn.generate import clustering, pileup, substructure, tracks, truth
from heplearn.generate.detector import DETECTOR_PROFILES, apply_detector
from heplearn.generate.events import EventRecord, FinalState, PythiaGenerator
from heplearn.generate.processes import GeneratorOptions, ProcessCard, get_card, pythia_settings

logger = logging.getLogger(__name__)

# Pythia batches: big enough that the per-call cost vanishes, small enough to bound memory
# (a 14 TeV event with MPI holds a few thousand particles in the event record).
MIN_BATCH = 8
MAX_BATCH = 250
# Give up when this many events in a row give no jet (an unreachable window or |η| cut); the
# default settings give about one jet every two events.
MAX_EVENTS_WITHOUT_JET = 20_000
PYTHIA_SEED_MAX = 900_000_000  # Pythia's Random:seed range


def chunk_seeds(global_seed: int, process: str, chunk_index: int) -> tuple[int, int]:
    """(Pythia seed, detector seed) of one chunk, derived from (seed, process, chunk index).

    A NumPy ``SeedSequence`` mixes the three numbers, so neighbouring chunks get unrelated
    streams and the seeds do not depend on how the chunks are spread over workers.
    """
    sequence = np.random.SeedSequence([int(global_seed), zlib.crc32(process.encode()), int(chunk_index)])
    pythia_word, detector_word = sequence.generate_state(2, dtype=np.uint64)
    return int(pythia_word % PYTHIA_SEED_MAX) + 1, int(detector_word)


def generate_jets(
    card: ProcessCard,
    options: GeneratorOptions,
    n_jets: int,
    seed: int,
    *,
    detector_seed: int = 0,
    report: Callable[[int], None] | None = None,
    pileup_pool: str | None = None,
) -> ak.Array:
    """``n_jets`` labelled-by-truth jets of ``card`` as a JetClass record array (no labels yet).

    With ``options.pileup`` > 0, ``pileup_pool`` is the pool file (``pileup.make_pool``).

    ``report``, if given, is called after every Pythia batch with the number of jets found so far.
    The detector and the impact-parameter smearing draw from two streams of ``detector_seed``.
    """
    generator = PythiaGenerator(pythia_settings(card, options, seed))
    rng = np.random.default_rng(detector_seed)
    track_rng = np.random.default_rng([detector_seed, 1])
    overlay = PileupOverlay(options.pileup, pileup_pool, detector_seed)
    pieces: list[ak.Array] = []
    n_found = 0
    n_events = 0
    events_since_jet = 0
    jets_per_event = card.jets_per_event_guess
    while n_found < n_jets:
        wanted = (n_jets - n_found) / max(jets_per_event, 0.01)
        batch_size = int(np.clip(math.ceil(1.05 * wanted) + 2, MIN_BATCH, MAX_BATCH))
        record, particles = generator.next_batch(batch_size)
        particles, n_vertices = overlay(particles)
        if options.detector is not None:
            particles = apply_detector(particles, options.detector, rng)
        jets = jets_of_batch(card, options, record, particles, first_event=n_events, track_rng=track_rng)
        jets = with_pileup_fields(jets, n_vertices, pileup.fixed_grid_rho(particles))
        n_events += record.n_events
        n_found += len(jets)
        events_since_jet = 0 if len(jets) else events_since_jet + record.n_events
        if events_since_jet >= MAX_EVENTS_WITHOUT_JET:
            raise HeplearnError(
                f"{card.name}: no jet passed the selection in {events_since_jet} events "
                f"(pT {options.pt_min:g}-{options.pt_max:g} GeV, |η| < {options.eta_max:g}); "
                "widen the window or check the pT-hat range"
            )
        if len(jets):
            pieces.append(jets)
        jets_per_event = n_found / max(n_events, 1)
        if report is not None:
            report(min(n_found, n_jets))
    logger.debug("%s: %d jets from %d events", card.name, n_found, n_events)
    return ak.concatenate(pieces)[:n_jets] if pieces else ak.Array([])


def jets_of_batch(
    card: ProcessCard,
    options: GeneratorOptions,
    record: EventRecord,
    particles: FinalState,
    *,
    first_event: int = 0,
    track_rng: np.random.Generator | None = None,
) -> ak.Array:
    """Cluster one batch, select jets in the window that match the card's truth, fill fields.

    Heavy hadrons are clustered as ghosts for the hadron flavour (``aux_hadron_flavour``: 5, 4, 0;
    one-hot ``label_b``, ``label_c``, ``label_light`` for the flavour cards); charged constituents
    get impact parameters smeared with the detector's resolution (the nominal one at particle level).
    """
    radius = options.radius_for(card)
    jets = clustering.cluster(
        particles, radius, options.algorithm, options.pt_min, ghosts=truth.find_heavy_hadrons(record)
    )
    jets = jets.select(clustering.in_window(jets, options.pt_min, options.pt_max, options.eta_max))
    if card.truth == "resonance":
        objects = truth.find_resonances(record, card.resonance_id)
    else:
        objects = truth.find_hard_partons(record)
    matched = truth.match_jets(
        jets.event,
        jets.eta,
        jets.phi,
        objects,
        radius,
        contained=card.truth == "resonance",
        allowed_ids=card.parton_ids,
    )
    jets = jets.select(matched.keep)

    columns: dict[str, object] = dict(clustering.particle_fields(particles, jets, options.max_particles))
    columns.update(
        tracks.track_fields(
            particles,
            jets,
            options.max_particles,
            options.detector or DETECTOR_PROFILES["nominal"],
            track_rng if track_rng is not None else np.random.default_rng(0),
        )
    )
    columns.update(clustering.jet_fields(jets))
    columns["jet_nparticles"] = np.minimum(jets.n_constituents, options.max_particles).astype(np.int32)
    columns.update(substructure.substructure_fields(clustering.constituents_awkward(particles, jets), radius))
    keep = matched.keep
    columns.update(
        {
            "aux_parton_pt": matched.pt[keep].astype(np.float32),
            "aux_parton_eta": matched.eta[keep].astype(np.float32),
            "aux_parton_phi": matched.phi[keep].astype(np.float32),
            "aux_parton_mass": matched.mass[keep].astype(np.float32),
            "aux_parton_pdgid": matched.pdgid[keep].astype(np.int32),
            "aux_parton_dr": matched.dr[keep].astype(np.float32),
            "aux_daughters_max_dr": matched.max_daughter_dr[keep].astype(np.float32),
            "aux_pthat": record.pthat[jets.event].astype(np.float32),
            "aux_jet_nconstituents": jets.n_constituents.astype(np.int32),
            "aux_event": (first_event + jets.event).astype(np.int64),
            "aux_event_in_batch": jets.event.astype(np.int64),
            "aux_hadron_flavour": jets.hadron_flavour.astype(np.int32),
        }
    )
    if card.truth == "flavour":
        columns.update(truth.flavour_labels(jets.hadron_flavour))
    return ak.zip(columns, depth_limit=1)


class PileupOverlay:
    """Adds Poisson(μ) pool interactions to a batch (nothing for μ = 0); returns (particles, PV_npvs)."""

    def __init__(self, mu: float, pool_file: str | None, detector_seed: int) -> None:
        self.mu = mu
        if mu > 0 and pool_file is None:
            raise HeplearnError("pileup μ > 0 needs a pileup pool file (made by the driver)")
        self.pool = pileup.PileupPool(pool_file) if mu > 0 and pool_file is not None else None
        self.rng = np.random.default_rng([detector_seed, 2])

    def __call__(self, particles: FinalState) -> tuple[FinalState, np.ndarray]:
        """The events with pile-up overlaid, and the number of vertices of each (1 + the pile-up interactions)."""
        if self.pool is None:
            return particles, np.ones(particles.n_events, dtype=np.int64)
        particles, n_pileup = self.pool.overlay(particles, self.mu, self.rng)
        return particles, 1 + n_pileup


def with_pileup_fields(jets: ak.Array, n_vertices: np.ndarray, rho: np.ndarray) -> ak.Array:
    """``aux_pv_npvs`` and ``aux_rho`` (NanoAOD's PV_npvs, fixedGridRhoFastjetAll) of each jet's event."""
    event = ak.to_numpy(jets.aux_event_in_batch)
    jets = ak.with_field(jets, n_vertices[event].astype(np.int32), "aux_pv_npvs")
    jets = ak.with_field(jets, rho[event].astype(np.float32), "aux_rho")
    return jets[[name for name in jets.fields if name != "aux_event_in_batch"]]


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs to make and write one chunk (picklable)."""

    process: str
    index: int
    n_jets: int  # jets, or events for kind == "events"
    global_seed: int
    options: GeneratorOptions  # an EventOptions for kind == "events"
    path: str
    kind: str = "jets"
    pileup_pool: str | None = None  # the pool file, when options.pileup > 0


@dataclass(frozen=True)
class ChunkResult:
    """What one finished chunk holds: its process, index, file, jets and the time it took."""

    process: str
    index: int
    path: str
    n_jets: int
    seconds: float  # wall-clock time of the chunk
    cpu_seconds: float  # CPU time of the process that made it


def run_chunk(
    task: ChunkTask, provenance: dict[str, object] | None = None, report: Callable[[int], None] | None = None
) -> ChunkResult:
    """Generate one chunk and write it atomically (a finished chunk file is never partial).

    ``report`` receives the number of jets of this chunk found so far, after every batch.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    seed, detector_seed = chunk_seeds(task.global_seed, task.process, task.index)
    if task.kind == "events":
        from heplearn.generate.nanoaod import generate_events, get_event_card

        records = generate_events(
            get_event_card(task.process),
            task.options,
            task.n_jets,  # type: ignore[arg-type]
            seed,
            detector_seed=detector_seed,
            report=report,
            pileup_pool=task.pileup_pool,
        )
    else:
        records = generate_jets(
            get_card(task.process),
            task.options,
            task.n_jets,
            seed,
            detector_seed=detector_seed,
            report=report,
            pileup_pool=task.pileup_pool,
        )
    records = ak.with_field(records, np.full(len(records), task.index, dtype=np.int32), "aux_chunk")
    chunk_provenance = {
        **(provenance or {}),
        "process": task.process,
        "chunk": task.index,
        "pythia_seed": seed,
        "detector_seed": detector_seed,
    }
    io.write(records, Path(task.path), provenance=chunk_provenance)
    return ChunkResult(
        task.process, task.index, task.path, len(records), time.perf_counter() - start, time.process_time() - cpu_start
    )
