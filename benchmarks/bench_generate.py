"""Benchmark: labelled jets per second per core, heplearn's generator against a straightforward one.

Both use the same Pythia 8 settings (14 TeV, jet pT 550-650 GeV, |η| < 2, MPI on, the same
pT-hat window and forced decays) and produce the same jets: anti-kT R = 0.8, truth-matched
(top jets: top and its three quarks inside the jet), constituents with pdg id and charge,
soft-drop mass and τ1..4.

- ours: ``heplearn.generate.generate`` with 1 and 2 workers (Pythia batches as awkward arrays,
  FastJet on the whole batch, Dask for the workers), files written, chunking included;
- reference: the straightforward generator of the issue, one event at a time with
  ``pythia.next()``, a Python loop over the event record to build ``fastjet.PseudoJet`` inputs,
  per-event ``fastjet.ClusterSequence``, Pythia's own ``iBotCopyId``/``daughterList`` for the
  truth, and (to match our output) the same FastJet-contrib substructure on the collected jets.

Event mode (``heplearn generate events``): NanoAOD-layout events of ``zmumu_jets`` and ``wprime``
(no MPI) from ``generate_events_sample`` against a plain Pythia + FastJet event loop over the same
settings: ``pythia.next()``, Python loops for the isolated leptons and photons (ΔR < 0.3 sums),
per-event AK4 and AK8 ``ClusterSequence``, MET, the hard-process GenPart list, and the same
contrib substructure on the fat jets (ours also ghost-associates heavy hadrons for
``Jet_hadronFlavour``). The track/vertex step (heavy-hadron ghosts, impact parameters, secondary
vertices) is timed inside our jet generator and reported as CPU ms per jet and its share.

The cost of pileup is CPU ms per QCD jet at μ = 0, 20, 40 (the minimum-bias pool made once,
beforehand, about 13 ms per pool event).

Runs are interleaved (ours 1 worker, reference, ours 2 workers; per process). The two-worker runs
share one Dask LocalCluster started beforehand (its start-up, a few seconds per ``generate`` call,
is printed separately). Prints a table and,
last, the JSON line ``{"ours": .., "reference": .., "ratio": ..}`` with jets/s per core averaged over
top and QCD (ours with one worker). Run by hand:

    .venv/bin/python benchmarks/bench_generate.py --quick     # about a minute
    .venv/bin/python benchmarks/bench_generate.py             # larger samples, two repeats
    .venv/bin/python benchmarks/bench_generate.py --quick --only events   # event mode and track step only
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
from dask.distributed import Client, LocalCluster
from machine import print_machine

from heplearn.generate import chunk as chunk_module
from heplearn.generate._fastjet import fastjet
from heplearn.generate.driver import generate
from heplearn.generate.event_driver import generate_events_sample
from heplearn.generate.nanoaod import (
    ISOLATION_MAX,
    ISOLATION_RADIUS,
    EventCard,
    EventOptions,
    event_settings,
    get_event_card,
)
from heplearn.generate.processes import GeneratorOptions, ProcessCard, get_card, pythia_settings
from heplearn.generate.substructure import substructure_fields

PROCESSES = ("top", "qcd")
NEUTRINOS = {12, 14, 16}


@dataclass
class Measurement:
    process: str
    method: str
    workers: int
    jets: int
    seconds: float  # wall clock of the whole call
    cpu_seconds: float  # CPU time spent making the jets (all workers)
    busy_seconds: float  # wall clock summed over the workers' chunks

    @property
    def per_core(self) -> float:
        return self.jets / self.seconds / self.workers

    @property
    def per_cpu_second(self) -> float:
        return self.jets / self.cpu_seconds

    @property
    def concurrency(self) -> float:
        """Chunks running at the same time, on average (2 when both workers are always busy)."""
        return self.busy_seconds / self.seconds


# ----------------------------------------------------------------------------- ours
def run_ours(process: str, jets: int, workers: int, seed: int, scheduler: str | None = None) -> Measurement:
    # Two chunks per worker, so that both workers are busy for the whole run.
    chunk_size = max(1, jets // (2 * workers)) if workers > 1 else jets
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as directory:
        start = time.perf_counter()
        summary = generate(
            [process],
            jets,
            directory,
            seed=seed,
            workers=workers,
            chunk_size=chunk_size,
            options=GeneratorOptions(),
            scheduler=scheduler,
            progress=False,
        )
        seconds = time.perf_counter() - start
    return Measurement(
        process, "ours", workers, summary.jets_generated, seconds, summary.cpu_seconds, summary.chunk_seconds
    )


# ----------------------------------------------------------------------------- reference
def _delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return float(np.hypot(eta1 - eta2, dphi))


def _truth_objects(event: object, card: ProcessCard) -> list[tuple[object, list[object]]]:
    """(truth particle, decay quarks) of one event, found with Pythia's own record helpers."""
    found = []
    if card.truth == "resonance":
        seen = set()
        for i in range(event.size()):  # type: ignore[attr-defined]
            particle = event[i]  # type: ignore[index]
            if particle.idAbs() != card.resonance_id or particle.statusAbs() != 22:
                continue
            last = event[particle.iBotCopyId()]  # type: ignore[index]
            if last.index() in seen:
                continue
            seen.add(last.index())
            daughters = [event[d] for d in last.daughterList()]  # type: ignore[index]
            quarks = []
            for daughter in daughters:
                if daughter.idAbs() == 24:
                    w_last = event[daughter.iBotCopyId()]  # type: ignore[index]
                    quarks += [event[d] for d in w_last.daughterList()]  # type: ignore[index]
                else:
                    quarks.append(daughter)
            found.append((last, quarks))
    else:
        for i in range(event.size()):  # type: ignore[attr-defined]
            particle = event[i]  # type: ignore[index]
            if particle.statusAbs() == 23 and (particle.idAbs() <= 6 or particle.idAbs() == 21):
                found.append((particle, []))
    return found


