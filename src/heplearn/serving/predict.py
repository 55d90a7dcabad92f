"""Apply a trained run to ROOT, Parquet or HDF5 files of any size, chunk by chunk, locally or with Dask.

``predict_files(run_dir, files, output_dir)`` writes one output per input file: ``score_<class>``
(``output_<name>`` for regression) and the run's observers, one row per input entry in the input's
order. Entries that fail the run's selection get NaN scores, so a ROOT output is a friend tree of
its input (same tree name, same entry count and order: ``tree.AddFriend("tree", "x.scores.root")``).
ROOT inputs give ROOT outputs and the others Parquet, unless ``output_format`` says otherwise.

The model runs in onnxruntime (``engine="onnx"``, the exported ``model.onnx``) or in PyTorch
(``engine="torch"``, any model, also cuts and the likelihood); ``engine="auto"`` (the default)
runs the engine that ``heplearn export`` measured as the faster on chunks of jets on its
machine (``engine_choice``), onnxruntime when nothing was measured, and logs which and why.
Files are the unit of work: each output is written atomically, with its provenance (the run,
a SHA-256 of the model's files, the input's path, size and modification time, the engine and
heplearn's version). A rerun skips an output whose provenance matches exactly; one made by
another run, model or input is refused (a ``DataError`` naming the file and the run that made
it) unless ``overwrite``. A failed run
removes the output folder it created, if it stayed empty. ``workers=N`` runs them on a Dask
``LocalCluster`` of N single-threaded processes, ``scheduler="tcp://host:8786"`` on an existing
Dask cluster; the results are the same as in one process.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

from heplearn import __version__
from heplearn.data.config import DataConfig
from heplearn.data.files import atomic_path
from heplearn.data.io import PROVENANCE_KEY, Source, open_source
from heplearn.data.schema import DEFAULT_TREE
from heplearn.data.transform import ChunkTransformer
from heplearn.errors import ConfigError, DataError
from heplearn.features.particles import VariableTable
from heplearn.optional import optional_import
from heplearn.progress import progress_bar
from heplearn.runs import ONNX_FILE, RunDirectory
from heplearn.serving.engine_choice import AUTO, METADATA_KEY, REQUESTS, EngineChoice, resolve_engine
from heplearn.serving.engines import Engine, OnnxEngine, TorchEngine
from heplearn.tasks import task_from_info

log = logging.getLogger(__name__)

ENGINES = REQUESTS  # auto (the recorded faster engine), onnx, torch
OUTPUT_FORMATS = ("parquet", "root")
SUFFIXES = {"parquet": ".scores.parquet", "root": ".scores.root"}


@dataclass(frozen=True)
class RunInfo:
    """What prediction needs to know about a run, read from its files (no model loaded)."""

    run_dir: Path
    data: DataConfig
    output_columns: list[str]

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> RunInfo:
        """What prediction needs of a finished run directory; an unfinished one is an error naming it."""
        run = RunDirectory(Path(run_dir))
        config, info = run.read_finished()
        return cls(run.path, config.data, task_from_info(info, str(run.model_info_file)).output_names)


# --------------------------------------------------------------------------- public function
def predict_files(
    run_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    engine: str = AUTO,
    workers: int = 0,
    scheduler: str | None = None,
    *,
    output_format: str | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Score every entry of ``files`` with the run's model; returns the output paths (input order).

    ``engine``: ``auto`` (the faster engine recorded at export for batches of ``chunk_size``
    jets), ``onnx`` or ``torch``. An existing output is kept when its provenance matches this
    run, model, input and engine, replaced when ``overwrite``, and otherwise refused with a
    ``DataError``.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise ConfigError(f"output format {output_format!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    if workers < 0:
        raise ConfigError(f"workers must be 0 or more, got {workers}")
    if not files:
        raise DataError("no input files given")
    if workers or scheduler is not None:
        optional_import("dask.distributed", "predicting on Dask workers (--workers, --dask)")
    run = RunInfo.read(run_dir)
    chunk = chunk_size or run.data.chunk_size
    engine = choose_engine(run.run_dir, engine, chunk)
    tasks = _plan_outputs(files, Path(output_dir), output_format)
    fingerprint = model_fingerprint(run.run_dir, engine)
    todo = [
        (file, output)
        for file, output in tasks
        if not _reusable(output, output_provenance(run.run_dir, file, engine, fingerprint), overwrite)
    ]
    created = not Path(output_dir).exists()
    try:
        if scheduler is None and workers == 0:
            for file, output in todo:
                predict_file(run.run_dir, file, output, engine, chunk, progress=progress)
        else:
            _predict_distributed(run.run_dir, todo, engine, chunk, workers, scheduler, progress)
    except BaseException:
        if created and Path(output_dir).is_dir() and not any(Path(output_dir).iterdir()):
            Path(output_dir).rmdir()  # nothing half-written left behind
        raise
    return [output for _, output in tasks]


def choose_engine(run_dir: str | os.PathLike[str], requested: str = AUTO, batch_size: int = 4096) -> str:
    """The engine that scores batches of ``batch_size`` jets of the run: ``requested`` unless
    ``auto``, else the faster one recorded at export (``engine_choice.resolve_engine``); logged."""
    run_dir = Path(run_dir)
    onnx_path = run_dir / ONNX_FILE
    if requested == "onnx" and not onnx_path.is_file():
        raise DataError(
            f"{run_dir}: no {ONNX_FILE}; export the run first (heplearn export {run_dir}) or use the torch engine"
        )
    choice = None
    if onnx_path.is_file() and requested == AUTO:
        from heplearn.serving.export import read_metadata

        recorded = read_metadata(onnx_path).get(METADATA_KEY)
        choice = None if recorded is None else EngineChoice.from_json(recorded, str(onnx_path))
    engine, reason = resolve_engine(
        requested, choice, batch_size, onnx_available=onnx_path.is_file(), what=str(run_dir)
    )
    log.info("%s: scoring with %s", run_dir, reason)
    return engine


def model_fingerprint(run_dir: str | os.PathLike[str], engine: str) -> str:
    """SHA-256 of the files the ``engine`` runs: ``model.onnx``, or the run's model info and weights."""
    run = RunDirectory(Path(run_dir))
    if engine == "onnx":
        files = [run.onnx_file]
    else:
        files = [run.model_info_file, run.weights_file]
        if run.classical_model_dir.is_dir():
            files += sorted(path for path in run.classical_model_dir.rglob("*") if path.is_file())
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def output_provenance(
    run_dir: str | os.PathLike[str], file: str | os.PathLike[str], engine: str, fingerprint: str | None = None
) -> dict[str, Any]:
    """What an output of ``file`` by the run's model records, and what a reuse must match exactly."""
    status = Path(file).stat()
    return {
        "heplearn_version": __version__,
        "run": str(Path(run_dir).resolve()),
        "model_sha256": fingerprint or model_fingerprint(run_dir, engine),
        "input": str(Path(file).resolve()),
        "input_size": status.st_size,
        "input_mtime_ns": status.st_mtime_ns,
        "engine": engine,
    }


