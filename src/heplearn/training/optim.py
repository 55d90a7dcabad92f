"""Optimisers and learning-rate schedules of the trainer.

AdamW (Loshchilov & Hutter, arXiv:1711.05101) or RAdam (Liu et al., arXiv:1908.03265) from
``torch.optim``, optionally wrapped in Lookahead (Zhang et al., arXiv:1907.08610) — the
"Ranger" combination that weaver-core uses for ParticleNet and ParT. Schedules: cosine decay or
one-cycle, both after a linear warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from heplearn.run_config import TrainingConfig


class Lookahead(torch.optim.Optimizer):
    """Every ``k`` steps of the inner optimiser, move slow weights ``alpha`` of the way to the fast ones."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        self.inner = inner
        self.k = k
        self.alpha = alpha
        self.param_groups = inner.param_groups
        self.defaults = inner.defaults
        self.state = inner.state
        self._slow = [[p.detach().clone() for p in group["params"]] for group in self.param_groups]
        self._counter = 0

    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        """One step of the inner optimiser; every ``k`` steps, the slow weights move towards the fast ones."""
        loss = self.inner.step(closure)
        self._counter += 1
        if self._counter % self.k == 0:
            with torch.no_grad():
                for group, slow_weights in zip(self.param_groups, self._slow, strict=True):
                    for fast, slow in zip(group["params"], slow_weights, strict=True):
                        slow.add_(fast - slow, alpha=self.alpha)
                        fast.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (of the inner optimiser's parameters)."""
        self.inner.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The inner optimiser's state, the slow weights and the step counter."""
        return {
            "inner": self.inner.state_dict(),
            "slow": [list(group) for group in self._slow],
            "counter": self._counter,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.inner.load_state_dict(state_dict["inner"])
        self._slow = [[tensor.clone() for tensor in group] for group in state_dict["slow"]]
        self._counter = int(state_dict["counter"])


def make_optimizer(parameters: Any, config: TrainingConfig) -> torch.optim.Optimizer:
    """The optimiser ``config`` names (AdamW or RAdam), wrapped in Lookahead when ``config.lookahead``."""
    parameters = list(parameters)
    if config.optimizer == "radam":
        inner: torch.optim.Optimizer = torch.optim.RAdam(
            parameters, lr=config.learning_rate, weight_decay=config.weight_decay, decoupled_weight_decay=True
        )
    else:
        inner = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return Lookahead(inner) if config.lookahead else inner


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step multiplier of the learning rate: linear warm-up, then the chosen decay."""
    warmup = int(config.warmup_fraction * total_steps)
    target = optimizer.inner if isinstance(optimizer, Lookahead) else optimizer

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if config.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if config.schedule == "onecycle":  # linear annealing to 1% after the warm-up peak
            return 1.0 - 0.99 * progress
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(target, factor)
