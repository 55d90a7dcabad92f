"""Parametrised DCTR (Andreassen & Nachman, arXiv:1907.08209, sec. III): f(x, θ) over a range of θ.

Every target event carries the θ it was generated with (a field of the target files), every source
event a θ drawn from the target's θ values (anew every epoch: ``RedrawnParameters``; for a target
generated with θ ~ U(range), as in the paper, that is the paper's uniform draw), appended to the
inputs as one more column per jet, or one more feature per particle for particle models (the
paper's PFN reads (pT, y, φ, PID, θ) per particle). Then w(x | θ) = f/(1 − f) · N₀/N₁ for any θ in
the range (``ParametrisedModel.weights``, ``parametrised_weights``), and ``fit_parameters`` fits θ to
a target sample by gradient descent on θ alone with f frozen (the notebooks' "AddParams2Input" fit,
App. B). The run directory is ``reweight``'s (``heplearn.methods.reweighting``) with the classifier
in ``model/`` (or, with ``ensemble=k``, k classifiers in ``model-0/`` … ``model-<k-1>/``, trained from
different seeds on the same events, whose log-ratios are averaged: the paper's and OmniFold's
ensembling against the noise of one training) and the fit in ``fit.json``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heplearn import __version__
from heplearn.data.batches import to_batch, trim_padding
from heplearn.data.config import DataConfig
from heplearn.data.files import write_text_atomic
from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import ConfigError, DataError, FitError
from heplearn.methods.reweighting import (
    DEFAULT_OPTIONS,
    FIT_FILE,
    SOURCE,
    TARGET,
    Sample,
    WeightOptions,
    check_same_fields,
    check_total_weight,
    density_ratio,
    labelled,
    new_run,
    prior_ratio,
    read_sample,
    read_settings,
    reweighting_config,
    split_validation,
    train_classifier,
    use_threads,
    weight_summary,
    write_friends,
    write_settings,
)
from heplearn.progress import progress_bar
from heplearn.run_config import RunConfig
from heplearn.trained_model import TrainedModel


def draw_parameters(target_theta: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """θ for ``n`` source events: rows drawn from the target's θ values ``(N, P)``.

    The classifier must not be able to tell the classes apart by θ alone, so the source's θ must
    follow the target's θ distribution: for a target generated with θ ~ U(range) (arXiv:1907.08209)
    this is the paper's uniform draw; for a target made at a few grid points a uniform draw would
    let the classifier learn "θ on the grid ⇒ target" instead of p(x | θ) / p₀(x).
    """
    return target_theta[rng.integers(0, len(target_theta), n)]


@dataclass
class RedrawnParameters:
    """Batches whose source events get fresh θ, drawn from the target's θ values, every epoch.

    arXiv:1907.08209 pairs every source event with a θ from the target's distribution (uniform
    over the range there); drawing it anew each pass keeps that distribution and shows the
    classifier each source event at many θ, so f(x, θ) learns its θ-dependence from more pairs
    than there are events.
    """

    dataset: InMemoryJets
    batch_size: int
    seed: int
    preprocessing: Preprocessing
    target_theta: np.ndarray  # (N_target, P): the values the source's θ are drawn from
    groups: Sequence[str]

    def epoch_batches(self, epoch: int) -> Any:
        """The batches of ``epoch``, the source jets' parameters θ drawn again from the target's."""
        arrays = self.dataset.arrays
        source = np.flatnonzero(arrays.label == SOURCE)
        count = self.target_theta.shape[1]
        rng = np.random.default_rng([self.seed, 13, epoch])
        theta = draw_parameters(self.target_theta, len(source), rng)
        for group in self.groups:
            values = arrays.inputs[group]
            centre, inverse_scale, bound = (constant[-count:] for constant in self.preprocessing.constants(group))
            scaled = np.clip((theta - centre) * inverse_scale, -bound, bound).astype(np.float32)
            if values.ndim == 3:  # per particle: θ on the real particles; padded slots keep the pad value
                assert arrays.mask is not None
                rows = values[source]
                rows[..., -count:] = np.where(
                    arrays.mask[source][..., None], scaled[:, None, :], self.preprocessing.pad_values[group]
                )
                values[source] = rows
            else:
                values[source, -count:] = scaled
        return self.dataset.batches(self.batch_size, shuffle=True, seed=self.seed, epoch=epoch)

    def batches_per_epoch(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.dataset) / self.batch_size)


# --------------------------------------------------------------------------- parametrised DCTR
FEATURE_GROUPS = ("jet", "particles")  # the groups models read as features; points and vectors stay coordinates


def parameter_groups(data: DataConfig) -> list[str]:
    """The input groups the parameters are appended to: ``jet`` and ``particles`` (the features the
    models read; ``points`` and ``vectors`` are coordinates and four-vectors), or the only group."""
    groups = [name for name in data.inputs if name in FEATURE_GROUPS]
    if not groups and len(data.inputs) == 1:
        groups = list(data.inputs)
    images = [name for name in groups if data.inputs[name].image is not None]
    if not groups or images:
        raise ConfigError(
            f"data.inputs ({', '.join(data.inputs)}): parametrised reweighting appends the parameters "
            "to a per-jet group 'jet' or a per-particle group 'particles'"
        )
    return groups


def parametrised_data(data: DataConfig, parameters: Sequence[str]) -> DataConfig:
    """``data`` with the parameters appended to the feature groups (``parameter_groups``): one more
    column per jet, or one more feature per particle (the paper's PFN reads (pT, y, φ, PID, θ))."""
    if not parameters:
        raise ConfigError("parametrised reweighting needs at least one parameter (--parameter FIELD)")
    if len(set(parameters)) != len(parameters):
        raise ConfigError(f"parameters {list(parameters)}: each may be given once")
    groups = dict(data.inputs)
    for name in parameter_groups(data):
        group = data.inputs[name]
        clash = sorted(set(parameters) & set(group.variables))
        if clash:
            raise ConfigError(f"data.inputs.{name} reads {', '.join(clash)} already; a parameter must not be an input")
        groups[name] = group.model_copy(update={"variables": [*group.variables, *parameters]})
    return data.model_copy(update={"inputs": groups})


def with_parameters(arrays: JetArrays, data: DataConfig, values: np.ndarray) -> JetArrays:
    """``arrays`` (read with ``data``) with the parameter values ``(n, P)`` appended to the feature
    groups as ``parametrised_data`` lays them out; padded particle slots get zeros."""
    values = np.asarray(values, np.float32).reshape(len(arrays), -1)
    inputs = dict(arrays.inputs)
    for name in parameter_groups(data):
        current = arrays.inputs[name]
        if data.inputs[name].per_particle:
            extra = np.broadcast_to(values[:, None, :], (*current.shape[:2], values.shape[1])).copy()
            if arrays.mask is not None:
                extra[~arrays.mask] = 0.0
            inputs[name] = np.concatenate([current, extra], axis=-1)
        else:
            inputs[name] = np.concatenate([current, values], axis=-1)
    return JetArrays(inputs, arrays.mask, arrays.label, arrays.weight, arrays.observers)


def parameter_ranges(
    target: Sample, parameters: Sequence[str], ranges: Mapping[str, tuple[float, float]] | None
) -> dict[str, tuple[float, float]]:
    """The trained range of each parameter: as given, or the target sample's smallest and largest value."""
    result = {}
    for name in parameters:
        values = target.arrays.observers[name].astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError(f"target: parameter {name!r} has NaN or infinite values")
        low, high = (ranges or {}).get(name, (float(values.min()), float(values.max())))
        if not low < high:
            raise ConfigError(
                f"parameter {name!r}: the range [{low:g}, {high:g}] is empty; the target must "
                "span a range of values (or give --range)"
            )
        outside = int(np.sum((values < low) | (values > high)))
        if outside:
            raise DataError(f"target: {outside} events have {name!r} outside the range [{low:g}, {high:g}]")
        result[name] = (float(low), float(high))
    return result


def check_in_range(values: Mapping[str, float], ranges: Mapping[str, tuple[float, float]], where: str) -> None:
    """A ``ConfigError`` when a parameter is missing, unknown or outside the trained range."""
    if set(values) != set(ranges):
        raise ConfigError(
            f"{where}: give a value for each trained parameter ({', '.join(ranges)}), got {', '.join(values) or 'none'}"
        )
    for name, value in values.items():
        low, high = ranges[name]
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{where}: {name} = {value:g} is outside the trained range [{low:g}, {high:g}]")


@dataclass
class ParametrisedResult:
    """What ``reweight_parametrised`` made: the run, its classifier and the trained ranges."""

    run_dir: Path
    models: list[TrainedModel]
    ranges: dict[str, tuple[float, float]]
    prior: float
    friends: list[Path] = field(default_factory=list)


def reweight_parametrised(
    config: RunConfig,
    source_files: Sequence[str | os.PathLike[str]],
    target_files: Sequence[str | os.PathLike[str]],
    parameters: Sequence[str],
    *,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    val_fraction: float = 0.2,
    at: Mapping[str, float] | None = None,
    ensemble: int = 1,
    options: WeightOptions = DEFAULT_OPTIONS,
    name: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    progress: bool = True,
) -> ParametrisedResult:
    """Parametrised DCTR: train f(x, θ) between a source and targets generated over a range of θ.

    Parameters
    ----------
    config : RunConfig
        As for ``reweight``; the parameters are appended to the model's inputs. Prefer smooth units
        (``model.activation: silu`` for the MLP): log f/(1 − f) must follow log p_θ/p₀ into the
        sparse tails, where a ReLU network continues its last linear pieces (on N(0,1) → N(μ,1),
        μ ∈ [−2, 2], 10⁵ events, at μ = −1.5: ReLU flattens the log-ratio by 0.4 at x = −4 and the
        weighted variance comes out 0.95-0.97, SiLU 0.97-0.99 for the exact weights' 0.992).
    source_files : sequence of path-like
        The nominal sample; each event is paired with a θ drawn from the target's θ values, anew
        every epoch (arXiv:1907.08209, sec. III, where the target's θ is uniform over the range:
        never with its own θ₀, which would make the task trivial).
    target_files : sequence of path-like
        Events generated at many θ, each carrying its θ in the fields ``parameters``.
    parameters : sequence of str
        The fields of the target files that hold θ.
    ranges : mapping of str to (float, float), optional
        The trained range of each parameter (default: the target's smallest and largest value).
        Near its edges the weights are pulled towards the inside of the range (N(0,1) → N(μ,1) over
        μ ∈ [−2, 2]: the reweighted mean is off by +0.10 at μ = −2, +0.02 at −1.5, 0.00 at −1.25,
        with every architecture and training length tried): train over a range wider than the
        values the weights are needed at.
    at : mapping of str to float, optional
        Also write the source's weights w(x | θ) at this θ as friend files.
    ensemble : int
        Classifiers to train (seeds ``training.seed`` + 0 … k − 1, the same events); the weights
        and the fit use the mean of their log f/(1 − f), which averages out the noise of one training.
    val_fraction, options, name, runs_dir, progress
        As for ``reweight``.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if ensemble < 1:
        raise ConfigError(f"ensemble must be 1 or more classifiers, got {ensemble}")
    parameters = list(parameters)
    data = parametrised_data(config.data, parameters)
    run_config = reweighting_config(config, data)
    use_threads(run_config)
    options.check()
    source = read_sample(source_files, config.data, "source", progress=progress)
    target = read_sample(target_files, config.data, "target", extra_observers=parameters, progress=progress)
    check_same_fields(source, target, ignore=parameters)
    check_total_weight(source)
    check_total_weight(target)
    trained = parameter_ranges(target, parameters, ranges)
    if at is not None:
        check_in_range(at, trained, "--at")
    run = new_run(runs_dir, name, f"reweight-{config.model.name}-parametrised")
    plans = options.plan(source, run) if at is not None else []
    run.write_config(run_config, {"torch_version": str(torch.__version__)})

    seed = run_config.training.seed
    target_theta = np.stack([target.arrays.observers[p].astype(np.float64) for p in parameters], axis=-1)
    source_theta = draw_parameters(target_theta, len(source), np.random.default_rng([seed, 7]))
    everything = labelled(
        with_parameters(target.arrays, config.data, target_theta),
        with_parameters(source.arrays, config.data, source_theta),
    )
    train_index, val_index = split_validation(len(everything), val_fraction, seed + 100)
    train_set = everything.take(train_index)
    val_set = everything.take(val_index) if len(val_index) else None
    members = member_directories(ensemble)
    training_theta = target_theta[train_index[train_index < len(target)]]  # the target's training events' θ

    def redrawn(member_seed: int) -> Callable[[InMemoryJets, Preprocessing], RedrawnParameters]:
        def batches(dataset: InMemoryJets, preprocessing: Preprocessing) -> RedrawnParameters:
            return RedrawnParameters(
                dataset,
                run_config.training.batch_size,
                member_seed,
                preprocessing,
                training_theta,
                parameter_groups(config.data),
            )

        return batches

    models = []
    for member, directory in enumerate(
        progress_bar(members, desc="ensemble", unit="model", disable=not progress or ensemble == 1)
    ):
        member_config = run_config.model_copy(
            update={"training": run_config.training.model_copy(update={"seed": seed + member})}
        )
        models.append(
            train_classifier(member_config, train_set, val_set, run.path / directory, progress, redrawn(seed + member))
        )
    prior = prior_ratio(train_set)
    result = ParametrisedResult(run.path, models, trained, prior)
    settings: dict[str, Any] = {
        "method": "parametrised_dctr",
        "source": [str(f) for f in source.files],
        "target": [str(f) for f in target.files],
        "parameters": parameters,
        "ranges": {p: list(r) for p, r in trained.items()},
        "members": members,
        "prior_source_over_target": prior,
        "val_fraction": val_fraction,
        "clip": list(options.clip),
        "normalise": options.normalise,
    }
    if at is not None:
        raw = parametrised_ratio(models, config.data, source.arrays, at, prior, parameters)
        weights = options.apply(raw, source, target.total_weight)
        provenance = {
            "heplearn_version": __version__,
            "run": str(run.path),
            "method": "parametrised_dctr",
            "at": dict(at),
        }
        result.friends = write_friends(source, {"weight": weights.astype(np.float32)}, plans, provenance)
        summary = {
            key: value
            for key, value in weight_summary(source, target, raw, weights).items()
            if not key.startswith(("target", "reweighted_total_raw"))
        }
        settings.update({"at": dict(at), "friends": [str(p) for p in result.friends], "summary": summary})
        if options.report:
            from heplearn.methods.reweighting_report import closure_report

            closure_report(
                run.path / "report",
                config.data,
                source,
                None,
                weights,
                summary,
                title=f"Parametrised DCTR at {dict(at)}",
                progress=progress,
            )
    write_settings(run, settings)
    return result


def member_directories(ensemble: int) -> list[str]:
    """Where the classifiers of a parametrised run go: ``model`` alone, or ``model-0`` … ``model-<k-1>``.

    Example:
    >>> member_directories(1), member_directories(3)
    (['model'], ['model-0', 'model-1', 'model-2'])
    """
    return ["model"] if ensemble == 1 else [f"model-{member}" for member in range(ensemble)]


def parametrised_ratio(
    models: Sequence[TrainedModel],
    data: DataConfig,
    arrays: JetArrays,
    at: Mapping[str, float],
    prior: float,
    parameters: Sequence[str],
) -> np.ndarray:
    """w(x | θ) = f(x, θ)/(1 − f(x, θ)) · N₀/N₁ for raw ``arrays`` (read with ``data``) at θ = ``at``;
    for an ensemble, exp of the members' mean log f/(1 − f) (the geometric mean of their ratios)."""
    theta = np.broadcast_to(np.asarray([at[p] for p in parameters], np.float64), (len(arrays), len(parameters)))
    augmented = with_parameters(arrays, data, theta)
    logs = [np.log(density_ratio(model, augmented, prior)) for model in models]
    return np.exp(np.mean(logs, axis=0))


@dataclass
class ParametrisedModel:
    """A finished parametrised run, loaded: its classifiers (one, or the ensemble's members, all with
    the same preprocessing), data config (without the parameters), parameter names, trained ranges
    and prior ratio N₀ / N₁."""

    models: list[TrainedModel]
    data: DataConfig
    parameters: list[str]
    ranges: dict[str, tuple[float, float]]
    prior: float

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> ParametrisedModel:
        """The parametrised model of a run directory written by the parametrised DCTR; another run is an error."""
        settings = read_settings(run_dir)
        if settings.get("method") != "parametrised_dctr":
            raise DataError(
                f"{run_dir}: a {settings.get('method')} run, not a parametrised one (train it with "
                "heplearn reweight --parametrised)"
            )
        models = [TrainedModel.load(Path(run_dir) / member) for member in settings.get("members", ["model"])]
        if any(model.preprocessing != models[0].preprocessing for model in models):
            raise DataError(f"{run_dir}: the ensemble's classifiers were standardised differently (mixed runs?)")
        parameters = list(settings["parameters"])
        data = models[0].config.data
        inputs = dict(data.inputs)
        for name in parameter_groups(data):
            inputs[name] = data.inputs[name].model_copy(
                update={"variables": data.inputs[name].variables[: -len(parameters)]}
            )
        return cls(
            models,
            data.model_copy(update={"inputs": inputs}),
            parameters,
            {p: (float(r[0]), float(r[1])) for p, r in settings["ranges"].items()},
            float(settings["prior_source_over_target"]),
        )

    @property
    def preprocessing(self) -> Preprocessing:
        """The standardisation every member applies (θ included, as the last columns)."""
        return self.models[0].preprocessing

    def weights(self, arrays: JetArrays, at: Mapping[str, float]) -> np.ndarray:
        """w(x | θ) for raw arrays at θ = ``at`` (inside the trained range)."""
        check_in_range(at, self.ranges, "theta")
        return parametrised_ratio(self.models, self.data, arrays, at, self.prior, self.parameters)


def parametrised_weights(
    run_dir: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]], at: Mapping[str, float]
) -> tuple[np.ndarray, Sample]:
    """w(x | θ) at θ = ``at`` for every event of ``files`` passing the run's selection, and the sample."""
    loaded = ParametrisedModel.load(run_dir)
    check_in_range(at, loaded.ranges, "theta")
    sample = read_sample(files, loaded.data, "source")
    return loaded.weights(sample.arrays, at), sample


