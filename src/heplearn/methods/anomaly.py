"""Unsupervised anomaly detection: the VAE loss as named terms, and runs of the trigger autoencoders.

A model trained on background alone (``data.labels.type: none``) scores how unlike background an
event is. The dense autoencoder (``model.name: autoencoder``) has the ``reconstruction`` task
(score: the mean squared error); the VAE (``model.name: vae``, AXOL1TL's detector) has the
``variational_reconstruction`` task, trained with the loss of Govorkova et al.
(arXiv:2108.03986), L = (1 − β)·MSE + β·D_KL, as two named, weighted terms::

    training:
      loss: [{name: reconstruction_mse, weight: 0.5}, {name: kl, weight: 0.5}]   # β = 0.5

and scored by the reconstruction MSE, the KL divergence or the latent Σμ² (``model.score``; the
last two are computed by the encoder alone, which is all the exported graph holds).

``anomaly_run_config`` writes such a run config from a few choices (``heplearn anomaly train``);
thresholds at a trigger rate are in ``heplearn.methods.thresholds``, CWoLa hunting in
``heplearn.methods.cwola``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from typing_extensions import override

from heplearn.errors import ConfigError
from heplearn.models import registry
from heplearn.tasks import Batch, Task, VariationalReconstruction, kl_divergence
from heplearn.training.losses import LossTermBase, weighted_mean

__all__ = ["KLDivergence", "ReconstructionError", "anomaly_run_config", "kl_divergence", "vae_loss"]


class ReconstructionError(LossTermBase):
    """Σ over the real entries of (x̂ − x)², per event: the VAE's reconstruction term.

    The sum over features (not the mean) is −2 log of a unit-variance Gaussian likelihood up to a
    constant, the ELBO's reconstruction term; padded entries (``pad_value`` of the task) add nothing.
    """

    name = "reconstruction_mse"
    tasks = (VariationalReconstruction,)
    needs = "model.name: vae with data.labels.type: none"

    @override
    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        assert isinstance(task, VariationalReconstruction)
        error, _ = task.squared_error(outputs, batch)
        return weighted_mean(error.sum(-1), batch["weight"])


class KLDivergence(LossTermBase):
    """D_KL(q(z | x) ‖ N(0, I)) per event, the VAE's regulariser (arXiv:1312.6114)."""

    name = "kl"
    tasks = (VariationalReconstruction,)
    needs = "model.name: vae with data.labels.type: none"

    @override
    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        assert isinstance(task, VariationalReconstruction)
        mu, log_variance, _ = task.split(outputs.float())
        return weighted_mean(kl_divergence(mu, log_variance), batch["weight"])


def vae_loss(task: VariationalReconstruction, outputs: torch.Tensor, batch: Batch, beta: float) -> torch.Tensor:
    """(1 − β)·MSE + β·D_KL of a batch, the two terms as ``training.loss`` weighs them."""
    terms = [ReconstructionError(1 - beta, None, task, None), KLDivergence(beta, None, task, None)]  # type: ignore[arg-type]
    return sum((term.weight * term(outputs, batch, task) for term in terms), torch.zeros(()))


def anomaly_run_config(
    train: str | Sequence[str],
    variables: Sequence[str],
    *,
    model: str = "vae",
    score: str = "latent_norm",
    beta: float = 0.5,
    latent: int | None = None,
    val: str | Sequence[str] | None = None,
    test: str | Sequence[str] | None = None,
    standardize: bool = True,
    preset: str = "paper",
    training: dict[str, Any] | None = None,
    step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run config (a dict for ``load_run_config``) training an anomaly detector on background.

    ``model`` is ``vae`` (loss (1 − β)·MSE + β·KL, score ``mse``, ``kl`` or ``latent_norm``),
    ``autoencoder`` (loss and score: the MSE) or ``cicada`` (the convolutional autoencoder of
    ``heplearn.models.cicada``; ``variables`` are then the NanoAOD collections whose objects the
    data layer sums into the event's 18 × 14 calorimeter-region image, score: the MSE).
    ``standardize=False`` keeps zero-padded object slots at 0, where the VAE's loss and MSE score
    ignore them. ``step`` is a ``training.step`` (e.g. ``{"name": "normalized_autoencoder", ...}``,
    which trains a reconstruction task: not the VAE).
    """
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"beta: the KL weight β must lie in [0, 1], got {beta}")
    registry.check_name(model)
    model_config: dict[str, Any] = {"name": model, "preset": preset}
    if model == "vae":
        model_config["score"] = score
        if latent is not None:
            model_config["latent"] = latent
        loss: Any = [{"name": "reconstruction_mse", "weight": 1.0 - beta}, {"name": "kl", "weight": beta}]
    elif score != "mse":
        raise ConfigError(
            f"score: {score!r} is a latent score, but model {model!r} has no encoder exported for it "
            "(no latent mean); use model vae, or score mse"
        )
    else:
        loss = "auto"
    if step is not None and model == "vae":
        raise ConfigError(
            f"training.step: {step.get('name')!r} trains a reconstruction task; model vae has a variational "
            "one: use model autoencoder or cicada"
        )
    inputs: dict[str, Any] = {"jet": {"variables": list(variables), "standardize": standardize}}
    if model == "cicada":  # the whole event as calorimeter regions (heplearn.features.images.calorimeter_images)
        inputs = {"image": {"image": {"kind": "calorimeter", "collections": list(variables)}}}
    data: dict[str, Any] = {"train": train, "labels": {"type": "none"}, "inputs": inputs}
    for split, files in (("val", val), ("test", test)):
        if files:
            data[split] = files
    settings: dict[str, Any] = {"loss": loss, **(training or {})}
    if step is not None:
        settings["step"] = step
    return {"data": data, "model": model_config, "training": settings}
