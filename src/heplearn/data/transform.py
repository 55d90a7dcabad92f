"""From a chunk of a file to the arrays of a batch: selection, ordering, padding, labels, weights.

``ChunkTransformer(config)`` is fixed once per config; ``transformer(chunk, where)`` turns the
record array of one chunk into ``JetArrays`` (``heplearn.data.jets``): a numpy array per input
group, ``mask``, ``label``, ``weight`` and the observers, which it reads exactly as the file holds
them. ``transformer.ragged`` gives the same jets unpadded (``RaggedJets``), for the streaming
buffer. Standardisation is applied later (``Preprocessing``), so the same raw arrays serve fitting it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import awkward as ak
import numpy as np

from heplearn.data.config import DataConfig, ImageSpec
from heplearn.data.jets import JetArrays, RaggedJets, particle_rows
from heplearn.data.padding import Constants
from heplearn.data.schema import LABEL_PREFIX, PARTICLE_PREFIX
from heplearn.errors import ConfigError, DataError
from heplearn.features.images import calorimeter_images, jet_images
from heplearn.features.particles import FlatParticles, VariableTable, file_fields_needed

log = logging.getLogger(__name__)


class Scaler(Protocol):
    """Standardises input groups (``Preprocessing``)."""

    def scale(self, group: str, values: np.ndarray) -> np.ndarray:
        """The ``(..., F)`` values of ``group`` standardised, as a new array."""
        ...

    def constants(self, group: str) -> Constants:
        """Per variable of ``group``: centre, 1 / scale and clip bound (float32), as ``scale`` uses them."""
        ...


class ChunkTransformer:
    """Turns a chunk of a file's jets into the model's arrays, as the data config says.

    It names the fields to read, applies the selection, derives the new variables, pads or clips
    the particles, builds the labels, weights and observers, and standardises with a ``Scaler``.
    """

    def __init__(self, config: DataConfig, labelled: bool = True) -> None:
        """``labelled=False`` reads data to apply a model to: no labels, weights of one.

        A config with ``labels.type: none`` (unsupervised tasks) reads no labels either (all 0),
        but its weights.
        """
        self.config = config
        self.labelled = labelled and config.labels.type != "none"
        self.weighted = labelled
        self.new_variables = config.new_variable_expressions
        self.nonfinite_counts: Counter[str] = Counter()

    # -- which fields to read
    def variable_names(self) -> set[str]:
        """Every name the config uses: inputs, observers, expressions, labels, the ordering field."""
        names: set[str] = set(self.config.observers)
        for group in self.config.inputs.values():
            names.update(group.variables)
            if group.image is not None and group.image.kind == "calorimeter":
                names.update(f"{name}_{part}" for name in group.image.collections for part in ("pt", "eta", "phi"))
            elif group.image is not None:
                names.update(("part_deta", "part_dphi", "part_pt"))
        for key, expression in self.config.expressions.items():
            if (
                key == "selection"
                or (key == "weights" and self.weighted)
                or (self.labelled and not key.startswith("new_variables."))
            ):
                names.update(expression.names)
        if self.labelled and isinstance(self.config.labels.classes, list):
            names.update(self.config.labels.classes)
        if self.config.particle_order == "pt" and self.config.particle_length:
            names.add("part_pt")
        return names

    def fields_to_read(self, available: list[str], where: str) -> list[str]:
        """The file fields this config needs; a name neither in the file nor derivable is an error."""
        names = self.variable_names()
        if self.labelled and self.config.labels.has_classes and self.config.labels.classes is None:
            names.update(name for name in available if name.startswith(LABEL_PREFIX))
        read, unknown = file_fields_needed(names, set(available), self.new_variables)
        if unknown:
            raise DataError(
                f"{where}: no field {', '.join(sorted(map(repr, unknown)))}, and none can be derived "
                f"(the file has: {', '.join(available)})"
            )
        return sorted(read)

    def class_names(self, available: list[str]) -> list[str]:
        """The class names (``label_`` removed), from the config or, when it names none, the file's fields."""
        classes = self.config.labels.classes
        if not self.config.labels.has_classes:
            return []
        if isinstance(classes, dict):
            return list(classes)
        if isinstance(classes, list):
            return [name.removeprefix(LABEL_PREFIX) for name in classes]
        return [name.removeprefix(LABEL_PREFIX) for name in available if name.startswith(LABEL_PREFIX)]

    # -- the transformation
    def __call__(self, chunk: ak.Array, where: str, scale: Scaler | None = None) -> JetArrays:
        """The arrays of the jets of ``chunk`` that pass the selection (see ``ragged``), padded."""
        return self.ragged(chunk, where, scale).padded()

    def ragged(self, chunk: ak.Array, where: str, scale: Scaler | None = None) -> RaggedJets:
        """The jets of ``chunk`` that pass the selection, per-particle inputs not yet padded.

        ``scale`` standardises the inputs: the per-jet ones here, the per-particle ones as they
        are padded (its constants go with the jets), so padded slots hold exactly the pad value.
        A NaN or infinity (``data.nonfinite: error``) is reported by the file's field that holds
        it and the first entry, not only by the input variable computed from it.
        """
        try:
            with np.errstate(all="ignore"):  # non-finite values are counted or reported below, not warned about
                return self._ragged(chunk, where, scale)
        except NonFiniteError as error:
            raise NonFiniteError(
                f"{error} ({_first_nonfinite_entry(chunk, where)}; fix the file, or set "
                "data.nonfinite: replace to replace and count them)"
            ) from None

    def _ragged(self, chunk: ak.Array, where: str, scale: Scaler | None) -> RaggedJets:
        config = self.config
        if config.selection:
            table = VariableTable(chunk, self.new_variables)
            passed = self._as_numpy(config.expressions["selection"].evaluate(table), "selection", where)
            chunk = chunk[passed.astype(bool)]
        known: dict[str, np.ndarray] = {}
        if config.particle_order == "pt" and config.particle_length and len(chunk):
            chunk, known = self._order_by_pt(chunk, where)
        table = VariableTable(chunk, self.new_variables)
        particles: FlatParticles | None = None
        flat: dict[str, np.ndarray] = {}
        jet_inputs: dict[str, np.ndarray] = {}
        for name, group in config.inputs.items():
            if group.image is not None:
                jet_inputs[name] = self._image(table, group.image, where)
            elif group.per_particle:
                particles = particles or FlatParticles.of(table, group.variables[0], group.length, where, known)
                flat[name] = self._particle_columns(particles, name, group.variables, where)
            else:
                columns = []
                for variable in group.variables:
                    values = table[variable]
                    _check_numeric(values, variable, where)
                    columns.append(self._finite(self._as_numpy(values, variable, where), variable, where))
                jet_values = np.stack(columns, axis=-1).astype(np.float32, copy=False)
                jet_inputs[name] = scale.scale(name, jet_values) if scale is not None else jet_values
        label = self._labels(table, chunk, where) if self.labelled else np.zeros(len(chunk), np.int64)
        weight = (
            self._finite(
                self._as_numpy(config.expressions["weights"].evaluate(table), "weights", where), "weights", where
            ).astype(np.float32)
            if config.weights and self.weighted
            else np.ones(len(chunk), np.float32)
        )
        observers = {name: self._observer(table, name, len(chunk), where) for name in config.observers}
        return RaggedJets(
            tuple(config.inputs),
            flat,
            None if particles is None else particles.counts,
            config.particle_length or 0,
            {name: g.pad_value for name, g in config.inputs.items()},
            jet_inputs,
            label,
            weight,
            observers,
            {} if scale is None else {name: scale.constants(name) for name in flat},
        )

    def _observer(self, table: VariableTable, name: str, jets: int, where: str) -> np.ndarray:
        """The per-jet values of observer ``name`` as the file holds them (in native byte order,
        which tensors need)."""
        values = table[name]
        _check_numeric(values, name, where)
        array = self._as_numpy(values, name, where)
        if array.shape != (jets,):
            raise DataError(f"{where}: observer {name!r} needs one value per jet (got shape {array.shape})")
        return array.astype(array.dtype.newbyteorder("="), copy=False)

    def _image(self, table: VariableTable, spec: ImageSpec, where: str) -> np.ndarray:
        if spec.kind == "calorimeter":
            return self._calorimeter_image(table, spec, where)
        columns = {}
        longest = max(int(ak.max(ak.num(table["part_deta"], axis=1), initial=1)), 1)
        particles = FlatParticles.of(table, "part_deta", None, where)
        mask = np.arange(longest) < particles.counts[:, None]
        for name in ("part_deta", "part_dphi", "part_pt"):
            flat = self._finite(np.asarray(particles[name], np.float32), name, where)
            dense = np.zeros((len(mask), longest), np.float32)
            dense[mask] = flat
            columns[name] = dense
        return jet_images(
            columns["part_deta"],
            columns["part_dphi"],
            columns["part_pt"],
            mask,
            bins=spec.bins,
            extent=spec.extent,
            rotate=spec.rotate,
            flip=spec.flip,
            centre=spec.centre,
        )

    def _calorimeter_image(self, table: VariableTable, spec: ImageSpec, where: str) -> np.ndarray:
        """The event's objects of ``spec.collections`` summed into calorimeter regions (CICADA's input)."""
        parts = {
            part: ak.concatenate([table[f"{name}_{part}"] for name in spec.collections], axis=1)
            for part in ("eta", "phi", "pt")
        }
        counts = ak.to_numpy(ak.num(parts["pt"], axis=1))
        mask = np.arange(max(int(counts.max(initial=0)), 1)) < counts[:, None]
        dense = {}
        for part, values in parts.items():
            flat = self._finite(ak.to_numpy(ak.flatten(values)).astype(np.float32), f"{spec.collections}_{part}", where)
            dense[part] = np.zeros(mask.shape, np.float32)
            dense[part][mask] = flat
        return calorimeter_images(
            dense["eta"], dense["phi"], dense["pt"] / spec.et_unit, mask, spec.regions, spec.eta_max
        )

    def _particle_columns(self, particles: FlatParticles, group: str, variables: list[str], where: str) -> np.ndarray:
        """The kept particles of every jet as one ``(particles, F)`` float32 array.

        Computed block of rows by block of rows (``ROW_BLOCK``): every intermediate of the derived
        variables stays in the cache. A block with a NaN or infinity sends the chunk through
        ``_particle_columns_checked``, which counts, replaces or reports them over the whole chunk.
        """
        for variable in variables:
            if not particles.is_per_particle(variable):
                raise ConfigError(f"data.inputs.{group}: {variable!r} is not a per-particle variable")
            if particles.table.builtin(variable) is None:
                _check_numeric(particles.table[variable], variable, where)
        flat = np.empty((particles.total, len(variables)), np.float32)
        for start in range(0, particles.total, ROW_BLOCK):
            stop = min(start + ROW_BLOCK, particles.total)
            rows = particles.rows(start, stop)
            for index, variable in enumerate(variables):
                values = np.asarray(rows[variable], np.float32)
                if not np.isfinite(values).all():
                    return self._particle_columns_checked(particles, variables, where)
                flat[start:stop, index] = values
        return flat

    def _particle_columns_checked(self, particles: FlatParticles, variables: list[str], where: str) -> np.ndarray:
        """``_particle_columns`` for chunks with non-finite values, whole column by whole column."""
        flat = np.empty((particles.total, len(variables)), np.float32)
        for index, variable in enumerate(variables):
            flat[:, index] = self._finite(np.asarray(particles[variable], np.float32), variable, where)
        return flat

    def _order_by_pt(self, chunk: ak.Array, where: str) -> tuple[ak.Array, dict[str, np.ndarray]]:
        """The chunk with every jet's particles by decreasing pT, and the flat pT in that order
        (unless ``part_pt`` is a new variable, which might not follow a reordering)."""
        table = VariableTable(chunk, self.new_variables)
        particles = FlatParticles.of(table, "part_pt", None, where)
        pt = np.asarray(particles["part_pt"])
        known = {} if "part_pt" in self.new_variables else {"part_pt": pt}
        order = descending_order(pt, particles.counts)
        if order is None:
            return chunk, known  # already ordered, as JetClass and heplearn files are: skip the sort
        columns = {
            name: (
                _reordered(chunk[name], order, particles.counts) if name.startswith(PARTICLE_PREFIX) else chunk[name]
            )
            for name in chunk.fields
        }
        return ak.zip(columns, depth_limit=1), {name: order.apply(values) for name, values in known.items()}

    def _labels(self, table: VariableTable, chunk: ak.Array, where: str) -> np.ndarray:
        labels = self.config.labels
        if labels.type == "regression":
            targets = [
                self._as_numpy(labels_expr.evaluate(table), f"labels.targets.{key}", where)
                for key, labels_expr in ((k, self.config.expressions[f"labels.targets.{k}"]) for k in labels.targets)
            ]
            return self._finite(np.stack(targets, axis=-1).astype(np.float32), "labels.targets", where)
        if isinstance(labels.classes, dict):
            one_hot = [
                self._as_numpy(
                    self.config.expressions[f"labels.classes.{k}"].evaluate(table), f"labels.classes.{k}", where
                )
                for k in labels.classes
            ]
        else:
            names = labels.classes or [f for f in chunk.fields if f.startswith(LABEL_PREFIX)]
            if not names:
                raise DataError(f"{where}: no label_* field; set data.labels.classes")
            one_hot = [self._as_numpy(table[name], name, where) for name in names]
        matrix = np.stack(one_hot, axis=-1).astype(bool)
        unlabelled = int((matrix.sum(axis=1) == 0).sum())
        if unlabelled:
            raise DataError(f"{where}: {unlabelled} jets belong to no class of data.labels.classes")
        return matrix.argmax(axis=1).astype(np.int64)

    @staticmethod
    def _as_numpy(values: object, name: str, where: str) -> np.ndarray:
        if isinstance(values, ak.Array):
            if values.ndim != 1:
                raise DataError(f"{where}: {name!r} is per-particle; a per-jet value is needed here")
            return ak.to_numpy(values)
        return np.asarray(values)

    def _finite(self, values: np.ndarray, name: str, where: str, mask: np.ndarray | None = None) -> np.ndarray:
        if not np.issubdtype(values.dtype, np.floating):
            return values
        bad = ~np.isfinite(values)
        if mask is not None:
            bad &= mask
        count = int(bad.sum())
        if not count:
            return values
        if self.config.nonfinite == "error":
            raise NonFiniteError(f"{where}: {count} NaN or infinite values in {name!r}")
        self.nonfinite_counts[f"{where}:{name}"] += count
        log.warning("%s: replaced %d NaN/inf values in %r by %g", where, count, name, self.config.nonfinite_value)
        values = values.copy()
        values[bad] = self.config.nonfinite_value
        return values


