"""Step strategies: what one training step does, and which networks and optimisers it owns.

The trainer runs the loop (epochs, batches, validation, checkpoints, early stopping); the step
strategy owns the modules it trains (``modules["model"]`` is the product network, the one that
``model.safetensors`` keeps), their optimisers and schedulers, and does one step::

    metrics = strategy.step(batch, step_index)   # {"loss": ..., "loss_<term>": ..., ...}

The default, ``single``, is one network and one optimiser: forward, the task's weighted loss
terms, backward, gradient clipping, optimiser and scheduler step. A method with a second
network (an adversary, a domain head, the second network of Double DisCo) is a strategy of its
own (``heplearn.methods.decorrelation.AdversarialStep``), chosen by ``training.step``::

    step: {name: adversarial, on: jet_sdmass, strength: 10}

Checkpoints hold every module, optimiser and scheduler of the strategy (and the RNG states), so a
resumed run continues exactly where it stopped; a strategy keeps no other state (an alternation
is decided from ``step_index``).

Adding a strategy: subclass ``StepStrategy`` with a ``Settings`` model, ``__init__(context, settings)``
and ``step``; call
``register_step_strategy`` (heplearn's own are listed in ``STEP_STRATEGIES``).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from heplearn.config import StrictModel
from heplearn.plugins import Plugins
from heplearn.tasks import Batch, Task
from heplearn.training.optim import make_optimizer, make_scheduler


@dataclass
class StepContext:
    """What a strategy is built from: the product network, the task, the settings, the run's length."""

    model: torch.nn.Module
    task: Task
    training: Any  # TrainingConfig
    total_steps: int
    wrap: Callable[[torch.nn.Module], torch.nn.Module]  # DDP / torch.compile, as the trainer runs them
    data: Any = None  # the DataConfig the batches come from, for strategies that read a sample of their own
    preprocessing: Any = None  # the run's Preprocessing, to standardise such a sample as the batches are


class StepStrategy(ABC):
    """Modules, optimisers and schedulers, and one training step over them.

    A subclass is built as ``cls(context, settings)``, ``settings`` an instance of its ``Settings``.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[StrictModel]]
    products: ClassVar[tuple[str, ...]] = ("model",)  # the modules a finished run keeps (best epoch's)

    def __init__(self) -> None:
        self.modules: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}

    @abstractmethod
    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        """One step on ``batch``; returns ``loss`` (the product network's) and any other figures."""

    def add_module(self, name: str, module: torch.nn.Module, training: Any, total_steps: int) -> None:
        """Own ``module`` under ``name``, with an optimiser and a schedule of its own from ``training``."""
        optimizer = make_optimizer(module.parameters(), training)
        self.modules[name] = module
        self.optimizers[name] = optimizer
        self.schedulers[name] = make_scheduler(optimizer, training, total_steps)

    def validation_figures(self, outputs: torch.Tensor, batch: Batch, figures: dict[str, float]) -> dict[str, float]:
        """The validation figures given the task's (``outputs`` of the whole validation set).

        A strategy whose objective is not the task's loss adds its own figures and replaces ``loss``,
        the value that picks the best epoch and drives early stopping. By default: ``figures``.
        """
        return figures

    def product_modules(self) -> dict[str, torch.nn.Module]:
        """The modules of ``products``: ``model`` (``model.safetensors``) and any other the method needs."""
        return {name: self.modules[name] for name in self.products}

    def train(self, mode: bool = True) -> None:
        """Put every module of the strategy in training (``mode=True``) or evaluation mode."""
        for module in self.modules.values():
            module.train(mode)

    @property
    def learning_rate(self) -> float:
        """The model's current learning rate (after its schedule)."""
        return float(self.schedulers["model"].get_last_lr()[0])


class NoSettings(StrictModel):
    """The single-network step has no settings of its own."""


def autocast(training: Any) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on the CPU when ``training.mixed_precision`` is set."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if training.mixed_precision else contextlib.nullcontext()


def optimise(
    loss: torch.Tensor,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    gradient_clip: float | None,
) -> None:
    """Backward, clip the gradients of ``module``, one optimiser and scheduler step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if gradient_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), gradient_clip)
    optimizer.step()
    scheduler.step()


class SingleNetworkStep(StepStrategy):
    """One network, one optimiser: the weighted sum of the task's loss terms."""

    name = "single"
    Settings: ClassVar[type[StrictModel]] = NoSettings

    def __init__(self, context: StepContext, settings: StrictModel | None = None) -> None:
        super().__init__()
        self.training = context.training
        self.task = context.task
        self.network = context.wrap(context.model)
        self.add_module("model", context.model, context.training, context.total_steps)

    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        """One optimiser step on ``batch``: the loss terms' values by name."""
        with autocast(self.training):
            outputs = self.network(batch)
        terms = self.task.loss(outputs, batch)
        loss = self.task.total_loss(terms)
        optimise(
            loss, self.modules["model"], self.optimizers["model"], self.schedulers["model"], self.training.gradient_clip
        )
        return loss_figures(loss, terms)


def loss_figures(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """``loss`` and ``loss_<term>`` as floats (a single term is the loss itself)."""
    figures = {"loss": float(loss.detach())}
    if len(terms) > 1:
        figures.update({f"loss_{name}": float(value.detach()) for name, value in terms.items()})
    return figures


STEP_STRATEGIES = Plugins(
    "step strategy",
    {
        "single": (__name__, "SingleNetworkStep"),
        "adversarial": ("heplearn.methods.decorrelation", "AdversarialStep"),
        "domain_adversarial": ("heplearn.methods.domain", "DomainAdversarialStep"),
        "adversarial_inputs": ("heplearn.methods.robustness", "AdversarialInputStep"),
        "double_disco": ("heplearn.methods.decorrelation", "DoubleDisCoStep"),
        "normalized_autoencoder": ("heplearn.methods.normalized_autoencoder", "NormalizedAutoencoderStep"),
    },
)


def register_step_strategy(strategy: type[StepStrategy]) -> None:
    """Make ``strategy`` available to ``training.step`` under ``strategy.name``."""
    STEP_STRATEGIES.register(strategy)


def check_step_settings(name: str, settings: dict[str, Any], where: str) -> StrictModel:
    """The strategy's own settings validated (a typo is an error naming the key)."""
    return STEP_STRATEGIES.settings(name, settings, where)


def build_step(context: StepContext, config: Any) -> StepStrategy:
    """The strategy ``training.step`` names (a ``StepConfig``), built for ``context``."""
    cls: Callable[[StepContext, Any], StepStrategy] = STEP_STRATEGIES.get(config.name, "training.step.name")
    return cls(context, check_step_settings(config.name, config.settings, "training.step"))
