"""Loss terms: named, weighted pieces of a task's loss, chosen in ``training.loss``.

``training.loss`` is a list of terms, each ``{name, weight (1 by default), ...its own settings}``::

    loss:
      - {name: cross_entropy}
      - {name: disco, weight: 10, on: jet_sdmass}

(``auto``, the default, is the task's own loss; a single name is a list of one term). A term is
called as ``term(outputs, batch, task)``: it sees the raw outputs, the whole batch (labels,
weights, the observers named in the data config) and the task (its target, its score), so a
term may read anything a batch carries. The trainer sums the terms with their weights and logs
each one (``train_loss_<name>``, ``val_loss_<name>``) beside the total ``train_loss``.

Every term takes per-event weights: ``Σ wᵢ ℓᵢ / Σ wᵢ``, so Monte Carlo weights and class weights
both enter the gradient.

Adding a term: subclass ``LossTermBase`` (``name``, ``tasks`` it applies to, a pydantic
``Settings`` for its own keys, ``__call__``), and call ``register_loss_term`` (heplearn's own
are listed in ``LOSS_TERMS``). Terms of the methods live with their method
(``heplearn.methods.decorrelation`` holds ``disco``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from heplearn.config import StrictModel
from heplearn.errors import ConfigError, DataError
from heplearn.plugins import Plugins
from heplearn.tasks import Batch, Classification, LossTerm, Reconstruction, Regression, Task


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``Σ wᵢ vᵢ / Σ wᵢ`` (zero weights in all: zero)."""
    return (values * weight).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)


class NoSettings(StrictModel):
    """A term with no settings of its own."""


@dataclass
class TermContext:
    """What a term may need when it is built: the training settings, labels, weights and observers."""

    training: Any  # TrainingConfig
    train_labels: np.ndarray | None = None
    train_weights: np.ndarray | None = None
    train_observers: dict[str, np.ndarray] | None = None
    data: Any = None  # the run's DataConfig (its systematic ``variations``), when there is one


class LossTermBase(ABC):
    """A named, weighted loss term; subclasses implement ``__call__``."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[type[Task], ...]]  # the tasks it applies to
    needs: ClassVar[str]  # said when the task is not one of them
    Settings: ClassVar[type[StrictModel]] = NoSettings
    uses_quantiles: ClassVar[bool] = False  # a regression with it has one output per (target, quantile)

    def __init__(self, weight: float, settings: StrictModel, task: Task, context: TermContext) -> None:
        self.weight = weight
        self.settings = settings

    @abstractmethod
    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The term's value for ``outputs`` of ``batch`` (unweighted: the task applies ``weight``)."""


class CrossEntropy(LossTermBase):
    """Softmax cross entropy, with the class weights of ``training.class_weights``."""

    name = "cross_entropy"
    tasks = (Classification,)
    needs = "data.labels.type: classification"

    def __init__(self, weight: float, settings: StrictModel, task: Task, context: TermContext) -> None:
        super().__init__(weight, settings, task, context)
        self.class_weights = class_weights(context, task)

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The weighted mean cross entropy of ``outputs`` (logits) against the batch's class labels."""
        label, weight = task.target(batch), batch["weight"]
        per_event = F.cross_entropy(outputs.float(), label, reduction="none")
        if self.class_weights is not None:
            weight = weight * self.class_weights[label]
        return weighted_mean(per_event, weight)


def class_weights(context: TermContext, task: Task) -> torch.Tensor | None:
    """``training.class_weights``: balanced (Σw equal per class, from the training labels) or given."""
    setting = context.training.class_weights
    names = getattr(task, "class_names", [])
    classes = len(names)
    if setting == "balanced":
        if context.train_labels is None or context.train_weights is None:
            raise ConfigError("training.class_weights: balanced needs the training labels")
        totals = np.bincount(context.train_labels, weights=context.train_weights, minlength=classes)
        if (totals <= 0).any():
            raise DataError(f"the training split has no jets of class {names[int(np.argmin(totals))]!r}")
        return torch.tensor(totals.sum() / (classes * totals), dtype=torch.float32)
    if isinstance(setting, list):
        if len(setting) != classes:
            raise ConfigError(
                f"training.class_weights: {len(setting)} values for {classes} classes ({', '.join(names)})"
            )
        return torch.tensor(setting, dtype=torch.float32)
    return None


class MeanSquaredError(LossTermBase):
    """Squared error summed over the outputs: regression targets, or the inputs of a reconstruction."""

    name = "mse"
    tasks = (Regression, Reconstruction)
    needs = "data.labels.type: regression (or none, for a reconstruction)"

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The weighted mean squared error of ``outputs`` against the batch's targets."""
        error = F.mse_loss(outputs.float(), task.target(batch).float(), reduction="none")
        return weighted_mean(error.sum(-1), batch["weight"])


