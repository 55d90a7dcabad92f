"""OmniFold: unbinned, many-dimensional unfolding by iterated reweighting (Andreassen, Komiske,
Metodiev, Nachman, Thaler, arXiv:1911.09107, PRL 124, 182001).

The simulation comes in pairs (generator-level z_i, detector-level x_i) with prior weights w_i; the
data are detector-level events x_j with weights w_j. Starting from ν⁰ = 1, each iteration n is

1. *pull* (detector level): a classifier tells the data (target) from the simulation weighted
   w_i ν_i^{n−1}; its likelihood ratio gives ω_i^n = ν_i^{n−1} f(x_i) / (1 − f(x_i));
2. *push* (generator level): a classifier tells the generator events weighted w_i ω_i^n (target)
   from the same events weighted w_i; ν_i^n = g(z_i) / (1 − g(z_i)) is a function of z alone.

The unfolded result is the generator sample weighted w_i ν_i^N: histogram any observable of it.
Each step is the ``Reweighting`` task (postprocess f/(1 − f)) trained by the one in-memory entry
point ``heplearn.training.trainer.fit``, with that step's weights in the arrays' ``weight`` (every
loss term weights events by ``batch["weight"]``). Any network of the zoo can be the classifier:
an MLP on observables (MultiFold) or a particle network (PFN, ParT) for the full OmniFold.

Acceptance, as in the OmniFold Gaussian example (hep-lbdl/OmniFold ``GaussianExample.ipynb``):
simulated events that fail reconstruction (``reco_pass`` false; their detector values are dummies)
sit out step 1 and get ω = 1 (``no_reco: one``, the example's choice) or keep ν^{n−1}
(``no_reco: previous``); fakes (``gen_pass`` false: no generator-level event) sit out step 2 and
keep ν = 1. Background is subtracted in step 1 by adding background simulation to the data with
negative weights (the neural positive reweighting of arXiv:2007.11586 trains on the same sum).

In each step the two classes are given equal total weight, so f/(1−f) is the density ratio alone,
and ω and ν are normalised after each step (Σ w ω = Σ w ν^{n−1} over the reconstructed events,
Σ w ν = Σ w over the generator events, as the PyPI ``omnifold`` package does): the result is a
*shape*, as in the PRL's normalised distributions. ``ensemble`` averages the weights of several
classifiers per step (seeds differ); ``bootstraps`` repeats the whole unfolding with Poisson(1)
weights on the data for the statistical uncertainty (the spread of the replicas' histograms).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from heplearn.config import StrictModel
from heplearn.data.files import atomic_path, write_text_atomic
from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.models import registry
from heplearn.progress import progress_bar
from heplearn.run_config import LossTermConfig, ModelConfig, TrainingConfig
from heplearn.runs import RunDirectory
from heplearn.tasks import Reweighting
from heplearn.training.losses import TermContext, build_terms
from heplearn.training.trainer import InMemorySource, fit

log = logging.getLogger(__name__)

__all__ = [
    "OmniFoldResult",
    "OmniFoldSettings",
    "check_inputs",
    "level_arrays",
    "omnifold",
    "write_run_summary",
    "write_weights",
]

CLASS_NAMES = ["target", "source"]  # the Reweighting task's target is class 0
WEIGHTS_FILE = "weights.parquet"
ITERATIONS_DIR = "iterations"


class OmniFoldSettings(StrictModel):
    """The unfolding's own settings (the ``unfolding`` section of ``heplearn unfold``'s config)."""

    iterations: int = pydantic.Field(default=4, ge=1)
    ensemble: int = pydantic.Field(default=1, ge=1)
    bootstraps: int = pydantic.Field(default=0, ge=0)
    validation_fraction: float = pydantic.Field(default=0.2, ge=0, lt=1)
    no_reco: Literal["one", "previous"] = "one"
    weight_clip: float | None = pydantic.Field(default=None, gt=0)
    seed: int = 0


@dataclass
class OmniFoldResult:
    """Per-event weights of the generator-level simulation.

    ``prior`` (n,) are the simulation's weights w; ``pull`` and ``push`` (iterations, n) the ω and ν
    of every iteration; ``bootstrap_push`` (bootstraps, n) the final ν of each data replica.
    """

    prior: np.ndarray
    pull: np.ndarray
    push: np.ndarray
    bootstrap_push: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    histories: list[dict[str, Any]] = field(default_factory=list)

    @property
    def weights(self) -> np.ndarray:
        """The unfolded weights w ν^N of the generator events."""
        return self.prior * self.push[-1]

    def weights_at(self, iteration: int) -> np.ndarray:
        """The unfolded weights w ν^n after ``iteration`` (1-based)."""
        return self.prior * self.push[iteration - 1]

    @property
    def bootstrap_weights(self) -> np.ndarray:
        """(bootstraps, n): the unfolded weights of every data replica."""
        return self.prior * self.bootstrap_push if self.bootstrap_push.size else self.bootstrap_push


def level_arrays(
    inputs: Mapping[str, np.ndarray], weight: np.ndarray | None = None, mask: np.ndarray | None = None
) -> JetArrays:
    """The events of one level as the engine's arrays: input groups (``{"jet": (n, F)}`` for an MLP,
    ``particles``/``points``/``vectors`` with a ``mask`` for particle networks) and weights."""
    groups = {name: np.ascontiguousarray(values, dtype=np.float32) for name, values in inputs.items()}
    if not groups:
        raise ConfigError("inputs: give at least one input group")
    n = len(next(iter(groups.values())))
    for name, values in groups.items():
        if len(values) != n:
            raise DataError(f"inputs.{name}: {len(values)} events, but the other groups have {n}")
    weights = np.ones(n, np.float32) if weight is None else np.asarray(weight, np.float32)
    if len(weights) != n:
        raise DataError(f"weight: {len(weights)} values for {n} events")
    return JetArrays(groups, None if mask is None else np.asarray(mask, bool), np.zeros(n, np.int64), weights)


def omnifold(
    sim_gen: JetArrays,
    sim_reco: JetArrays,
    data: JetArrays,
    *,
    model: ModelConfig,
    training: TrainingConfig,
    settings: OmniFoldSettings | None = None,
    gen_model: ModelConfig | None = None,
    reco_pass: np.ndarray | None = None,
    gen_pass: np.ndarray | None = None,
    background: JetArrays | None = None,
    run_dir: str | Path | RunDirectory | None = None,
    progress: bool = True,
) -> OmniFoldResult:
    """Unfold ``data`` with the paired simulation (``sim_gen``, ``sim_reco``) by OmniFold.

    Parameters
    ----------
    sim_gen, sim_reco
        The simulation at generator and detector level, event by event (standardised as the
        networks want them); ``sim_gen.weight`` are the prior weights w.
    data
        The data at detector level: the same input groups as ``sim_reco``; ``data.weight`` its weights.
    model
        The network of step 1 (and of step 2 unless ``gen_model`` is given): any model of the zoo.
    training
        How each classifier is trained (epochs, batch size, learning rate, early stopping, ...).
    settings
        Iterations, ensemble, bootstraps, validation fraction, treatment of events without reco.
    gen_model
        The network of step 2, when it differs from step 1's.
    reco_pass, gen_pass
        Per simulated event: it was reconstructed / it has a generator-level event (default: all).
    background
        Background simulation at detector level, subtracted from the data with negative weights.
    run_dir
        Where the classifiers' logs, the per-iteration weights and the settings go (optional).
    progress
        A progress bar over the iterations.

    Returns
    -------
    OmniFoldResult
    """
    settings = settings or OmniFoldSettings()
    n = len(sim_gen)
    reco_pass = np.ones(n, bool) if reco_pass is None else np.asarray(reco_pass, bool)
    gen_pass = np.ones(n, bool) if gen_pass is None else np.asarray(gen_pass, bool)
    check_inputs(sim_gen, sim_reco, data, background, reco_pass, gen_pass)
    run = RunDirectory(Path(run_dir.path if isinstance(run_dir, RunDirectory) else run_dir)) if run_dir else None
    if run:
        run.path.mkdir(parents=True, exist_ok=True)
    if training.threads:
        torch.set_num_threads(training.threads)
    unfolder = _OmniFold(
        sim_gen, sim_reco, data, background, reco_pass, gen_pass, model, gen_model or model, training, settings
    )
    bar = progress_bar(
        total=settings.iterations * (1 + settings.bootstraps),
        desc="omnifold",
        unit="iteration",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        pull, push = unfolder.run(data.weight.astype(np.float64), settings.seed, run, bar)
        replicas = []
        rng = np.random.default_rng([settings.seed, 1])
        for replica in range(settings.bootstraps):
            resampled = data.weight.astype(np.float64) * rng.poisson(1.0, len(data))
            bar.set_postfix(bootstrap=f"{replica + 1}/{settings.bootstraps}")
            replicas.append(unfolder.run(resampled, settings.seed + 1000 * (replica + 1), None, bar)[1][-1])
    finally:
        bar.close()
    bootstrap_push = np.stack(replicas) if replicas else np.empty((0, n))
    return OmniFoldResult(sim_gen.weight.astype(np.float64), pull, push, bootstrap_push, unfolder.histories)


def check_inputs(
    sim_gen: JetArrays,
    sim_reco: JetArrays,
    data: JetArrays,
    background: JetArrays | None,
    reco_pass: np.ndarray,
    gen_pass: np.ndarray,
) -> None:
    """A ``DataError`` unless the samples fit together: paired simulation, the same detector-level
    groups in data and background, positive total weights (data after the background)."""
    n = len(sim_gen)
    if len(sim_reco) != n:
        raise DataError(
            f"simulation: {n} generator-level events but {len(sim_reco)} detector-level ones; "
            "they must be the same events, in the same order"
        )
    if len(reco_pass) != n or len(gen_pass) != n:
        raise DataError(f"reco_pass / gen_pass: one value per simulated event ({n}) is needed")
    for name, sample in (("data", data), ("background", background)):
        if sample is not None:
            _same_groups(sim_reco, sample, name)
    prior = sim_gen.weight.astype(np.float64)
    totals = {
        "simulation": prior.sum(),
        "simulation (reconstructed events)": prior[reco_pass].sum(),
        "simulation (events with a generator level)": prior[gen_pass].sum(),
        "data": data.weight.astype(np.float64).sum()
        - (0.0 if background is None else background.weight.astype(np.float64).sum()),
    }
    for name, total in totals.items():
        if not total > 0:
            raise DataError(
                f"{name}: the total weight is {total:g}; it must be positive"
                + (" (after subtracting the background)" if name == "data" else "")
            )


def _same_groups(reference: JetArrays, sample: JetArrays, name: str) -> None:
    """``sample`` must carry the input groups of the detector-level simulation, with the same shapes."""
    expected = {group: values.shape[1:] for group, values in reference.inputs.items()}
    found = {group: values.shape[1:] for group, values in sample.inputs.items()}
    if expected != found:
        raise DataError(
            f"{name}: its input groups {found} differ from the detector-level simulation's "
            f"{expected}; both must have the same fields"
        )


class _OmniFold:
    """The iterations of one unfolding (the nominal one or a bootstrap replica)."""

    def __init__(
        self,
        sim_gen: JetArrays,
        sim_reco: JetArrays,
        data: JetArrays,
        background: JetArrays | None,
        reco_pass: np.ndarray,
        gen_pass: np.ndarray,
        reco_model: ModelConfig,
        gen_model: ModelConfig,
        training: TrainingConfig,
        settings: OmniFoldSettings,
    ) -> None:
        self.sim_gen, self.sim_reco, self.data, self.background = sim_gen, sim_reco, data, background
        self.reco_pass, self.gen_pass = reco_pass, gen_pass
        self.reco_model, self.gen_model = reco_model, gen_model
        self.training, self.settings = training, settings
        self.prior = sim_gen.weight.astype(np.float64)
        self.histories: list[dict[str, Any]] = []

    def run(
        self, data_weight: np.ndarray, seed: int, run: RunDirectory | None, bar: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        settings, n = self.settings, len(self.prior)
        pull = np.empty((settings.iterations, n))
        push = np.empty((settings.iterations, n))
        nu = np.ones(n)
        target = self.data if self.background is None else JetArrays.concatenate([self.data, self.background])
        target_weight = (
            data_weight
            if self.background is None
            else np.concatenate([data_weight, -self.background.weight.astype(np.float64)])
        )
        reco = self.sim_reco.take(np.flatnonzero(self.reco_pass))
        gen = self.sim_gen.take(np.flatnonzero(self.gen_pass))
        for iteration in range(settings.iterations):
            where = (run.path / ITERATIONS_DIR / f"{iteration + 1:02d}") if run else None
            # step 1, detector level: data vs simulation weighted w ν (Eq. 3 of arXiv:1911.09107)
            ratio = self._step(
                target,
                target_weight,
                reco,
                (self.prior * nu)[self.reco_pass],
                self.reco_model,
                seed + 2 * iteration,
                where / "step1" if where else None,
            )
            omega = np.ones(n) if settings.no_reco == "one" else nu.copy()
            reconstructed = (self.prior * nu)[self.reco_pass]
            omega[self.reco_pass] = nu[self.reco_pass] * ratio * reconstructed.sum() / (reconstructed * ratio).sum()
            # step 2, generator level: simulation weighted w ω vs weighted w: ν is a function of z only
            prior = self.prior[self.gen_pass]
            nu = np.ones(n)
            ratio = self._step(
                gen,
                prior * omega[self.gen_pass],
                gen,
                prior,
                self.gen_model,
                seed + 2 * iteration + 1,
                where / "step2" if where else None,
            )
            nu[self.gen_pass] = ratio * prior.sum() / (prior * ratio).sum()
            pull[iteration], push[iteration] = omega, nu
            if where:
                _write_iteration(where / "weights.parquet", omega, nu)
            bar.update()
        return pull, push

    def _step(
        self,
        target: JetArrays,
        target_weight: np.ndarray,
        source: JetArrays,
        source_weight: np.ndarray,
        model_config: ModelConfig,
        seed: int,
        run_dir: Path | None,
    ) -> np.ndarray:
        """Train ``ensemble`` reweighting classifiers target vs source; the mean f/(1−f) on ``source``."""
        # equal totals: f/(1−f) is then the density ratio p_target/p_source alone
        target_weight = target_weight * source_weight.sum() / target_weight.sum()
        arrays = JetArrays.concatenate([_relabel(target, 0, target_weight), _relabel(source, 1, source_weight)])
        rng = np.random.default_rng([seed, 7])
        order = rng.permutation(len(arrays))
        held_out = int(len(arrays) * self.settings.validation_fraction)
        train_arrays, val_arrays = arrays.take(order[held_out:]), arrays.take(order[:held_out])
        ratios = np.zeros(len(source))
        for member in range(self.settings.ensemble):
            member_seed = seed * 100 + member
            task = Reweighting(CLASS_NAMES)
            specs = self.training.loss if self.training.loss != "auto" else [LossTermConfig(name=task.default_loss)]
            task.terms = build_terms(specs, task, TermContext(self.training, train_arrays.label, train_arrays.weight))
            torch.manual_seed(member_seed)
            network = registry.model_class(model_config.name).from_preset(
                model_config.preset, task.num_outputs, _input_dims(arrays), **model_config.hyperparameters
            )
            train_source = InMemorySource(
                InMemoryJets(train_arrays, CLASS_NAMES, None), self.training.batch_size, True, member_seed
            )
            val_source = (
                InMemorySource(
                    InMemoryJets(val_arrays, CLASS_NAMES, None), max(self.training.batch_size, 1024), False, 0
                )
                if held_out
                else None
            )
            member_dir = (run_dir / f"member{member}" if self.settings.ensemble > 1 else run_dir) if run_dir else None
            if member_dir:
                member_dir.mkdir(parents=True, exist_ok=True)
            result = fit(network, task, train_source, val_source, self.training, run_dir=member_dir)
            self.histories.extend(result.history)
            predict = InMemorySource(
                InMemoryJets(source, CLASS_NAMES, None), max(self.training.batch_size, 4096), False, 0
            )
            outputs = torch.from_numpy(result.trainer.predict(predict).outputs)
            ratios += task.postprocess(outputs, {})[:, 0].double().numpy()
        ratios /= self.settings.ensemble
        if self.settings.weight_clip is not None:
            ratios = np.clip(ratios, 0.0, self.settings.weight_clip)
        return ratios


def _relabel(arrays: JetArrays, label: int, weight: np.ndarray) -> JetArrays:
    return JetArrays(arrays.inputs, arrays.mask, np.full(len(arrays), label, np.int64), weight.astype(np.float32))


def _input_dims(arrays: JetArrays) -> dict[str, int]:
    """Features per entry of each input group (channels of an image)."""
    return {name: values.shape[1] if values.ndim == 4 else values.shape[-1] for name, values in arrays.inputs.items()}


def _write_iteration(path: Path, pull: np.ndarray, push: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        pq.write_table(pa.table({"pull": pull, "push": push}), temporary)


def write_weights(path: str | Path, result: OmniFoldResult, metadata: Mapping[str, Any] | None = None) -> Path:
    """The per-event output weights as Parquet, one row per simulated event, written atomically.

    Columns: ``prior_weight`` (w), ``weight`` (the unfolded w ν^N), ``weight_iteration_<n>`` for every
    iteration and ``weight_bootstrap_<k>`` for every data replica; ``metadata`` goes in the file's
    key-value metadata (as JSON under ``heplearn``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, np.ndarray] = {"prior_weight": result.prior, "weight": result.weights}
    for iteration in range(len(result.push)):
        columns[f"weight_iteration_{iteration + 1}"] = result.weights_at(iteration + 1)
    for replica, weights in enumerate(result.bootstrap_weights):
        columns[f"weight_bootstrap_{replica + 1}"] = weights
    table = pa.table(columns).replace_schema_metadata({"heplearn": json.dumps(dict(metadata or {}), default=str)})
    path = Path(path)
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)
    return path


def write_run_summary(
    run: RunDirectory,
    settings: Mapping[str, Any],
    result: OmniFoldResult,
    names: Sequence[str] = (),
    discriminators: Mapping[str, Any] | None = None,
    closure: Mapping[str, Any] | None = None,
) -> None:
    """``unfolding.json`` beside the weights: settings, sizes, the weights' spread per iteration and,
    for a closure test, the triangular discriminators ×10³ and the χ²/ndf to the truth."""
    summary = {
        "settings": dict(settings),
        "events": len(result.prior),
        "observables": list(names),
        "triangular_discriminator_1e3": dict(discriminators or {}),
        "closure_chi2": dict(closure or {}),
        "push_std_per_iteration": [float(np.std(push)) for push in result.push],
        "pull_std_per_iteration": [float(np.std(pull)) for pull in result.pull],
    }
    write_text_atomic(run.path / "unfolding.json", json.dumps(summary, indent=2, default=str))
