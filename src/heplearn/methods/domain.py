"""Domain adaptation with a gradient reversal layer (DANN: Ganin & Lempitsky, arXiv:1409.7495).

A tagger trained on simulation meets data that differ from it (another detector response,
another tune). A domain head D reads the tagger's learnt representation (the input of its output
layer) through a gradient reversal layer and learns to tell simulation from data; the reversed
gradient makes the tagger's representation carry as little of that difference as it can, while
the classification loss, on labelled simulation only, keeps it useful. The CMS long-lived-particle
tagger adapts to data control samples this way (arXiv:1912.12238).

The unlabelled target sample is read by the step strategy itself, with the run's data config and
preprocessing (its labels, if the files have any, are never read)::

    training:
      step: {name: domain_adversarial, target: ["data/alt_detector/*.parquet"], strength: 1.0}

One step: the task's loss on the simulation batch, plus the domain head's cross entropy on that
batch (domain 0) and on a batch of the target sample (domain 1), back-propagated once; the
reversal layer multiplies the gradient reaching the tagger by −λ_p, with the paper's schedule
λ_p = strength·(2/(1 + e^{−γp}) − 1) over the training progress p ∈ [0, 1] (γ = 10). The paper's
strength is 1; the CMS LLP tagger's is 30, and on the tests' toy a strength of 1 removes little of
the domain difference where 30 removes nearly all of it (domain AUC of the score 0.75 → 0.54).
The simulation and the target batch pass through the network as one joined batch (particle axes
padded to the longer one), in training mode: batch normalisation normalises both domains with the
same statistics, as in the reference implementations. Two separate passes would normalise each
domain by its own batch statistics and so remove, before the domain head sees it, exactly the
shift of means and widths it is there to detect (the domain loss then sits at ln 2 and the
reversal does nothing; the test with a batch-normalised MLP fails that way).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pydantic
import torch
from torch import nn
from torch.nn import functional
from typing_extensions import override

from heplearn.config import StrictModel
from heplearn.data.batches import to_batch, trim_padding
from heplearn.data.in_memory import InMemoryJets
from heplearn.errors import ConfigError
from heplearn.models.nn_base import mlp
from heplearn.tasks import Batch
from heplearn.training.steps import StepContext, StepStrategy, autocast, loss_figures


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient multiplied by −coefficient backward."""

    @staticmethod
    @override
    def forward(ctx: Any, values: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return values.view_as(values)

    @staticmethod
    @override
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coefficient * gradient, None


def reverse_gradient(values: torch.Tensor, coefficient: float) -> torch.Tensor:
    """``values`` unchanged, with the gradient flowing back through it multiplied by −coefficient."""
    return GradientReversal.apply(values, coefficient)  # type: ignore[no-untyped-call, no-any-return]


def join_batches(first: Batch, second: Batch) -> tuple[Batch, int]:
    """The keys both batches hold, concatenated along the jets (``first``'s jets first), and its size.

    Per-particle tensors (the mask included) are padded with zeros (``False``) along the particle
    axis to the longer of the two; every other dimension must agree.
    """
    joined: Batch = {}
    for key in first.keys() & second.keys():
        parts = [first[key], second[key]]
        if parts[0].dim() != parts[1].dim() or parts[0].shape[2:] != parts[1].shape[2:]:
            raise ValueError(f"batch key {key!r}: shapes {tuple(parts[0].shape)} and {tuple(parts[1].shape)} differ")
        if parts[0].dim() >= 2 and parts[0].shape[1] != parts[1].shape[1]:
            length = max(part.shape[1] for part in parts)
            parts = [
                torch.cat([part, part.new_zeros((part.shape[0], length - part.shape[1], *part.shape[2:]))], dim=1)
                for part in parts
            ]
        joined[key] = torch.cat(parts)
    return joined, len(first["label"])


def reversal_schedule(progress: float, strength: float = 1.0, gamma: float = 10.0) -> float:
    """λ_p = strength·(2/(1 + e^{−γp}) − 1): 0 at the start, → strength at the end (arXiv:1409.7495)."""
    return strength * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class DomainSettings(StrictModel):
    """The settings of ``training.step: {name: domain_adversarial, ...}``."""

    target: list[str] = pydantic.Field(min_length=1)  # the unlabelled target-domain files (globs)
    strength: float = pydantic.Field(default=1.0, ge=0)  # the reversal coefficient at the end of training
    gamma: float = pydantic.Field(default=10.0, gt=0)
    domain_weight: float = pydantic.Field(default=1.0, gt=0)  # of the domain loss in the total
    hidden: list[int] = [50, 50]  # the domain head (the CMS LLP tagger's: 50 → 50 → 1)

    @pydantic.field_validator("target", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DomainAdversarialStep(StepStrategy):
    """The tagger and a domain head on its representation, through a gradient reversal layer."""

    name = "domain_adversarial"
    Settings = DomainSettings

    def __init__(self, context: StepContext, settings: DomainSettings) -> None:
        super().__init__()
        if context.data is None or context.preprocessing is None:
            raise ConfigError(
                "training.step: domain_adversarial reads its target sample with the run's data config "
                "and preprocessing; train through heplearn.train or pass them to fit()"
            )
        from heplearn.data.config import expand_files
        from heplearn.data.in_memory import load_arrays

        self.settings = settings
        self.training = context.training
        self.task = context.task
        self.total_steps = context.total_steps
        files = expand_files(settings.target, "training.step.target")
        arrays, _ = load_arrays(files, context.data.unlabelled())
        self.target = InMemoryJets(arrays, [], context.preprocessing)
        self.batch_size = context.training.batch_size
        layer = context.model.output_layer  # type: ignore[attr-defined]
        self.output_layer = layer
        self.network = context.wrap(context.model)
        head = nn.Sequential(
            mlp([layer.in_features, *settings.hidden]),
            nn.Linear(settings.hidden[-1] if settings.hidden else layer.in_features, 1),
        )
        self.domain_head = context.wrap(head)
        self.add_module("model", context.model, context.training, context.total_steps)
        self.add_module("domain_head", head, context.training, context.total_steps)

    def target_batch(self, step_index: int) -> Batch:
        """The target-sample batch of this step: passes over the sample, each in a seeded order."""
        per_pass = max(1, len(self.target) // self.batch_size)
        order = np.random.default_rng([self.training.seed, 7, step_index // per_pass]).permutation(len(self.target))
        start = (step_index % per_pass) * self.batch_size
        return trim_padding(to_batch(self.target.arrays.take(order[start : start + self.batch_size])))

    def representation(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The tagger's outputs and the input of its output layer for ``batch``."""
        captured: list[torch.Tensor] = []
        hook = self.output_layer.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0]))
        try:
            outputs = self.network(batch)
        finally:
            hook.remove()
        return outputs, captured[-1]

    @override
    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        coefficient = reversal_schedule(
            step_index / max(1, self.total_steps), self.settings.strength, self.settings.gamma
        )
        joined, size = join_batches(batch, self.target_batch(step_index))
        with autocast(self.training):
            outputs, features = self.representation(joined)  # one pass: shared batch-norm statistics
        outputs, source_features, target_features = outputs[:size], features[:size], features[size:]
        terms = self.task.loss(outputs, batch)
        task_loss = self.task.total_loss(terms)
        features = torch.cat([source_features, target_features]).float()
        domain = torch.cat([torch.zeros(len(source_features)), torch.ones(len(target_features))])
        logits = self.domain_head(reverse_gradient(features, coefficient)).squeeze(-1)
        domain_loss = functional.binary_cross_entropy_with_logits(logits, domain)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        (task_loss + self.settings.domain_weight * domain_loss).backward()
        if self.training.gradient_clip:
            for module in self.modules.values():
                torch.nn.utils.clip_grad_norm_(module.parameters(), self.training.gradient_clip)
        for name, optimizer in self.optimizers.items():
            optimizer.step()
            self.schedulers[name].step()
        figures = loss_figures(task_loss, terms)
        figures.update({"domain_loss": float(domain_loss.detach()), "reversal": coefficient})
        return figures