def reference_jets(card: ProcessCard, options: GeneratorOptions, n_jets: int, seed: int) -> list[dict]:
    """The straightforward generator: one event at a time, Python loops over particles."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(card, options, seed):
        pythia.readString(line)
    pythia.init()
    radius = options.radius_for(card)
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    rows: list[dict] = []
    while len(rows) < n_jets:
        if not pythia.next():
            continue
        event = pythia.event
        inputs = []
        for i in range(event.size()):
            particle = event[i]
            if particle.isFinal() and particle.idAbs() not in NEUTRINOS:
                pseudojet = fastjet.PseudoJet(particle.px(), particle.py(), particle.pz(), particle.e())
                pseudojet.set_user_index(i)
                inputs.append(pseudojet)
        sequence = fastjet.ClusterSequence(inputs, definition)
        truth = _truth_objects(event, card)
        for jet in fastjet.sorted_by_pt(sequence.inclusive_jets(options.pt_min)):
            if not (options.pt_min <= jet.pt() < options.pt_max and abs(jet.eta()) < options.eta_max):
                continue
            best, best_dr = None, radius
            for particle, quarks in truth:
                dr = _delta_r(jet.eta(), jet.phi_std(), particle.eta(), particle.phi())
                inside = all(_delta_r(jet.eta(), jet.phi_std(), q.eta(), q.phi()) < radius for q in quarks)
                if dr < best_dr and (inside or card.truth == "parton"):
                    best, best_dr = particle, dr
            if card.truth == "resonance" and best is None:
                continue
            constituents = sorted(jet.constituents(), key=lambda c: -c.pt())
            rows.append(
                {
                    "px": [c.px() for c in constituents],
                    "py": [c.py() for c in constituents],
                    "pz": [c.pz() for c in constituents],
                    "E": [c.E() for c in constituents],
                    "pid": [event[c.user_index()].id() for c in constituents],
                    "charge": [event[c.user_index()].charge() for c in constituents],
                    "jet_pt": jet.pt(),
                    "jet_eta": jet.eta(),
                    "jet_phi": jet.phi_std(),
                    "jet_mass": jet.m(),
                    "parton_pdgid": best.id() if best is not None else 0,
                }
            )
            if len(rows) == n_jets:
                break
    # Substructure with the same FastJet-contrib tools as ours, on all the jets at once.
    constituents = ak.Array([{k: row[k] for k in ("px", "py", "pz", "E")} for row in rows])
    constituents = ak.zip({k: constituents[k] for k in ("px", "py", "pz", "E")}, with_name="Momentum4D")
    for name, values in substructure_fields(constituents, radius).items():
        for row, value in zip(rows, values, strict=True):
            row[name] = float(value)
    return rows


def run_reference(process: str, jets: int, seed: int) -> Measurement:
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = reference_jets(get_card(process), GeneratorOptions(), jets, seed)
    seconds = time.perf_counter() - start
    return Measurement(process, "reference", 1, len(rows), seconds, time.process_time() - cpu_start, seconds)


# ----------------------------------------------------------------------------- event mode
EVENT_PROCESSES = ("zmumu_jets", "wprime")
EVENT_OPTIONS = EventOptions(mpi=False)


def run_ours_events(process: str, events: int, seed: int) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="bench_generate_events_") as directory:
        start = time.perf_counter()
        summary = generate_events_sample(
            [process], events, directory, seed=seed, chunk_size=events, options=EVENT_OPTIONS, progress=False
        )
        seconds = time.perf_counter() - start
    return Measurement(process, "ours", 1, summary.jets_generated, seconds, summary.cpu_seconds, summary.chunk_seconds)


def _isolated_objects(event: object, visible: list[int]) -> dict[str, list[int]]:
    """Isolated muons, electrons and photons: ΔR < 0.3 pT sums in Python loops."""
    found: dict[str, list[int]] = {"muon": [], "electron": [], "photon": []}
    for i in visible:
        particle = event[i]  # type: ignore[index]
        kind = {13: "muon", 11: "electron"}.get(particle.idAbs(), "photon" if particle.id() == 22 else None)
        threshold = 10.0 if kind == "photon" else EVENT_OPTIONS.lepton_pt_min
        if kind is None or particle.pT() <= threshold or abs(particle.eta()) >= (2.4 if kind == "muon" else 2.5):
            continue
        cone = sum(
            event[j].pT()
            for j in visible  # type: ignore[index]
            if j != i
            and _delta_r(particle.eta(), particle.phi(), event[j].eta(), event[j].phi())  # type: ignore[index]
            < ISOLATION_RADIUS
        )
        if cone / particle.pT() < ISOLATION_MAX:
            found[kind].append(i)
    return found


def reference_events(card: EventCard, n_events: int, seed: int) -> list[dict]:
    """A plain Pythia + FastJet event loop making the same objects, one event at a time."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in event_settings(card, EVENT_OPTIONS, seed):
        pythia.readString(line)
    pythia.init()
    small = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
    large = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.8)
    rows: list[dict] = []
    fat_constituents: list[dict] = []
    while len(rows) < n_events:
        if not pythia.next():
            continue
        event = pythia.event
        visible = [i for i in range(event.size()) if event[i].isFinal() and event[i].idAbs() not in NEUTRINOS]
        objects = _isolated_objects(event, visible)
        taken = {i for indices in objects.values() for i in indices}

        def pseudojets(indices: list[int], event: object = event) -> list[object]:
            return [
                fastjet.PseudoJet(event[i].px(), event[i].py(), event[i].pz(), event[i].e())  # type: ignore[index]
                for i in indices
            ]

        small_sequence = fastjet.ClusterSequence(pseudojets([i for i in visible if i not in taken]), small)
        large_sequence = fastjet.ClusterSequence(pseudojets(visible), large)  # alive while its jets are read
        jets = [
            jet
            for jet in fastjet.sorted_by_pt(small_sequence.inclusive_jets(EVENT_OPTIONS.jet_pt_min))
            if abs(jet.eta()) < 4.7
        ]
        fat = [
            jet
            for jet in fastjet.sorted_by_pt(large_sequence.inclusive_jets(EVENT_OPTIONS.fatjet_pt_min))
            if abs(jet.eta()) < 2.4
        ]
        if card.trigger_fatjet_pt is not None and (not fat or fat[0].pt() <= card.trigger_fatjet_pt):
            continue
        if len(objects["muon"]) < card.min_muons:
            continue
        met_x = -sum(event[i].px() for i in visible)
        met_y = -sum(event[i].py() for i in visible)
        rows.append(
            {
                "Jet_pt": [jet.pt() for jet in jets],
                "Jet_eta": [jet.eta() for jet in jets],
                "FatJet_pt": [jet.pt() for jet in fat],
                "FatJet_mass": [jet.m() for jet in fat],
                "Muon_pt": [event[i].pT() for i in objects["muon"]],
                "MET_pt": float(np.hypot(met_x, met_y)),
                "GenPart_pdgId": [event[i].id() for i in range(event.size()) if 21 <= event[i].statusAbs() <= 23],
            }
        )
        fat_constituents += [
            {
                "px": [c.px() for c in jet.constituents()],
                "py": [c.py() for c in jet.constituents()],
                "pz": [c.pz() for c in jet.constituents()],
                "E": [c.E() for c in jet.constituents()],
            }
            for jet in fat
        ]
    if fat_constituents:
        constituents = ak.Array(fat_constituents)
        substructure_fields(ak.zip({k: constituents[k] for k in ("px", "py", "pz", "E")}, with_name="Momentum4D"), 0.8)
    return rows