# --------------------------------------------------------------------------- the fit of θ
@dataclass
class ParameterFit:
    """θ̂ fitted to a target sample with f frozen, its statistical uncertainty and the path taken."""

    values: dict[str, float]
    uncertainties: dict[str, float]
    covariance: list[list[float]]
    loss: float
    history: list[dict[str, float]]
    source_events: int
    target_events: int


class _FrozenClassifier(torch.nn.Module):
    """log p_θ(x)/p₀(x) of the frozen parametrised classifier (the mean over an ensemble's members)
    as a function of θ (standardised)."""

    def __init__(self, loaded: ParametrisedModel) -> None:
        super().__init__()
        networks = [model.network for model in loaded.models]
        assert all(network is not None for network in networks)
        self.networks = torch.nn.ModuleList(networks).eval().requires_grad_(False)
        self.preprocessing = loaded.preprocessing
        self.groups = parameter_groups(loaded.data)
        self.parameters_count = len(loaded.parameters)
        self.log_prior = math.log(loaded.prior)

    def standardise_theta(self, theta: torch.Tensor, group: str) -> torch.Tensor:
        centre, inverse_scale, bound = (
            torch.from_numpy(np.asarray(c, np.float32))[-self.parameters_count :]
            for c in self.preprocessing.constants(group)
        )
        return torch.clamp((theta - centre) * inverse_scale, -bound, bound)

    def log_ratio(self, batch: dict[str, torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
        """``theta`` (B, P) in the parameters' own units."""
        inputs = dict(batch)
        for group in self.groups:
            values = batch[group]
            scaled = self.standardise_theta(theta, group)
            head = values[..., : -self.parameters_count]
            if values.dim() == 3:  # per particle: θ on the real particles, the pad value elsewhere
                mask = batch["mask"][..., None]
                pad = torch.full_like(values[..., -self.parameters_count :], self.preprocessing.pad_values[group])
                scaled = torch.where(mask, scaled[:, None, :].expand(-1, values.shape[1], -1), pad)
            inputs[group] = torch.cat([head, scaled], dim=-1)
        # log f/(1 − f) − log N₁/N₀ = log p_θ/p₀ (Reweighting task: class 0 is the target), averaged
        # over the members as parametrised_ratio averages them
        log_ratios = []
        for network in self.networks:
            logits = network(inputs).float()
            log_ratios.append(logits[:, TARGET] - logits[:, SOURCE])
        return torch.stack(log_ratios).mean(dim=0) + self.log_prior


def fit_parameters(
    run_dir: str | os.PathLike[str],
    source_files: Sequence[str | os.PathLike[str]],
    target_files: Sequence[str | os.PathLike[str]],
    *,
    start: Mapping[str, float] | None = None,
    epochs: int = 10,
    batch_size: int = 10_000,
    learning_rate: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> ParameterFit:
    """Fit θ to a target sample: gradient descent on θ alone, the parametrised classifier frozen.

    θ̂ minimises the binary cross-entropy of the frozen f(x, θ) between the source (label 0) and
    the target (label 1) (arXiv:1907.08209, App. B; the notebooks' "AddParams2Input" layer): with
    log f/(1 − f) = log p_θ/p₀ + log N_target/N_source, the expected loss is smallest where p_θ is the
    target's density. Adam runs on the standardised θ with a cosine-decaying step over ``epochs``
    passes of mini-batches; the uncertainty is the sandwich estimate H⁻¹ J H⁻¹ of the summed loss
    (H its second derivative in θ, J the sum of the per-event squared gradients): the statistical
    spread of θ̂ from both samples' finite size, not counting the classifier's own.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be 1 or more, got {epochs}")
    if batch_size < 1 or not learning_rate > 0:
        raise ConfigError("batch_size must be positive and learning_rate above 0")
    loaded = ParametrisedModel.load(run_dir)
    first = {p: 0.5 * (low + high) for p, (low, high) in loaded.ranges.items()} if start is None else dict(start)
    check_in_range(first, loaded.ranges, "start")
    source = read_sample(source_files, loaded.data, "source", progress=progress)
    target = read_sample(target_files, loaded.data, "target", progress=progress)
    check_same_fields(source, target)
    check_total_weight(source)
    check_total_weight(target)
    frozen = _FrozenClassifier(loaded)
    placeholder = np.asarray([first[p] for p in loaded.parameters], np.float64)
    joined = labelled(
        with_parameters(target.arrays, loaded.data, np.broadcast_to(placeholder, (len(target), len(placeholder)))),
        with_parameters(source.arrays, loaded.data, np.broadcast_to(placeholder, (len(source), len(placeholder)))),
    )
    scaled = loaded.preprocessing.apply(joined)
    # the fit samples' own prior: log W_target / W_source (the classifier's was removed in log_ratio)
    offset = math.log(target.total_weight / source.total_weight)
    total_weight = target.total_weight + source.total_weight
    low = torch.tensor([loaded.ranges[p][0] for p in loaded.parameters])
    high = torch.tensor([loaded.ranges[p][1] for p in loaded.parameters])
    span = high - low
    # optimise u = (θ − low)/span ∈ [0, 1]: one learning rate fits every parameter's units
    u = torch.nn.Parameter((torch.tensor(placeholder, dtype=torch.float32) - low) / span)
    optimizer = torch.optim.Adam([u], lr=learning_rate)
    steps_per_epoch = math.ceil(len(scaled) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    history = []
    bar = progress_bar(
        total=epochs * steps_per_epoch, desc="fitting θ", unit="batch", disable=not progress, leave=False
    )
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(scaled))
        for begin in range(0, len(order), batch_size):
            batch = trim_padding(to_batch(scaled.take(order[begin : begin + batch_size])))
            theta = (low + span * u).expand(len(batch["weight"]), -1)
            loss = _fit_loss(frozen, batch, theta, offset) / total_weight * (len(scaled) / len(batch["weight"]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                u.clamp_(0.0, 1.0)  # θ stays where f was trained
            bar.update()
        values = (low + span * u).detach()
        history.append({"epoch": epoch + 1, **{p: float(values[i]) for i, p in enumerate(loaded.parameters)}})
    bar.close()
    theta_hat = (low + span * u).detach().double()
    # the Hessian's central difference steps by 1% of the range: a ReLU network is piecewise linear in
    # θ, and over a step much shorter than the spacing of its kinks the difference of gradients is
    # noise (a PFN on 8,000 jets: H = −1.5e4 at 0.01% of the α_s range, 3.0e5 at 1.2%, 3.1e5 at 4%;
    # the loss profile's curvature 3.0e5)
    covariance, loss_value = _sandwich(frozen, scaled, theta_hat, offset, batch_size, 1e-2 * span.double())
    errors = np.sqrt(np.clip(np.diag(covariance), 0, None))
    fitted = ParameterFit(
        {p: float(theta_hat[i]) for i, p in enumerate(loaded.parameters)},
        {p: float(errors[i]) for i, p in enumerate(loaded.parameters)},
        covariance.tolist(),
        loss_value / total_weight,
        history,
        len(source),
        len(target),
    )
    at_edge = [
        p
        for p, value in fitted.values.items()
        if min(abs(value - loaded.ranges[p][0]), abs(value - loaded.ranges[p][1]))
        < 1e-3 * float(loaded.ranges[p][1] - loaded.ranges[p][0])
    ]
    if at_edge:
        raise FitError(
            f"the fit of {', '.join(at_edge)} ended at the edge of the trained range "
            f"{ {p: loaded.ranges[p] for p in at_edge} }: the target lies outside it, or the fit did "
            "not converge (train over a wider range)"
        )
    from heplearn.evaluation.report import jsonable

    write_text_atomic(
        Path(run_dir) / FIT_FILE,
        json.dumps(
            jsonable(
                {
                    "source": [str(f) for f in source.files],
                    "target": [str(f) for f in target.files],
                    "epochs": epochs,
                    "batch_size": batch_size,
                    "learning_rate": learning_rate,
                    "values": fitted.values,
                    "uncertainties": fitted.uncertainties,
                    "covariance": fitted.covariance,
                    "loss": fitted.loss,
                    "history": history,
                }
            ),
            indent=2,
        ),
    )
    return fitted


def _fit_loss(
    frozen: _FrozenClassifier, batch: dict[str, torch.Tensor], theta: torch.Tensor, offset: float
) -> torch.Tensor:
    """Σ w · BCE of the batch (target label 1) with logits log p_θ/p₀ + log W_target/W_source."""
    logits = frozen.log_ratio(batch, theta.float()) + offset
    is_target = (batch["label"] == TARGET).float()
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, is_target, reduction="none")
    return (batch["weight"].float() * losses).sum()


def _sandwich(
    frozen: _FrozenClassifier,
    scaled: JetArrays,
    theta: torch.Tensor,
    offset: float,
    batch_size: int,
    step: torch.Tensor,
) -> tuple[np.ndarray, float]:
    """The covariance H⁻¹ J H⁻¹ of θ̂ (the M-estimator's sandwich) and the summed loss at θ̂."""
    parameters = theta.numel()

    def gradient(at: torch.Tensor, per_event: bool) -> tuple[np.ndarray, float]:
        total_gradient = np.zeros(parameters)
        outer = np.zeros((parameters, parameters))
        total_loss = 0.0
        for begin in range(0, len(scaled), batch_size):
            batch = trim_padding(to_batch(scaled.take(slice(begin, begin + batch_size))))
            rows = at.float().expand(len(batch["weight"]), -1).clone().requires_grad_(True)
            loss = _fit_loss(frozen, batch, rows, offset)
            (events,) = torch.autograd.grad(loss, rows)
            events_np = events.double().numpy()
            total_gradient += events_np.sum(axis=0)
            if per_event:
                outer += events_np.T @ events_np
            total_loss += float(loss.detach())
        return (outer if per_event else total_gradient), total_loss

    outer, loss_value = gradient(theta, per_event=True)
    hessian = np.zeros((parameters, parameters))
    for j in range(parameters):
        shift = torch.zeros(parameters, dtype=torch.float64)
        shift[j] = step[j]
        up, _ = gradient(theta + shift, per_event=False)
        down, _ = gradient(theta - shift, per_event=False)
        hessian[:, j] = (up - down) / (2 * float(step[j]))
    hessian = 0.5 * (hessian + hessian.T)
    if not np.all(np.linalg.eigvalsh(hessian) > 0):
        raise FitError(
            "the loss is not curved upwards at the fitted θ: no uncertainty can be given (the target "
            "may not depend on the parameters the classifier was trained on)"
        )
    inverse = np.linalg.inv(hessian)
    return inverse @ outer @ inverse, loss_value