def _reusable(output: Path, wanted: dict[str, Any], overwrite: bool) -> bool:
    """True to keep ``output`` as it is; False to (re)write it; a ``DataError`` for a foreign one."""
    if not output.exists():
        return False
    try:
        found = open_source(output).provenance()
    except Exception:  # unreadable or not heplearn's: its provenance is unknown
        found = {}
    if found == wanted:
        log.info("%s: made by this run from this input, kept", output)
        return True
    if overwrite:
        log.info("%s: replaced (overwrite)", output)
        return False
    differences = [key for key in wanted if found.get(key) != wanted[key]]
    made_by = f"run {found['run']} from {found.get('input', '?')}" if "run" in found else "an unknown producer"
    raise DataError(
        f"{output} exists and was made by {made_by}, not by this run from this input "
        f"(differs in: {', '.join(differences)}); pass --overwrite to replace it, or another --output"
    )


def predict_file(
    run_dir: str | os.PathLike[str],
    file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    engine: str = "onnx",
    chunk_size: int | None = None,
    *,
    threads: int | None = None,
    progress: bool = False,
) -> Path:
    """Score one file into ``output`` (Parquet or ROOT by its suffix), written atomically, with
    ``engine`` (``onnx``, ``torch``, or ``auto``: see ``choose_engine``)."""
    run = RunInfo.read(run_dir)
    if engine == AUTO:
        engine = choose_engine(run.run_dir, AUTO, chunk_size or run.data.chunk_size)
    model = _engine(str(run.run_dir), engine, threads)
    scorer = _FileScorer(run, Path(file))
    output = Path(output)
    writer_class = _RootWriter if output.suffix == ".root" else _ParquetWriter
    provenance = output_provenance(run.run_dir, file, engine)
    with (
        atomic_path(output) as temporary,
        writer_class(temporary, scorer.table_name, provenance) as writer,
        progress_bar(
            total=scorer.source.num_entries, unit="jets", desc=Path(file).name, disable=not progress, leave=False
        ) as bar,
    ):
        for columns in scorer.chunks(model, chunk_size or run.data.chunk_size):
            writer.write(columns)
            bar.update(len(next(iter(columns.values()))))
    log.info("%s: %d entries scored into %s", file, scorer.source.num_entries, output)
    return output


