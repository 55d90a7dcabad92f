"""CWoLa hunting: a weakly supervised bump hunt (Collins, Howe & Nachman, arXiv:1805.02664, 1902.02634).

Classification without labels (Metodiev, Nachman & Thaler, arXiv:1708.02949): a classifier
trained to tell two mixed samples apart, which differ only in their signal fraction, is
monotone in the signal-to-background likelihood ratio p_S / p_B, the optimal signal-versus-
background classifier, without a single label. In a resonance search the two samples are a
signal region (SR) of the resonant variable m_jj and its sidebands (SB); the features are ones
whose background distribution does not depend on m_jj (jet masses, τ21, ...). The recipe:

1. ``kfold_scores``: train SR-versus-SB classifiers in k folds, each event scored by the one
   classifier whose training did not see it (the heplearn engine's ``fit``, one call per fold);
2. ``selection_cuts``: cut on the score at fixed efficiencies (10%, 1%, 0.2% of the scored events);
3. ``fit_sidebands``: fit the selected events' m_jj spectrum outside the SR with the standard
   dijet function f(x) = p₀ (1 − x)^p₁ / x^(p₂ + p₃ ln x), x = m_jj / √s (CDF, arXiv:0812.4036;
   ATLAS and CMS dijet searches), by a binned Poisson likelihood in iminuit, and interpolate it
   into the SR;
4. ``local_significance``: the discovery test of the SR count against the fitted background and
   its uncertainty, through pyhf (``heplearn.stats.results.discovery``).

``cwola_hunt`` runs the four steps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import special

from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError, FitError
from heplearn.models import registry
from heplearn.run_config import LossTermConfig, TrainingConfig
from heplearn.tasks import Classification
from heplearn.training.losses import TermContext, build_terms
from heplearn.training.trainer import InMemorySource, fit

__all__ = [
    "DijetFit",
    "HuntResult",
    "KFoldScores",
    "check_regions",
    "cwola_hunt",
    "dijet_function",
    "dijet_integrals",
    "fit_sidebands",
    "hunt_files",
    "kfold_scores",
    "local_significance",
    "plot_spectra",
    "read_columns",
    "selection_cuts",
]

#: The efficiencies of the selections of arXiv:1805.02664.
EFFICIENCIES = (0.1, 0.01, 0.002)
#: √s of the LHC's Run 2, in GeV: the scale of the dijet function's x = m_jj / √s.
SQRT_S = 13_000.0
CLASS_NAMES = ["first", "second"]  # class 0: the sample CWoLa calls signal-like (the SR)


def default_training(**overrides: Any) -> TrainingConfig:
    """The classifiers' training: balanced cross entropy, AdamW, a fixed number of epochs."""
    settings: dict[str, Any] = {
        "epochs": 20,
        "batch_size": 256,
        "learning_rate": 2e-3,
        "early_stopping_patience": None,
        "class_weights": "balanced",
        "weight_decay": 1e-4,
    }
    return TrainingConfig(**{**settings, **overrides})


@dataclass
class KFoldScores:
    """The out-of-fold score of every event, the fold that scored it, and the fold's training indices."""

    scores: np.ndarray
    folds: np.ndarray
    train_indices: list[np.ndarray]
    networks: list[torch.nn.Module] = field(repr=False)
    standardisation: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)

    def score_with(self, fold: int, features: np.ndarray) -> np.ndarray:
        """The score of fold ``fold``'s classifier for ``features``."""
        mean, scale = self.standardisation[fold]
        return _predict(self.networks[fold], (features - mean) / scale)


