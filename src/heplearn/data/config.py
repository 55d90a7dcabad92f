"""The data config: which files, which selection, which inputs, labels, weights and observers.

Modelled on weaver-core's data YAML (so its users feel at home), validated by pydantic, with every
expression parsed by the safe evaluator at load time, so a typo fails before any file is read::

    train: ["data/top_qcd/train*.parquet"]
    val: ["data/top_qcd/val*.parquet"]
    selection: "(jet_pt > 500) & (jet_nparticles > 2)"
    new_variables: {part_e_log_ratio: "log(part_energy / jet_energy)"}
    inputs:
      particles: {length: 128, variables: [part_deta, part_dphi, part_logpt, part_loge,
                                           part_logptrel, part_logerel, part_deltaR]}
      points: {length: 128, variables: [part_deta, part_dphi], standardize: false}
      jet: {variables: [jet_pt, jet_sdmass, jet_tau1, jet_tau2, jet_tau3]}
    labels: {classes: [label_top, label_qcd]}
    observers: [jet_pt, jet_sdmass]
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pydantic

from heplearn.config import StrictModel, read_yaml, validate
from heplearn.errors import ConfigError, DataError
from heplearn.expressions import Expression

SPLITS = ("train", "val", "test")


class ImageSpec(StrictModel):
    """A pT-weighted η–φ image of the constituents (``kind: jet``), or of the whole event's calorimeter
    regions (``kind: calorimeter``, CICADA's input: the ET of the objects of ``collections`` summed
    into ``regions`` = (φ, η) regions over |η| < ``eta_max``); see ``heplearn.features.images``."""

    kind: Literal["jet", "calorimeter"] = "jet"
    """``jet``: the constituents around the jet axis; ``calorimeter``: the whole event's calorimeter regions."""
    bins: int = pydantic.Field(default=40, gt=0)
    """Pixels per side of a jet image."""
    extent: float = pydantic.Field(default=0.8, gt=0)
    """Half-width of a jet image in Δη and Δφ (radians)."""
    rotate: bool = True
    """Rotate the jet so that its principal axis is vertical."""
    flip: bool = True
    """Flip the jet so that its hardest side is on the right."""
    centre: Literal["centroid", "axis"] = "centroid"
    """Centre the image on the pT-weighted centroid (``centroid``) or on the jet axis (``axis``)."""
    collections: list[str] = ["Jet", "Electron", "Photon"]  # NanoAOD collections: <name>_pt, _eta, _phi
    """NanoAOD collections summed into a calorimeter image (their ``<name>_pt``, ``_eta``, ``_phi``)."""
    regions: tuple[int, int] = (18, 14)
    """(φ, η) regions of a calorimeter image."""
    eta_max: float = pydantic.Field(default=3.0, gt=0)
    """|η| range of a calorimeter image."""
    et_unit: float = pydantic.Field(default=100.0, gt=0)  # GeV per unit of the image's values
    """GeV per unit of a calorimeter image's values."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the image."""
        return self.regions if self.kind == "calorimeter" else (self.bins, self.bins)


class InputGroup(StrictModel):
    """One tensor of the batch: per-particle ``(B, length, F)`` if ``length`` is set, a jet image
    ``(B, 1, bins, bins)`` if ``image`` is set, else per-jet ``(B, F)``."""

    variables: list[str] = []
    """File fields, ``new_variables`` or derived features (``part_logpt``, ``part_deltaR``, ...) of the group."""
    length: int | None = pydantic.Field(default=None, gt=0)
    """Particles per jet (padded or cut, hardest first): makes the group per-particle ``(B, length, F)``."""
    image: ImageSpec | None = None
    """Settings of a jet or calorimeter image (instead of ``variables``)."""
    pad_value: float = 0.0
    """Value of the padded slots of a per-particle group."""
    standardize: bool = True
    """Standardise the variables with constants fitted on the training split."""
    skip_standardize: list[str] = []
    """Variables of the group left as they are (flags, charges)."""

    @pydantic.model_validator(mode="after")
    def _variables_or_image(self) -> InputGroup:
        if self.image is not None and (self.variables or self.length):
            raise ValueError("an image group takes `image` settings only (no variables, no length)")
        if self.image is None and not self.variables:
            raise ValueError("give `variables` (or `image` settings for a jet image)")
        return self

    @property
    def per_particle(self) -> bool:
        """Whether the group is per particle (it has a ``length``)."""
        return self.length is not None

    @property
    def size(self) -> int:
        """Features per entry (channels for an image)."""
        return 1 if self.image is not None else len(self.variables)


