"""The normalized autoencoder (NAE): an autoencoder trained as an energy-based model.

Yoon, Noh, Park, "Autoencoding under normalization constraints" (arXiv:2105.05735), brought to
LHC triggers and jets by Dillon, Favaro, Plehn, Sorrenson, Krämer (arXiv:2206.14225). A plain
autoencoder's reconstruction error is small wherever the network happens to reconstruct well, and
that includes simple inputs it never saw (an empty event, a point cloud near zero): they get a low
anomaly score although they are anomalous. The NAE reads the reconstruction error as an energy,
p(x) = exp(−E(x)/T) / Ω with E(x) = ‖x − f(x)‖² (the ``reconstruction`` task's score), and
maximises the likelihood. The gradient of log Ω is an expectation over the model's own density,
estimated with negative samples x⁻ drawn by Langevin Monte Carlo, so one step minimises

    L = E(x⁺)/T − E(x⁻)/T + γ·(E(x⁻)/T)²

(x⁺ the batch; the last term, the negative energy's square, keeps the energies bounded, as in
Yoon et al.). The samples go where the model puts probability but the data do not, and the step
raises the error there: the autoencoder is pushed to reconstruct the background only.

Negative samples are drawn "on the manifold" (Yoon et al.): latent points z ~ N(mean, std) of the
batch's encoding run ``latent_steps`` Langevin steps on E(decoder(z)), are decoded, then run
``x_steps`` Langevin steps on E(x) in input space, x ← x − λ ∇E(x)/T + σ ε, clipped to the batch's
range. A model without ``encoder`` and ``decoder`` starts from uniform points in that range.

The first ``pretrain_steps`` steps train the plain reconstruction loss (the NAE starts from an
autoencoder). The validation loss is the task's reconstruction error, which the NAE phase does not
minimise: train without a validation split, so the run keeps the last epoch's weights::

    training:
      step: {name: normalized_autoencoder, pretrain_steps: 2000, temperature: 1.0}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pydantic
import torch

from heplearn.config import StrictModel
from heplearn.errors import ConfigError
from heplearn.tasks import Batch, Reconstruction
from heplearn.training.steps import StepContext, StepStrategy, autocast, loss_figures, optimise

__all__ = ["NormalizedAutoencoderSettings", "NormalizedAutoencoderStep", "langevin"]


class NormalizedAutoencoderSettings(StrictModel):
    """``training.step`` of ``normalized_autoencoder``; defaults near Yoon et al.'s low-dimensional runs."""

    pretrain_steps: int = pydantic.Field(default=0, ge=0)  # plain reconstruction steps first
    temperature: float = pydantic.Field(default=1.0, gt=0)  # T of p(x) ∝ exp(−E(x)/T)
    gamma: float = pydantic.Field(default=1.0, ge=0)  # weight of the negative energy's square
    init: Literal["latent", "uniform"] = "latent"  # where the chains start
    latent_steps: int = pydantic.Field(default=20, ge=0)
    latent_step_size: float = pydantic.Field(default=0.1, gt=0)
    latent_noise: float = pydantic.Field(default=0.1, ge=0)
    x_steps: int = pydantic.Field(default=30, ge=0)
    x_step_size: float = pydantic.Field(default=0.05, gt=0)
    x_noise: float = pydantic.Field(default=0.01, ge=0)
    margin: float = pydantic.Field(default=0.2, ge=0)  # the chains' box: the batch's range widened by this share