class NonFiniteError(DataError):
    """NaN or infinite values in an input (``data.nonfinite: error``)."""


def _first_nonfinite_entry(chunk: ak.Array, where: str) -> str:
    """Which field of the file holds the first NaN or infinity of ``chunk``, and at which entry.

    ``where`` names the chunk as ``"<file> (entries <start>-<stop>)"``; entries count from the
    start of the file. When no field read from the file is non-finite, the variable was computed
    from finite values (a logarithm of 0, say).
    """
    match = re.search(r"\(entries (\d+)-", where)
    offset = int(match.group(1)) if match else 0
    first: tuple[int, str] | None = None
    for name in chunk.fields:
        column = chunk[name]
        if column.ndim > 2 or np.asarray(ak.flatten(column, axis=None)).dtype.kind != "f":
            continue
        bad = ~np.isfinite(column)
        per_entry = ak.to_numpy(ak.any(bad, axis=1) if column.ndim == 2 else bad).astype(bool)
        if per_entry.any():
            entry = int(np.argmax(per_entry))
            if first is None or entry < first[0]:
                first = (entry, name)
    if first is None:
        return "every field read from the file is finite: the variable is computed as non-finite from them"
    entry, name = first
    return f"first in the file's field {name!r} at entry {offset + entry}"


ROW_BLOCK = 1 << 16  # particles per block: a block of one variable (256 kB) stays in the L2 cache