def kfold_scores(
    features: np.ndarray,
    is_first: np.ndarray,
    *,
    folds: int = 5,
    hidden: Sequence[int] = (64, 64, 64),
    training: TrainingConfig | None = None,
    seed: int = 0,
    weight: np.ndarray | None = None,
    progress: bool = False,
) -> KFoldScores:
    """Out-of-fold scores p(first | x) of classifiers trained to tell sample ``first`` from the rest.

    Events are dealt into ``folds`` folds at random, in equal shares of each sample; the classifier
    of fold i is trained on the other folds (an MLP of widths ``hidden`` through the engine's
    ``fit``, inputs standardised on its training events) and scores fold i alone.
    """
    features = np.asarray(features, np.float32)
    is_first = np.asarray(is_first, bool)
    if features.ndim != 2 or len(features) != len(is_first):
        raise DataError(
            f"cwola: features must be (events, features) with one label each; got {features.shape} and {is_first.shape}"
        )
    if folds < 2:
        raise ConfigError(f"folds: k-fold scoring needs at least 2 folds, got {folds}")
    if min(is_first.sum(), (~is_first).sum()) < folds:
        raise DataError(
            f"cwola: each sample needs at least {folds} events (one per fold); got {is_first.sum()} "
            f"and {(~is_first).sum()}"
        )
    training = training or default_training()
    weight = np.ones(len(features), np.float32) if weight is None else np.asarray(weight, np.float32)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(features), np.int64)
    for members in (np.flatnonzero(is_first), np.flatnonzero(~is_first)):
        fold_of[rng.permutation(members)] = np.arange(len(members)) % folds
    scores = np.empty(len(features), np.float64)
    networks, standardisation, train_indices = [], [], []
    labels = np.where(is_first, 0, 1).astype(np.int64)  # class 0 (the first sample) is CWoLa's signal
    for fold in range(folds):
        train = np.flatnonzero(fold_of != fold)
        if len(train) % training.batch_size == 1 and len(train) > 1:
            # a last batch of one event cannot train the MLP's batch normalisation: leave that event out
            train = train[:-1]
        mean, scale = features[train].mean(axis=0), features[train].std(axis=0)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        arrays = JetArrays({"jet": (features[train] - mean) / scale}, None, labels[train], weight[train])
        task = Classification(CLASS_NAMES)
        task.terms = build_terms(
            [LossTermConfig(name="cross_entropy")], task, TermContext(training, labels[train], weight[train])
        )
        torch.manual_seed(seed * 1000 + fold)
        network = registry.model_class("mlp")(2, {"jet": features.shape[1]}, hidden=tuple(hidden))
        source = InMemorySource(InMemoryJets(arrays, CLASS_NAMES, None), training.batch_size, True, seed * 1000 + fold)
        fit(network, task, source, None, training, progress=progress)
        held_out = fold_of == fold
        scores[held_out] = _predict(network, (features[held_out] - mean) / scale)
        networks.append(network)
        standardisation.append((mean, scale))
        train_indices.append(train)
    return KFoldScores(scores, fold_of, train_indices, networks, standardisation)