def langevin(
    start: torch.Tensor,
    energy: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    step_size: float,
    noise: float,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``steps`` Langevin steps x ← x − λ ∇E(x) + σ ε from ``start`` (clipped to [low, high]); detached.

    ``energy`` maps ``(n, ...)`` points to ``(n,)`` energies; the gradient is taken with respect to
    the points only (the caller's parameters accumulate nothing).
    """
    x = start.detach().clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (gradient,) = torch.autograd.grad(energy(x).sum(), x)
        with torch.no_grad():
            x = x - step_size * gradient
            if noise:
                x = x + noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)
            if low is not None and high is not None:
                x = torch.maximum(torch.minimum(x, high), low)
    return x.detach()


class NormalizedAutoencoderStep(StepStrategy):
    """One NAE step: Langevin negative samples, then E(x⁺) − E(x⁻) + γ E(x⁻)² (see the module notes)."""

    name = "normalized_autoencoder"
    Settings = NormalizedAutoencoderSettings

    def __init__(self, context: StepContext, settings: NormalizedAutoencoderSettings) -> None:
        super().__init__()
        if not isinstance(context.task, Reconstruction):
            raise ConfigError(
                "training.step: normalized_autoencoder trains an autoencoder's reconstruction task "
                f"(data.labels.type: none, a reconstruction model), not a {context.task.kind} task"
            )
        if settings.init == "latent" and not all(hasattr(context.model, part) for part in ("encoder", "decoder")):
            raise ConfigError(
                "training.step: normalized_autoencoder init 'latent' needs a model with an encoder "
                "and a decoder; use init: uniform"
            )
        self.settings = settings
        self.training = context.training
        self.task: Reconstruction = context.task
        self.network = context.wrap(context.model)
        self.model = context.model
        self.generator = torch.Generator().manual_seed(context.training.seed)
        self.add_module("model", context.model, context.training, context.total_steps)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x)/T: the reconstruction error of points shaped like the task's group, over the temperature."""
        batch = {self.task.group: x}
        return self.task.postprocess(self.network(batch), batch)[:, 0] / self.settings.temperature

    def negative_samples(self, positive: torch.Tensor) -> torch.Tensor:
        """Points drawn from the model's density by Langevin chains (on the manifold first)."""
        s = self.settings
        low, high = positive.amin(0), positive.amax(0)
        width = (high - low).clamp_min(1e-6)
        low, high = low - s.margin * width, high + s.margin * width
        if s.init == "latent":
            with torch.no_grad():
                encoded = self.model.encoder(positive)
            mean, spread = encoded.mean(0), encoded.std(0).clamp_min(1e-3)
            z = mean + spread * torch.randn(encoded.shape, generator=self.generator)

            def decoded_energy(latent: torch.Tensor) -> torch.Tensor:
                return self.energy(self.model.decoder(latent).reshape(positive.shape))

            z = langevin(
                z, decoded_energy, s.latent_steps, s.latent_step_size, s.latent_noise, generator=self.generator
            )
            with torch.no_grad():
                start = torch.maximum(torch.minimum(self.model.decoder(z).reshape(positive.shape), high), low)
        else:
            start = low + (high - low) * torch.rand(positive.shape, generator=self.generator)
        return langevin(start, self.energy, s.x_steps, s.x_step_size, s.x_noise, low, high, self.generator)

    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        """One optimiser step: the plain autoencoder while pre-training, then the NAE's contrastive energy loss.

        The NAE loss (Yoon, Noh & Park, arXiv:2105.05735) lowers the reconstruction energy of the
        batch and raises that of the Langevin samples of the model's own density, with a γ·E²
        penalty on the negatives that keeps the energies bounded.
        """
        s = self.settings
        if step_index < s.pretrain_steps:  # the autoencoder the NAE starts from
            with autocast(self.training):
                outputs = self.network(batch)
            terms = self.task.loss(outputs, batch)
            loss = self.task.total_loss(terms)
            optimise(loss, self.model, self.optimizers["model"], self.schedulers["model"], self.training.gradient_clip)
            return loss_figures(loss, terms)
        positive = batch[self.task.group].float()
        negative = self.negative_samples(positive)
        positive_energy, negative_energy = self.energy(positive), self.energy(negative)
        loss = positive_energy.mean() - negative_energy.mean() + s.gamma * negative_energy.square().mean()
        optimise(loss, self.model, self.optimizers["model"], self.schedulers["model"], self.training.gradient_clip)
        return {
            "loss": float(loss.detach()),
            "positive_energy": float(positive_energy.mean().detach()),
            "negative_energy": float(negative_energy.mean().detach()),
        }
