"""Standardisation fitted on the training split, stored in the run's ``preprocessing.json``.

Each input variable gets ``x' = clip((x − centre) / scale, ±clip)``; padded particle slots are set
to the group's pad value afterwards. "robust" uses the median and half the 16–84% spread (the
choice of weaver-core's auto-standardisation, insensitive to tails), "meanstd" the mean and
standard deviation. The same JSON is applied in training, evaluation, export and serving.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.data.config import DataConfig
from heplearn.data.files import write_text_atomic
from heplearn.data.jets import JetArrays
from heplearn.errors import DataError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class VariableScaling:
    """The standardisation of one variable: ``(x - centre) / scale``."""

    name: str
    centre: float
    scale: float
    clip: float | None


@dataclass
class Preprocessing:
    """Per input group: the scaling of each variable (in order), its pad value and length."""

    groups: dict[str, list[VariableScaling]]
    pad_values: dict[str, float]
    lengths: dict[str, int | None]
    class_names: list[str]

    @classmethod
    def fit(cls, arrays: JetArrays, config: DataConfig, class_names: list[str]) -> Preprocessing:
        """Standardisation constants of every standardised variable, fitted on ``arrays`` (the training split)."""
        groups: dict[str, list[VariableScaling]] = {}
        for name, group in config.inputs.items():
            values = arrays.inputs[name]
            if group.per_particle and arrays.mask is not None:
                values = values[arrays.mask]  # (particles, F): padded slots do not count
            scalings = []  # images stay as they are: normalised intensities
            for index, variable in enumerate(group.variables):
                if not group.standardize or variable in group.skip_standardize:
                    scalings.append(VariableScaling(variable, 0.0, 1.0, None))
                    continue
                column = values[:, index].astype(np.float64)
                column = column[np.isfinite(column)]
                if column.size == 0:
                    raise DataError(f"cannot standardise {variable!r}: no finite values in the training split")
                centre, scale = _centre_scale(column, config.standardization)
                scalings.append(VariableScaling(variable, centre, scale, config.clip))
            groups[name] = scalings
        return cls(
            groups,
            {name: group.pad_value for name, group in config.inputs.items()},
            {name: group.length for name, group in config.inputs.items()},
            class_names,
        )

    def scale(self, group: str, values: np.ndarray) -> np.ndarray:
        """Standardise the ``(..., F)`` values of input group ``group`` (a new float32 array)."""
        if not self.groups[group]:
            return values
        centre, inverse_scale, bound = self.constants(group)
        scaled = values - centre
        scaled *= inverse_scale
        np.minimum(scaled, bound, out=scaled)  # two in-place passes: much faster than np.clip with
        np.maximum(scaled, -bound, out=scaled)  # per-column bounds
        return scaled

    def constants(self, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per variable of ``group``: centre, 1 / scale and clip bound, as float32."""
        scalings = self.groups[group]
        centre = np.array([s.centre for s in scalings], np.float32)
        inverse_scale = np.array([1 / s.scale for s in scalings], np.float32)
        bound = np.array([s.clip if s.clip is not None else np.inf for s in scalings], np.float32)
        return centre, inverse_scale, bound

    def apply(self, arrays: JetArrays) -> JetArrays:
        """Standardise unscaled arrays; padded particle slots are set back to the pad value."""
        inputs = {}
        for name in self.groups:
            scaled = self.scale(name, arrays.inputs[name])
            if self.lengths[name] is not None and arrays.mask is not None:
                scaled[~arrays.mask] = self.pad_values[name]
            inputs[name] = scaled
        return JetArrays(inputs, arrays.mask, arrays.label, arrays.weight, arrays.observers)

    # -- persistence (plain JSON: readable, diffable, no pickle)
    def to_dict(self) -> dict[str, Any]:
        """The JSON content of ``preprocessing.json``."""
        return {
            "format_version": FORMAT_VERSION,
            "class_names": self.class_names,
            "groups": {
                name: {
                    "length": self.lengths[name],
                    "pad_value": self.pad_values[name],
                    "variables": [asdict(s) for s in scalings],
                }
                for name, scalings in self.groups.items()
            },
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``preprocessing.json`` atomically."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, content: dict[str, Any], where: str = "preprocessing") -> Preprocessing:
        """The preprocessing of a ``to_dict`` content; a malformed one is a ``DataError`` naming ``where``."""
        try:
            groups = {name: [VariableScaling(**v) for v in g["variables"]] for name, g in content["groups"].items()}
            return cls(
                groups,
                {name: float(g["pad_value"]) for name, g in content["groups"].items()},
                {name: g["length"] for name, g in content["groups"].items()},
                list(content.get("class_names", [])),
            )
        except (KeyError, TypeError) as error:
            raise DataError(f"{where}: not a heplearn preprocessing file ({error})") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Preprocessing:
        """Read a ``preprocessing.json``; a missing or malformed file is a ``DataError`` naming it."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such preprocessing file")
        try:
            content = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
        return cls.from_dict(content, str(path))


def _centre_scale(column: np.ndarray, method: str) -> tuple[float, float]:
    if method == "robust":
        low, centre, high = np.percentile(column, [16, 50, 84])
        scale = (high - low) / 2
    else:
        centre, scale = column.mean(), column.std()
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0  # a constant variable: shift it, do not blow it up
    return float(centre), float(scale)
