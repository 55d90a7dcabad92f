"""The event-sample driver: chunks of NanoAOD-layout events, then shuffled train/val/test files.

The same machinery as the jet driver (``heplearn.generate.driver``): chunks seeded from (seed,
process, chunk index), so the same command gives the same events whatever the number of workers;
chunks written atomically under ``output_dir/chunks/<process>-<settings hash>/`` and skipped by a
rerun; Dask for several workers; provenance in every file. Each process's events are split alone,
labelled one-hot ``label_<process>`` and shuffled into ``train``, ``val`` and ``test``. ROOT files
hold a TTree named ``Events`` whose jagged branches share NanoAOD's counters (``nJet`` for
``Jet_*``), so ``coffea.nanoevents.NanoEventsFactory`` with ``NanoAODSchema`` opens them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

import heplearn
from heplearn.data import io
from heplearn.data.files import atomic_path
from heplearn.errors import ConfigError
from heplearn.generate.chunk import ChunkTask, chunk_seeds
from heplearn.generate.driver import (
    SPLITS,
    GenerationSummary,
    _check_count,
    _package_versions,
    _run_chunks,
    check_split_fractions,
    split_bounds,
)
from heplearn.generate.nanoaod import EVENT_PROCESSES, EventOptions, event_settings, get_event_card
from heplearn.generate.variations import check_settings, variation_settings

EVENT_TREE = "Events"
DEFAULT_EVENT_CHUNK_SIZE = 500
EVENT_FORMATS = {"parquet": ".parquet", "root": ".root"}


def generate_events_sample(
    processes: Sequence[str],
    events_per_process: int,
    output_dir: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    chunk_size: int = DEFAULT_EVENT_CHUNK_SIZE,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    file_format: str = "parquet",
    options: EventOptions | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> GenerationSummary:
    """Generate ``events_per_process`` events of every event process and write train/val/test files."""
    start = time.perf_counter()
    names = _check_event_processes(processes)
    _check_count("events_per_process", events_per_process)
    _check_count("workers", workers)
    _check_count("chunk_size", chunk_size)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    split_fractions = check_split_fractions(fractions)
    suffix = EVENT_FORMATS.get(str(file_format).lower())
    if suffix is None:
        raise ConfigError(f"unknown event file format {file_format!r}: choose from {', '.join(EVENT_FORMATS)}")
    options = options or EventOptions()
    check_settings([*variation_settings(options.variation), *options.pythia])
    output_dir = Path(output_dir)

    plan = []
    for name in names:
        directory = output_dir / "chunks" / f"{name}-{_settings_key(name, int(seed), chunk_size, options)}"
        for index in range(math.ceil(events_per_process / chunk_size)):
            n_events = min(chunk_size, events_per_process - index * chunk_size)
            plan.append(ChunkTask(name, index, n_events, int(seed), options,  # type: ignore[arg-type]
                                  str(directory / f"chunk-{index:05d}-n{n_events}.parquet"), kind="events"))
    provenance = _provenance(names, events_per_process, int(seed), chunk_size, split_fractions, options)
    todo = [task for task in plan if not Path(task.path).exists()]
    generated = _run_chunks(todo, plan, workers=workers, scheduler=scheduler, progress=progress,
                            provenance=provenance, unit="events")
    files, counts = _assemble(names, plan, output_dir, suffix, split_fractions, int(seed), provenance)
    return GenerationSummary(
        output_dir=output_dir, files=files, jets_per_split=counts,
        jets_per_process=dict.fromkeys(names, events_per_process),
        chunks_generated=len(todo), chunks_skipped=len(plan) - len(todo),
        seconds=time.perf_counter() - start, jets_generated=sum(result.n_jets for result in generated),
        chunk_seconds=sum(result.seconds for result in generated),
        cpu_seconds=sum(result.cpu_seconds for result in generated), provenance=provenance,
    )


def _check_event_processes(processes: Sequence[str]) -> list[str]:
    if isinstance(processes, str):
        processes = [processes]
    if not processes:
        raise ConfigError(f"no event process given: name at least one of {', '.join(EVENT_PROCESSES)}")
    names = [get_event_card(name).name for name in processes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"event process {', '.join(duplicates)} given more than once")
    return names


def _settings_key(process: str, seed: int, chunk_size: int, options: EventOptions) -> str:
    description = {
        "kind": "events", "process": process, "settings": event_settings(get_event_card(process), options, 0),
        "options": options.describe(), "seed": seed, "chunk_size": chunk_size, "heplearn": heplearn.__version__,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]


def _provenance(names: list[str], events_per_process: int, seed: int, chunk_size: int,
                fractions: tuple[float, float, float], options: EventOptions) -> dict[str, Any]:
    n_chunks = math.ceil(events_per_process / chunk_size)
    return {
        "generator": "heplearn.generate.events",
        "layout": "CMS NanoAOD",
        "heplearn_version": heplearn.__version__,
        "packages": _package_versions(),
        "processes": names,
        "events_per_process": events_per_process,
        "seed": seed,
        "chunk_size": chunk_size,
        "split_fractions": dict(zip(SPLITS, fractions, strict=True)),
        "options": options.describe(),
        "pythia_settings": {name: [line for line in event_settings(get_event_card(name), options, 0)
                                   if not line.startswith("Random:seed ")] for name in names},
        "chunk_seeds": {name: [chunk_seeds(seed, name, index)[0] for index in range(n_chunks)] for name in names},
        "references": [
            "Pythia 8.3: Bierlich et al., SciPost Phys. Codebases 8 (2022), arXiv:2203.11601",
            "FastJet: Cacciari, Salam, Soyez, EPJC 72 (2012) 1896, arXiv:1111.6097",
        ],
    }


def _assemble(names: list[str], plan: list[ChunkTask], output_dir: Path, suffix: str,
              fractions: tuple[float, float, float], seed: int,
              provenance: dict[str, Any]) -> tuple[dict[str, Path], dict[str, int]]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7E7]))
    parts: dict[str, list[ak.Array]] = {split: [] for split in SPLITS}
    for name in names:
        chunks = [io.open_source(task.path).read() for task in plan if task.process == name]
        events = ak.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        events = ak.with_field(events, np.ones(len(events), dtype=np.uint32), "run")
        events = ak.with_field(events, (ak.to_numpy(events.aux_chunk) + 1).astype(np.uint32), "luminosityBlock")
        for label in names:
            events = ak.with_field(events, np.full(len(events), label == name), f"label_{label}")
        order = rng.permutation(len(events))
        for split, (low, high) in split_bounds(len(events), fractions).items():
            parts[split].append(events[order[low:high]])
    files, counts = {}, {}
    for split in SPLITS:
        mixture = ak.concatenate(parts[split])
        if len(mixture) == 0:
            continue
        mixture = mixture[rng.permutation(len(mixture))]
        path = output_dir / f"{split}{suffix}"
        split_provenance = {**provenance, "split": split, "events": len(mixture)}
        if suffix == ".root":
            write_nanoaod_root(mixture, path, split_provenance)
        else:
            io.write(mixture, path, provenance=split_provenance)
        files[split], counts[split] = path, len(mixture)
    return files, counts


def write_nanoaod_root(events: ak.Array, path: str | Path, provenance: dict[str, Any] | None = None,
                       cluster_size: int = 10_000) -> Path:
    """Write NanoAOD-layout events as a TTree ``Events`` (atomically): ``X_field`` branches of one
    collection share the counter ``nX``, as in NanoAOD."""
    import uproot

    collections = sorted({name[1:] for name in events.fields
                          if name.startswith("n") and any(f.startswith(f"{name[1:]}_") for f in events.fields)})
    jagged = {name for collection in collections for name in events.fields if name.startswith(f"{collection}_")}
    branches: dict[str, Any] = {
        collection: ak.zip({name.removeprefix(f"{collection}_"): events[name]
                            for name in events.fields if name.startswith(f"{collection}_")})
        for collection in collections
    }
    counters = {f"n{collection}" for collection in collections}
    branches.update({name: ak.to_numpy(events[name]) for name in events.fields
                     if name not in jagged and name not in counters})
    path = Path(path)
    with atomic_path(path) as temporary, uproot.recreate(temporary) as output:
        types = {name: (value.type if isinstance(value, ak.Array) else value.dtype) for name, value in branches.items()}
        tree = output.mktree(EVENT_TREE, types)  # uproot names the counters n<collection>
        for first in range(0, len(events), cluster_size):
            tree.extend({name: value[first:first + cluster_size] for name, value in branches.items()})
        output[io.PROVENANCE_KEY] = json.dumps(provenance or {}, sort_keys=True, default=str)
    return path
