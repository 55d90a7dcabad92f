"""Classifier-based reweighting (DCTR, Andreassen & Nachman, arXiv:1907.08209), plain and parametrised.

A classifier f(x) trained to tell a *target* sample from a *source* sample estimates
f = N₁ p₁(x) / (N₁ p₁(x) + N₀ p₀(x)); by the likelihood-ratio trick the source events weighted by

    w(x) = f / (1 − f) · N₀ / N₁ ≈ p₁(x) / p₀(x)

follow the target's distribution (arXiv:1907.08209, eq. 2; N₀ and N₁ the summed weights of the
source and target training events). ``reweight`` trains that classifier (any torch model of the
zoo: the MLP on a table, PFN / ParticleNet / ParT on particles) on the ``Reweighting`` task with
``heplearn.training.trainer.fit``, in ``folds`` folds so that every source event gets its weight from
a model that never saw it, and writes the weights as friend files of the source files (the format
``heplearn predict`` writes: one row per entry, in entry order, NaN for entries the selection drops).

The run directory::

    runs/<name>/reweight.json        what was done: files, folds, options, summary (written last)
    runs/<name>/config.yaml          the resolved run config
    runs/<name>/fold-<k>/            one training run per fold (config, preprocessing, model, metrics);
                                     with an ensemble of m: fold-<k>-<j>/, j = 0 … m − 1
    runs/<name>/model/               the parametrised classifier
    runs/<name>/weights/<stem>.weights.parquet   the output weights (also beside each source file)
    runs/<name>/report/report.html   the closure report (``heplearn.methods.reweighting_report``)

The parametrised version lives in ``heplearn.methods.reweighting_parametrised``, the closure report in
``heplearn.methods.reweighting_report``. ``kfold_assignment``, ``read_sample``, ``friend_tables`` and
``write_friend`` are small public functions that other classifier-reweighting methods (OmniFold) can reuse.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import uproot
from safetensors.torch import save_file

from heplearn import __version__
from heplearn.data.config import DataConfig, LabelConfig, expand_files
from heplearn.data.files import atomic_path, write_text_atomic
from heplearn.data.in_memory import InMemoryJets
from heplearn.data.io import PROVENANCE_KEY, open_source
from heplearn.data.jets import JetArrays, RaggedJets
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.schema import DEFAULT_TREE
from heplearn.data.transform import ChunkTransformer
from heplearn.errors import ConfigError, DataError
from heplearn.features.particles import VariableTable
from heplearn.models import registry
from heplearn.progress import progress_bar
from heplearn.run_config import RunConfig
from heplearn.runs import RunDirectory
from heplearn.trained_model import TrainedModel
from heplearn.training import checkpoint as ckpt
from heplearn.training.from_config import fit_torch, make_task, model_info
from heplearn.training.trainer import BatchSource, InMemorySource

log = logging.getLogger(__name__)

CLASS_NAMES = ["target", "source"]  # the Reweighting task's classes: the target first (signal_index 0)
TARGET, SOURCE = 0, 1
SETTINGS_FILE = "reweight.json"
FIT_FILE = "fit.json"
FRIEND_SUFFIXES = {"parquet": ".weights.parquet", "root": ".weights.root"}
Normalisation = Literal["source", "target", "none"]
NORMALISATIONS = ("source", "target", "none")


# --------------------------------------------------------------------------- samples
@dataclass
class Sample:
    """The events of one file set that pass the data config's selection, and where each came from.

    ``arrays`` are raw (unstandardised) with the data config's weights (ones without ``data.weights``);
    event ``i`` is entry ``entry[i]`` of ``files[file_index[i]]``.
    """

    name: str
    arrays: JetArrays
    files: list[Path]
    file_index: np.ndarray
    entry: np.ndarray
    entries: list[int]
    table_names: list[str]
    fields: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arrays)

    @property
    def total_weight(self) -> float:
        """The sample's summed weight."""
        return float(np.sum(self.arrays.weight, dtype=np.float64))


def reading_config(data: DataConfig, extra_observers: Sequence[str] = ()) -> DataConfig:
    """``data`` as reweighting reads it: no labels (the sample says what an event is), its weights,
    and ``extra_observers`` (the generator parameters of a parametrised target) among the observers."""
    observers = [*data.observers, *(name for name in extra_observers if name not in data.observers)]
    return data.model_copy(update={"labels": LabelConfig(type="none"), "observers": observers})