class Huber(LossTermBase):
    """Huber loss (δ = 1) summed over the outputs: less pulled by outliers than the squared error."""

    name = "huber"
    tasks = (Regression, Reconstruction)
    needs = "data.labels.type: regression (or none, for a reconstruction)"

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The weighted mean Huber loss of ``outputs`` against the batch's targets."""
        error = F.huber_loss(outputs.float(), task.target(batch).float(), reduction="none")
        return weighted_mean(error.sum(-1), batch["weight"])


class Pinball(LossTermBase):
    """Pinball loss of the quantile levels ``training.quantiles`` (Koenker & Bassett 1978)."""

    name = "quantile"
    tasks = (Regression,)
    needs = "data.labels.type: regression"
    uses_quantiles = True

    def __init__(self, weight: float, settings: StrictModel, task: Task, context: TermContext) -> None:
        super().__init__(weight, settings, task, context)
        levels = getattr(task, "quantiles", None)
        if not levels:
            raise ConfigError(f"training.loss: {self.name} needs a regression task with training.quantiles")
        self.levels = torch.tensor(levels)

    def per_level(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The pinball loss ``(events, targets, levels)`` of every output."""
        predicted = outputs.float().reshape(len(outputs), target.shape[-1], len(self.levels))
        error = target.unsqueeze(-1) - predicted
        return torch.maximum(self.levels * error, (self.levels - 1) * error)

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The weighted mean pinball loss of each quantile output against the batch's targets."""
        return weighted_mean(self.per_level(outputs, task.target(batch)).sum((-1, -2)), batch["weight"])


class HuberQuantiles(Pinball):
    """Huber loss on the central output (level 0.5) and pinball losses on the other levels: one head
    that regresses a value and its resolution, as in the CMS b-jet energy regression
    (arXiv:1912.06046, ``training.quantiles: [0.25, 0.5, 0.75]``; resolution (q75 − q25)/2)."""

    name = "huber_quantiles"

    def __init__(self, weight: float, settings: StrictModel, task: Task, context: TermContext) -> None:
        super().__init__(weight, settings, task, context)
        central = torch.isclose(self.levels, torch.tensor(0.5))
        if int(central.sum()) != 1:
            raise ConfigError("training.loss: huber_quantiles needs 0.5 among training.quantiles (the central value)")
        self.central = central

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The weighted mean Huber-smoothed pinball loss of each quantile output."""
        target = task.target(batch)
        pinball = self.per_level(outputs, target)[..., ~self.central].sum((-1, -2))
        predicted = outputs.float().reshape(len(outputs), target.shape[-1], len(self.levels))
        huber = F.huber_loss(predicted[..., self.central].squeeze(-1), target.float(), reduction="none").sum(-1)
        return weighted_mean(pinball + huber, batch["weight"])


# imported on first use, so a method's term loads with its method
LOSS_TERMS = Plugins(
    "loss term",
    {
        "cross_entropy": (__name__, "CrossEntropy"),
        "mse": (__name__, "MeanSquaredError"),
        "huber": (__name__, "Huber"),
        "quantile": (__name__, "Pinball"),
        "huber_quantiles": (__name__, "HuberQuantiles"),
        "disco": ("heplearn.methods.decorrelation", "DistanceCorrelationTerm"),
        "inferno": ("heplearn.methods.inferno", "InfernoTerm"),
        "planed_cross_entropy": ("heplearn.methods.decorrelation", "PlanedCrossEntropy"),
        "reconstruction_mse": ("heplearn.methods.anomaly", "ReconstructionError"),
        "kl": ("heplearn.methods.anomaly", "KLDivergence"),
    },
)


def register_loss_term(term: type[LossTermBase]) -> None:
    """Make ``term`` available to ``training.loss`` under ``term.name``."""
    LOSS_TERMS.register(term)


def check_term_settings(name: str, settings: dict[str, Any], where: str) -> StrictModel:
    """The term's own settings validated (a typo is an error naming the key)."""
    return LOSS_TERMS.settings(name, settings, where)


def build_terms(specs: Sequence[Any], task: Task, context: TermContext) -> list[LossTerm]:
    """The terms of ``training.loss`` (``LossTermConfig`` entries) for ``task``."""
    terms: list[LossTerm] = []
    for index, spec in enumerate(specs):
        where = f"training.loss[{index}]"
        cls: type[LossTermBase] = LOSS_TERMS.get(spec.name, where)
        if not isinstance(task, cls.tasks):
            raise ConfigError(f"training.loss: {spec.name} needs {cls.needs}")
        terms.append(cls(spec.weight, check_term_settings(spec.name, spec.settings, where), task, context))
    names = [term.name for term in terms]
    if len(set(names)) != len(names):
        raise ConfigError(f"training.loss: each term may appear once (got {', '.join(names)})")
    return terms