_NUMERIC_TYPES: set[str] = set()  # awkward types already found to hold numbers: chunks repeat them


def _check_numeric(values: object, name: str, where: str) -> None:
    if isinstance(values, ak.Array):
        content = str(values.type.content)
        if content in _NUMERIC_TYPES:
            return
        primitive = content.rsplit("*", maxsplit=1)[-1].strip().lstrip("?")
        if primitive in {"string", "bytes"}:
            raise DataError(f"{where}: {name!r} holds {primitive}, not numbers")
        try:
            ak.values_astype(values[:0], np.float32)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {name!r} holds {values.type.content}, not numbers") from None
        _NUMERIC_TYPES.add(content)
    elif not np.issubdtype(np.asarray(values).dtype, np.number) and np.asarray(values).dtype != bool:
        raise DataError(f"{where}: {name!r} holds {np.asarray(values).dtype}, not numbers")


@dataclass(frozen=True)
class Reordering:
    """A permutation of flat particles that moves few of them: ``new[positions] = old[sources]``."""

    positions: np.ndarray
    sources: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per flat particle) in the new order."""
        reordered = values.copy()  # a plain copy: far cheaper than gathering every particle
        reordered[self.positions] = values[self.sources]
        return reordered

    def full(self, size: int) -> np.ndarray:
        """The whole permutation of ``size`` particles as an index array."""
        order = np.arange(size)
        order[self.positions] = self.sources
        return order


def descending_order(values: np.ndarray, counts: np.ndarray) -> Reordering | None:
    """The reordering that sorts every jet's particles by decreasing ``values``, stably; None if
    they already are. Only the jets out of order are sorted: in pT-ordered files only rounding
    swaps a few near-equal neighbours."""
    ends = np.cumsum(counts)
    starts = ends - counts
    rising = np.flatnonzero(~(np.diff(values) <= 0)) + 1  # NaN counts as rising
    rising = rising[rising != starts[np.searchsorted(ends, rising, side="right")]]  # not a jet's first
    if not len(rising):
        return None
    unsorted_jets = np.unique(np.searchsorted(ends, rising, side="right"))
    positions = particle_rows(starts[unsorted_jets], counts[unsorted_jets])
    jet_of = np.repeat(unsorted_jets, counts[unsorted_jets])
    selected = values[positions]
    # NaN first, as awkward's descending argsort puts it (then the replacement of non-finite
    # values sees the same particles in the same slots)
    return Reordering(positions, positions[np.lexsort((-selected, ~np.isnan(selected), jet_of))])


def _reordered(values: ak.Array, reordering: Reordering, counts: np.ndarray) -> ak.Array:
    """The particles of ``values`` reordered within their jets."""
    layout = values.layout
    if (
        isinstance(layout, ak.contents.ListOffsetArray | ak.contents.ListArray)
        and isinstance(layout.content, ak.contents.NumpyArray)
        and layout.content.data.ndim == 1
    ):
        content = ak.to_numpy(ak.flatten(values, axis=1))
        if len(content) == int(counts.sum()):
            return ak.unflatten(reordering.apply(content), counts)
    order = reordering.full(int(counts.sum()))
    local = order - np.repeat(np.cumsum(counts) - counts, counts)
    return values[ak.unflatten(local, counts)]