def read_sample(
    files: Sequence[str | os.PathLike[str]],
    data: DataConfig,
    name: str,
    extra_observers: Sequence[str] = (),
    progress: bool = False,
) -> Sample:
    """Every event of ``files`` that passes ``data``'s selection, read with ``data``'s inputs.

    Parameters
    ----------
    files : sequence of path-like
        ROOT, Parquet or HDF5 files (globs are expanded).
    data : DataConfig
        The data config; its labels are ignored (the sample is the label).
    name : str
        What the sample is called in messages ("source", "target").
    extra_observers : sequence of str
        Fields to read per event beside the data config's observers (parametrised targets).
    progress : bool
        Show a progress bar over the files.
    """
    paths = expand_files([str(file) for file in files], name)
    if not paths:
        raise DataError(f"{name}: no files given")
    config = reading_config(data, extra_observers)
    transformer = ChunkTransformer(config)
    parts: list[RaggedJets] = []
    file_index, entry, entries, tables = [], [], [], []
    fields: dict[str, str] = {}
    for index, path in enumerate(
        progress_bar(paths, desc=f"reading {name}", unit="file", disable=not progress, leave=False)
    ):
        source = open_source(path, config.treename)
        read = transformer.fields_to_read(source.field_names(), str(path))
        types = {info.name: info.type for info in source.fields() if info.name in read}
        if fields and types != fields:
            raise DataError(_field_difference(f"{name} file {paths[0]}", fields, f"{name} file {path}", types))
        fields = types
        bounds = source.chunk_boundaries()
        for low, high in itertools.pairwise(bounds):
            for start in range(low, high, config.chunk_size):
                stop = min(start + config.chunk_size, high)
                where = f"{path} (entries {start}-{stop})"
                chunk = source.read(read, start, stop)
                passed = _selected(chunk, config, where)
                parts.append(transformer.ragged(chunk[passed], where))
                kept = np.flatnonzero(passed)
                file_index.append(np.full(len(kept), index, np.int64))
                entry.append(kept + start)
        entries.append(source.num_entries)
        tables.append(source.table_name or DEFAULT_TREE)
    jets = RaggedJets.concatenate(parts)
    if len(jets) == 0:
        where = f"data.selection {config.selection!r}" if config.selection else "reading"
        raise DataError(f"{name}: no events left after {where} in {', '.join(map(str, paths))}")
    return Sample(
        name, jets.padded(), paths, np.concatenate(file_index), np.concatenate(entry), entries, tables, fields
    )


def _selected(chunk: ak.Array, config: DataConfig, where: str) -> np.ndarray:
    if not config.selection:
        return np.ones(len(chunk), bool)
    table = VariableTable(chunk, config.new_variable_expressions)
    values = config.expressions["selection"].evaluate(table)
    if isinstance(values, ak.Array):
        if values.ndim != 1:
            raise DataError(f"{where}: data.selection is per-particle; a per-event value is needed")
        values = ak.to_numpy(values)
    return np.broadcast_to(np.asarray(values, bool), (len(chunk),)).copy()


def _field_difference(
    first: str, first_fields: Mapping[str, str], second: str, second_fields: Mapping[str, str]
) -> str:
    only_first = sorted(set(first_fields) - set(second_fields))
    only_second = sorted(set(second_fields) - set(first_fields))
    retyped = sorted(
        name for name in set(first_fields) & set(second_fields) if first_fields[name] != second_fields[name]
    )
    parts = []
    if only_first:
        parts.append(f"only {first} has {', '.join(only_first)}")
    if only_second:
        parts.append(f"only {second} has {', '.join(only_second)}")
    for name in retyped:
        parts.append(f"{name!r} is {first_fields[name]} in {first} but {second_fields[name]} in {second}")
    return "the samples have different fields: " + "; ".join(parts) + " (read both with one data config)"


