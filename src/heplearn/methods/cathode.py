"""CATHODE: background in the signal region sampled from a flow trained on the sidebands.

Hallin et al., arXiv:2109.00546. A conditional normalizing flow p(x | m) (a masked
autoregressive flow with affine transforms, Papamakarios et al. arXiv:1705.07057, from zuko)
learns the features' background density as a function of the resonant mass on the sidebands,
where there is no signal; sampled at signal-region masses it gives a synthetic SR background that
follows the features' correlation with m. A classifier of SR data against those samples is then,
by the CWoLa argument, monotone in p_S / p_B (``heplearn.methods.cwola.kfold_scores``).

The flow trains on the heplearn engine: a ``DensityEstimation`` task (the output is log p(x | m),
the loss term ``negative_log_likelihood``), the mass the last column of the input group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from typing_extensions import override

from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.methods.cwola import KFoldScores, check_regions, default_training, kfold_scores
from heplearn.optional import optional_import
from heplearn.run_config import LossTermConfig, TrainingConfig
from heplearn.tasks import TASKS, Batch, LossTerm, Task
from heplearn.training.losses import LossTermBase, TermContext, build_terms, register_loss_term, weighted_mean
from heplearn.training.trainer import InMemorySource, fit

__all__ = [
    "ConditionalFlow",
    "DensityEstimation",
    "NegativeLogLikelihood",
    "cathode_scores",
    "sample_background",
    "train_flow",
]


class DensityEstimation(Task):
    """The output is log p(x | context) per event: its loss the negative mean, its score the density."""

    kind = "density_estimation"
    output_tensor = "log_density"
    default_loss = "negative_log_likelihood"

    def __init__(self, group: str = "jet", terms: Sequence[LossTerm] = ()) -> None:
        super().__init__(1, terms)
        self.group = group

    @override
    def target(self, batch: Batch) -> torch.Tensor:
        return batch[self.group]

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return outputs

    @property
    @override
    def output_names(self) -> list[str]:
        return ["log_density"]

    @override
    def settings(self) -> dict[str, Any]:
        return {"group": self.group}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        return cls(settings.get("group", "jet"))


TASKS[DensityEstimation.kind] = DensityEstimation


class NegativeLogLikelihood(LossTermBase):
    """−Σ wᵢ log p(xᵢ | mᵢ) / Σ wᵢ: maximum likelihood of a density estimator."""

    name = "negative_log_likelihood"
    tasks = (DensityEstimation,)
    needs = "a density-estimation task (a flow)"

    @override
    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        return weighted_mean(-outputs[:, 0].float(), batch["weight"])


register_loss_term(NegativeLogLikelihood)


class ConditionalFlow(nn.Module):
    """zuko's MAF of p(x | m); reads the group ``jet`` = [x (F) | m], returns log p(x | m) ``(B, 1)``."""

    input_keys = ("jet",)

    def __init__(self, features: int, transforms: int = 4, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        zuko = optional_import("zuko", "CATHODE's conditional flow (zuko)")
        self.features = features
        self.flow = zuko.flows.MAF(features, context=1, transforms=transforms, hidden_features=tuple(hidden))

    @override
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values = batch["jet"].float()
        x, m = values[:, : self.features], values[:, self.features :]
        return self.flow(m).log_prob(x).unsqueeze(-1)

    @torch.no_grad()
    def sample(self, m: torch.Tensor) -> torch.Tensor:
        """One draw of x for each context ``m`` ``(n, 1)``."""
        return self.flow(m).sample()


@dataclass
class TrainedFlow:
    """A flow with the standardisation of its features and mass."""

    flow: ConditionalFlow = field(repr=False)
    x_mean: np.ndarray
    x_scale: np.ndarray
    m_mean: float
    m_scale: float

    def sample(self, mass: np.ndarray, seed: int = 0) -> np.ndarray:
        """Features drawn from p(x | m) at each of ``mass``."""
        torch.manual_seed(seed)
        self.flow.eval()
        context = torch.from_numpy(
            ((np.asarray(mass, np.float64) - self.m_mean) / self.m_scale).astype(np.float32)[:, None]
        )
        return self.flow.sample(context).double().numpy() * self.x_scale + self.x_mean


def train_flow(
    features: np.ndarray,
    mass: np.ndarray,
    *,
    transforms: int = 4,
    hidden: Sequence[int] = (64, 64),
    training: TrainingConfig | None = None,
    seed: int = 0,
) -> TrainedFlow:
    """Fit p(x | m) to (sideband) events by maximum likelihood through the engine's ``fit``."""
    features, mass = np.asarray(features, np.float64), np.asarray(mass, np.float64)
    if features.ndim != 2 or len(features) != len(mass) or len(mass) < 100:
        raise DataError(
            f"cathode: the flow needs (events, features) with one mass each and at least 100 events; "
            f"got {features.shape} and {mass.shape}"
        )
    if transforms < 1 or not hidden or min(hidden) < 1:
        raise ConfigError(f"flow: transforms ≥ 1 and positive hidden widths needed; got {transforms}, {hidden}")
    training = training or TrainingConfig(
        epochs=30, batch_size=256, learning_rate=1e-3, weight_decay=1e-6, early_stopping_patience=None
    )
    x_mean, x_scale = features.mean(axis=0), features.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    m_mean, m_scale = float(mass.mean()), float(mass.std() or 1.0)
    group = np.c_[(features - x_mean) / x_scale, (mass - m_mean) / m_scale].astype(np.float32)
    arrays = JetArrays({"jet": group}, None, np.zeros(len(mass), np.int64), np.ones(len(mass), np.float32))
    task = DensityEstimation()
    task.terms = build_terms([LossTermConfig(name="negative_log_likelihood")], task, TermContext(training))
    torch.manual_seed(seed)
    flow = ConditionalFlow(features.shape[1], transforms, hidden)
    fit(flow, task, InMemorySource(InMemoryJets(arrays, [], None), training.batch_size, True, seed), None, training)
    return TrainedFlow(flow, x_mean, x_scale, m_mean, m_scale)


def sample_background(
    flow: TrainedFlow, signal_region_mass: np.ndarray, oversampling: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic SR background: masses from a KDE of the SR data's masses, features from the flow."""
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(seed)
    kde = gaussian_kde(np.asarray(signal_region_mass, np.float64))
    mass = kde.resample(oversampling * len(signal_region_mass), seed=rng)[0]
    return flow.sample(mass, seed), mass


def cathode_scores(
    features: np.ndarray,
    mass: np.ndarray,
    signal_region: tuple[float, float],
    sidebands: tuple[float, float],
    *,
    oversampling: int = 4,
    flow_training: TrainingConfig | None = None,
    classifier_training: TrainingConfig | None = None,
    folds: int = 5,
    transforms: int = 4,
    hidden: Sequence[int] = (64, 64),
    seed: int = 0,
) -> tuple[KFoldScores, np.ndarray]:
    """CATHODE's anomaly score of the SR events: out-of-fold p(data | x) of SR data vs flow samples.

    Returns the k-fold scores over [SR data | samples] and the mask of the SR data among ``features``.
    """
    check_regions(signal_region, sidebands)
    mass = np.asarray(mass, np.float64)
    features = np.asarray(features, np.float64)
    in_sr = (mass > signal_region[0]) & (mass < signal_region[1])
    in_sb = ~in_sr & (mass > sidebands[0]) & (mass < sidebands[1])
    flow = train_flow(
        features[in_sb], mass[in_sb], transforms=transforms, hidden=hidden, training=flow_training, seed=seed
    )
    samples, _ = sample_background(flow, mass[in_sr], oversampling, seed)
    combined = np.r_[features[in_sr], samples]
    is_data = np.r_[np.ones(in_sr.sum(), bool), np.zeros(len(samples), bool)]
    scores = kfold_scores(combined, is_data, folds=folds, seed=seed, training=classifier_training or default_training())
    return scores, in_sr