class LabelConfig(StrictModel):
    """What a jet is labelled with: ``classification`` (classes from one-hot ``label_*`` fields or
    expressions), ``reweighting`` (classes too: the samples a reweighting classifier tells apart,
    the target sample first), ``summary_statistic`` (classes too, the signal first: a binned summary
    trained for the uncertainty of a fit, ``heplearn.methods.inferno``), ``regression`` (targets:
    name -> expression) or ``none`` (no labels: unsupervised tasks such as an autoencoder's
    reconstruction)."""

    type: Literal["classification", "reweighting", "summary_statistic", "regression", "none"] = "classification"
    """What the labels are: ``classification``, ``reweighting``, ``summary_statistic``, ``regression`` or ``none``."""
    classes: list[str] | dict[str, str] | None = None
    """Class names from one-hot ``label_*`` fields (a list), or name -> boolean expression (a mapping)."""
    targets: dict[str, str] = {}
    """Regression targets: name -> expression of the file's fields."""

    @pydantic.model_validator(mode="after")
    def _targets_for_regression(self) -> LabelConfig:
        if self.type == "regression" and not self.targets:
            raise ValueError("regression needs `targets`: name -> expression")
        return self

    @property
    def has_classes(self) -> bool:
        """Whether the labels are classes (a classifier, or the two samples of a reweighting)."""
        return self.type in {"classification", "reweighting", "summary_statistic"}


#: the observer that marks the jets of ``data.variations``: 0 nominal, +k / −k the up / down sample
#: of the k-th variation
VARIATION_OBSERVER = "variation"


