"""Decorrelating a classifier from an observable (the jet mass): DisCo and the adversary.

Two ways to keep a tagger from sculpting the background mass distribution, both on the
trainer's extension points (a loss term, a step strategy), chosen in the run config::

    training:
      loss: [{name: cross_entropy}, {name: disco, weight: 10, on: jet_sdmass}]
    # or
    training:
      step: {name: adversarial, on: jet_sdmass, strength: 10}

The observable travels with the batch (``data.observers``), never as an input.

- ``disco``: the squared distance correlation dCor²(score, m) of the background events of the
  batch (Kasieczka & Shih, arXiv:2001.05310), added to the loss with weight λ. dCor² is zero if
  and only if the two are independent (Székely, Rizzo & Bakirov, Ann. Stat. 35 (2007) 2769).
- ``planed_cross_entropy``: planing (de Oliveira et al., arXiv:1511.05190): the cross entropy with
  per-event weights w/p_class(m) from a histogram of each class's mass on the training split,
  so that every class's weighted mass distribution is flat: the marginal mass carries no
  information, though its correlations with the other inputs still do.
- ``double_disco``: ABCDisCo (Kasieczka, Nachman, Schwartz & Shih, arXiv:2007.14400): two taggers f
  and g with λ·dCor²(f, g) on the background, for an ABCD estimate in the (f, g) plane
  (``heplearn.stats.abcd``).
- ``adversarial``: "learning to pivot" (Louppe, Kagan & Cranmer, arXiv:1611.01046). A second
  network r predicts the observable's bin from the classifier's score on background events; the
  classifier minimises L_f − λ·L_r while r minimises L_r, in alternating steps (``adversary_steps``
  updates of r per update of f, after ``pretrain_steps`` steps in which f learns alone and r
  learns to read it). r reads the standardised log-odds of the score (``input: logit``) through
  smooth (SiLU) units: with ReLU units r died in the game on generated top vs QCD (its loss
  pinned at ln K while the score still held the mass). The validation loss is the game's value
  L_f + λ·(ln K − L_r), so the best epoch is a decorrelated one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import torch
from torch import nn
from torch.nn import functional

from heplearn.config import StrictModel
from heplearn.data.jets import observer_key
from heplearn.errors import ConfigError
from heplearn.methods.abcd_closure import ClosureConstraint, ClosureSettings
from heplearn.models.nn_base import mlp
from heplearn.tasks import Batch, Classification, Task
from heplearn.training.losses import LossTermBase, TermContext
from heplearn.training.steps import StepContext, StepStrategy, autocast, loss_figures, optimise

#: Above this many events, dCor² is averaged over disjoint chunks: its memory is O(N²).
DISCO_CHUNK = 2048


def distance_correlation(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The weighted squared distance correlation dCor²(x, y) of two 1-d samples (a V-statistic).

    With weights normalised to Σw = N, a_ij = |x_i − x_j| is double-centred with weighted means,
    A_ij = a_ij − ā_i − ā_j + ā, likewise B for y, and dCov² = (1/N²) Σ w_i w_j A_ij B_ij;
    dCor² = dCov²(x, y) / √(dCov²(x, x) dCov²(y, y)) (Székely, Rizzo & Bakirov 2007; the
    weighted form of Kasieczka & Shih, arXiv:2001.05310). Differentiable in x and y. Computed in
    float64 for float64 inputs, else in float32 (the training loss: half the memory traffic).

    The centred matrices are never formed: since B's weighted row sums vanish,
    Σ w_i w_j A_ij B_ij = Σ w_i w_j a_ij b_ij − 2N Σ_i w_i ā_i b̄_i + N² ā b̄, and for x with itself
    Σ w_i w_j a_ij² = 2N Σ_i w_i x_i² − 2(Σ_i w_i x_i)² is a sum over events. What is left of O(N²)
    is |x_i − x_j|, |y_i − y_j|, their product and two matrix-vector products: the penalty's cost
    in a training step (``benchmarks/bench_disco.py``).
    """
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    x, y = x.reshape(-1).to(dtype), y.reshape(-1).to(dtype)
    if len(x) != len(y):
        raise ValueError(f"distance_correlation: {len(x)} values of x for {len(y)} of y")
    n = len(x)
    w = torch.ones_like(x) if weight is None else weight.reshape(-1).to(dtype)
    w = w / w.sum() * n

    def distances(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """|v_i − v_j|, its weighted row means ā_i and grand mean ā, and N²·dCov²(v, v)."""
        values = values - (w @ values) / n  # centred, so that Σ w_i v_i = 0 in the sum of squares
        matrix = (values[:, None] - values[None, :]).abs()
        row_means = matrix @ w / n
        grand_mean = w @ row_means / n
        own = 2 * n * (w @ values.square()) - 2 * n * (w @ row_means.square()) + n * n * grand_mean.square()
        return matrix, row_means, grand_mean, own

    a, a_rows, a_mean, x_with_x = distances(x)
    b, b_rows, b_mean, y_with_y = distances(y)
    x_with_y = w @ ((a * b) @ w) - 2 * n * (w @ (a_rows * b_rows)) + n * n * a_mean * b_mean
    return x_with_y / torch.sqrt(x_with_x * y_with_y).clamp_min(torch.finfo(dtype).tiny)


def background_class(chosen: int | None, task: Task, where: str) -> int:
    """The class whose events a decorrelation looks at: ``chosen``, else the last one (heplearn's
    signal is class 0, its background the last)."""
    classes = task.num_outputs
    background = chosen if chosen is not None else classes - 1
    if background >= classes:
        raise ConfigError(f"{where}: background_class {background} for {classes} classes")
    return background


class DisCoSettings(StrictModel):
    """``on``: the observer to decorrelate from; ``background_class``: the class whose events count."""

    on: str
    background_class: int | None = pydantic.Field(default=None, ge=0)


class DistanceCorrelationTerm(LossTermBase):
    """dCor²(score, observer) over the background events of a batch (``disco``)."""

    name = "disco"
    tasks = (Classification,)
    needs = "a classification task"
    Settings = DisCoSettings

    def __init__(self, weight: float, settings: Any, task: Task, context: TermContext) -> None:
        super().__init__(weight, settings, task, context)
        self.key = observer_key(settings.on)
        self.background = background_class(settings.background_class, task, "training.loss: disco")

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """dCor² between the signal score and the observer over the batch's background events."""
        if self.key not in batch:
            raise ConfigError(
                f"training.loss: disco reads the observer {self.key.split(':', 1)[1]!r}; add it to data.observers"
            )
        selected = task.target(batch) == self.background
        score = task.score(outputs, batch)[selected]
        observable, weight = batch[self.key][selected], batch["weight"][selected]
        if len(score) < 2:
            return outputs.sum() * 0.0
        chunks = max(1, len(score) // DISCO_CHUNK)
        values = [
            distance_correlation(s, o, w)
            for s, o, w in zip(score.chunk(chunks), observable.chunk(chunks), weight.chunk(chunks), strict=True)
        ]
        return torch.stack(values).mean().float()


@dataclass(frozen=True)
class PlaningHistogram:
    """Per class and mass bin, the factor that flattens the class's weighted mass distribution."""

    edges: np.ndarray  # (bins + 1,)
    factors: np.ndarray  # (classes, bins): Σw of the class / (filled bins · Σw in the bin); 0 if empty

    def weights(self, values: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The factor of each event (values outside the range count in the edge bins)."""
        index = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, len(self.edges) - 2)
        return self.factors[labels, index]


def planing_histogram(
    values: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    classes: int | None = None,
    bins: int = 40,
    value_range: tuple[float, float] | None = None,
    planed_classes: list[int] | None = None,
) -> PlaningHistogram:
    """Histograms of ``values`` per class and the factors that make each planed class flat.

    Classes not in ``planed_classes`` (all by default) keep a factor of 1; each planed class keeps
    its total weight.
    """
    values, labels = np.asarray(values, np.float64), np.asarray(labels)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    if not np.isfinite(values).all():
        raise ConfigError("planing: the observer holds NaN or infinite values")
    classes = classes or int(labels.max(initial=0)) + 1
    low, high = value_range or (float(np.min(values)), float(np.max(values)))
    if not high > low:
        raise ConfigError(f"planing: the range [{low}, {high}] of the observer is empty")
    edges = np.linspace(low, high, bins + 1)
    factors = np.ones((classes, bins))
    for label in planed_classes if planed_classes is not None else range(classes):
        selected = labels == label
        counts, _ = np.histogram(np.clip(values[selected], low, high), edges, weights=weights[selected])
        total = counts.sum()
        if total <= 0:
            raise ConfigError(f"planing: class {label} has no training events to plane")
        filled = int((counts > 0).sum())  # flat over the bins the class populates; its total kept
        with np.errstate(divide="ignore"):
            factors[label] = np.where(counts > 0, total / (filled * counts), 0.0)
    return PlaningHistogram(edges, factors)


class PlaningSettings(StrictModel):
    """``on``: the observer to plane; ``bins``, ``range``; ``classes``: those to plane (all by default)."""

    on: str
    bins: int = pydantic.Field(default=40, ge=2)
    range: tuple[float, float] | None = None
    classes: list[int] | None = None


class PlanedCrossEntropy(LossTermBase):
    """Cross entropy with planing weights: each class's weighted observer distribution flat."""

    name = "planed_cross_entropy"
    tasks = (Classification,)
    needs = "a classification task"
    Settings = PlaningSettings

    def __init__(self, weight: float, settings: Any, task: Task, context: TermContext) -> None:
        super().__init__(weight, settings, task, context)
        observers = context.train_observers or {}
        if settings.on not in observers or context.train_labels is None:
            raise ConfigError(
                f"training.loss: planed_cross_entropy planes the observer {settings.on!r}; add it to data.observers"
            )
        self.key = observer_key(settings.on)
        self.histogram = planing_histogram(
            observers[settings.on],
            context.train_labels,
            context.train_weights,
            task.num_outputs,
            settings.bins,
            settings.range,
            settings.classes,
        )

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The cross entropy with each event weighted so that every class is flat in the observer."""
        label = task.target(batch)
        factor = self.histogram.weights(batch[self.key].numpy(), label.numpy())
        weight = batch["weight"] * torch.from_numpy(factor).to(batch["weight"].dtype)
        per_event = functional.cross_entropy(outputs.float(), label, reduction="none")
        return (per_event * weight).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)


def log_odds(outputs: torch.Tensor, task: Classification) -> torch.Tensor:
    """ln(p_s / (1 − p_s)) of the signal class from the logits, exact where p_s rounds to 0 or 1.

    With softmax p = e^{o_s} / Σ e^{o_j}: ln p_s − ln(1 − p_s) = o_s − ln Σ_{j≠s} e^{o_j}.
    """
    logits = outputs.float()
    signal = task.signal_index
    others = torch.cat([logits[:, :signal], logits[:, signal + 1 :]], dim=1)
    return logits[:, signal] - torch.logsumexp(others, dim=1)


class AdversarySettings(StrictModel):
    """The adversary of ``training.step: {name: adversarial, ...}``."""

    on: str  # the observer the adversary predicts
    strength: float = pydantic.Field(default=10.0, ge=0)  # λ of L_f − λ L_r
    bins: int = pydantic.Field(default=20, ge=2)  # the observer is predicted as one of `bins` quantile bins
    hidden: list[int] = [64, 64]
    adversary_steps: int = pydantic.Field(default=5, ge=1)  # updates of r per update of f
    pretrain_steps: int = pydantic.Field(default=0, ge=0)  # steps of f alone before the game starts
    learning_rate: float | None = pydantic.Field(default=None, gt=0)  # r's; the classifier's by default
    background_class: int | None = pydantic.Field(default=None, ge=0)
    range: tuple[float, float] | None = None  # the observer's range, binned uniformly; else batch quantiles
    # what r reads: the probability p, or its log-odds ln(p/(1−p)) standardised over the batch's background
    input: Literal["score", "logit"] = "logit"


class Adversary(nn.Module):
    """r(score): the probabilities of the observer's bins given the classifier's score.

    SiLU, not ReLU: when f hides the mass for a while, r's best answer is the prior, and a ReLU
    network reaches it by switching its units off, from where no gradient brings them back.
    """

    def __init__(self, bins: int, hidden: list[int]) -> None:
        super().__init__()
        self.body = nn.Sequential(mlp([1, *hidden], nn.SiLU), nn.Linear(hidden[-1] if hidden else 1, bins))

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        """Logits of the observer's bins from the classifier's score (one per event)."""
        return self.body(score.reshape(-1, 1))


class AdversarialStep(StepStrategy):
    """Classifier and adversary trained in alternation (Louppe, Kagan & Cranmer, arXiv:1611.01046)."""

    name = "adversarial"
    Settings = AdversarySettings

    def __init__(self, context: StepContext, settings: AdversarySettings) -> None:
        super().__init__()
        if not isinstance(context.task, Classification):
            raise ConfigError(
                "training.step: adversarial decorrelates a classifier; data.labels.type is not classification"
            )
        self.settings = settings
        self.training = context.training
        self.task = context.task
        self.key = observer_key(settings.on)
        self.background = background_class(settings.background_class, context.task, "training.step")
        self.network = context.wrap(context.model)
        adversary = Adversary(settings.bins, settings.hidden)
        self.adversary = context.wrap(adversary)
        adversary_training = context.training.model_copy(
            update={
                "learning_rate": settings.learning_rate or context.training.learning_rate,
                "schedule": "constant",
                "warmup_fraction": 0.0,
                "lookahead": False,
            }
        )
        self.add_module("model", context.model, context.training, context.total_steps)
        self.add_module("adversary", adversary, adversary_training, context.total_steps)

    def _bins(self, observable: torch.Tensor) -> torch.Tensor:
        bins = self.settings.bins
        if self.settings.range is not None:
            low, high = self.settings.range
            edges = torch.linspace(low, high, bins + 1, dtype=observable.dtype)[1:-1]
        else:  # equal-population bins of this batch's background
            edges = torch.quantile(observable.double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1])
            edges = edges.to(observable.dtype)
        return torch.bucketize(observable, edges)

    def adversary_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """L_r: the adversary's weighted cross entropy on the background events of the batch."""
        if self.key not in batch:
            raise ConfigError(
                f"training.step: the adversary reads the observer {self.settings.on!r}; add it to data.observers"
            )
        selected = self.task.target(batch) == self.background
        if int(selected.sum()) < 2:
            return outputs.sum() * 0.0
        score = (log_odds(outputs, self.task) if self.settings.input == "logit" else self.task.score(outputs, batch))[
            selected
        ]
        if self.settings.input == "logit":
            score = (score - score.mean()) / score.std().clamp_min(1e-6)
        targets = self._bins(batch[self.key][selected])
        per_event = functional.cross_entropy(self.adversary(score), targets, reduction="none")
        weight = batch["weight"][selected]
        return (per_event * weight).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)

    def adversary_step(self, batch: Batch) -> float:
        """One update of r on the classifier as it is now (f frozen); returns L_r before it."""
        with torch.no_grad(), autocast(self.training):
            frozen_outputs = self.network(batch)
        adversary_loss = self.adversary_loss(frozen_outputs.detach(), batch)
        optimise(
            adversary_loss,
            self.modules["adversary"],
            self.optimizers["adversary"],
            self.schedulers["adversary"],
            self.training.gradient_clip,
        )
        return float(adversary_loss.detach())

    def classifier_step(self, batch: Batch, strength: float) -> dict[str, float]:
        """One update of f on L_f − λ·L_r (r frozen: only f's optimiser steps)."""
        with autocast(self.training):
            outputs = self.network(batch)
        terms = self.task.loss(outputs, batch)
        classifier_loss = self.task.total_loss(terms)
        adversary_loss = self.adversary_loss(outputs, batch)
        optimise(
            classifier_loss - strength * adversary_loss,
            self.modules["model"],
            self.optimizers["model"],
            self.schedulers["model"],
            self.training.gradient_clip,
        )
        figures = loss_figures(classifier_loss, terms)
        figures["adversary_loss"] = float(adversary_loss.detach())
        return figures

    def validation_figures(self, outputs: torch.Tensor, batch: Batch, figures: dict[str, float]) -> dict[str, float]:
        """The game's value on the validation set, L_f + λ·(ln K − L_r) with r as it is now, as ``loss``.

        ln K − L_r (K bins) is what r reads of the observer from the score, 0 when nothing. The task's
        loss alone would pick an epoch before the game starts, the best classifier that sculpts most.
        """
        with torch.no_grad():
            adversary_loss = float(self.adversary_loss(outputs, batch))
        classifier_loss = figures["loss"]
        information = math.log(self.settings.bins) - adversary_loss
        return {
            **figures,
            "loss": classifier_loss + self.settings.strength * information,
            "classifier_loss": classifier_loss,
            "adversary_loss": adversary_loss,
        }

    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        """The adversary's updates, then the classifier's on L_f − λ·L_r (only L_f while pre-training).

        r learns during the pre-training too (on f as it is), so that the game starts against a fitted
        adversary, as in arXiv:1611.01046's pre-training of f, then r, before the alternation.
        """
        playing = step_index >= self.settings.pretrain_steps
        for _ in range(self.settings.adversary_steps):
            self.adversary_step(batch)
        return self.classifier_step(batch, self.settings.strength if playing else 0.0)


class DoubleDisCoSettings(StrictModel):
    """``training.step: {name: double_disco, strength: λ}``: two taggers decorrelated on the background."""

    strength: float = pydantic.Field(default=100.0, ge=0)
    background_class: int | None = pydantic.Field(default=None, ge=0)
    closure: ClosureSettings | None = None  # ABCDisCoTEC: the non-closure as an MDMM constraint


class DoubleDisCoStep(StepStrategy):
    """ABCDisCo's Double DisCo (arXiv:2007.14400): f and g, each with the task's loss, plus
    λ·dCor²(f, g) on the background events of the batch, so that cuts on f and g make an ABCD plane.

    ``model`` is f (``model.safetensors``) and ``second`` is g (``second.safetensors`` in the run
    directory; ``second_network`` loads it): the same architecture, initialised independently.
    With ``closure``, the soft ABCD non-closure of the batch's background is constrained below ε
    (``abcd_closure``: ABCDisCoTEC with the modified differential method of multipliers).
    """

    name = "double_disco"
    Settings = DoubleDisCoSettings
    products = ("model", "second")

    def __init__(self, context: StepContext, settings: DoubleDisCoSettings) -> None:
        super().__init__()
        if not isinstance(context.task, Classification):
            raise ConfigError(
                "training.step: double_disco trains two classifiers; data.labels.type is not classification"
            )
        self.settings = settings
        self.training = context.training
        self.task = context.task
        self.background = background_class(settings.background_class, context.task, "training.step")
        second = independent_copy(context.model, context.training.seed)
        self.networks = (context.wrap(context.model), context.wrap(second))
        for name, module in (("model", context.model), ("second", second)):
            self.add_module(name, module, context.training, context.total_steps)
        self.closure = ClosureConstraint(settings.closure) if settings.closure is not None else None
        if self.closure is not None:
            self.modules["closure"] = self.closure  # its multiplier is checkpointed; it has no optimiser

    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        """One update of both classifiers: their losses, λ·dCor² of their background scores, the closure term if set."""
        with autocast(self.training):
            outputs = [network(batch) for network in self.networks]
        terms = [self.task.loss(output, batch) for output in outputs]
        losses = [self.task.total_loss(term) for term in terms]
        selected = self.task.target(batch) == self.background
        constraint, violation = None, None
        if int(selected.sum()) >= 2:
            scores = [self.task.score(output, batch)[selected] for output in outputs]
            penalty = distance_correlation(scores[0], scores[1], batch["weight"][selected])
            if self.closure is not None:
                constraint, violation = self.closure(scores[0], scores[1], batch["weight"][selected])
        else:
            penalty = outputs[0].sum() * 0.0
        total = losses[0] + losses[1] + self.settings.strength * penalty
        if constraint is not None:
            total = total + constraint
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        total.backward()
        for name, optimizer in self.optimizers.items():
            if self.training.gradient_clip:
                torch.nn.utils.clip_grad_norm_(self.modules[name].parameters(), self.training.gradient_clip)
            optimizer.step()
            self.schedulers[name].step()
        figures = loss_figures(losses[0], terms[0])
        figures.update({"loss_second": float(losses[1].detach()), "disco_pair": float(penalty.detach())})
        if self.closure is not None and violation is not None:
            self.closure.ascend(violation.detach())
            figures.update(
                {"non_closure": float(violation.detach()), "closure_multiplier": float(self.closure.multiplier)}
            )
        return figures


def independent_copy(model: nn.Module, seed: int) -> nn.Module:
    """A network like ``model`` with its own initial weights (seeded), the torch RNG left as it was."""
    state = torch.get_rng_state()
    torch.manual_seed(seed + 104_729)
    try:
        copy = type(model)(model.num_outputs, model.input_dims, **model.hyperparameters)  # type: ignore[operator]
    finally:
        torch.set_rng_state(state)
    return copy


def second_network(run_dir: str | os.PathLike[str]) -> nn.Module:
    """g of a Double DisCo run: the network of ``second.safetensors``, built like the run's model."""
    from safetensors.torch import load_file

    from heplearn.errors import DataError
    from heplearn.runs import RunDirectory
    from heplearn.trained_model import TrainedModel

    run = RunDirectory(Path(run_dir))
    path = run.module_weights_file("second")
    if not path.is_file():
        raise DataError(f"{run.path}: no {path.name}; was the run trained with training.step: double_disco?")
    model = TrainedModel.load(run.path)
    assert model.network is not None
    second = independent_copy(model.network, 0)
    second.load_state_dict(load_file(path))
    return second.eval()


def pair_scores(
    run_dir: str | os.PathLike[str], files: list[str | os.PathLike[str]]
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The signal probabilities of f and of g of a Double DisCo run on ``files``, and the jets' arrays.

    f is the run's model, g its ``second`` network (``second_network``); both read the jets through
    the run's data config and preprocessing, so (f, g) is the ABCD plane of ``heplearn.stats.abcd``.
    """
    from heplearn.trained_model import TrainedModel

    model = TrainedModel.load(run_dir)
    first, arrays = model.predict_files(files)
    model.network = second_network(run_dir)
    second = model.predict(arrays)
    return first[:, 0], second[:, 0], arrays