def _predict(network: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    network.eval()
    with torch.inference_mode():
        logits = network({"jet": torch.from_numpy(np.ascontiguousarray(features, np.float32))})
        return torch.softmax(logits.double(), dim=-1)[:, 0].numpy()


def check_regions(signal_region: tuple[float, float], sidebands: tuple[float, float]) -> None:
    """The SR must be a window inside the sideband range ``(low, high)``, not touching its ends."""
    low, high = signal_region
    side_low, side_high = sidebands
    if not low < high:
        raise ConfigError(f"signal region: ({low:g}, {high:g}) is empty; give (low, high) with low < high")
    if not side_low < low or not high < side_high:
        raise ConfigError(
            f"sidebands: ({side_low:g}, {side_high:g}) must enclose the signal region ({low:g}, "
            f"{high:g}) with room on both sides; sidebands that overlap or end inside it leave "
            "no background to compare with"
        )


def selection_cuts(scores: np.ndarray, efficiencies: Sequence[float] = EFFICIENCIES) -> dict[float, float]:
    """The score above which the fraction ``ε`` of the events lies, for each ε."""
    scores = np.asarray(scores, np.float64)
    cuts: dict[float, float] = {}
    for efficiency in efficiencies:
        if not 0 < efficiency <= 1:
            raise ConfigError(f"efficiencies: {efficiency} is not a selection efficiency in (0, 1]")
        if efficiency * len(scores) < 1:
            raise DataError(f"cwola: ε = {efficiency:g} of {len(scores)} events keeps none; take more events")
        cuts[efficiency] = float(np.quantile(scores, 1 - efficiency))
    return cuts


def dijet_function(
    mjj: np.ndarray, log_norm: float, p1: float, p2: float, p3: float, sqrt_s: float = SQRT_S
) -> np.ndarray:
    """The dijet density dN/dm_jj = e^{log_norm} (1 − x)^p₁ / x^(p₂ + p₃ ln x) / √s, x = m_jj / √s."""
    x = np.asarray(mjj, np.float64) / sqrt_s
    return np.exp(log_norm + p1 * np.log1p(-x) - (p2 + p3 * np.log(x)) * np.log(x)) / sqrt_s


@dataclass(frozen=True)
class DijetFit:
    """The sideband fit of a selected spectrum, and its prediction in the signal region."""

    edges: np.ndarray
    counts: np.ndarray
    parameters: np.ndarray  # log_norm, p1, p2, p3
    covariance: np.ndarray  # of the four (zero rows and columns for a fixed p3)
    expected: np.ndarray  # the fitted background in every bin
    signal_region_bins: np.ndarray  # bool per bin
    observed_in_sr: float
    expected_in_sr: float
    expected_in_sr_uncertainty: float
    chi2_sidebands: float
    sideband_bins: int
    free_parameters: int

    @property
    def excess(self) -> float:
        """Observed minus expected events in the signal region."""
        return self.observed_in_sr - self.expected_in_sr


#: Gauss–Legendre nodes and weights on [−1, 1]: each bin's integral of the dijet density (exact for
#: polynomials of degree 9; the density changes smoothly within a bin).
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(5)


def dijet_integrals(
    edges: np.ndarray, log_norm: float, p1: float, p2: float, p3: float, sqrt_s: float = SQRT_S
) -> np.ndarray:
    """The dijet density integrated over each bin of ``edges`` (Gauss–Legendre, five points a bin)."""
    edges = np.asarray(edges, np.float64)
    half = 0.5 * np.diff(edges)
    points = (0.5 * (edges[1:] + edges[:-1]))[:, None] + half[:, None] * _NODES
    return (dijet_function(points, log_norm, p1, p2, p3, sqrt_s) * _WEIGHTS).sum(axis=1) * half


def fit_sidebands(
    mjj: np.ndarray,
    edges: np.ndarray,
    signal_region: tuple[float, float],
    *,
    parameters: int = 3,
    start: Sequence[float] | None = None,
    sqrt_s: float = SQRT_S,
) -> DijetFit:
    """Fit the dijet function to the binned ``mjj`` outside the SR (iminuit, binned Poisson likelihood).

    ``parameters`` = 3 fixes p₃ = 0; with 4, the 3-parameter minimum starts the full fit (over a
    narrow range of x the four are nearly degenerate, and MINUIT may find no accurate Hessian: a
    ``FitError``). The bins of ``edges`` must fall on the SR's boundaries. The SR prediction's
    uncertainty propagates the fit's covariance (``jacobi.propagate``). ``start`` = (p₁, p₂, p₃)
    starts the shape (e.g. at the fit before a selection).
    """
    from iminuit import Minuit
    from jacobi import propagate

    if parameters not in (3, 4):
        raise ConfigError(f"parameters: the dijet function has 3 or 4 parameters, got {parameters}")
    edges = np.asarray(edges, np.float64)
    counts, _ = np.histogram(mjj, edges)
    low, high = signal_region
    for boundary in (low, high):
        if not np.isclose(edges, boundary).any():
            raise ConfigError(f"bins: the signal-region boundary {boundary:g} is not a bin edge; choose edges on it")
    centres = 0.5 * (edges[1:] + edges[:-1])
    in_sr = (centres > low) & (centres < high)
    observed = counts[~in_sr].astype(np.float64)
    if observed.sum() < 10:
        raise DataError(f"cwola: {observed.sum():.0f} selected events in the sidebands; too few to fit")

    # the fit's normalisation is the log-density at the middle of the range, x₀: it is then nearly
    # uncorrelated with the shape, which MINUIT's numerical Hessian needs at low counts
    log_x0 = np.log(0.5 * (edges[0] + edges[-1]) / sqrt_s)
    log_1mx0 = np.log1p(-0.5 * (edges[0] + edges[-1]) / sqrt_s)

    def log_norm_of(log_density_x0: float, p1: float, p2: float, p3: float) -> float:
        return log_density_x0 + np.log(sqrt_s) - p1 * log_1mx0 + (p2 + p3 * log_x0) * log_x0

    def negative_log_likelihood(log_density_x0: float, p1: float, p2: float, p3: float) -> float:
        # −ln L of Poisson counts in the sideband bins less its saturated value (half the Poisson
        # deviance, Baker & Cousins 1984; errordef ½): near 0 at the minimum, so MINUIT's numerical
        # Hessian does not lose its digits to a large constant
        log_norm = log_norm_of(log_density_x0, p1, p2, p3)
        expected = np.maximum(dijet_integrals(edges, log_norm, p1, p2, p3, sqrt_s)[~in_sr], 1e-300)
        return float(np.sum(expected - observed + special.xlogy(observed, observed / expected)))

    shape_start = dict(zip(("p1", "p2", "p3"), (10.0, 5.0, 0.0) if start is None else map(float, start), strict=True))
    if parameters == 3:
        shape_start["p3"] = 0.0
    # a starting normalisation that puts the sideband count where it is for the starting shape
    shape = dijet_integrals(edges, 0.0, **shape_start, sqrt_s=sqrt_s)
    log_norm_start = float(np.log(observed.sum() / shape[~in_sr].sum()))
    density_start = log_norm_start - log_norm_of(0.0, **shape_start)
    minuit = Minuit(negative_log_likelihood, log_density_x0=density_start, **shape_start)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits["p1"] = (-50, 200)
    minuit.fixed["p3"] = True
    minuit.migrad()
    if parameters == 4:
        minuit.fixed["p3"] = False
        minuit.migrad()
    minuit.hesse()
    if not (minuit.valid and minuit.accurate):  # correlated parameters: polish with the careful strategy
        minuit.strategy = 2
        minuit.migrad()
        minuit.hesse()
    if not minuit.valid or not minuit.accurate:
        raise FitError(
            f"the {parameters}-parameter dijet sideband fit did not converge (MINUIT: valid="
            f"{minuit.valid}, accurate covariance={minuit.accurate})"
        )
    fitted = np.asarray(minuit.values, np.float64)
    covariance = np.asarray(minuit.covariance, np.float64)
    free = np.asarray([not minuit.fixed[name] for name in minuit.parameters])

    def to_dijet(fit_values: np.ndarray) -> np.ndarray:
        """(log_norm, p1, p2, p3) of the fit's parameters (a free subset of them)."""
        full = fitted.copy()
        full[free] = fit_values
        return np.r_[log_norm_of(*full), full[1:]]

    values, transformed = propagate(to_dijet, fitted[free], covariance[np.ix_(free, free)])
    expected = dijet_integrals(edges, *values, sqrt_s=sqrt_s)
    in_sr_total, variance = propagate(
        lambda fit_values: dijet_integrals(edges, *to_dijet(fit_values), sqrt_s=sqrt_s)[in_sr].sum(),
        fitted[free],
        covariance[np.ix_(free, free)],
    )
    sidebands = ~in_sr & (expected > 0)
    chi2 = float((((counts - expected) ** 2) / expected)[sidebands].sum())
    return DijetFit(
        edges,
        counts,
        np.asarray(values),
        np.asarray(transformed),
        expected,
        in_sr,
        float(counts[in_sr].sum()),
        float(np.squeeze(in_sr_total)),
        float(np.sqrt(np.squeeze(variance))),
        chi2,
        int(sidebands.sum()),
        int(free.sum()),
    )


def local_significance(observed: float, expected: float, uncertainty: float) -> float:
    """The local significance Z of ``observed`` events over a background ``expected ± uncertainty``.

    pyhf's asymptotic discovery test (q₀, Cowan et al. arXiv:1007.1727) of a one-bin model whose
    background carries its uncertainty as a constrained nuisance parameter (``heplearn.stats``).
    A deficit is Z = 0.
    """
    import pyhf

    from heplearn.stats.results import discovery

    if observed <= expected:
        return 0.0
    signal = max(observed - expected, 1.0)
    model = pyhf.simplemodels.uncorrelated_background(
        signal=[signal], bkg=[expected], bkg_uncertainty=[max(uncertainty, 1e-6 * expected)]
    )
    data = [observed, *model.config.auxdata]
    return max(discovery(model, data).observed_z, 0.0)


@dataclass(frozen=True)
class Selection:
    """One selection of the hunt: its efficiency, its cut and its sideband fit and significance."""

    efficiency: float
    cut: float
    fit: DijetFit
    significance: float


@dataclass
class HuntResult:
    """The k-fold scores and, per efficiency (1 = no selection), the fit and the local significance."""

    kfold: KFoldScores
    in_signal_region: np.ndarray
    selections: list[Selection]

    def table(self) -> list[dict[str, float]]:
        """One row per selection: efficiency, cut, observed and expected SR counts, Z."""
        return [
            {
                "efficiency": s.efficiency,
                "cut": s.cut,
                "observed": s.fit.observed_in_sr,
                "expected": s.fit.expected_in_sr,
                "uncertainty": s.fit.expected_in_sr_uncertainty,
                "significance": s.significance,
            }
            for s in self.selections
        ]


def cwola_hunt(
    features: np.ndarray,
    mjj: np.ndarray,
    signal_region: tuple[float, float],
    sidebands: tuple[float, float],
    edges: np.ndarray,
    *,
    efficiencies: Sequence[float] = EFFICIENCIES,
    folds: int = 5,
    training: TrainingConfig | None = None,
    hidden: Sequence[int] = (64, 64, 64),
    seed: int = 0,
    parameters: int = 3,
    sqrt_s: float = SQRT_S,
    progress: bool = False,
) -> HuntResult:
    """CWoLa hunting in one signal region: k-fold SR-vs-SB scores, cuts, sideband fits, significances.

    Events with ``mjj`` outside ``sidebands = (low, high)`` are not used. The first selection
    (efficiency 1) is the spectrum before any cut.
    """
    check_regions(signal_region, sidebands)
    mjj = np.asarray(mjj, np.float64)
    used = (mjj > sidebands[0]) & (mjj < sidebands[1])
    if not used.any():
        raise DataError(f"cwola: no event has m_jj inside the sidebands ({sidebands[0]:g}, {sidebands[1]:g})")
    features, mjj = np.asarray(features)[used], mjj[used]
    in_sr = (mjj > signal_region[0]) & (mjj < signal_region[1])
    kfold = kfold_scores(features, in_sr, folds=folds, hidden=hidden, training=training, seed=seed, progress=progress)
    selections: list[Selection] = []
    for efficiency, cut in {1.0: -np.inf, **selection_cuts(kfold.scores, efficiencies)}.items():
        start = selections[0].fit.parameters[1:] if selections else None  # the shape before any cut
        fit_result = fit_sidebands(
            mjj[kfold.scores > cut], edges, signal_region, parameters=parameters, start=start, sqrt_s=sqrt_s
        )
        significance = local_significance(
            fit_result.observed_in_sr, fit_result.expected_in_sr, fit_result.expected_in_sr_uncertainty
        )
        selections.append(Selection(efficiency, float(cut), fit_result, significance))
    return HuntResult(kfold, in_sr, selections)


def read_columns(files: Sequence[str | os.PathLike[str]], names: Sequence[str]) -> np.ndarray:
    """The fields ``names`` of every event of ``files`` as one ``(events, len(names))`` float64 array.

    Each field must hold one finite number per event: a jagged field (``Jet.pt``) or a NaN is a
    ``DataError`` naming the file and the field, before any classifier or flow sees the values.
    """
    from heplearn.data import io

    blocks = []
    for path in files:
        table = io.read(path, list(names))
        columns = []
        for name in names:
            try:
                column = np.asarray(table[name], np.float64)
            except (TypeError, ValueError) as error:
                raise DataError(f"{path}: field {name!r} is not one number per event ({error})") from error
            if column.ndim != 1:
                raise DataError(f"{path}: field {name!r} is not one number per event (shape {column.shape})")
            bad = np.flatnonzero(~np.isfinite(column))
            if len(bad):
                raise DataError(f"{path}: field {name!r} has {len(bad)} non-finite values (first at event {bad[0]})")
            columns.append(column)
        blocks.append(np.stack(columns, axis=1))
    return np.concatenate(blocks)


def hunt_files(
    files: Sequence[str | os.PathLike[str]],
    features: Sequence[str],
    mass: str,
    signal_region: tuple[float, float],
    sidebands: tuple[float, float],
    bin_width: float,
    output: str | os.PathLike[str],
    **options: Any,
) -> HuntResult:
    """``cwola_hunt`` on the fields of event files; writes ``cwola.json`` and ``spectra.png`` in ``output``.

    ``features`` and ``mass`` are field names (GeV for the mass); ``options`` go to ``cwola_hunt``.
    """
    from heplearn.data.files import jsonable, write_json

    check_regions(signal_region, sidebands)
    if not bin_width > 0:
        raise ConfigError(f"bin width: must be positive, got {bin_width}")
    edges = np.arange(sidebands[0], sidebands[1] + 0.5 * bin_width, bin_width)
    columns = read_columns(files, [*features, mass])
    values, mjj = columns[:, :-1], columns[:, -1]
    result = cwola_hunt(values, mjj, signal_region, sidebands, edges, **options)
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(
        folder / "cwola.json",
        jsonable(
            {
                "files": [str(path) for path in files],
                "features": list(features),
                "mass": mass,
                "signal_region": signal_region,
                "sidebands": sidebands,
                "selections": result.table(),
            }
        ),
    )
    plot_spectra(result, folder / "spectra.png")
    return result


def plot_spectra(result: HuntResult, path: str | os.PathLike[str]) -> Path:
    """The selected m_jj spectra with their sideband fits, one per efficiency (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from heplearn.data.files import atomic_path

    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    for selection in result.selections:
        fit_result = selection.fit
        centres = 0.5 * (fit_result.edges[1:] + fit_result.edges[:-1])
        line = axis.errorbar(
            centres,
            fit_result.counts,
            yerr=np.sqrt(fit_result.counts),
            fmt="o",
            markersize=3,
            label=f"ε = {selection.efficiency:g}: Z = {selection.significance:.1f}",
        )
        axis.stairs(fit_result.expected, fit_result.edges, color=line[0].get_color())
    inclusive = result.selections[0].fit
    in_sr = inclusive.signal_region_bins
    low, high = inclusive.edges[:-1][in_sr][0], inclusive.edges[1:][in_sr][-1]
    axis.axvspan(low, high, color="grey", alpha=0.15, label="signal region")
    axis.set_yscale("log")
    axis.set_xlabel(r"$m_{jj}$ [GeV]")
    axis.set_ylabel("events / bin")
    axis.set_title("CWoLa hunting: selected spectra and sideband fits")
    axis.legend(fontsize="small")
    destination = Path(path)
    with atomic_path(destination) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return destination
