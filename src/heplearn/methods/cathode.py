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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
    "cathode_files",
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
    progress: bool = False,
) -> TrainedFlow:
    """Fit p(x | m) to (sideband) events by maximum likelihood through the engine's ``fit`` (``progress``: a bar)."""
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
    source = InMemorySource(InMemoryJets(arrays, [], None), training.batch_size, True, seed)
    fit(flow, task, source, None, training, progress=progress)
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
    progress: bool = False,
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
        features[in_sb],
        mass[in_sb],
        transforms=transforms,
        hidden=hidden,
        training=flow_training,
        seed=seed,
        progress=progress,
    )
    samples, _ = sample_background(flow, mass[in_sr], oversampling, seed)
    combined = np.r_[features[in_sr], samples]
    is_data = np.r_[np.ones(in_sr.sum(), bool), np.zeros(len(samples), bool)]
    training = classifier_training or default_training()
    scores = kfold_scores(combined, is_data, folds=folds, seed=seed, training=training, progress=progress)
    return scores, in_sr


def cathode_files(
    files: Sequence[str | os.PathLike[str]],
    features: Sequence[str],
    mass: str,
    signal_region: tuple[float, float],
    sidebands: tuple[float, float],
    output: str | os.PathLike[str],
    *,
    label: str | None = None,
    min_background: int = 20,
    **options: Any,
) -> dict[str, Any]:
    """``cathode_scores`` on the fields of event files; writes the SR events' scores and a summary in ``output``.

    ``scores.parquet``: every signal-region event's mass and out-of-fold CATHODE score (and its
    ``label`` field, when given); ``cathode.json``: the sample sizes, the score's quantiles, the
    AUC of the classifier between SR data and flow samples (near 0.5 when the flow's background
    matches the data and there is no signal), and with ``label`` (true for signal) the AUC and the
    SIC curve on the labels; ``cathode.png``: the score of SR data and samples, and the SIC.
    ``options`` go to ``cathode_scores``.
    """
    import awkward as ak

    from heplearn.data import io
    from heplearn.data.files import jsonable, write_json
    from heplearn.evaluation.metrics import roc
    from heplearn.methods.cwola import check_regions, read_columns
    from heplearn.methods.weak_supervision import sic_curve

    check_regions(signal_region, sidebands)  # before anything is read
    names = [*features, mass, *([label] if label else [])]
    columns = read_columns(files, names)
    values, masses = columns[:, : len(features)], columns[:, len(features)]
    kfold, in_sr = cathode_scores(values, masses, signal_region, sidebands, **options)
    n_sr = int(in_sr.sum())
    data_score, sample_score = kfold.scores[:n_sr], kfold.scores[n_sr:]
    summary: dict[str, Any] = {
        "files": [str(path) for path in files],
        "features": list(features),
        "mass": mass,
        "signal_region": signal_region,
        "sidebands": sidebands,
        "events": len(masses),
        "sideband_events": int((~in_sr & (masses > sidebands[0]) & (masses < sidebands[1])).sum()),
        "signal_region_events": n_sr,
        "samples": len(sample_score),
        "data_vs_samples_auc": roc(np.r_[np.ones(n_sr, bool), np.zeros(len(sample_score), bool)], kfold.scores).auc,
        "score_quantiles": {f"{q:g}": float(np.quantile(data_score, q)) for q in (0.5, 0.9, 0.99) if n_sr},
    }
    table: dict[str, Any] = {"mass": masses[in_sr], "score": data_score}
    curve = None
    if label:
        is_signal = columns[in_sr, -1] > 0.5
        table[label] = is_signal
        curve = sic_curve(is_signal, data_score, min_background=min_background)
        summary["labelled"] = {
            "signal": int(is_signal.sum()),
            "background": int((~is_signal).sum()),
            "auc": curve.auc,
            "max_sic": curve.max_sic,
            "sic_curve": {"signal_efficiency": curve.signal_efficiency, "sic": curve.sic},
        }
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    io.write(ak.zip({key: np.ascontiguousarray(value) for key, value in table.items()}), folder / "scores.parquet")
    write_json(folder / "cathode.json", jsonable(summary))
    _plot_cathode(data_score, sample_score, curve, folder / "cathode.png")
    return summary


def _plot_cathode(data: np.ndarray, samples: np.ndarray, curve: Any, path: Path) -> Path:
    """The score of SR data and flow samples (left) and, with labels, SIC = ε_S/√ε_B against ε_S (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from heplearn.data.files import atomic_path

    figure, axes = plt.subplots(1, 2 if curve is not None else 1, figsize=(11 if curve is not None else 6, 4.5))
    left = axes[0] if curve is not None else axes
    bins = np.linspace(0.0, 1.0, 41)
    left.hist(data, bins, density=True, histtype="step", label=f"signal-region data ({len(data)})")
    left.hist(samples, bins, density=True, histtype="step", label=f"flow samples ({len(samples)})")
    left.set_yscale("log")
    left.set_xlabel("CATHODE score p(data | x)")
    left.set_ylabel("density")
    left.legend(fontsize="small")
    if curve is not None:
        axes[1].plot(curve.signal_efficiency, curve.sic, label=f"CATHODE (max {curve.max_sic:.1f})")
        axes[1].set_xlabel(r"signal efficiency $\epsilon_S$")
        axes[1].set_ylabel(r"SIC = $\epsilon_S/\sqrt{\epsilon_B}$")
        axes[1].legend(fontsize="small")
    figure.suptitle("CATHODE: classifier of signal-region data against the flow's background")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return path
