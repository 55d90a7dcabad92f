"""HistFactory models of templates, written as pyhf JSON workspaces.

A ``Sample`` is a template of expected yields with its modifiers (Cranmer et al., CERN-OPEN-2012-016;
the pyhf JSON schema, Heinrich et al., JOSS 6 (2021) 2823):

- free normalisations (``normfactor``): the signal strength μ of the signal, or a sample's yield;
- ``Systematic`` variations: a normalisation uncertainty (``normsys``, factors for −1σ and +1σ)
  and a shape uncertainty (``histosys``) from the same sample varied (an alternative tune or
  detector, scored by the same run): its template becomes the +1σ template, and the −1σ one is
  given or mirrored (2 × nominal − up);
- the luminosity (``lumi``, one parameter shared by the samples that take it);
- the Monte-Carlo statistical uncertainty of the templates, Barlow–Beeston (Comput. Phys. Commun.
  77 (1993) 219): ``staterror`` (one Gaussian parameter per bin shared by the samples, the
  "Barlow–Beeston lite" of Conway, arXiv:1103.0354) or ``shapesys`` (one Poisson-constrained
  parameter per bin and sample).

``build_workspace`` returns the workspace as a plain dict (the pyhf JSON that ``pyhf`` and
cabinetry read), ``write_workspace`` validates and writes it, ``model_and_data`` makes the pyhf
model and its data (observed counts plus auxiliary data). Bins that no sample fills are left out of
the workspace (``used_bins``); observed events in such a bin are an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyhf

from heplearn.data.files import write_text_atomic
from heplearn.errors import ConfigError, DataError
from heplearn.stats.templates import Template, check_same_binning, check_template

MC_STATISTICS = ("staterror", "shapesys", "none")
POI = "mu"


@dataclass(frozen=True)
class Systematic:
    """One uncertainty of a sample: a shape from varied templates, a normalisation, or both.

    ``up`` / ``down`` are the sample's templates under the +1σ / −1σ variation (same binning and
    scaling as the nominal); ``normalisation`` is the pair (−1σ factor, +1σ factor), e.g. (0.9, 1.1).
    """

    name: str
    up: Template | None = None
    down: Template | None = None
    normalisation: tuple[float, float] | None = None


@dataclass(frozen=True)
class Sample:
    """A sample's expected yields per bin and its modifiers."""

    template: Template
    normfactors: tuple[str, ...] = ()
    systematics: tuple[Systematic, ...] = ()
    lumi: bool = True
    mc_statistics: bool = True

    @property
    def name(self) -> str:
        """The sample's name: its template's."""
        return self.template.name


@dataclass(frozen=True)
class Parameter:
    """Bounds and start of a free parameter (a normfactor) in the measurement."""

    name: str
    bounds: tuple[float, float] = (0.0, 10.0)
    init: float = 1.0


@dataclass(frozen=True)
class ModelSettings:
    """What the measurement adds to the samples: the POI, its bounds, the luminosity, MC statistics."""

    poi: str = POI
    parameters: tuple[Parameter, ...] = field(default_factory=lambda: (Parameter(POI),))
    lumi_uncertainty: float = 0.0  # relative; 0 leaves the luminosity out
    mc_statistics: str = "staterror"
    channel: str = "score"
    measurement: str = "heplearn"


def _histosys(sample: Sample, systematic: Systematic) -> dict[str, Any]:
    nominal = sample.template.counts
    where = f"systematic {systematic.name!r} of sample {sample.name!r}"
    variations = [t for t in (systematic.up, systematic.down) if t is not None]
    check_same_binning([sample.template, *variations], where)
    for template in variations:
        check_template(template, where)
    assert systematic.up is not None
    up = systematic.up.counts
    # one-sided variation: the −1σ template mirrored through the nominal, kept non-negative
    down = systematic.down.counts if systematic.down is not None else np.maximum(2 * nominal - up, 0.0)
    return {"name": systematic.name, "type": "histosys", "data": {"hi_data": up.tolist(), "lo_data": down.tolist()}}


def _normsys(sample: Sample, systematic: Systematic) -> dict[str, Any]:
    assert systematic.normalisation is not None
    low, high = (float(value) for value in systematic.normalisation)
    if not (low > 0 and high > 0):
        raise ConfigError(
            f"normalisation systematic {systematic.name!r} of sample {sample.name!r}: the factors "
            f"must be positive, got ({low}, {high})"
        )
    return {"name": systematic.name, "type": "normsys", "data": {"hi": high, "lo": low}}


def _modifiers(sample: Sample, settings: ModelSettings) -> list[dict[str, Any]]:
    modifiers: list[dict[str, Any]] = [
        {"name": name, "type": "normfactor", "data": None} for name in sample.normfactors
    ]
    for systematic in sample.systematics:
        if systematic.up is None and systematic.down is not None:
            raise ConfigError(
                f"systematic {systematic.name!r} of sample {sample.name!r}: give the +1σ template "
                "(up); the −1σ one alone is not enough"
            )
        if systematic.up is None and systematic.normalisation is None:
            raise ConfigError(
                f"systematic {systematic.name!r} of sample {sample.name!r} has neither templates "
                "nor normalisation factors"
            )
        if systematic.up is not None:
            modifiers.append(_histosys(sample, systematic))
        if systematic.normalisation is not None:
            modifiers.append(_normsys(sample, systematic))
    if sample.lumi and settings.lumi_uncertainty > 0:
        modifiers.append({"name": "lumi", "type": "lumi", "data": None})
    if sample.mc_statistics and settings.mc_statistics != "none":
        errors = np.sqrt(sample.template.variances).tolist()
        if settings.mc_statistics == "staterror":
            modifiers.append({"name": f"staterror_{settings.channel}", "type": "staterror", "data": errors})
        else:
            modifiers.append({"name": f"shapesys_{sample.name}", "type": "shapesys", "data": errors})
    return modifiers


def build_workspace(
    samples: Sequence[Sample],
    observed: Template | Sequence[float] | np.ndarray,
    settings: ModelSettings = ModelSettings(),
) -> dict[str, Any]:
    """The pyhf JSON workspace of ``samples`` in one channel with ``observed`` counts.

    Bad input is refused with a message naming the sample: empty or negative templates, other
    binning, a POI that no sample carries, MC-statistics choices outside ``MC_STATISTICS``.
    """
    if not samples:
        raise ConfigError("a model needs at least one sample")
    if settings.mc_statistics not in MC_STATISTICS:
        raise ConfigError(f"mc_statistics must be one of {MC_STATISTICS}, got {settings.mc_statistics!r}")
    if settings.lumi_uncertainty < 0:
        raise ConfigError(f"the luminosity uncertainty must be ≥ 0, got {settings.lumi_uncertainty}")
    for sample in samples:
        check_template(sample.template, f"sample {sample.name!r}")
    templates = [sample.template for sample in samples]
    if isinstance(observed, Template):
        templates.append(observed)
        observed_counts = observed.counts
    else:
        observed_counts = np.asarray(observed, np.float64)
    check_same_binning(templates, "model")
    if observed_counts.shape != samples[0].template.counts.shape:
        raise DataError(
            f"observed data have {observed_counts.size} bins, the templates {samples[0].template.counts.size}"
        )
    if np.any(observed_counts < 0) or not np.all(np.isfinite(observed_counts)):
        raise DataError("observed counts must be finite and non-negative")
    expected = np.sum([sample.template.counts for sample in samples], axis=0)
    empty = expected <= 0
    if np.any(observed_counts[empty] > 0):
        bins = np.flatnonzero(empty & (observed_counts > 0)).tolist()
        raise DataError(
            f"observed events in bins {bins} where no sample expects any: widen the templates or merge bins"
        )
    free = {name for sample in samples for name in sample.normfactors}
    if settings.poi not in free:
        raise ConfigError(
            f"the parameter of interest {settings.poi!r} is not a normfactor of any sample "
            f"(samples have {sorted(free) or 'none'})"
        )
    parameters: list[dict[str, Any]] = []
    for parameter in settings.parameters:
        low, high = parameter.bounds
        if not low <= parameter.init <= high:
            raise ConfigError(
                f"parameter {parameter.name!r}: start {parameter.init} outside its bounds [{low}, {high}]"
            )
        parameters.append({"name": parameter.name, "bounds": [[low, high]], "inits": [parameter.init]})
    if settings.lumi_uncertainty > 0:
        sigma = settings.lumi_uncertainty
        parameters.append(
            {
                "name": "lumi",
                "auxdata": [1.0],
                "sigmas": [sigma],
                "bounds": [[max(1e-3, 1 - 5 * sigma), 1 + 5 * sigma]],
                "inits": [1.0],
            }
        )
    channel = {
        "name": settings.channel,
        "samples": [
            _drop_bins(
                {
                    "name": sample.name,
                    "data": sample.template.counts.tolist(),
                    "modifiers": _modifiers(sample, settings),
                },
                ~empty,
            )
            for sample in samples
        ],
    }
    return {
        "channels": [channel],
        "observations": [{"name": settings.channel, "data": observed_counts[~empty].tolist()}],
        "measurements": [{"name": settings.measurement, "config": {"poi": settings.poi, "parameters": parameters}}],
        "version": "1.0.0",
    }


def used_bins(samples: Sequence[Sample]) -> np.ndarray:
    """The bins a workspace keeps: those where some sample expects events (empty ones carry nothing)."""
    return np.sum([sample.template.counts for sample in samples], axis=0) > 0


def _drop_bins(sample: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """A sample spec without the bins that no sample fills (pyhf's MC-statistics terms are 0/0 there)."""

    def cut(values: list[float]) -> list[float]:
        return np.asarray(values, np.float64)[keep].tolist()

    sample["data"] = cut(sample["data"])
    for modifier in sample["modifiers"]:
        if modifier["type"] in ("staterror", "shapesys"):
            modifier["data"] = cut(modifier["data"])
        elif modifier["type"] == "histosys":
            modifier["data"] = {key: cut(values) for key, values in modifier["data"].items()}
    return sample


def write_workspace(workspace: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Validate ``workspace`` against pyhf's schema and write it as JSON (atomically)."""
    pyhf.Workspace(workspace)  # raises on an invalid spec before anything is written
    write_text_atomic(path, json.dumps(workspace, indent=2) + "\n")


def read_workspace(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A pyhf JSON workspace from ``path``."""
    try:
        workspace = json.loads(Path(path).read_text(encoding="utf-8"))
        pyhf.Workspace(workspace)
    except (OSError, json.JSONDecodeError, pyhf.exceptions.InvalidSpecification) as error:
        raise DataError(f"{path}: not a pyhf workspace: {error}") from error
    return dict(workspace)


def model_and_data(workspace: dict[str, Any]) -> tuple[pyhf.pdf.Model, list[float]]:
    """The pyhf model of the workspace's measurement and its data (observed counts + auxiliary data)."""
    spec = pyhf.Workspace(workspace)
    model = spec.model(modifier_settings={"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}})
    return model, [float(value) for value in spec.data(model)]
