"""The generator driver: chunks of jets made in parallel, then a shuffled, balanced mixture.

``generate`` splits the work into chunks of at most ``chunk_size`` jets per process. Each chunk
is seeded from (global seed, process, chunk index), so the same command gives the same events
whatever the number of workers. A finished chunk is written atomically to

    output_dir/chunks/<process>-<settings hash>/chunk-<index>-n<jets>.parquet

and a rerun skips it; the settings hash changes with any option, so chunks made with other
settings are never reused. Chunks run in-process with one worker, and on a Dask ``LocalCluster``
of worker processes (or an existing Dask scheduler) otherwise. When all chunks exist, the jets of
every process are split into train/val/test (each class split alone, so every split is
class-balanced), labelled one-hot for the mixture, shuffled and written with their provenance:
``output_dir/train.parquet``, ``val.parquet``, ``test.parquet``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

import heplearn
from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.generate.chunk import ChunkResult, ChunkTask, chunk_seeds, run_chunk
from heplearn.generate.processes import (
    DEFAULT_CHUNK_SIZE,
    PROCESSES,
    GeneratorOptions,
    get_card,
    pythia_settings,
)
from heplearn.generate.variations import check_settings, variation_settings
from heplearn.optional import optional_import, require_extra
from heplearn.progress import progress_bar, progress_mode

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FILE_FORMATS = {"parquet": ".parquet", "root": ".root", "hdf5": ".h5"}
_TEMPORARY_GLOB = ".chunk-*.tmp*"
_PACKAGES = ("pythia8mc", "fastjet", "awkward", "numpy", "dask", "distributed")


@dataclass
class GenerationSummary:
    """What ``generate`` did: files per split, jet counts, chunks made and skipped, speed."""

    output_dir: Path
    files: dict[str, Path]
    jets_per_split: dict[str, int]
    jets_per_process: dict[str, int]
    chunks_generated: int
    chunks_skipped: int
    seconds: float
    jets_generated: int
    chunk_seconds: float = 0.0  # wall-clock time summed over the chunks made
    cpu_seconds: float = 0.0  # CPU time summed over the chunks made
    provenance: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def jets_per_second(self) -> float:
        """Jets generated per wall-clock second."""
        return self.jets_generated / self.seconds if self.seconds > 0 else 0.0

    @property
    def jets_per_cpu_second(self) -> float:
        """Generation speed per core, insensitive to other load on the machine."""
        return self.jets_generated / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


def generate(
    processes: Sequence[str],
    jets_per_process: int,
    output_dir: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    file_format: str = "parquet",
    options: GeneratorOptions | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    **option_changes: Any,
) -> GenerationSummary:
    """Generate ``jets_per_process`` jets of every process and write train/val/test files.

    ``options`` (a ``GeneratorOptions``) and keyword changes to it (``pt_min=...``, ``mpi=False``,
    ``radius=...``) set the physics; ``workers`` > 1 runs chunks on a Dask ``LocalCluster`` of
    that many processes, ``scheduler`` (an address) on an existing Dask cluster instead. Dask
    starts its worker processes with ``spawn``: a script that calls ``generate`` with several
    workers needs the usual ``if __name__ == "__main__":`` guard.
    """
    start = time.perf_counter()
    names = _check_processes(processes)
    check_run(jets_per_process=jets_per_process, workers=workers, chunk_size=chunk_size, seed=seed)
    check_packages(workers, scheduler)
    split_fractions = check_split_fractions(fractions)
    suffix = output_suffix(file_format)
    options = _resolve_options(options, option_changes)
    # Pythia reads every setting before any chunk is made: a rejected one leaves nothing behind.
    check_settings([*variation_settings(options.variation), *options.pythia])
    output_dir = Path(output_dir)

    plan = _plan(names, jets_per_process, chunk_size=chunk_size, seed=int(seed), options=options, output_dir=output_dir)
    provenance = _provenance(
        names, jets_per_process, seed=int(seed), chunk_size=chunk_size, fractions=split_fractions, options=options
    )
    radii = {name: options.radius_for(get_card(name)) for name in names}
    if len(set(radii.values())) > 1:
        logger.warning(
            "the mixture has jets of different radii (%s); set radius= to use one",
            ", ".join(f"{name} R = {radius:g}" for name, radius in radii.items()),
        )
    plan = with_pileup_pool(
        plan, output_dir, seed=int(seed), sqrt_s=options.sqrt_s, mu=options.pileup, pool_size=options.pileup_pool
    )
    todo = [task for task in plan if not Path(task.path).exists()]
    logger.info(
        "generating %s: %d jets each in %d chunks (%d already done) with %d worker(s); "
        "Pythia 8 + FastJet (Cacciari, Salam, Soyez, EPJC 72 (2012) 1896)",
        ", ".join(names),
        jets_per_process,
        len(plan),
        len(plan) - len(todo),
        workers,
    )
    generated = _run_chunks(todo, plan, workers=workers, scheduler=scheduler, progress=progress, provenance=provenance)
    files, counts = _assemble(
        names, plan, output_dir, suffix=suffix, fractions=split_fractions, seed=int(seed), provenance=provenance
    )
    seconds = time.perf_counter() - start
    summary = GenerationSummary(
        output_dir=output_dir,
        files=files,
        jets_per_split=counts,
        jets_per_process=dict.fromkeys(names, jets_per_process),
        chunks_generated=len(todo),
        chunks_skipped=len(plan) - len(todo),
        seconds=seconds,
        jets_generated=sum(result.n_jets for result in generated),
        chunk_seconds=sum(result.seconds for result in generated),
        cpu_seconds=sum(result.cpu_seconds for result in generated),
        provenance=provenance,
    )
    logger.info(
        "wrote %s in %.1f s (%.1f jets/s generated)",
        ", ".join(str(path) for path in files.values()),
        seconds,
        summary.jets_per_second,
    )
    return summary


# ----------------------------------------------------------------------------- validation
def _check_processes(processes: Sequence[str]) -> list[str]:
    if isinstance(processes, str):
        processes = [processes]
    if not processes:
        raise ConfigError(f"no process given: name at least one of {', '.join(PROCESSES)}")
    names = [get_card(name).name for name in processes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"process {', '.join(duplicates)} given more than once")
    by_flavour = {name for name in names if get_card(name).truth == "flavour"}
    if by_flavour and len(by_flavour) < len(names):
        raise ConfigError(
            f"{', '.join(sorted(by_flavour))} label jets by flavour (label_b/c/light) and cannot be mixed with "
            f"{', '.join(name for name in names if name not in by_flavour)}, labelled by process; run them apart"
        )
    return names


def check_packages(workers: int, scheduler: str | None) -> None:
    """Pythia 8 and FastJet (the ``generate`` extra), and Dask when more than one worker runs the chunks (the
    ``dask`` extra): a ``MissingExtraError`` naming the extra before anything is written."""
    require_extra("generate", "event generation (Pythia 8 + FastJet)")
    if workers > 1 or scheduler is not None:
        optional_import("dask.distributed", "generating on several workers (--workers > 1 or --dask)")


def check_run(*, seed: object, **counts: object) -> None:
    """Positive integer counts (jets, workers, chunk size) and a non-negative integer seed."""
    for name, value in counts.items():
        _check_count(name, value)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def with_pileup_pool(
    plan: list[ChunkTask], output_dir: Path, *, seed: int, sqrt_s: float, mu: float, pool_size: int
) -> list[ChunkTask]:
    """For μ > 0: make the minimum-bias pool once (or find it) and hand its path to every chunk."""
    if mu <= 0 or not plan:
        return plan
    from heplearn.generate.pileup import make_pool, pool_path

    path = pool_path(output_dir, sqrt_s, seed, pool_size)
    if not path.exists():
        logger.info("making a pool of %d minimum-bias events for pileup μ = %g", pool_size, mu)
    make_pool(path, sqrt_s, seed, pool_size)
    return [replace(task, pileup_pool=str(path)) for task in plan]


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_split_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """(train, val, test) fractions: three non-negative numbers adding up to 1."""
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"split fractions must be three numbers (train, val, test), got {fractions!r}") from error
    if len(values) != len(SPLITS) or any(not math.isfinite(f) or f < 0 for f in values):
        raise ConfigError(f"split fractions must be three non-negative numbers (train, val, test), got {fractions!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions must add up to 1, got {' + '.join(f'{f:g}' for f in values)}")
    return values  # type: ignore[return-value]


def split_bounds(n: int, fractions: tuple[float, float, float]) -> dict[str, tuple[int, int]]:
    """Entry ranges ``[low, high)`` of the train/val/test splits of ``n`` entries."""
    n_train = round(fractions[0] * n)
    n_val = min(round(fractions[1] * n), n - n_train)
    return {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}


def output_suffix(file_format: str) -> str:
    """The file suffix of ``file_format`` (parquet, root, hdf5)."""
    suffix = FILE_FORMATS.get(str(file_format).lower())
    if suffix is None:
        raise ConfigError(f"unknown file format {file_format!r}: choose from {', '.join(FILE_FORMATS)}")
    return suffix


def _resolve_options(options: GeneratorOptions | None, changes: dict[str, Any]) -> GeneratorOptions:
    options = options or GeneratorOptions()
    known = set(GeneratorOptions.__dataclass_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(f"unknown generator option {', '.join(unknown)}: choose from {', '.join(sorted(known))}")
    return options.with_changes(**changes) if changes else options


# ----------------------------------------------------------------------------- chunks
def _settings_key(process: str, seed: int, chunk_size: int, options: GeneratorOptions) -> str:
    card = get_card(process)
    description = {
        "process": process,
        "settings": pythia_settings(card, options, 0),
        "options": options.describe(),
        "seed": seed,
        "chunk_size": chunk_size,
        "heplearn": heplearn.__version__,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]


def _plan(
    names: list[str], jets_per_process: int, *, chunk_size: int, seed: int, options: GeneratorOptions, output_dir: Path
) -> list[ChunkTask]:
    tasks = []
    for name in names:
        directory = output_dir / "chunks" / f"{name}-{_settings_key(name, seed, chunk_size, options)}"
        for index in range(math.ceil(jets_per_process / chunk_size)):
            n_jets = min(chunk_size, jets_per_process - index * chunk_size)
            path = directory / f"chunk-{index:05d}-n{n_jets}.parquet"
            tasks.append(ChunkTask(name, index, n_jets, seed, options, str(path)))
    return tasks


class _ChunkProgress:
    """Jets found per chunk, fed by in-chunk reports and by finished chunks, never counted twice.

    Reports from Dask workers arrive on the client's event-loop thread, hence the lock.
    """

    def __init__(self, advance: Callable[[int], None]) -> None:
        self._advance = advance
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, key: str, jets_so_far: int) -> None:
        with self._lock:
            step = jets_so_far - self._seen.get(key, 0)
            if step > 0:
                self._seen[key] = jets_so_far
                self._advance(step)


def _chunk_key(task: ChunkTask) -> str:
    return f"{Path(task.path).parent.name}/{task.index}"


def _run_chunks(
    todo: list[ChunkTask],
    plan: list[ChunkTask],
    *,
    workers: int,
    scheduler: str | None,
    progress: bool,
    provenance: dict[str, Any],
    unit: str = "jets",
) -> list[ChunkResult]:
    total = sum(task.n_jets for task in plan)
    already = total - sum(task.n_jets for task in todo)
    results: list[ChunkResult] = []
    try:
        with _progress_bar(total, already, enabled=progress, unit=unit) as advance:
            tracker = _ChunkProgress(advance)
            for task, result in _execute(
                todo, workers=workers, scheduler=scheduler, provenance=provenance, tracker=tracker
            ):
                results.append(result)
                tracker.update(_chunk_key(task), result.n_jets)
    finally:
        _remove_temporaries(plan)
    return results


def _run_chunk_on_worker(task: ChunkTask, provenance: dict[str, Any], topic: str) -> ChunkResult:
    """``run_chunk`` on a Dask worker, streaming its progress to the client as worker events."""
    from dask.distributed import get_worker

    worker = get_worker()
    key = _chunk_key(task)
    return run_chunk(task, provenance, report=lambda jets: worker.log_event(topic, (key, jets)))


def _execute(
    todo: list[ChunkTask], *, workers: int, scheduler: str | None, provenance: dict[str, Any], tracker: _ChunkProgress
) -> Iterator[tuple[ChunkTask, ChunkResult]]:
    """Run the chunks in this process (one worker) or on Dask, yielding results as they finish."""
    if not todo:
        return
    if scheduler is None and (workers == 1 or len(todo) == 1):
        for task in todo:
            key = _chunk_key(task)
            yield task, run_chunk(task, provenance, report=lambda jets, key=key: tracker.update(key, jets))
        return
    from dask.distributed import Client, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_logger("distributed"))
        if scheduler is not None:
            client = stack.enter_context(Client(scheduler))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=min(workers, len(todo)),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))
        topic = f"heplearn-generate-{uuid.uuid4().hex}"  # this run's progress reports only
        client.subscribe_topic(topic, lambda event: tracker.update(*event[1]))
        futures = {
            client.submit(
                _run_chunk_on_worker,
                task,
                provenance,
                topic,
                pure=False,
                key=f"heplearn-chunk-{_chunk_key(task).replace('/', '-')}",
            ): task
            for task in todo
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            client.cancel(list(futures))
            raise
        finally:
            client.unsubscribe_topic(topic)


@contextlib.contextmanager
def _quiet_logger(name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Keep a chatty library's records (Dask's scheduler start/stop) out of the caller's logs."""
    logger_ = logging.getLogger(name)
    previous = logger_.level
    logger_.setLevel(max(level, previous))
    try:
        yield
    finally:
        logger_.setLevel(previous)


