"""What a run predicts and how it is scored: the task, an object shared by every stage.

A task (in the spirit of Salt's ``TaskBase``) owns

- its number of outputs (the size of the model's head) and the names of what it writes
  (``output_names``: the columns of ``heplearn predict``; ``output_tensor``: the ONNX / Triton
  output),
- its loss: named terms (``heplearn.training.losses``), each ``term(outputs, batch, task)``, summed
  with their weights; every term is logged on its own,
- its validation metrics, computed on the whole validation split,
- its ``postprocess``: what a user gets from the raw outputs (softmax probabilities, regression
  outputs, per-event weights ``f / (1 − f)``, an anomaly score); the exported ONNX graph ends with it.

Training, evaluation, export, prediction and the server all ask the task; none of them branches
on its kind. ``model.json`` records ``task`` (the kind) and ``task_settings``; ``task_from_info``
rebuilds the task from them (without loss terms: applying a model needs none).

Adding a task: subclass ``Task``, set ``kind``, ``output_tensor`` and ``default_loss``, implement
``postprocess``, ``output_names``, ``target`` and ``settings``, and register it in ``TASKS``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from typing_extensions import override

from heplearn.errors import ConfigError

Batch = Mapping[str, torch.Tensor]


class LossTerm(Protocol):
    """One named, weighted term of a task's loss (see ``heplearn.training.losses``)."""

    weight: float

    @property
    def name(self) -> str:
        """The term's name, the key of its logged value (a class constant of each term)."""

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        """The term's value for a batch: a scalar tensor (weighted by the batch's ``weight``)."""


