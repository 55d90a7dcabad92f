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
from heplearn.generate.chunk import ChunkTask
from heplearn.generate.driver import (
    GenerationSummary,
    _run_chunks,
    assemble_splits,
    base_provenance,
    check_packages,
    check_run,
    check_split_fractions,
    with_pileup_pool,
    with_process_labels,
)
from heplearn.generate.nanoaod import (
    EVENT_PROCESSES,
    EventOptions,
    event_settings,
    get_event_card,
    provenance_settings,
)
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
    check_run(events_per_process=events_per_process, workers=workers, chunk_size=chunk_size, seed=seed)
    check_packages(workers, scheduler)
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
            plan.append(
                ChunkTask(
                    name,
                    index,
                    n_events,
                    int(seed),
                    options,  # type: ignore[arg-type]
                    str(directory / f"chunk-{index:05d}-n{n_events}.parquet"),
                    kind="events",
                )
            )
    plan = with_pileup_pool(
        plan, output_dir, seed=int(seed), sqrt_s=options.sqrt_s, mu=options.pileup, pool_size=options.pileup_pool
    )
    provenance = _provenance(names, events_per_process, int(seed), chunk_size, split_fractions, options)
    todo = [task for task in plan if not Path(task.path).exists()]
    generated = _run_chunks(
        todo, plan, workers=workers, scheduler=scheduler, progress=progress, provenance=provenance, unit="events"
    )
    files, counts = _assemble(names, plan, output_dir, suffix, split_fractions, int(seed), provenance)
    return GenerationSummary(
        output_dir=output_dir,
        files=files,
        jets_per_split=counts,
        jets_per_process=dict.fromkeys(names, events_per_process),
        chunks_generated=len(todo),
        chunks_skipped=len(plan) - len(todo),
        seconds=time.perf_counter() - start,
        jets_generated=sum(result.n_jets for result in generated),
        chunk_seconds=sum(result.seconds for result in generated),
        cpu_seconds=sum(result.cpu_seconds for result in generated),
        provenance=provenance,
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
        "kind": "events",
        "process": process,
        "settings": event_settings(get_event_card(process), options, 0),
        "options": options.describe(),
        "seed": seed,
        "chunk_size": chunk_size,
        "heplearn": heplearn.__version__,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]


def _provenance(
    names: list[str],
    events_per_process: int,
    seed: int,
    chunk_size: int,
    fractions: tuple[float, float, float],
    options: EventOptions,
) -> dict[str, Any]:
    provenance = base_provenance(
        "heplearn.generate.events",
        names,
        count_key="events_per_process",
        count=events_per_process,
        seed=seed,
        chunk_size=chunk_size,
        fractions=fractions,
        options=options.describe(),
        settings=lambda name: provenance_settings(get_event_card(name), options),
    )
    provenance["layout"] = "CMS NanoAOD"
    return provenance


def _assemble(
    names: list[str],
    plan: list[ChunkTask],
    output_dir: Path,
    suffix: str,
    fractions: tuple[float, float, float],
    seed: int,
    provenance: dict[str, Any],
) -> tuple[dict[str, Path], dict[str, int]]:
    def prepare(name: str, events: ak.Array) -> ak.Array:
        events = ak.with_field(events, np.ones(len(events), dtype=np.uint32), "run")
        events = ak.with_field(events, (ak.to_numpy(events.aux_chunk) + 1).astype(np.uint32), "luminosityBlock")
        return with_process_labels(events, name, names)

    return assemble_splits(
        names,
        plan,
        output_dir,
        suffix=suffix,
        fractions=fractions,
        seed=seed,
        provenance=provenance,
        prepare=prepare,
        count_key="events",
        salt=0xE7E7,
        write=write_nanoaod_root if suffix == ".root" else None,
    )


def write_nanoaod_root(
    events: ak.Array, path: str | Path, provenance: dict[str, Any] | None = None, cluster_size: int = 10_000
) -> Path:
    """Write NanoAOD-layout events as a TTree ``Events`` (atomically): ``X_field`` branches of one
    collection share the counter ``nX``, as in NanoAOD."""
    import uproot

    collections = sorted(
        {
            name[1:]
            for name in events.fields
            if name.startswith("n") and any(f.startswith(f"{name[1:]}_") for f in events.fields)
        }
    )
    jagged = {name for collection in collections for name in events.fields if name.startswith(f"{collection}_")}
    branches: dict[str, Any] = {
        collection: ak.zip(
            {
                name.removeprefix(f"{collection}_"): events[name]
                for name in events.fields
                if name.startswith(f"{collection}_")
            }
        )
        for collection in collections
    }
    counters = {f"n{collection}" for collection in collections}
    branches.update(
        {name: ak.to_numpy(events[name]) for name in events.fields if name not in jagged and name not in counters}
    )
    path = Path(path)
    with atomic_path(path) as temporary, uproot.recreate(temporary) as output:
        types = {name: (value.type if isinstance(value, ak.Array) else value.dtype) for name, value in branches.items()}
        tree = output.mktree(EVENT_TREE, types)  # uproot names the counters n<collection>
        for first in range(0, len(events), cluster_size):
            tree.extend({name: value[first : first + cluster_size] for name, value in branches.items()})
        output[io.PROVENANCE_KEY] = json.dumps(provenance or {}, sort_keys=True, default=str)
    return path
