"""The resonant anomaly-detection benchmark: SIC curves of supervised, idealised, CATHODE, CWoLa and VAE scores.

The figure of merit of the LHC Olympics R&D comparisons (Hallin et al., arXiv:2109.00546, after the
CATHODE repository's ``evaluation_utils.py``) is the significance improvement characteristic
SIC = ε_S / √ε_B of a cut on a score, as a function of ε_S, evaluated on independent signal and
background events of the signal region; its maximum is quoted with a floor on the background
statistics (here at least ``min_background`` background events pass), where 1/√ε_B is not noise.

The methods, all scoring the signal-region (SR) events by the same out-of-fold MLP classifiers of
``heplearn.methods.cwola.kfold_scores`` (averaged over the folds on the test events):

- supervised: pure signal against pure SR background (the upper bound);
- idealised: SR data (background with the injected signal) against a second, perfectly modelled
  SR background sample (what CATHODE approximates);
- CATHODE: SR data against the flow's synthetic SR background (``heplearn.methods.cathode``);
- CWoLa hunting: SR data against the sidebands' data (arXiv:1805.02664);
- VAE: the reconstruction error of a VAE trained on all SR data, no labels at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import roc
from heplearn.methods.cwola import KFoldScores, check_regions, default_training, kfold_scores
from heplearn.run_config import LossTermConfig, TrainingConfig
from heplearn.tasks import VariationalReconstruction
from heplearn.training.losses import TermContext, build_terms
from heplearn.training.trainer import InMemorySource, fit

__all__ = [
    "LITERATURE_MAX_SIC",
    "SicCurve",
    "ensemble_score",
    "idealised_scores",
    "in_window",
    "sic_curve",
    "supervised_scores",
    "vae_scores",
]

#: Max SIC on the LHC Olympics R&D data at the default injection (S/B ≈ 0.6% in the SR), from the
#: CATHODE paper's plotting notebook (arXiv:2109.00546, HEPML-AnomalyDetection/CATHODE).
LITERATURE_MAX_SIC = {"supervised": 17.6, "idealised": 15.1, "cathode": 14.0, "cwola": 10.8}


@dataclass(frozen=True)
class SicCurve:
    """ε_S, ε_B and SIC = ε_S / √ε_B along the cuts where at least ``min_background`` background events pass."""

    signal_efficiency: np.ndarray
    background_efficiency: np.ndarray
    sic: np.ndarray
    auc: float

    @property
    def max_sic(self) -> float:
        """The largest SIC along the curve."""
        return float(self.sic.max()) if len(self.sic) else float("nan")

    def at(self, signal_efficiency: float) -> float:
        """SIC at ``signal_efficiency`` (linear interpolation along the curve)."""
        return float(np.interp(signal_efficiency, self.signal_efficiency, self.sic))


def sic_curve(is_signal: np.ndarray, score: np.ndarray, *, min_background: int = 20) -> SicCurve:
    """The SIC curve of ``score`` on labelled test events (``is_signal`` True for signal)."""
    is_signal = np.asarray(is_signal, bool)
    background = int((~is_signal).sum())
    if min_background < 1 or background < min_background:
        raise DataError(
            f"sic: {background} background test events; the curve keeps cuts passing at least "
            f"{min_background} (≥ 1) of them"
        )
    curve = roc(is_signal, np.asarray(score, np.float64))
    kept = (curve.background_efficiency * background >= min_background) & (curve.signal_efficiency > 0)
    signal_efficiency, background_efficiency = curve.signal_efficiency[kept], curve.background_efficiency[kept]
    return SicCurve(
        signal_efficiency, background_efficiency, signal_efficiency / np.sqrt(background_efficiency), curve.auc
    )


def in_window(mass: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """True where ``window[0] < mass < window[1]``."""
    mass = np.asarray(mass, np.float64)
    return (mass > window[0]) & (mass < window[1])


def ensemble_score(scores: KFoldScores, features: np.ndarray) -> np.ndarray:
    """The mean of every fold's classifier on new events (the test events no fold trained on)."""
    features = np.asarray(features, np.float32)
    return np.mean([scores.score_with(fold, features) for fold in range(len(scores.networks))], axis=0)


def supervised_scores(signal: np.ndarray, background: np.ndarray, **kfold: Any) -> KFoldScores:
    """k-fold classifiers of pure signal against pure background: the supervised bound."""
    return kfold_scores(
        np.r_[signal, background], np.r_[np.ones(len(signal), bool), np.zeros(len(background), bool)], **kfold
    )


def idealised_scores(signal_region_data: np.ndarray, extra_background: np.ndarray, **kfold: Any) -> KFoldScores:
    """k-fold classifiers of SR data against a second, perfectly modelled SR background: the idealised detector."""
    return supervised_scores(signal_region_data, extra_background, **kfold)


def cwola_scores(
    features: np.ndarray,
    mass: np.ndarray,
    signal_region: tuple[float, float],
    sidebands: tuple[float, float],
    **kfold: Any,
) -> KFoldScores:
    """k-fold classifiers of SR data against the sidebands' data (CWoLa hunting, arXiv:1805.02664)."""
    check_regions(signal_region, sidebands)
    in_sr = in_window(mass, signal_region)
    in_sb = ~in_sr & in_window(mass, sidebands)
    return supervised_scores(np.asarray(features)[in_sr], np.asarray(features)[in_sb], **kfold)


def vae_scores(
    train: np.ndarray,
    test: np.ndarray,
    *,
    latent: int = 2,
    hidden: Sequence[int] = (32, 16),
    beta: float = 0.5,
    training: TrainingConfig | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The reconstruction MSE on ``test`` of a VAE trained on ``train`` (standardised on it) without labels."""
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"beta: the KL weight β must lie in [0, 1], got {beta}")
    train = np.asarray(train, np.float32)
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    features = train.shape[1]
    training = training or default_training(class_weights=None, epochs=30)
    task = VariationalReconstruction("jet", features, latent, score="mse")
    task.terms = build_terms(
        [LossTermConfig(name="reconstruction_mse", weight=1 - beta), LossTermConfig(name="kl", weight=beta)],
        task,
        TermContext(training),
    )
    from heplearn.models import registry

    torch.manual_seed(seed)
    network = registry.model_class("vae")(
        task.num_outputs, {"jet": features}, hidden=tuple(hidden), latent=latent, score="mse"
    )
    arrays = JetArrays(
        {"jet": (train - mean) / scale}, None, np.zeros(len(train), np.int64), np.ones(len(train), np.float32)
    )
    fit(
        network,
        task,
        InMemorySource(InMemoryJets(arrays, ["background"], None), training.batch_size, True, seed),
        None,
        training,
    )
    network.eval()
    with torch.inference_mode():
        batch = {"jet": torch.from_numpy(((np.asarray(test, np.float32) - mean) / scale).astype(np.float32))}
        return task.postprocess(network(batch), batch)[:, 0].double().numpy()