def run_reference_events(process: str, events: int, seed: int) -> Measurement:
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = reference_events(get_event_card(process), events, seed)
    seconds = time.perf_counter() - start
    return Measurement(process, "reference", 1, len(rows), seconds, time.process_time() - cpu_start, seconds)


def track_step_cost(jets: int, seed: int) -> tuple[float, float]:
    """(CPU ms per jet, share of the generation CPU) of ghosts + impact parameters + vertices, for top jets."""
    spent = [0.0]

    def timed(function: object) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.process_time()
            try:
                return function(*args, **kwargs)  # type: ignore[operator]
            finally:
                spent[0] += time.process_time() - start

        return wrapper

    originals = (chunk_module.tracks.track_fields, chunk_module.truth.find_heavy_hadrons)
    chunk_module.tracks.track_fields = timed(originals[0])  # type: ignore[assignment]
    chunk_module.truth.find_heavy_hadrons = timed(originals[1])  # type: ignore[assignment]
    try:
        start = time.process_time()
        made = chunk_module.generate_jets(get_card("top"), GeneratorOptions(), jets, seed)
        total = time.process_time() - start
    finally:
        chunk_module.tracks.track_fields, chunk_module.truth.find_heavy_hadrons = originals  # type: ignore[assignment]
    return 1000 * spent[0] / len(made), spent[0] / total


