"""From a chunk of a file to the arrays of a batch: selection, ordering, padding, labels, weights.

``ChunkTransformer(config)`` is fixed once per config; ``transformer(chunk, where)`` turns the
record array of one chunk into ``JetArrays``: a numpy array per input group (``(n, L, F)`` padded
per-particle, or ``(n, F)`` per-jet), ``mask``, ``label``, ``weight`` and the observers.
Standardisation is applied later (``Preprocessing``), so the same raw arrays serve fitting it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import awkward as ak
import numpy as np

from heplearn.data.config import DataConfig, ImageSpec
from heplearn.data.schema import LABEL_PREFIX, PARTICLE_PREFIX
from heplearn.errors import ConfigError, DataError
from heplearn.features.images import jet_images
from heplearn.features.particles import VariableTable, file_fields_needed

log = logging.getLogger(__name__)


@dataclass
class JetArrays:
    """The arrays of ``n`` jets; ``inputs`` keyed by input-group name."""

    inputs: dict[str, np.ndarray]
    mask: np.ndarray | None
    label: np.ndarray
    weight: np.ndarray
    observers: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weight)

    def take(self, index: np.ndarray | slice) -> JetArrays:
        return JetArrays(
            {k: v[index] for k, v in self.inputs.items()},
            None if self.mask is None else self.mask[index],
            self.label[index],
            self.weight[index],
            {k: v[index] for k, v in self.observers.items()},
        )

    @staticmethod
    def concatenate(parts: list[JetArrays]) -> JetArrays:
        first = parts[0]
        return JetArrays(
            {k: np.concatenate([p.inputs[k] for p in parts]) for k in first.inputs},
            None if first.mask is None else np.concatenate([p.mask for p in parts if p.mask is not None]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.weight for p in parts]),
            {k: np.concatenate([p.observers[k] for p in parts]) for k in first.observers},
        )


Scaler = Callable[[str, np.ndarray], np.ndarray]


@dataclass
class _PaddingLayout:
    """Where each real particle of a chunk goes in the dense ``(jets, length)`` grid."""

    first: str
    total: int
    jets: int
    length: int
    keep: np.ndarray  # (total,) bool: particle within the first ``length`` of its jet
    destination: np.ndarray  # (kept,) flat index into jets * length
    mask: np.ndarray  # (jets, length) bool
    truncated: bool

    @classmethod
    def of(cls, name: str, values: ak.Array, length: int) -> _PaddingLayout:
        counts = ak.to_numpy(ak.num(values, axis=1)).astype(np.int64)
        total = int(counts.sum())
        starts = np.cumsum(counts) - counts
        position = np.arange(total) - np.repeat(starts, counts)
        keep = position < length
        jet_of = np.repeat(np.arange(len(counts)), counts)
        destination = (jet_of * length + position)[keep]
        mask = np.arange(length)[None, :] < np.minimum(counts, length)[:, None]
        return cls(name, total, len(counts), length, keep, destination, mask, not bool(keep.all()))

    @property
    def kept_count(self) -> int:
        return len(self.destination)

    def pad(self, flat: np.ndarray, pad_value: float) -> np.ndarray:
        dense = np.full((self.jets * self.length, flat.shape[1]), pad_value, np.float32)
        dense[self.destination] = flat
        return dense.reshape(self.jets, self.length, flat.shape[1])


class ChunkTransformer:
    def __init__(self, config: DataConfig, labelled: bool = True) -> None:
        """``labelled=False`` reads data to apply a model to: no labels, weights of one."""
        self.config = config
        self.labelled = labelled
        self.new_variables = config.new_variable_expressions
        self.nonfinite_counts: Counter[str] = Counter()

    # -- which fields to read
    def variable_names(self) -> set[str]:
        names: set[str] = set(self.config.observers)
        for group in self.config.inputs.values():
            names.update(group.variables)
            if group.image is not None:
                names.update(("part_deta", "part_dphi", "part_pt"))
        for key, expression in self.config.expressions.items():
            if key == "selection" or (self.labelled and not key.startswith("new_variables.")):
                names.update(expression.names)
        if self.labelled and isinstance(self.config.labels.classes, list):
            names.update(self.config.labels.classes)
        if self.config.particle_order == "pt" and self.config.particle_length:
            names.add("part_pt")
        return names

    def fields_to_read(self, available: list[str], where: str) -> list[str]:
        """The file fields this config needs; a name neither in the file nor derivable is an error."""
        names = self.variable_names()
        if self.labelled and self.config.labels.type == "classification" and self.config.labels.classes is None:
            names.update(name for name in available if name.startswith(LABEL_PREFIX))
        read, unknown = file_fields_needed(names, set(available), self.new_variables)
        if unknown:
            raise DataError(
                f"{where}: no field {', '.join(sorted(map(repr, unknown)))}, and none can be derived "
                f"(the file has: {', '.join(available)})"
            )
        return sorted(read)

    def class_names(self, available: list[str]) -> list[str]:
        classes = self.config.labels.classes
        if isinstance(classes, dict):
            return list(classes)
        if isinstance(classes, list):
            return [name.removeprefix(LABEL_PREFIX) for name in classes]
        return [name.removeprefix(LABEL_PREFIX) for name in available if name.startswith(LABEL_PREFIX)]

    # -- the transformation
    def __call__(self, chunk: ak.Array, where: str, scale: Scaler | None = None) -> JetArrays:
        """The arrays of the jets of ``chunk`` that pass the selection.

        ``scale(group, values)`` standardises a group's ``(..., F)`` values; it is applied to the
        real particles before padding, so padded slots hold exactly the pad value.
        """
        config = self.config
        if config.selection:
            table = VariableTable(chunk, self.new_variables)
            passed = self._as_numpy(config.expressions["selection"].evaluate(table), "selection", where)
            chunk = chunk[passed.astype(bool)]
        if config.particle_order == "pt" and config.particle_length and len(chunk):
            chunk = self._order_by_pt(chunk)
        table = VariableTable(chunk, self.new_variables)
        layout: _PaddingLayout | None = None
        inputs: dict[str, np.ndarray] = {}
        for name, group in config.inputs.items():
            if group.image is not None:
                inputs[name] = self._image(table, group.image, where)
            elif group.per_particle:
                layout = layout or _PaddingLayout.of(group.variables[0], table[group.variables[0]], group.length or 0)
                flat = self._particle_columns(table, name, group.variables, layout, where)
                if scale is not None:
                    flat = scale(name, flat)
                inputs[name] = layout.pad(flat, group.pad_value)
            else:
                columns = []
                for variable in group.variables:
                    values = table[variable]
                    _check_numeric(values, variable, where)
                    columns.append(self._finite(self._as_numpy(values, variable, where), variable, where))
                jet_values = np.stack(columns, axis=-1).astype(np.float32, copy=False)
                inputs[name] = scale(name, jet_values) if scale is not None else jet_values
        label = self._labels(table, chunk, where) if self.labelled else np.zeros(len(chunk), np.int64)
        weight = (self._finite(self._as_numpy(config.expressions["weights"].evaluate(table), "weights", where),
                               "weights", where).astype(np.float32)
                  if config.weights and self.labelled else np.ones(len(chunk), np.float32))
        observers = {name: self._as_numpy(table[name], name, where) for name in config.observers}
        return JetArrays(inputs, None if layout is None else layout.mask, label, weight, observers)

    def _image(self, table: VariableTable, spec: ImageSpec, where: str) -> np.ndarray:
        columns = {}
        for name in ("part_deta", "part_dphi", "part_pt"):
            values = table[name]
            longest = int(ak.max(ak.num(values, axis=1), initial=1))
            layout = _PaddingLayout.of(name, values, max(longest, 1))
            flat = self._finite(ak.to_numpy(ak.flatten(values, axis=1)).astype(np.float32), name, where)
            columns[name] = layout.pad(flat[:, None], 0.0)[..., 0]
        return jet_images(columns["part_deta"], columns["part_dphi"], columns["part_pt"], layout.mask, bins=spec.bins,
                          extent=spec.extent, rotate=spec.rotate, flip=spec.flip, centre=spec.centre)

    def _particle_columns(self, table: VariableTable, group: str, variables: list[str],
                          layout: _PaddingLayout, where: str) -> np.ndarray:
        """The kept (first ``length``) particles of every jet as one ``(particles, F)`` float32 array."""
        flat = np.empty((layout.kept_count, len(variables)), np.float32)
        for index, variable in enumerate(variables):
            values = table[variable]
            _check_numeric(values, variable, where)
            if getattr(values, "ndim", 1) != 2:
                raise ConfigError(f"data.inputs.{group}: {variable!r} is not a per-particle variable")
            content = ak.to_numpy(ak.flatten(values, axis=1))
            if len(content) != layout.total:
                raise DataError(f"{where}: {variable!r} has {len(content)} particles where "
                                f"{layout.first!r} has {layout.total}")
            flat[:, index] = content[layout.keep] if layout.truncated else content
        bad = ~np.isfinite(flat)
        if bad.any():
            for index, variable in enumerate(variables):
                flat[:, index] = self._finite(flat[:, index], variable, where)
        return flat

    def _order_by_pt(self, chunk: ak.Array) -> ak.Array:
        pt = VariableTable(chunk, self.new_variables)["part_pt"]
        if _descending_within_jets(pt):
            return chunk  # already ordered, as JetClass and heplearn files are: skip the sort
        order = ak.argsort(pt, axis=1, ascending=False)
        columns = {name: (chunk[name][order] if name.startswith(PARTICLE_PREFIX) else chunk[name])
                   for name in chunk.fields}
        return ak.zip(columns, depth_limit=1)

    def _labels(self, table: VariableTable, chunk: ak.Array, where: str) -> np.ndarray:
        labels = self.config.labels
        if labels.type == "regression":
            targets = [self._as_numpy(labels_expr.evaluate(table), f"labels.targets.{key}", where)
                       for key, labels_expr in ((k, self.config.expressions[f"labels.targets.{k}"])
                                                for k in labels.targets)]
            return self._finite(np.stack(targets, axis=-1).astype(np.float32), "labels.targets", where)
        if isinstance(labels.classes, dict):
            one_hot = [self._as_numpy(self.config.expressions[f"labels.classes.{k}"].evaluate(table),
                                      f"labels.classes.{k}", where) for k in labels.classes]
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
            raise DataError(f"{where}: {count} NaN or infinite values in {name!r} "
                            "(set data.nonfinite: replace to replace and count them)")
        self.nonfinite_counts[f"{where}:{name}"] += count
        log.warning("%s: replaced %d NaN/inf values in %r by %g", where, count, name,
                    self.config.nonfinite_value)
        values = values.copy()
        values[bad] = self.config.nonfinite_value
        return values


def _check_numeric(values: object, name: str, where: str) -> None:
    if isinstance(values, ak.Array):
        primitive = str(values.type.content).split("*")[-1].strip().lstrip("?")
        if primitive in {"string", "bytes"} or not ak.is_valid(values):
            raise DataError(f"{where}: {name!r} holds {primitive}, not numbers")
        try:
            ak.values_astype(values[:0], np.float32)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {name!r} holds {values.type.content}, not numbers") from None
    elif not np.issubdtype(np.asarray(values).dtype, np.number) and np.asarray(values).dtype != bool:
        raise DataError(f"{where}: {name!r} holds {np.asarray(values).dtype}, not numbers")


def _descending_within_jets(values: ak.Array) -> bool:
    flat = ak.to_numpy(ak.flatten(values, axis=1))
    if len(flat) < 2:
        return True
    counts = ak.to_numpy(ak.num(values, axis=1))
    first_of_jet = np.zeros(len(flat), bool)
    first_of_jet[(np.cumsum(counts) - counts)[counts > 0]] = True
    return bool(np.all((np.diff(flat) <= 0) | first_of_jet[1:]))