# --------------------------------------------------------------------------- scoring one file
class _FileScorer:
    """One input file read in chunks: selection, observers of every entry, scores of the selected ones."""

    def __init__(self, run: RunInfo, path: Path) -> None:
        self.run = run
        self.path = path
        data = run.data
        # selection applied here (so failing entries get NaN), weights never needed
        self.transform = ChunkTransformer(data, labelled=False)
        self.source: Source = open_source(path, data.treename)
        self.fields = self.transform.fields_to_read(self.source.field_names(), str(path))

    @property
    def table_name(self) -> str:
        return self.source.table_name or DEFAULT_TREE

    def chunks(self, model: Engine, chunk_size: int) -> Iterator[dict[str, np.ndarray]]:
        bounds = self.source.chunk_boundaries()
        for low, high in itertools.pairwise(bounds):
            for start in range(low, high, chunk_size):
                yield self._score(model, start, min(start + chunk_size, high))

    def _score(self, model: Engine, start: int, stop: int) -> dict[str, np.ndarray]:
        data = self.run.data
        where = f"{self.path} (entries {start}-{stop})"
        chunk = self.source.read(self.fields, start, stop)
        table = VariableTable(chunk, data.new_variable_expressions)
        passed = np.ones(len(chunk), bool)
        if data.selection:
            passed = np.asarray(
                ChunkTransformer._as_numpy(data.expressions["selection"].evaluate(table), "selection", where), bool
            )
        scores = np.full((len(chunk), len(self.run.output_columns)), np.nan, np.float32)
        if passed.any():
            # the transformer applies the selection itself, to the chunk as read (so that an
            # error names the file's entry): its jets are those of ``passed``, in order
            arrays = self.transform(chunk, where)
            scores[passed] = model.predict(arrays)
        columns = {name: scores[:, index] for index, name in enumerate(self.run.output_columns)}
        for name in data.observers:
            columns[name] = np.asarray(ChunkTransformer._as_numpy(table[name], name, where))
        return columns


# --------------------------------------------------------------------------- writers
class _ParquetWriter:
    def __init__(self, path: Path, table_name: str, provenance: dict[str, Any]) -> None:
        self.path = path
        self.metadata = {PROVENANCE_KEY.encode(): json.dumps(provenance).encode()}
        self.writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _ParquetWriter:
        return self

    def write(self, columns: dict[str, np.ndarray]) -> None:
        table = pa.table(columns)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema.with_metadata(self.metadata), compression="zstd")
        self.writer.write_table(table.replace_schema_metadata(self.metadata))

    def __exit__(self, *exc: object) -> None:
        if self.writer is None:  # an empty input: an empty table with no columns would be useless
            pq.write_table(pa.table({}).replace_schema_metadata(self.metadata), self.path)
        else:
            self.writer.close()


class _RootWriter:
    def __init__(self, path: Path, table_name: str, provenance: dict[str, Any]) -> None:
        self.file = uproot.recreate(path)
        self.file[PROVENANCE_KEY] = json.dumps(provenance)
        self.table_name = table_name
        self.tree: Any = None

    def __enter__(self) -> _RootWriter:
        return self

    def write(self, columns: dict[str, np.ndarray]) -> None:
        if self.tree is None:
            self.tree = self.file.mktree(self.table_name, {name: values.dtype for name, values in columns.items()})
        self.tree.extend(columns)

    def __exit__(self, *exc: object) -> None:
        self.file.close()


# --------------------------------------------------------------------------- planning and Dask
def _plan_outputs(
    files: Sequence[str | os.PathLike[str]], output_dir: Path, output_format: str | None
) -> list[tuple[Path, Path]]:
    tasks: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for file in map(Path, files):
        if not file.is_file():
            raise DataError(f"{file}: no such file")
        kind = output_format or ("root" if file.suffix.lower() == ".root" else "parquet")
        output = output_dir / (file.name.split(".")[0] + SUFFIXES[kind])
        if output in seen:
            raise DataError(f"{file} and {seen[output]} would both write {output}; rename one of them")
        seen[output] = file
        tasks.append((file, output))
    return tasks


@functools.lru_cache(maxsize=4)
def _engine(run_dir: str, engine: str, threads: int | None) -> Engine:
    """One model per process and run (Dask workers keep theirs between files)."""
    if engine == "onnx":
        return OnnxEngine(Path(run_dir) / ONNX_FILE, threads)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return TorchEngine(run_dir)


def _predict_distributed(
    run_dir: Path,
    tasks: list[tuple[Path, Path]],
    engine: str,
    chunk_size: int,
    workers: int,
    scheduler: str | None,
    progress: bool,
) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        # one thread per task on a LocalCluster (its workers have one core each); the cluster's own choice else
        threads = 1 if cluster is not None else None
        futures = [
            client.submit(
                predict_file, str(run_dir), str(file), str(output), engine, chunk_size, threads=threads, pure=False
            )
            for file, output in tasks
        ]
        with progress_bar(total=len(futures), unit="files", disable=not progress) as bar:
            for future in as_completed(futures):
                future.result()  # re-raises a worker's error here
                bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