class Task(ABC):
    """The base of every task: outputs, loss terms, metrics, postprocessing and output names."""

    kind: ClassVar[str]
    output_tensor: ClassVar[str]  # the name of the exported graph's output
    default_loss: ClassVar[str]  # the loss term ``training.loss: auto`` stands for

    def __init__(self, num_outputs: int, terms: Sequence[LossTerm] = ()) -> None:
        self.num_outputs = num_outputs
        self.terms = list(terms)

    # -- training
    def loss(self, outputs: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Every loss term's value (unweighted), keyed by its name."""
        return {term.name: term(outputs, batch, self) for term in self.terms}

    def total_loss(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of the terms ``loss`` returned."""
        weights = {term.name: term.weight for term in self.terms}
        return sum((weights[name] * value for name, value in terms.items()), torch.zeros(()))

    @abstractmethod
    def target(self, batch: Batch) -> torch.Tensor:
        """What the outputs are compared with: labels, regression targets, the inputs themselves."""

    def metrics(self, outputs: np.ndarray, columns: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Validation metrics beyond the loss, from raw outputs and the batch's non-input columns."""
        return {}

    @property
    def target_keys(self) -> tuple[str, ...]:
        """Input keys its loss reads besides ``label``, ``weight`` and the observers (an autoencoder's
        group): the validation pass keeps them beside the outputs."""
        return ()

    # -- applying
    @abstractmethod
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """What a user receives for raw outputs ``(B, num_outputs)``; differentiable, exportable."""

    def score(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """One number per event ``(B,)``: what cuts and decorrelation terms look at."""
        return self.postprocess(outputs, batch)[:, 0]

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """One name per column of ``postprocess``."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """What ``from_settings`` needs to rebuild the task (JSON-serialisable)."""

    @classmethod
    @abstractmethod
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        """The task ``settings()`` described, without loss terms."""

    def info(self) -> dict[str, Any]:
        """The task's entries of ``model.json``."""
        return {"task": self.kind, "num_outputs": self.num_outputs, "task_settings": self.settings()}


class Classification(Task):
    """Classes from one-hot labels; softmax probabilities, class ``signal_index`` is the signal."""

    kind = "classification"
    output_tensor = "probabilities"
    default_loss = "cross_entropy"

    def __init__(self, class_names: Sequence[str], terms: Sequence[LossTerm] = (), signal_index: int = 0) -> None:
        super().__init__(len(class_names), terms)
        self.class_names = list(class_names)
        self.signal_index = signal_index

    @override
    def target(self, batch: Batch) -> torch.Tensor:
        return batch["label"]

    @override
    def metrics(self, outputs: np.ndarray, columns: Mapping[str, np.ndarray]) -> dict[str, float]:
        from heplearn.evaluation.metrics import classification_metrics

        return classification_metrics(outputs, columns["label"], columns["weight"], self.signal_index)

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.softmax(outputs, dim=-1)

    @override
    def score(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.softmax(outputs.float(), dim=-1)[:, self.signal_index]

    @property
    @override
    def output_names(self) -> list[str]:
        return [f"score_{name}" for name in self.class_names]

    @override
    def settings(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "signal_index": self.signal_index}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        return cls(settings["class_names"], signal_index=int(settings.get("signal_index", 0)))


class Reweighting(Classification):
    """A classifier of two samples whose output is a per-event weight (DCTR, OmniFold).

    A classifier trained to tell the ``target`` sample (class ``signal_index``) from the others
    estimates f(x) = p(target | x); by the likelihood-ratio trick (Andreassen & Nachman,
    arXiv:1907.10621) w(x) = f / (1 − f) = p_target(x) / p_other(x) for equally weighted samples,
    the weight that morphs the other sample into the target one.
    """

    kind = "reweighting"
    output_tensor = "weights"

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        log_probabilities = torch.log_softmax(outputs.float(), dim=-1)
        log_target = log_probabilities[:, self.signal_index]
        # log(1 − f) = log Σ_{other classes} p, computed without cancellation
        others = torch.cat(
            [log_probabilities[:, : self.signal_index], log_probabilities[:, self.signal_index + 1 :]], dim=-1
        )
        return torch.exp(log_target - torch.logsumexp(others, dim=-1)).unsqueeze(-1)

    @override
    def score(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.softmax(outputs.float(), dim=-1)[:, self.signal_index]

    @property
    @override
    def output_names(self) -> list[str]:
        return ["weight"]


class Regression(Task):
    """Real-valued targets: one output each, or with ``quantiles`` one per (target, level), targets
    outermost (the pinball loss's layout)."""

    kind = "regression"
    output_tensor = "outputs"
    default_loss = "mse"

    def __init__(
        self, targets: Sequence[str], terms: Sequence[LossTerm] = (), quantiles: Sequence[float] | None = None
    ) -> None:
        self.targets = list(targets)
        self.quantiles = [float(level) for level in quantiles] if quantiles else None
        super().__init__(len(self.targets) * len(self.quantiles or [None]), terms)

    @override
    def target(self, batch: Batch) -> torch.Tensor:
        return batch["label"]

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return outputs

    @override
    def score(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.quantiles is None:
            return outputs[:, 0]
        return outputs[:, int(np.argmin(np.abs(np.asarray(self.quantiles) - 0.5)))]  # the median

    @property
    @override
    def output_names(self) -> list[str]:
        if self.quantiles is None:
            return [f"output_{name}" for name in self.targets]
        return [f"output_{name}_q{level:g}" for name in self.targets for level in self.quantiles]

    @override
    def settings(self) -> dict[str, Any]:
        return {"targets": self.targets, "quantiles": self.quantiles}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        return cls(settings["targets"], quantiles=settings.get("quantiles"))


class Reconstruction(Task):
    """No labels: the model reproduces its (standardised) input group; the anomaly score is the error.

    The group is per event (``(B, F)``) or an image (``(B, C, H, W)``, e.g. CICADA's calorimeter
    regions), which the model rebuilds flattened.

    The score is the mean squared reconstruction error over the group's features, the trigger
    autoencoder's figure of merit (e.g. Govorkova et al., arXiv:2108.03986).
    """

    kind = "reconstruction"
    output_tensor = "anomaly_score"
    default_loss = "mse"

    def __init__(self, group: str, features: int, terms: Sequence[LossTerm] = ()) -> None:
        super().__init__(features, terms)
        self.group = group

    def target(self, batch: Batch) -> torch.Tensor:
        """The group, one row per event (an image ``(B, C, H, W)`` flattened to ``(B, C·H·W)``)."""
        return batch[self.group].flatten(1)

    @property
    @override
    def target_keys(self) -> tuple[str, ...]:
        return (self.group,)

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return (outputs.float() - self.target(batch).float()).square().mean(dim=-1, keepdim=True)

    @property
    @override
    def output_names(self) -> list[str]:
        return ["anomaly_score"]

    @override
    def settings(self) -> dict[str, Any]:
        return {"group": self.group}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        return cls(settings["group"], num_outputs)


#: The anomaly scores of a variational reconstruction: the reconstruction error, the KL divergence of
#: the encoder's posterior from the prior, and the squared norm of the latent mean (AXOL1TL's score).
VARIATIONAL_SCORES = ("mse", "kl", "latent_norm")


class VariationalReconstruction(Task):
    """A variational autoencoder's task: raw outputs ``[μ (d) | log σ² (d) | x̂ (F)]``, one score out.

    The model (``heplearn.models.vae``) writes the encoder's posterior mean and log-variance
    beside the reconstruction of the (standardised) ``group``. Entries of the target equal to
    ``pad_value`` (zero-padded object slots of an unstandardised group) are padding: the
    reconstruction error ignores them. ``score`` picks what the exported graph outputs:

    - ``mse``: the mean squared reconstruction error over the real entries;
    - ``kl``: D_KL(q(z|x) ‖ N(0, I)) = −½ Σ (1 + log σ² − μ² − σ²) (Kingma & Welling, arXiv:1312.6114);
    - ``latent_norm``: Σ μᵢ², the score AXOL1TL deploys in the CMS Level-1 trigger (the encoder alone).
    """

    kind = "variational_reconstruction"
    output_tensor = "anomaly_score"
    default_loss = "reconstruction_mse"

    def __init__(
        self,
        group: str,
        features: int,
        latent: int,
        terms: Sequence[LossTerm] = (),
        score: str = "latent_norm",
        pad_value: float | None = None,
    ) -> None:
        if score not in VARIATIONAL_SCORES:
            raise ConfigError(
                f"model.score: unknown anomaly score {score!r}; choose one of {', '.join(VARIATIONAL_SCORES)}"
            )
        super().__init__(features + 2 * latent, terms)
        self.group = group
        self.features = features
        self.latent = latent
        self.score_name = score
        self.pad_value = pad_value

    def split(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(μ, log σ², x̂)`` of the raw outputs."""
        d = self.latent
        return outputs[:, :d], outputs[:, d : 2 * d], outputs[:, 2 * d :]

    @override
    def target(self, batch: Batch) -> torch.Tensor:
        return batch[self.group]

    @property
    @override
    def target_keys(self) -> tuple[str, ...]:
        return (self.group,)

    def real_entries(self, target: torch.Tensor) -> torch.Tensor:
        """1 for the entries that are not padding, 0 for those equal to ``pad_value`` (float, like ``target``)."""
        if self.pad_value is None:
            return torch.ones_like(target)
        return (target != self.pad_value).to(target.dtype)

    def squared_error(self, outputs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-entry squared error with padding set to zero, and the real-entry indicator."""
        target = self.target(batch).float()
        real = self.real_entries(target)
        return (self.split(outputs.float())[2] - target).square() * real, real

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        mu, log_variance, _ = self.split(outputs.float())
        if self.score_name == "latent_norm":
            return mu.square().sum(-1, keepdim=True)
        if self.score_name == "kl":
            return kl_divergence(mu, log_variance).unsqueeze(-1)
        if self.pad_value is None:  # every entry is real: the plain mean, no indicator in the graph
            return (self.split(outputs.float())[2] - self.target(batch).float()).square().mean(-1, keepdim=True)
        error, real = self.squared_error(outputs, batch)
        return (error.sum(-1) / real.sum(-1).clamp_min(1.0)).unsqueeze(-1)

    @property
    @override
    def output_names(self) -> list[str]:
        return ["anomaly_score"]

    @override
    def settings(self) -> dict[str, Any]:
        return {"group": self.group, "latent": self.latent, "score": self.score_name, "pad_value": self.pad_value}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        latent = int(settings["latent"])
        return cls(
            settings["group"],
            num_outputs - 2 * latent,
            latent,
            score=settings.get("score", "latent_norm"),
            pad_value=settings.get("pad_value"),
        )


def kl_divergence(mu: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """D_KL(N(μ, σ²) ‖ N(0, I)) per event, ``−½ Σ (1 + log σ² − μ² − σ²)`` over the last axis.

    Kingma & Welling, arXiv:1312.6114, appendix B. Zero for μ = 0, log σ² = 0; d/2 for μ = 1, σ = 1.
    """
    return -0.5 * (1 + log_variance - mu.square() - log_variance.exp()).sum(-1)


TASKS: dict[str, type[Task]] = {
    task.kind: task for task in (Classification, Reweighting, Regression, Reconstruction, VariationalReconstruction)
}


#: tasks that live with their method, imported on first use: kind -> (module, class)
METHOD_TASKS: dict[str, tuple[str, str]] = {"summary_statistic": ("heplearn.methods.inferno", "SummaryStatistic")}


def task_from_info(info: Mapping[str, Any], where: str = "model.json") -> Task:
    """The task a run's ``model.json`` describes."""
    kind = info.get("task")
    if isinstance(kind, str) and kind in METHOD_TASKS and kind not in TASKS:
        module, attribute = METHOD_TASKS[kind]
        TASKS[kind] = getattr(importlib.import_module(module), attribute)
    if kind not in TASKS or "task_settings" not in info:
        raise ConfigError(f"{where}: unknown task {kind!r} or no task_settings; known tasks: {', '.join(TASKS)}")
    return TASKS[kind].from_settings(int(info["num_outputs"]), info["task_settings"])