def check_same_fields(first: Sample, second: Sample, ignore: Sequence[str] = ()) -> None:
    """A ``DataError`` unless both samples were read from the same fields with the same types
    (``ignore``: fields only one of them is read for, such as a parametrised target's parameters)."""
    first_fields = {name: kind for name, kind in first.fields.items() if name not in ignore}
    second_fields = {name: kind for name, kind in second.fields.items() if name not in ignore}
    if first_fields != second_fields:
        raise DataError(
            _field_difference(
                f"{first.name} {first.files[0]}", first_fields, f"{second.name} {second.files[0]}", second_fields
            )
        )


def check_total_weight(sample: Sample) -> None:
    """A ``DataError`` when a sample's summed weight is zero, negative or not finite."""
    total = sample.total_weight
    if not (math.isfinite(total) and total > 0):
        raise DataError(
            f"{sample.name}: the summed event weight is {total:g} over {len(sample)} events "
            f"({', '.join(map(str, sample.files))}); reweighting needs a positive total (check "
            "data.weights)"
        )


# --------------------------------------------------------------------------- folds
def kfold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    """The fold (0 … folds − 1) of each of ``n`` events: a seeded permutation dealt round-robin,
    so the folds differ in size by at most one event.

    Example:
    >>> np.bincount(kfold_assignment(10, 3, seed=0)).tolist()
    [4, 3, 3]
    """
    if folds < 1:
        raise ConfigError(f"folds must be 1 or more, got {folds}")
    assignment = np.empty(n, np.int64)
    assignment[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return assignment


def labelled(target: JetArrays, source: JetArrays) -> JetArrays:
    """Target and source events in one set, labelled ``TARGET`` (0) and ``SOURCE`` (1), with the
    observers both have."""
    shared = set(target.observers) & set(source.observers)
    parts = [
        JetArrays(
            arrays.inputs,
            arrays.mask,
            arrays.label,
            arrays.weight,
            {name: values for name, values in arrays.observers.items() if name in shared},
        )
        for arrays in (target, source)
    ]
    joined = JetArrays.concatenate(parts)
    joined.label = np.concatenate([np.full(len(target), TARGET, np.int64), np.full(len(source), SOURCE, np.int64)])
    return joined


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of ``n`` events, ``fraction`` of them for validation."""
    order = np.random.default_rng(seed).permutation(n)
    cut = round(fraction * n)
    return np.sort(order[cut:]), np.sort(order[:cut])


# --------------------------------------------------------------------------- one classifier
def train_classifier(
    config: RunConfig,
    train: JetArrays,
    val: JetArrays | None,
    run_dir: Path,
    progress: bool = True,
    batches: Callable[[InMemoryJets, Preprocessing], BatchSource] | None = None,
) -> TrainedModel:
    """Fit the Reweighting task (target vs source) on labelled arrays; ``run_dir`` becomes a run.

    The run directory is a training run like any other (``config.yaml``, ``preprocessing.json``,
    ``metrics.jsonl``, ``model.safetensors``, ``model.json``), so ``TrainedModel.load`` applies it.
    ``batches`` makes the training batch source from the standardised training set and its
    preprocessing (default: ``InMemorySource``, shuffled every epoch).
    """
    run = RunDirectory.create(run_dir.parent, run_dir.name, "fold")
    run.write_config(config, {"torch_version": str(torch.__version__)})
    preprocessing = Preprocessing.fit(train, config.data, CLASS_NAMES)
    preprocessing.save(run.preprocessing_file)
    training = config.training
    task = make_task(config, CLASS_NAMES, train.label, train.weight)
    train_set = InMemoryJets(train, CLASS_NAMES, preprocessing, config.data)
    train_source = (
        InMemorySource(train_set, training.batch_size, True, training.seed)
        if batches is None
        else batches(train_set, preprocessing)
    )
    val_source = None
    if val is not None and len(val):
        val_source = InMemorySource(
            InMemoryJets(val, CLASS_NAMES, preprocessing, config.data), max(training.batch_size, 1024), False, 0
        )
    network, _ = fit_torch(config, task, train_source, val_source, run.path, progress)
    best = run.checkpoints / ckpt.BEST / "model.safetensors"
    weights = ckpt.load_weights(best) if val_source is not None and best.is_file() else ckpt.model_weights(network)
    network.load_state_dict(weights)
    network.eval()
    with atomic_path(run.weights_file) as temporary:
        save_file(weights, temporary)
    run.write_model_info(model_info(config, task))
    return TrainedModel(config, task, preprocessing, network=network, run_dir=run.path)


def reweighting_config(config: RunConfig, data: DataConfig | None = None) -> RunConfig:
    """``config`` for the Reweighting task (``labels.type: reweighting``, classes [target, source])."""
    if not registry.is_torch_model(config.model.name):
        raise ConfigError(
            f"model.name: {config.model.name} is not a network; reweighting trains a torch model "
            f"of the zoo ({', '.join(n for n in registry.model_names() if registry.is_torch_model(n))})"
        )
    data = (data or config.data).model_copy(
        update={
            "labels": LabelConfig(type="reweighting", classes=list(CLASS_NAMES)),
            "train": [],
            "val": [],
            "test": [],
        }
    )
    registry.build_network(config.model, data, 2)  # the model reads what the data provides
    return config.model_copy(update={"data": data})


def use_threads(config: RunConfig) -> None:
    """Set torch's CPU threads to ``training.threads`` when the config gives it."""
    if config.training.threads:
        torch.set_num_threads(config.training.threads)


# --------------------------------------------------------------------------- weights
def finish_weights(
    ratio: np.ndarray,
    base_weights: np.ndarray,
    clip: tuple[float | None, float | None],
    normalise: Normalisation,
    target_total: float,
) -> np.ndarray:
    """Per-event weights from density ratios: clipped to ``clip``, then normalised.

    ``normalise``: ``source`` scales Σ base·w to Σ base (the source keeps its normalisation),
    ``target`` to ``target_total``, ``none`` leaves w = f/(1 − f) · N₀/N₁ as it is.
    """
    if normalise not in NORMALISATIONS:
        raise ConfigError(f"normalise {normalise!r}: choose one of {', '.join(NORMALISATIONS)}")
    low, high = clip
    if low is not None and high is not None and low > high:
        raise ConfigError(f"clip: the lower bound {low:g} is above the upper bound {high:g}")
    weights = np.clip(ratio.astype(np.float64), low, high) if (low is not None or high is not None) else ratio
    weights = np.asarray(weights, np.float64)
    if normalise == "none":
        return weights
    total = float(np.sum(base_weights * weights))
    if not (math.isfinite(total) and total > 0):
        raise DataError(
            f"the reweighted source has a summed weight of {total:g}; it cannot be normalised "
            "(check the clipping bounds and data.weights)"
        )
    wanted = float(np.sum(base_weights, dtype=np.float64)) if normalise == "source" else target_total
    return weights * (wanted / total)


@dataclass(frozen=True)
class WeightOptions:
    """What becomes of the density ratios: clipping, normalisation, friend files and the report.

    ``clip``: the bounds weights are clipped to (OmniFold's ``clip_min`` / ``clip_max``);
    ``normalise``: Σw scaled to the source's summed weight (``source``), the target's (``target``)
    or left as f/(1 − f) · N₀/N₁ (``none``); ``friend_format``: ``parquet`` or ``root`` (default: ROOT
    for ROOT sources); ``beside_source``: also write each friend file beside its source file (it is
    always written in the run's ``weights/``); ``report``: write the closure report.
    """

    clip: tuple[float | None, float | None] = (None, None)
    normalise: Normalisation = "source"
    friend_format: str | None = None
    beside_source: bool = True
    report: bool = True

    def check(self) -> None:
        """A ``ConfigError`` for a bad option, before anything is read or trained."""
        finish_weights(np.ones(1), np.ones(1), self.clip, self.normalise, 1.0)
        _friend_format([], self.friend_format)

    def apply(self, ratio: np.ndarray, source: Sample, target_total: float) -> np.ndarray:
        """The final weights of ``source``'s events from their density ratios."""
        return finish_weights(ratio, source.arrays.weight.astype(np.float64), self.clip, self.normalise, target_total)

    def plan(self, sample: Sample, run: RunDirectory) -> list[list[Path]]:
        """The friend files to write for ``sample``: in the run's ``weights/`` (and beside the sources)."""
        return plan_friends(sample, [run.path / "weights", *([None] if self.beside_source else [])], self.friend_format)


DEFAULT_OPTIONS = WeightOptions()


def density_ratio(model: TrainedModel, arrays: JetArrays, prior: float, batch_size: int = 8192) -> np.ndarray:
    """f / (1 − f) · N₀ / N₁ for every event of ``arrays``: the Reweighting task's output times the prior
    ratio ``prior`` = N₀ / N₁ of the training events (arXiv:1907.08209, eq. 2)."""
    return model.predict(arrays, batch_size)[:, 0].astype(np.float64) * prior


# --------------------------------------------------------------------------- friend files
def friend_tables(sample: Sample, columns: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per file of ``sample``: ``columns`` (one value per event) spread over every entry of the file,
    in entry order; entries the selection dropped get NaN (integers: −1)."""
    tables = []
    for index, entries in enumerate(sample.entries):
        mine = sample.file_index == index
        table = {}
        for name, column in columns.items():
            values = np.asarray(column)
            floating = np.issubdtype(values.dtype, np.floating)
            full = np.full(entries, np.nan if floating else -1, values.dtype)
            full[sample.entry[mine]] = values[mine]
            table[name] = full
        tables.append(table)
    return tables


def friend_path(source_file: Path, directory: Path, file_format: str) -> Path:
    """Where the friend file of ``source_file`` goes in ``directory``: ``<stem>.weights.<format>``."""
    return directory / (source_file.name.split(".")[0] + FRIEND_SUFFIXES[file_format])


def write_friend(path: Path, columns: Mapping[str, np.ndarray], table_name: str, provenance: Mapping[str, Any]) -> Path:
    """One friend file (Parquet, or a ROOT tree named ``table_name`` by the suffix), written atomically.

    The layout of ``heplearn predict``'s outputs: one row per entry of the input file, in its order,
    so a ROOT output is a friend tree (``tree.AddFriend("tree", "x.weights.root")``).
    """
    metadata = json.dumps(dict(provenance), default=str)
    with atomic_path(path) as temporary:
        if path.suffix == ".root":
            with uproot.recreate(temporary) as file:
                file[PROVENANCE_KEY] = metadata
                file.mktree(table_name, {name: values.dtype for name, values in columns.items()})
                file[table_name].extend(dict(columns))
        else:
            table = pa.table(dict(columns))
            pq.write_table(table.replace_schema_metadata({PROVENANCE_KEY: metadata}), temporary, compression="zstd")
    return path


def _friend_format(files: Sequence[Path], file_format: str | None) -> list[str]:
    if file_format is not None and file_format not in FRIEND_SUFFIXES:
        raise ConfigError(f"friend format {file_format!r}: choose one of {', '.join(FRIEND_SUFFIXES)}")
    return [file_format or ("root" if file.suffix.lower() == ".root" else "parquet") for file in files]


def plan_friends(sample: Sample, directories: Sequence[Path | None], file_format: str | None) -> list[list[Path]]:
    """Per source file, the friend paths to write: one per directory (``None``: beside the file).

    Files of one stem from different folders (``a/train.parquet``, ``b/train.parquet``) are told
    apart in a shared directory by their place in the list: ``<k>-train.weights.parquet``.
    """
    formats = _friend_format(sample.files, file_format)
    stems = [file.name.split(".")[0] for file in sample.files]
    numbered = len(set(stems)) < len(stems)
    plans: list[list[Path]] = []
    seen: dict[Path, Path] = {}
    for index, (file, kind) in enumerate(zip(sample.files, formats, strict=True)):
        paths = [
            friend_path(file, file.parent, kind)
            if directory is None
            else friend_path(file, directory, kind).with_name(
                (f"{index}-" if numbered else "") + friend_path(file, directory, kind).name
            )
            for directory in directories
        ]
        for path in paths:
            if path in seen:
                raise DataError(f"{file} and {seen[path]} would both write {path}; rename one of them")
            seen[path] = file
        plans.append(paths)
    return plans


def write_friends(
    sample: Sample, columns: Mapping[str, np.ndarray], plans: list[list[Path]], provenance: Mapping[str, Any]
) -> list[Path]:
    """Write ``columns`` as the friend files ``plans`` lists; returns every path written."""
    written = []
    for index, table in enumerate(friend_tables(sample, columns)):
        for path in plans[index]:
            write_friend(path, table, sample.table_names[index], {**provenance, "input": str(sample.files[index])})
            written.append(path)
    return written


# --------------------------------------------------------------------------- plain DCTR
@dataclass
class ReweightResult:
    """What ``reweight`` made: the run, the source and target samples, each source event's weight."""

    run_dir: Path
    source: Sample
    target: Sample
    weights: np.ndarray  # final per-event weights of the source (clipped, normalised)
    raw_weights: np.ndarray  # f/(1 − f) · N₀/N₁ before clipping and normalisation
    fold: np.ndarray
    friends: list[Path]
    summary: dict[str, Any]


def reweight(
    config: RunConfig,
    source_files: Sequence[str | os.PathLike[str]],
    target_files: Sequence[str | os.PathLike[str]],
    *,
    folds: int = 5,
    val_fraction: float = 0.2,
    ensemble: int = 1,
    options: WeightOptions = DEFAULT_OPTIONS,
    name: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    progress: bool = True,
) -> ReweightResult:
    """DCTR: weights that morph the source sample into the target one, each from a held-out fold.

    Parameters
    ----------
    config : RunConfig
        ``data`` (inputs, selection, weights, observers: how both samples are read; its files and
        labels are not used), ``model`` (any torch model of the zoo) and ``training``.
    source_files, target_files : sequence of path-like
        The two file sets; the source gets the weights.
    folds : int
        k of the k-fold training (at least 2): the weight of an event in fold i comes from the model
        trained on the other folds.
    val_fraction : float
        Share of each fold's training events kept for validation (early stopping, best epoch).
    ensemble : int
        Classifiers per fold (seeds ``training.seed`` + 0 … m − 1, the same events); an event's
        weight is exp of their mean log f/(1 − f), which averages out the noise of one training
        (the ensembling of arXiv:1907.08209 and of OmniFold).
    options : WeightOptions
        Clipping, normalisation, the friend files' format and place, the report.
    name, runs_dir : str, path-like
        The run directory ``runs_dir/name`` (default name: ``reweight-<model>-<time>``).
    progress : bool
        Progress bars.

    Returns
    -------
    ReweightResult
    """
    if folds < 2:
        raise ConfigError(
            f"folds must be 2 or more (every event's weight comes from a model that did not see it), got {folds}"
        )
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if ensemble < 1:
        raise ConfigError(f"ensemble must be 1 or more classifiers per fold, got {ensemble}")
    run_config = reweighting_config(config)
    use_threads(run_config)
    options.check()
    source = read_sample(source_files, config.data, "source", progress=progress)
    target = read_sample(target_files, config.data, "target", progress=progress)
    check_same_fields(source, target)
    check_total_weight(source)
    check_total_weight(target)
    run = new_run(runs_dir, name, f"reweight-{config.model.name}")
    plans = options.plan(source, run)
    run.write_config(run_config, {"torch_version": str(torch.__version__)})

    seed = run_config.training.seed
    source_fold = kfold_assignment(len(source), folds, seed)
    target_fold = kfold_assignment(len(target), folds, seed + 1)
    raw = np.full(len(source), np.nan)
    fold_records = []
    for fold in progress_bar(range(folds), desc="folds", unit="fold", disable=not progress):
        train_all = labelled(
            target.arrays.take(np.flatnonzero(target_fold != fold)),
            source.arrays.take(np.flatnonzero(source_fold != fold)),
        )
        train_index, val_index = split_validation(len(train_all), val_fraction, seed + 100 + fold)
        train_set = train_all.take(train_index)
        val_set = train_all.take(val_index) if len(val_index) else None
        prior = prior_ratio(train_set)
        held_out = source.arrays.take(np.flatnonzero(source_fold == fold))
        log_ratios, histories = [], []
        for member in range(ensemble):
            member_config = run_config.model_copy(
                update={"training": run_config.training.model_copy(update={"seed": seed + member})}
            )
            model = train_classifier(
                member_config,
                train_set,
                val_set,
                run.path / (f"fold-{fold}" if ensemble == 1 else f"fold-{fold}-{member}"),
                progress,
            )
            log_ratios.append(np.log(density_ratio(model, held_out, prior)))
            histories.append(RunDirectory(model.run_dir or run.path).read_history())
        raw[source_fold == fold] = np.exp(np.mean(log_ratios, axis=0))
        losses = [min((r.get("val_loss", math.inf) for r in history), default=None) for history in histories]
        fold_records.append(
            {
                "fold": fold,
                "train_events": len(train_set),
                "val_events": len(val_index),
                "prior_source_over_target": prior,
                "epochs": len(histories[0]) if ensemble == 1 else [len(history) for history in histories],
                "best_val_loss": losses[0] if ensemble == 1 else losses,
            }
        )
    weights = options.apply(raw, source, target.total_weight)
    summary = weight_summary(source, target, raw, weights)
    provenance = {"heplearn_version": __version__, "run": str(run.path), "method": "dctr"}
    friends = write_friends(
        source,
        {"weight": weights.astype(np.float32), "weight_raw": raw.astype(np.float32), "fold": source_fold},
        plans,
        provenance,
    )
    result = ReweightResult(run.path, source, target, weights, raw, source_fold, friends, summary)
    if options.report:
        from heplearn.methods.reweighting_report import closure_report

        closure_report(
            run.path / "report", config.data, source, target, weights, summary, title="DCTR closure", progress=progress
        )
    write_settings(
        run,
        {
            "method": "dctr",
            "source": [str(f) for f in source.files],
            "target": [str(f) for f in target.files],
            "folds": folds,
            "ensemble": ensemble,
            "val_fraction": val_fraction,
            "clip": list(options.clip),
            "normalise": options.normalise,
            "friends": [str(p) for p in friends],
            "fold_records": fold_records,
            "summary": summary,
        },
    )
    return result


def new_run(runs_dir: str | os.PathLike[str], name: str | None, stem: str) -> RunDirectory:
    """A new reweighting run directory; a finished one of that name is a ``ConfigError``."""
    if name is not None and (Path(runs_dir) / name / SETTINGS_FILE).is_file():
        raise ConfigError(f"{Path(runs_dir) / name}: a finished reweighting run exists already; choose another --name")
    return RunDirectory.create(runs_dir, name, stem)


def prior_ratio(train: JetArrays) -> float:
    """N₀ / N₁: summed weight of the source training events over the target's."""
    source = float(np.sum(train.weight[train.label == SOURCE], dtype=np.float64))
    target = float(np.sum(train.weight[train.label == TARGET], dtype=np.float64))
    if not (source > 0 and target > 0):
        raise DataError(
            f"a training fold has a summed source weight {source:g} and target weight {target:g}; both must be positive"
        )
    return source / target


def weight_summary(source: Sample, target: Sample, raw: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """The closure figures of a set of weights: Σ w·f/(1−f) vs N_target, N_eff, the largest weights."""
    base = source.arrays.weight.astype(np.float64)
    effective = float(np.sum(base * weights) ** 2 / np.sum((base * weights) ** 2))
    order = np.argsort(weights)[::-1][:10]
    return {
        "source_events": len(source),
        "target_events": len(target),
        "source_total_weight": source.total_weight,
        "target_total_weight": target.total_weight,
        # Σ_source f/(1−f) estimates N_target (arXiv:1907.08209): the raw weights times N₁/N₀
        "reweighted_total_raw": float(np.sum(base * raw)),
        "reweighted_total_raw_times_target_over_source": float(
            np.sum(base * raw) * target.total_weight / source.total_weight
        ),
        "reweighted_total": float(np.sum(base * weights)),
        "effective_events": effective,
        "weight_mean": float(np.mean(weights)),
        "weight_std": float(np.std(weights)),
        "weight_min": float(np.min(weights)),
        "weight_max": float(np.max(weights)),
        "largest_weights": [
            {
                "event": int(i),
                "file": str(source.files[source.file_index[i]]),
                "entry": int(source.entry[i]),
                "weight": float(weights[i]),
            }
            for i in order
        ],
    }


def write_settings(run: RunDirectory, content: Mapping[str, Any]) -> None:
    """Write the method's settings, with the heplearn version, into the run directory (``reweight.json``)."""
    from heplearn.evaluation.report import jsonable

    write_text_atomic(
        run.path / SETTINGS_FILE, json.dumps(jsonable({**content, "heplearn_version": __version__}), indent=2)
    )


def read_settings(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``reweight.json`` of a finished reweighting run; anything else is a ``DataError``."""
    return RunDirectory(Path(run_dir)).read_json(SETTINGS_FILE, "a finished heplearn reweighting run")