class VariedFiles(StrictModel):
    """One side (up or down) of a systematic variation: its files per split (paths or globs)."""

    train: list[str] = []
    """Training files of the varied sample."""
    val: list[str] = []
    """Validation files of the varied sample."""
    test: list[str] = []
    """Test files of the varied sample."""

    @pydantic.field_validator("train", "val", "test", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Variation(StrictModel):
    """A systematic variation of the samples (another tune, shower scale or detector): the same
    processes generated at its +1σ (``up``) and −1σ (``down``) settings."""

    up: VariedFiles
    """The +1σ sample."""
    down: VariedFiles
    """The −1σ sample."""


class DataConfig(StrictModel):
    """The ``data`` section: which files, which jets, which inputs, labels, weights and observers."""

    train: list[str] = []
    """Training files (paths or glob patterns; Parquet, ROOT TTree or RNTuple, HDF5)."""
    val: list[str] = []
    """Validation files: early stopping and the best epoch."""
    test: list[str] = []
    """Test files: what ``heplearn evaluate`` scores by default."""
    treename: str | None = None
    """The ROOT TTree or RNTuple to read (default ``tree``, or the file's only one)."""
    selection: str | None = None
    """Boolean expression: jets that fail it are left out (``jet_pt > 500``)."""
    new_variables: dict[str, str] = {}
    """Derived fields: name -> expression (``ak.num(part_px, axis=1)``), usable anywhere a field is."""
    particle_order: Literal["pt", "file"] = "pt"
    """Order of the particles of per-particle groups: by decreasing pT, or as in the file."""
    inputs: dict[str, InputGroup] = pydantic.Field(min_length=1)
    """The batch's tensors: group name (``particles``, ``points``, ``jet``, ``image``, ...) -> its settings."""
    labels: LabelConfig = LabelConfig()
    """What each jet is labelled with."""
    weights: str | None = None
    """Expression of a per-jet training weight (``xsec_weight * 2``)."""
    observers: list[str] = []
    """Fields delivered with each batch for loss terms and methods, never as model inputs."""
    variations: dict[str, Variation] = {}
    """Systematic variations: name -> up/down files per split. A training reads their jets beside the
    split's own, marked by the observer ``variation`` (0 nominal, +k / −k the up / down sample of the
    k-th variation), for loss terms that see systematic shifts (``inferno``)."""
    standardization: Literal["robust", "meanstd"] = "robust"
    """``robust`` (median and interquartile range) or ``meanstd`` standardisation."""
    clip: float = pydantic.Field(default=5.0, gt=0)
    """Standardised values are clipped to ± this."""
    standardization_jets: int = pydantic.Field(default=200_000, gt=0)
    """Jets of the training split the standardisation constants are fitted on."""
    nonfinite: Literal["error", "replace"] = "error"
    """NaN or infinite inputs: an ``error`` naming the file and entry, or ``replace`` them."""
    nonfinite_value: float = 0.0
    """The value that replaces non-finite inputs (with ``nonfinite: replace``)."""
    chunk_size: int = pydantic.Field(default=20_000, gt=0)
    """Jets read at a time (and the most in one streaming piece)."""

    @pydantic.field_validator("train", "val", "test", "observers", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @pydantic.model_validator(mode="after")
    def _particle_groups_share_length(self) -> DataConfig:
        lengths = {group.length for group in self.inputs.values() if group.per_particle}
        if len(lengths) > 1:
            shown = sorted(lengths, key=lambda length: -1 if length is None else length)  # None: not set
            raise ValueError(f"all per-particle input groups need the same length (got {shown})")
        for name in ("mask", "label", "weight"):
            if name in self.inputs:
                raise ValueError(f"input group name {name!r} is reserved for the batch")
        return self

    @pydantic.model_validator(mode="after")
    def _observers_distinct(self) -> DataConfig:
        repeated = sorted(name for name, count in Counter(self.observers).items() if count > 1)
        if repeated:
            raise ValueError(f"observer {repeated[0]!r} is listed more than once in `observers`")
        for name in self.observers:
            if name in self.inputs:
                raise ValueError(
                    f"observer {name!r} is also the name of an input group; observers travel "
                    f"beside the inputs (as 'observer:{name}'), never as one: rename the group"
                )
        return self

    @pydantic.model_validator(mode="after")
    def _variation_observer_free(self) -> DataConfig:
        if self.variations and (VARIATION_OBSERVER in self.observers or VARIATION_OBSERVER in self.inputs):
            raise ValueError(
                f"`variations` mark their jets with the observer {VARIATION_OBSERVER!r}: it cannot "
                "also be an observer or input group of the files"
            )
        return self

    def unlabelled(self) -> DataConfig:
        """The same inputs read from files whose labels, weights and observers are not used (a
        data sample, a domain-adaptation target): the files need none of those fields."""
        return self.model_copy(
            update={"labels": self.labels.model_copy(update={"type": "none"}), "weights": None, "observers": []}
        )

    @cached_property
    def expressions(self) -> dict[str, Expression]:
        """Every expression of the config, parsed and checked (keyed by where it stands)."""
        parsed: dict[str, Expression] = {}
        for name, text in self.new_variables.items():
            parsed[f"new_variables.{name}"] = Expression(text, f"data.new_variables.{name}")
        if self.selection:
            parsed["selection"] = Expression(self.selection, "data.selection")
        if self.weights:
            parsed["weights"] = Expression(self.weights, "data.weights")
        if isinstance(self.labels.classes, dict):
            for name, text in self.labels.classes.items():
                parsed[f"labels.classes.{name}"] = Expression(text, f"data.labels.classes.{name}")
        for name, text in self.labels.targets.items():
            parsed[f"labels.targets.{name}"] = Expression(text, f"data.labels.targets.{name}")
        return parsed

    @property
    def new_variable_expressions(self) -> dict[str, Expression]:
        """The compiled expressions of ``new_variables``, by name."""
        return {name: self.expressions[f"new_variables.{name}"] for name in self.new_variables}

    @property
    def particle_length(self) -> int | None:
        """The particles per jet of the per-particle groups (they share one), or None without one."""
        return next((g.length for g in self.inputs.values() if g.per_particle), None)

    def jet_group(self, model_name: str) -> str:
        """The per-jet input group a jet-level model (cuts, likelihood, BDT) reads: ``jet``, or the only one."""
        groups = [name for name, group in self.inputs.items() if not group.per_particle and group.image is None]
        if "jet" in groups:
            return "jet"
        if len(groups) == 1:
            return groups[0]
        raise ConfigError(
            f"model.name: {model_name} reads jet-level features: data.inputs needs a group 'jet' without `length`"
        )

    def files(self, split: str) -> list[Path]:
        """The files of a split, globs expanded, in sorted order."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return expand_files(getattr(self, split), f"data.{split}")

    def variation_files(self, split: str) -> list[tuple[int, list[Path]]]:
        """The varied samples of a split: (code, files) with code +k / −k for the up / down sample of
        the k-th of ``variations`` (in the config's order); a variation without files for the split is left out."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        found = []
        for index, (name, variation) in enumerate(self.variations.items(), start=1):
            for sign, side in ((1, "up"), (-1, "down")):
                patterns = getattr(getattr(variation, side), split)
                if patterns:
                    found.append((sign * index, expand_files(patterns, f"data.variations.{name}.{side}.{split}")))
        return found


def expand_files(patterns: list[str], where: str) -> list[Path]:
    """The files ``patterns`` match (paths or globs, in order); a pattern that matches nothing is a
    ``DataError`` naming ``where``."""
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise DataError(f"{where}: no file matches {pattern!r}")
        files.extend(Path(match) for match in matches)
    return files


def load_data_config(source: str | os.PathLike[str] | dict[str, Any], where: str = "data") -> DataConfig:
    """A checked ``DataConfig`` from a YAML path or a dict; expressions are parsed here too."""
    content = read_yaml(source) if not isinstance(source, dict) else source
    if not isinstance(source, dict) and "data" in content and "inputs" not in content:
        content = content["data"]
    config = validate(DataConfig, content, where)
    _ = config.expressions  # parse now: a forbidden name fails at load time
    return config