def pileup_cost(jets: int, seed: int, mus: tuple[float, ...] = (0.0, 20.0, 40.0)) -> dict[float, float]:
    """CPU ms per QCD jet (150-200 GeV, R = 0.4, no MPI) with pileup μ, the pool made beforehand."""
    costs = {}
    with tempfile.TemporaryDirectory(prefix="bench_generate_pileup_") as directory:
        from heplearn.generate.pileup import make_pool, pool_path

        pool = make_pool(pool_path(Path(directory), 14_000.0, seed, 1000), 14_000.0, seed, 1000)
        for mu in mus:
            options = GeneratorOptions(pt_min=150.0, pt_max=200.0, radius=0.4, mpi=False, pileup=mu)
            start = time.process_time()
            chunk_module.generate_jets(get_card("qcd"), options, jets, seed, pileup_pool=str(pool))
            costs[mu] = 1000 * (time.process_time() - start) / jets
    return costs


# ----------------------------------------------------------------------------- machine
def _spin(n: int = 5_000_000) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - start


def machine_parallelism(client: Client) -> float:
    """How much faster two CPU-bound processes finish than one, right now (2.0 on two free cores)."""
    alone = client.submit(_spin, pure=False, workers=[next(iter(client.scheduler_info()["workers"]))])
    one = alone.result()
    start = time.perf_counter()
    client.gather([client.submit(_spin, pure=False, key=f"spin-{i}") for i in range(2)])
    return 2 * one / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- main
def compare_jets(jets: int, repeats: int) -> dict[str, float]:
    """Ours (1 and 2 workers) against the reference jet loop; prints the table."""
    # The two-worker runs use one LocalCluster, started (and warmed up) once: its start-up is a
    # fixed cost of a few seconds per `generate` call, reported separately.
    start = time.perf_counter()
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as cluster:
        startup = time.perf_counter() - start
        with Client(cluster) as client:
            parallelism_before = machine_parallelism(client)
        with tempfile.TemporaryDirectory(prefix="bench_generate_warmup_") as directory:
            generate(
                ["qcd"],
                4,
                directory,
                workers=2,
                chunk_size=2,
                options=GeneratorOptions(mpi=False),
                scheduler=cluster.scheduler_address,
                progress=False,
            )
        results: list[Measurement] = []
        for repeat in range(repeats):
            for process in PROCESSES:
                seed = 100 + repeat
                results.append(run_ours(process, jets, 1, seed))
                results.append(run_reference(process, jets, seed))
                results.append(run_ours(process, 2 * jets, 2, seed, scheduler=cluster.scheduler_address))
        with Client(cluster) as client:
            parallelism_after = machine_parallelism(client)

    def rate(process: str, method: str, workers: int, quantity: str = "per_core") -> float:
        return statistics.mean(
            getattr(m, quantity) for m in results if (m.process, m.method, m.workers) == (process, method, workers)
        )

    print(
        f"{'process':8} {'method':10} {'workers':>7} {'jets/s':>9} {'jets/s/core':>12} {'jets/CPU-s':>11} "
        f"{'busy workers':>12}"
    )
    for process in PROCESSES:
        for method, workers in (("ours", 1), ("ours", 2), ("reference", 1)):
            per_core = rate(process, method, workers)
            print(
                f"{process:8} {method:10} {workers:7d} {per_core * workers:9.1f} {per_core:12.1f} "
                f"{rate(process, method, workers, 'per_cpu_second'):11.1f} "
                f"{rate(process, method, workers, 'concurrency'):12.2f}"
            )
        scaling = rate(process, "ours", 2) * 2 / rate(process, "ours", 1)
        ratio = rate(process, "ours", 1) / rate(process, "reference", 1)
        print(
            f"{process:8} wall-clock speed-up with 2 workers: {scaling:.2f}x (linear: 2x); "
            f"ours / reference per core: {ratio:.2f}"
        )
    print(
        "(jets/CPU-s counts CPU time only, so it does not drop when other programs share the cores;\n"
        " 'busy workers' is the average number of chunks running at once)"
    )
    print(f"(Dask LocalCluster start-up with 2 workers: {startup:.1f} s, once per generate call)")
    print(
        f"(machine check: two CPU-bound processes ran {parallelism_before:.2f}x / {parallelism_after:.2f}x "
        "as fast as one, before / after; 2x means two free cores)"
    )
    ours = statistics.mean(rate(process, "ours", 1) for process in PROCESSES)
    reference = statistics.mean(rate(process, "reference", 1) for process in PROCESSES)
    return {"ours": round(ours, 2), "reference": round(reference, 2), "ratio": round(ours / reference, 3)}