def _remove_temporaries(plan: list[ChunkTask]) -> None:
    """Remove temporary files left by a chunk writer that was killed (e.g. on Ctrl-C)."""
    for directory in {Path(task.path).parent for task in plan}:
        if directory.is_dir():
            for leftover in directory.glob(_TEMPORARY_GLOB):
                leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def _progress_bar(total: int, already: int, *, enabled: bool, unit: str = "jets") -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr with jets/s (or ``unit``/s) on a terminal, log lines elsewhere
    (see ``heplearn.progress``); a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    if progress_mode() != "bar":
        with progress_bar(total=total, initial=already, desc=f"generating {unit}", unit=unit) as bar:
            yield bar.update
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    start = time.perf_counter()
    done = 0
    progress = Progress(
        TextColumn(f"[bold]generating {unit}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(unit, total=total, completed=already, rate="")

        def advance(n_jets: int) -> None:
            nonlocal done
            done += n_jets
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress.update(task, advance=n_jets, rate=f"{rate:.1f} {unit}/s")

        yield advance


# ----------------------------------------------------------------------------- mixture
def _assemble(
    names: list[str],
    plan: list[ChunkTask],
    output_dir: Path,
    *,
    suffix: str,
    fractions: tuple[float, float, float],
    seed: int,
    provenance: dict[str, Any],
) -> tuple[dict[str, Path], dict[str, int]]:
    def label(name: str, jets: ak.Array) -> ak.Array:
        if get_card(name).truth == "flavour":  # flavour cards carry label_b/c/light already
            return jets
        return with_process_labels(jets, name, names)

    return assemble_splits(
        names,
        plan,
        output_dir,
        suffix=suffix,
        fractions=fractions,
        seed=seed,
        provenance={**provenance},
        prepare=label,
        count_key="jets",
    )


def with_process_labels(records: ak.Array, name: str, names: list[str]) -> ak.Array:
    """One-hot ``label_<process>`` fields: true for ``name``."""
    for label in names:
        records = ak.with_field(records, np.full(len(records), label == name), f"label_{label}")
    return records


def assemble_splits(
    names: list[str],
    plan: list[ChunkTask],
    output_dir: Path,
    *,
    suffix: str,
    fractions: tuple[float, float, float],
    seed: int,
    provenance: dict[str, Any],
    prepare: Callable[[str, ak.Array], ak.Array],
    count_key: str,
    salt: int = 0x5EED,
    write: Callable[[ak.Array, Path, dict[str, Any]], object] | None = None,
) -> tuple[dict[str, Path], dict[str, int]]:
    """Split each process's chunks alone into train/val/test, mix, shuffle and write the splits.

    ``prepare(process, records)`` adds the labels; ``write(records, path, provenance)`` writes a
    split (``io.write`` by default).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, salt]))
    parts: dict[str, list[ak.Array]] = {split: [] for split in SPLITS}
    for name in names:
        chunks = [io.open_source(task.path).read() for task in plan if task.process == name]
        records = prepare(name, ak.concatenate(chunks) if len(chunks) > 1 else chunks[0])
        order = rng.permutation(len(records))
        for split, (low, high) in split_bounds(len(records), fractions).items():
            parts[split].append(records[order[low:high]])
    files, counts = {}, {}
    for split in SPLITS:
        mixture = ak.concatenate(parts[split])
        if len(mixture) == 0:
            continue
        mixture = mixture[rng.permutation(len(mixture))]
        path = output_dir / f"{split}{suffix}"
        split_provenance = {**provenance, "split": split, count_key: len(mixture)}
        if write is None:
            io.write(mixture, path, provenance=split_provenance)
        else:
            write(mixture, path, split_provenance)
        files[split], counts[split] = path, len(mixture)
    return files, counts


def _provenance(
    names: list[str],
    jets_per_process: int,
    *,
    seed: int,
    chunk_size: int,
    fractions: tuple[float, float, float],
    options: GeneratorOptions,
) -> dict[str, Any]:
    provenance = base_provenance(
        "heplearn.generate",
        names,
        count_key="jets_per_process",
        count=jets_per_process,
        seed=seed,
        chunk_size=chunk_size,
        fractions=fractions,
        options=options.describe(),
        settings=lambda name: pythia_settings(get_card(name), options, 0),
    )
    provenance["radius"] = {name: options.radius_for(get_card(name)) for name in names}
    return provenance


def base_provenance(
    generator: str,
    names: list[str],
    *,
    count_key: str,
    count: int,
    seed: int,
    chunk_size: int,
    fractions: tuple[float, float, float],
    options: dict[str, Any],
    settings: Callable[[str], list[str]],
) -> dict[str, Any]:
    """The provenance every generated file carries: settings, seeds, versions, references."""
    n_chunks = math.ceil(count / chunk_size)
    return {
        "generator": generator,
        "heplearn_version": heplearn.__version__,
        "packages": _package_versions(),
        "processes": names,
        count_key: count,
        "seed": seed,
        "chunk_size": chunk_size,
        "split_fractions": dict(zip(SPLITS, fractions, strict=True)),
        "options": options,
        "pythia_settings": {
            name: [line for line in settings(name) if not line.startswith("Random:seed ")] for name in names
        },
        "chunk_seeds": {name: [chunk_seeds(seed, name, index)[0] for index in range(n_chunks)] for name in names},
        "references": [
            "Pythia 8.3: Bierlich et al., SciPost Phys. Codebases 8 (2022), arXiv:2203.11601",
            "FastJet: Cacciari, Salam, Soyez, EPJC 72 (2012) 1896, arXiv:1111.6097",
        ],
    }


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions
