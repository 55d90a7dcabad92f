"""``heplearn unfold``: OmniFold from files, as one config describes it, into a run directory.

The config (YAML) names the files and the inputs of each level::

    simulation: ["sim/*.parquet"]   # generator and detector level of the same events, row by row
    data: ["data/*.parquet"]        # detector level: the same fields as the simulation's reco inputs
    background: []                  # optional: detector-level background simulation, subtracted
    gen:  {inputs: {jet: {variables: [gen_mass, gen_width]}}}
    reco: {inputs: {jet: {variables: [reco_mass, reco_width]}}}
    reco_pass: "reco_mass > -9"     # optional expressions: reconstructed / has a generator level
    gen_pass: null
    weights: {simulation: null, data: null, background: null, truth: null}   # optional expressions
    model: {name: mlp, preset: small}   # step 1 (and step 2 unless gen_model is given)
    training: {epochs: 10, batch_size: 1000}
    unfolding: {iterations: 4, ensemble: 1, bootstraps: 0, no_reco: one}
    truth: []                       # optional, for closure: the data's generator level (gen fields)
    comparison: {bins: 30}          # with truth: figures/unfolding.png|pdf, IBU beside OmniFold

Each level is read by the data layer (a ``DataConfig`` per level: the same readers, expressions
and checks as training), standardised with constants fitted on the simulation's events that have
that level, and passed to ``heplearn.methods.unfolding.omnifold``. The run directory holds
``config.yaml`` (the resolved config and provenance), ``iterations/<n>/step{1,2}/`` (each
classifier's ``metrics.jsonl`` and checkpoints), ``iterations/<n>/weights.parquet`` (ω and ν),
``weights.parquet`` (the output weights, one row per simulated event) and ``unfolding.json``.
With ``truth`` (a closure test), ``figures/unfolding.{png,pdf}`` compares truth, generator, IBU and
OmniFold for every per-event generator variable (IBU pairs it with the reco variable in the same
place of the same group), and ``unfolding.json`` gets each one's triangular discriminator.
Everything is read and checked before the run directory is created.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch
import yaml

from heplearn import __version__
from heplearn.config import StrictModel, apply_overrides, read_yaml, validate
from heplearn.data.config import DataConfig, InputGroup, expand_files
from heplearn.data.files import write_text_atomic
from heplearn.data.in_memory import load_arrays
from heplearn.data.jets import JetArrays
from heplearn.data.preprocessing import Preprocessing
from heplearn.methods.unfolding import (
    WEIGHTS_FILE,
    OmniFoldResult,
    OmniFoldSettings,
    check_inputs,
    omnifold,
    write_run_summary,
    write_weights,
)
from heplearn.run_config import ModelConfig, TrainingConfig
from heplearn.runs import RunDirectory, git_hash

__all__ = ["LevelConfig", "UnfoldConfig", "UnfoldRun", "load_unfold_config", "unfold"]

PASS_FIELD = "unfold_pass"  # the observer that carries reco_pass / gen_pass


class LevelConfig(StrictModel):
    """The inputs of one level (``data.inputs`` of a data config) and the variables they use."""

    inputs: dict[str, InputGroup] = pydantic.Field(min_length=1)
    new_variables: dict[str, str] = {}


class SampleWeights(StrictModel):
    """Per-event weight expressions of each sample (default: ones)."""

    simulation: str | None = None
    data: str | None = None
    background: str | None = None
    truth: str | None = None


class ComparisonSettings(StrictModel):
    """The closure figure: bins per observable (equal widths between the truth's 0.5% and 99.5%
    quantiles), IBU's bootstrap replicas and axis titles per generator variable (with units)."""

    bins: int = pydantic.Field(default=30, ge=2)
    bootstraps: int = pydantic.Field(default=10, ge=0)
    labels: dict[str, str] = {}


class UnfoldConfig(StrictModel):
    """The config of ``heplearn unfold`` (see the module docstring)."""

    simulation: list[str] = pydantic.Field(min_length=1)
    data: list[str] = pydantic.Field(min_length=1)
    background: list[str] = []
    treename: str | None = None
    gen: LevelConfig
    reco: LevelConfig
    reco_pass: str | None = None
    gen_pass: str | None = None
    weights: SampleWeights = SampleWeights()
    model: ModelConfig
    gen_model: ModelConfig | None = None
    training: TrainingConfig = TrainingConfig()
    unfolding: OmniFoldSettings = OmniFoldSettings()
    truth: list[str] = []
    comparison: ComparisonSettings = ComparisonSettings()

    @pydantic.field_validator("simulation", "data", "background", "truth", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def load_unfold_config(
    source: str | os.PathLike[str] | dict[str, Any], overrides: list[str] | None = None
) -> UnfoldConfig:
    """A checked ``UnfoldConfig`` from a YAML file or a dict, after ``key=value`` overrides."""
    content = dict(source) if isinstance(source, dict) else read_yaml(source)
    apply_overrides(content, overrides or [])
    config = validate(UnfoldConfig, content, "")
    for sample in ("simulation", "data", "gen", "reco"):  # parse every expression before reading
        level = "gen" if sample == "gen" else "reco"
        _ = _data_config(config, sample, level).expressions
    return config


def _data_config(config: UnfoldConfig, sample: str, level: str) -> DataConfig:
    """The data config that reads ``level``'s inputs (and its pass flag) from ``sample``'s files."""
    files = {
        "simulation": config.simulation,
        "gen": config.simulation,
        "reco": config.simulation,
        "data": config.data,
        "background": config.background,
        "truth": config.truth,
    }[sample]
    settings = config.gen if level == "gen" else config.reco
    passed = config.gen_pass if level == "gen" else config.reco_pass
    variables = dict(settings.new_variables)
    observers = []
    if sample in {"simulation", "gen", "reco"} and passed:
        variables[PASS_FIELD] = passed
        observers.append(PASS_FIELD)
    weight = getattr(config.weights, {"gen": "simulation", "reco": "simulation"}.get(sample, sample))
    return validate(
        DataConfig,
        {
            "train": files,
            "treename": config.treename,
            "new_variables": variables,
            "inputs": {name: group.model_dump() for name, group in settings.inputs.items()},
            "labels": {"type": "none"},
            "weights": weight,
            "observers": observers,
            "standardization": "meanstd",
        },
        f"{level} ({sample})",
    )


def _read(config: UnfoldConfig, sample: str, level: str) -> tuple[JetArrays, DataConfig]:
    data_config = _data_config(config, sample, level)
    arrays, _ = load_arrays(expand_files(data_config.train, sample), data_config)
    return arrays, data_config


def _passed(arrays: JetArrays) -> np.ndarray:
    values = arrays.observers.get(PASS_FIELD)
    return np.ones(len(arrays), bool) if values is None else values.astype(bool)


@dataclass
class UnfoldRun:
    """A finished ``heplearn unfold``: its run directory, output weights file and the result."""

    run_dir: Path
    weights_file: Path
    result: OmniFoldResult
    discriminators: dict[str, dict[str, float]]
    closure: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)


def unfold(
    config: UnfoldConfig, name: str | None = None, runs_dir: str | os.PathLike[str] = "runs", progress: bool = True
) -> UnfoldRun:
    """Read the samples ``config`` names, unfold the data by OmniFold, write the run directory.

    Parameters
    ----------
    config
        What to unfold and how (``load_unfold_config``).
    name
        The run's name (default: ``omnifold-<time>``).
    runs_dir
        Where the run directory goes.
    progress
        A progress bar over the iterations.

    Returns
    -------
    UnfoldRun
    """
    sim_gen, gen_config = _read(config, "simulation", "gen")
    sim_reco, reco_config = _read(config, "simulation", "reco")
    data, _ = _read(config, "data", "reco")
    background = _read(config, "background", "reco")[0] if config.background else None
    truth = _read(config, "truth", "gen")[0] if config.truth else None
    reco_pass, gen_pass = _passed(sim_reco), _passed(sim_gen)
    check_inputs(sim_gen, sim_reco, data, background, reco_pass, gen_pass)
    raw = {"gen": sim_gen, "reco": sim_reco, "data": data, "truth": truth}
    # standardisation from the simulated events that have the level (not the dummy values)
    gen_scaling = Preprocessing.fit(sim_gen.take(np.flatnonzero(gen_pass)), gen_config, [])
    reco_scaling = Preprocessing.fit(sim_reco.take(np.flatnonzero(reco_pass)), reco_config, [])
    sim_gen, sim_reco, data = gen_scaling.apply(sim_gen), reco_scaling.apply(sim_reco), reco_scaling.apply(data)
    background = reco_scaling.apply(background) if background is not None else None

    run = RunDirectory.create(runs_dir, name, "omnifold")
    content = config.model_dump(mode="json")
    content["provenance"] = {
        "heplearn_version": __version__,
        "git_hash": git_hash(),
        "torch_version": str(torch.__version__),
    }
    write_text_atomic(run.config_file, yaml.safe_dump(content, sort_keys=False))
    result = omnifold(
        sim_gen,
        sim_reco,
        data,
        model=config.model,
        gen_model=config.gen_model,
        training=config.training,
        settings=config.unfolding,
        reco_pass=reco_pass,
        gen_pass=gen_pass,
        background=background,
        run_dir=run,
        progress=progress,
    )
    weights_file = write_weights(
        run.path / WEIGHTS_FILE,
        result,
        {
            "simulation": [str(path) for path in expand_files(config.simulation, "simulation")],
            "iterations": config.unfolding.iterations,
        },
    )
    names = [variable for group in config.gen.inputs.values() for variable in group.variables]
    discriminators, closure = (
        _closure_figure(config, raw, reco_pass, gen_pass, result, run) if truth is not None else ({}, {})
    )
    write_run_summary(run, config.unfolding.model_dump(), result, names, discriminators, closure)
    return UnfoldRun(run.path, weights_file, result, discriminators, closure)


def _closure_figure(
    config: UnfoldConfig,
    raw: dict[str, Any],
    reco_pass: np.ndarray,
    gen_pass: np.ndarray,
    result: OmniFoldResult,
    run: RunDirectory,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """Truth, generator, IBU and OmniFold for each per-event generator variable; the Δ and χ²/ndf of each."""
    from heplearn.methods.unfolding_figures import ObservableComparison, closure_chi2, comparison_figure
    from heplearn.stats.ibu import unfold_events

    observables = []
    for group_name, group in config.gen.inputs.items():
        reco_group = config.reco.inputs.get(group_name)
        if group.per_particle or group.image is not None or reco_group is None:
            continue
        for index, variable in enumerate(group.variables):
            if index >= len(reco_group.variables):
                break
            gen = raw["gen"].inputs[group_name][:, index].astype(np.float64)
            reco = raw["reco"].inputs[group_name][:, index].astype(np.float64)
            truth = raw["truth"].inputs[group_name][:, index].astype(np.float64)
            data = raw["data"].inputs[group_name][:, index].astype(np.float64)
            # the ranges from the events that count (a dummy value of an event without the level
            # has weight 0 in the truth / data, or fails reco_pass)
            low, high = np.quantile(truth[raw["truth"].weight > 0], [0.005, 0.995])
            bins = np.linspace(low, high, config.comparison.bins + 1)
            reco_bins = np.linspace(
                *np.quantile(data[raw["data"].weight > 0], [0.005, 0.995]), config.comparison.bins + 1
            )
            prior = raw["gen"].weight.astype(np.float64)
            ibu = unfold_events(
                gen[gen_pass],
                reco[gen_pass],
                data,
                bins,
                reco_bins,
                config.unfolding.iterations,
                sim_weight=prior[gen_pass],
                data_weight=raw["data"].weight,
                reco_pass=reco_pass[gen_pass],
                bootstraps=config.comparison.bootstraps,
                seed=config.unfolding.seed,
            )
            replicas = result.bootstrap_weights[:, gen_pass] if result.bootstrap_weights.size else None
            observables.append(
                ObservableComparison(
                    variable,
                    config.comparison.labels.get(variable, variable),
                    bins,
                    truth,
                    gen[gen_pass],
                    result.weights[gen_pass],
                    truth_weights=raw["truth"].weight,
                    generator_weights=prior[gen_pass],
                    omnifold_replicas=replicas,
                    ibu=ibu,
                )
            )
    if not observables:
        return {}, {}
    _, discriminators = comparison_figure(observables, run.path / "figures")
    return discriminators, {observable.name: closure_chi2(observable) for observable in observables}