def compare_events(events: int, repeats: int, jets: int) -> dict[str, object]:
    """Ours against the reference event loop, and the track/vertex step; prints the tables."""
    event_results: list[Measurement] = []
    for repeat in range(repeats):
        for process in EVENT_PROCESSES:
            event_results.append(run_ours_events(process, events, 200 + repeat))
            event_results.append(run_reference_events(process, events, 200 + repeat))
    print(f"\n{'process':10} {'method':10} {'events/s/core':>14} {'events/CPU-s':>13}")
    event_rates = {}
    for process in EVENT_PROCESSES:
        for method in ("ours", "reference"):
            chosen = [m for m in event_results if (m.process, m.method) == (process, method)]
            event_rates[process, method] = statistics.mean(m.per_core for m in chosen)
            print(
                f"{process:10} {method:10} {event_rates[process, method]:14.2f} "
                f"{statistics.mean(m.per_cpu_second for m in chosen):13.2f}"
            )
        print(
            f"{process:10} ours / reference per core: "
            f"{event_rates[process, 'ours'] / event_rates[process, 'reference']:.2f}"
        )
    events_ours = statistics.mean(event_rates[process, "ours"] for process in EVENT_PROCESSES)
    events_reference = statistics.mean(event_rates[process, "reference"] for process in EVENT_PROCESSES)
    per_jet_ms, share = track_step_cost(jets, 300)
    print(
        f"\ntrack/vertex step (ghosts, impact parameters, secondary vertices): {per_jet_ms:.2f} CPU ms per top "
        f"jet, {100 * share:.1f}% of the generation CPU"
    )
    pileup = pileup_cost(jets, 400)
    print(
        "pileup (QCD jets 150-200 GeV, R = 0.4, pool of 1000 made beforehand): "
        + ", ".join(f"μ = {mu:g}: {ms:.1f} CPU ms per jet" for mu, ms in pileup.items())
    )
    return {
        "pileup_ms_per_jet": {f"{mu:g}": round(ms, 2) for mu, ms in pileup.items()},
        "events_ours": round(events_ours, 2),
        "events_reference": round(events_reference, 2),
        "events_ratio": round(events_ours / events_reference, 3),
        "track_step_ms_per_jet": round(per_jet_ms, 3),
        "track_step_share": round(share, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples, one repeat (about a minute)")
    parser.add_argument("--jets", type=int, default=None, help="jets per measurement")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--events", type=int, default=None, help="events per event-mode measurement")
    parser.add_argument("--only", choices=("jets", "events"), default=None, help="run one half only")
    arguments = parser.parse_args()
    print_machine()
    jets = arguments.jets or (150 if arguments.quick else 1000)
    repeats = arguments.repeats or (1 if arguments.quick else 2)
    logging.basicConfig(level=logging.WARNING)

    events = arguments.events or (40 if arguments.quick else 300)
    figures: dict[str, object] = {}
    if arguments.only != "events":
        figures.update(compare_jets(jets, repeats))
    if arguments.only != "jets":
        figures.update(compare_events(events, repeats, jets))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
