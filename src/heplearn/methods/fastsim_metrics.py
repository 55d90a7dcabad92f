"""Metrics of generated jets as JetNet defines them, and the physics comparison plots.

Kansal et al., arXiv:2106.11535 (MPGAN, the JetNet metrics) and arXiv:2211.10295 (FPD and KPD):

- ``w1_batches``: the 1-Wasserstein distance of one-dimensional distributions (jet mass,
  particle features, energy-flow polynomials), averaged over batches drawn with replacement,
  with its spread (JetNet's ``w1m``, ``w1p``, ``w1efp``);
- ``efps``: the 36 energy-flow polynomials with d ≤ 4 (Komiske, Metodiev, Thaler,
  arXiv:1712.07124) in energyflow's ``EFPSet(('d<=', 4), measure='hadr', beta=1)`` order;
- ``fpd``: the Fréchet distance of Gaussians fitted to the (max-normalised) features, measured at
  batch sizes spaced regularly in 1/N and extrapolated linearly to N → ∞ (the intercept and its
  fit error), JetNet's "Fréchet physics distance";
- ``kpd``: the unbiased quadratic-time MMD² with the polynomial kernel ``(x·y/d + 1)^degree``
  (degree 4 in JetNet; 3 is the KID kernel of Bińkowski et al., arXiv:1801.01401), median over
  batches and half the 16–84 % inter-quantile range;
- ``classifier_test``: a PFN (or, stronger, a ParticleNet-Lite: its EdgeConv sees the angular
  structure of neighbouring particles, the prongs) trained through the engine to tell generated
  from reference jets; its held-out AUC and the classifier estimate of the Jensen–Shannon divergence in bits,
  ``JSD = (ln 2 − BCE) / ln 2`` (the CaloChallenge definition, arXiv:2410.21611);
- ``jet_observables`` and ``plot_comparison``: jet mass, τ21, τ32, multiplicity and particle pT
  of each sample, histogrammed with a ratio panel to the reference.

Jets enter as point clouds: ``(jets, particles, 3)`` arrays of (Δη, Δφ, pT / pT_jet) with a mask of
the real particles, JetNet's relative coordinates.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heplearn.errors import ConfigError, DataError

__all__ = [
    "CLASSIFIERS",
    "EFP_GRAPHS",
    "W1_EFP_INDICES",
    "ClassifierTest",
    "classifier_test",
    "efps",
    "fpd",
    "frechet_distance",
    "generation_metrics",
    "jet_observables",
    "kpd",
    "plot_comparison",
    "substructure_metrics",
    "w1_batches",
    "wasserstein1",
]

#: The 36 multigraphs with at most four edges, in the order of energyflow 1.4's
#: ``EFPSet(('d<=', 4))`` (checked against energyflow in the tests): each an edge list over vertices
#: 0, 1, …; the empty graph is the one-vertex graph Σ z_i.
EFP_GRAPHS: tuple[tuple[tuple[int, int], ...], ...] = (
    (),
    ((0, 1),),
    ((0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 2)),
    ((0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (0, 2), (0, 2)),
    ((0, 1), (0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (0, 2), (1, 3)),
    ((0, 1), (0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (1, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3), (2, 3)),
    ((0, 1), (0, 2), (0, 3), (0, 4)),
    ((0, 1), (0, 2), (0, 3), (1, 4)),
    ((0, 1), (0, 2), (1, 3), (2, 4)),
    ((0, 1), (2, 3)),
    ((0, 1), (2, 3), (2, 3)),
    ((0, 1), (2, 3), (2, 3), (2, 3)),
    ((0, 1), (0, 1), (2, 3), (2, 3)),
    ((0, 1), (2, 3), (2, 4)),
    ((0, 1), (0, 1), (2, 3), (2, 4)),
    ((0, 1), (2, 3), (2, 4), (2, 4)),
    ((0, 1), (2, 3), (2, 4), (3, 4)),
    ((0, 1), (2, 3), (4, 5)),
    ((0, 1), (2, 3), (2, 4), (2, 5)),
    ((0, 1), (2, 3), (2, 4), (3, 5)),
    ((0, 1), (0, 2), (3, 4), (3, 5)),
    ((0, 1), (2, 3), (4, 5), (4, 5)),
    ((0, 1), (2, 3), (4, 5), (4, 6)),
    ((0, 1), (2, 3), (4, 5), (6, 7)),
)

_LETTERS = "ijklmnopq"


def _components(edges: tuple[tuple[int, int], ...]) -> list[tuple[tuple[int, int], ...]]:
    """The connected components of a multigraph, each relabelled 0, 1, … (the empty graph: one of none)."""
    if not edges:
        return [()]
    vertices = sorted({vertex for edge in edges for vertex in edge})
    parent = {vertex: vertex for vertex in vertices}

    def root(vertex: int) -> int:
        while parent[vertex] != vertex:
            vertex = parent[vertex]
        return vertex

    for a, b in edges:
        parent[root(a)] = root(b)
    groups: dict[int, list[tuple[int, int]]] = {}
    for edge in edges:
        groups.setdefault(root(edge[0]), []).append(edge)
    components = []
    for group in groups.values():
        relabel = {vertex: index for index, vertex in enumerate(sorted({v for edge in group for v in edge}))}
        components.append(tuple(sorted((relabel[a], relabel[b]) for a, b in group)))
    return components


def _connected_value(edges: tuple[tuple[int, int], ...], z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Σ_{i1…in} z_i1 … z_in Π_(k,l)∈E θ_ik,il for one connected graph, every jet at once (EFP eq. 2.9)."""
    if not edges:
        return z.sum(axis=1)
    vertices = 1 + max(max(edge) for edge in edges)
    operands: list[np.ndarray] = []
    subscripts: list[str] = []
    for vertex in range(vertices):
        operands.append(z)
        subscripts.append("b" + _LETTERS[vertex])
    for a, b in edges:
        operands.append(theta)
        subscripts.append("b" + _LETTERS[a] + _LETTERS[b])
    return np.einsum(",".join(subscripts) + "->b", *operands, optimize="greedy")


def efps(clouds: np.ndarray, mask: np.ndarray, normed: bool = False, chunk: int = 512) -> np.ndarray:
    """The 36 EFPs with d ≤ 4 of each jet, ``(jets, 36)``.

    The hadronic measure with β = 1, as JetNet calls energyflow (``measure='hadr', beta=1,
    normed=None``): z_i = pT_rel,i as given (``normed``: pT_i / Σ pT), θ_ij = ΔR_ij = √(Δy² + Δφ²)
    (massless particles: y = η). ``clouds`` holds (Δη, Δφ, pT_rel) per particle; padded particles
    (``mask`` False) carry no energy.
    """
    clouds, mask = _check_clouds(clouds, mask)
    values = np.empty((len(clouds), len(EFP_GRAPHS)))
    component_lists = [_components(graph) for graph in EFP_GRAPHS]
    for start in range(0, len(clouds), chunk):
        part, real = clouds[start : start + chunk].astype(np.float64), mask[start : start + chunk]
        pt = np.where(real, part[..., 2], 0.0)
        z = pt / np.clip(pt.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny, None) if normed else pt
        deta = part[:, :, None, 0] - part[:, None, :, 0]
        dphi = np.mod(part[:, :, None, 1] - part[:, None, :, 1] + np.pi, 2 * np.pi) - np.pi
        theta = np.sqrt(deta**2 + dphi**2)
        cache: dict[tuple[tuple[int, int], ...], np.ndarray] = {}
        for index, components in enumerate(component_lists):
            product = np.ones(len(part))
            for component in components:
                if component not in cache:
                    cache[component] = _connected_value(component, z, theta)
                product = product * cache[component]
            values[start : start + chunk, index] = product
    return values


def _check_clouds(clouds: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clouds, mask = np.asarray(clouds), np.asarray(mask, bool)
    if clouds.ndim != 3 or clouds.shape[-1] < 3 or mask.shape != clouds.shape[:2]:
        raise DataError(
            f"jets must be (jets, particles, ≥3) clouds of (Δη, Δφ, pT_rel) with a (jets, particles) "
            f"mask; got {clouds.shape} and {mask.shape}"
        )
    return clouds, mask


# -- one-dimensional distances ------------------------------------------------------------------------------------
def wasserstein1(first: np.ndarray, second: np.ndarray) -> float:
    """W1 of two one-dimensional samples: ∫ |F1(x) − F2(x)| dx of their empirical CDFs."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(np.ravel(first), np.ravel(second)))


def w1_batches(
    reference: np.ndarray, generated: np.ndarray, *, num_batches: int = 5, sample_size: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """W1 per column of ``(samples, columns)`` arrays over ``num_batches`` draws with replacement
    (JetNet: 50k per batch, 5 batches); returns the mean and standard deviation per column."""
    reference, generated = np.atleast_2d(reference.T).T, np.atleast_2d(generated.T).T
    if reference.shape[1] != generated.shape[1] or min(len(reference), len(generated)) < 2:
        raise DataError(f"W1: need two samples of the same columns; got {reference.shape} and {generated.shape}")
    size = sample_size or min(len(reference), len(generated))
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            [
                wasserstein1(
                    reference[rng.integers(0, len(reference), size), column],
                    generated[rng.integers(0, len(generated), size), column],
                )
                for column in range(reference.shape[1])
            ]
            for _ in range(num_batches)
        ]
    )
    return values.mean(axis=0), values.std(axis=0)


# -- Fréchet and kernel physics distances --------------------------------------------------------------------------
def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½): the squared 2-Wasserstein distance of two Gaussians."""
    from scipy.linalg import sqrtm

    mean1, mean2 = np.atleast_1d(mean1), np.atleast_1d(mean2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    root = sqrtm(cov1 @ cov2)
    if not np.isfinite(root).all():  # a nearly singular product: regularise as JetNet (pytorch-fid) does
        offset = np.eye(len(cov1)) * 1e-6
        root = sqrtm((cov1 + offset) @ (cov2 + offset))
    root = np.real(root)
    difference = mean1 - mean2
    return float(difference @ difference + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))


def _max_normalised(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples divided by the reference's max |value| per feature (JetNet's normalisation)."""
    scale = np.abs(reference).max(axis=0)
    scale[scale == 0] = 1.0
    return reference / scale, generated / scale


def _features(reference: np.ndarray, generated: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    reference, generated = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    if reference.ndim != 2 or generated.ndim != 2 or reference.shape[1] != generated.shape[1]:
        raise DataError(
            f"{what}: need (samples, features) arrays with the same features; got {reference.shape} "
            f"and {generated.shape}"
        )
    if not (np.isfinite(reference).all() and np.isfinite(generated).all()):
        raise DataError(f"{what}: the features hold NaN or infinite values")
    return reference, generated


def fpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    min_samples: int = 20_000,
    max_samples: int = 50_000,
    num_batches: int = 20,
    num_points: int = 10,
    normalise: bool = True,
    seed: int = 42,
) -> tuple[float, float]:
    """The Fréchet physics distance at N → ∞ and its error (arXiv:2211.10295, after Chong & Forsyth's FID∞).

    The Fréchet distance is biased upwards at finite N by O(1/N); it is measured at ``num_points``
    batch sizes spaced regularly in 1/N between ``min_samples`` and ``max_samples`` (``num_batches``
    draws with replacement each), and a straight line in 1/N (intercept and slope ≥ 0, as JetNet
    fits it) gives the value at 1/N = 0 with the fit's error.
    """
    from scipy.optimize import curve_fit

    reference, generated = _features(reference, generated, "FPD")
    if normalise:
        reference, generated = _max_normalised(reference, generated)
    sizes = (1 / np.linspace(1 / min_samples, 1 / max_samples, num_points)).astype(np.int64)
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        values = []
        for _ in range(num_batches):
            first = reference[rng.integers(0, len(reference), size)]
            second = generated[rng.integers(0, len(generated), size)]
            values.append(
                frechet_distance(
                    first.mean(0), np.cov(first, rowvar=False), second.mean(0), np.cov(second, rowvar=False)
                )
            )
        means.append(np.mean(values))
    start = (max(float(np.min(means)), 1e-12), 1e-12)  # curve_fit's default start (1, 1) stalls on large values
    params, covariance = curve_fit(
        lambda x, intercept, slope: intercept + slope * x, 1 / sizes, means, p0=start, bounds=([0, 0], [np.inf, np.inf])
    )
    return float(params[0]), float(np.sqrt(covariance[0, 0]))


def _mmd2_unbiased(first: np.ndarray, second: np.ndarray, degree: int) -> float:
    """Unbiased MMD² with the kernel (x·y/d + 1)^degree: the within-sample means leave out i = j."""
    gamma = 1.0 / first.shape[1]
    xx = (first @ first.T * gamma + 1) ** degree
    yy = (second @ second.T * gamma + 1) ** degree
    xy = (first @ second.T * gamma + 1) ** degree
    m, n = len(first), len(second)
    return float((xx.sum() - np.trace(xx)) / (m * (m - 1)) + (yy.sum() - np.trace(yy)) / (n * (n - 1)) - 2 * xy.mean())


def kpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    num_batches: int = 10,
    batch_size: int = 5_000,
    degree: int = 4,
    normalise: bool = True,
    seed: int = 42,
) -> tuple[float, float]:
    """The kernel physics distance (arXiv:2211.10295): median over batches of the unbiased MMD², and
    half the 16–84 % inter-quantile range as its error. Zero in expectation for identical samples."""
    reference, generated = _features(reference, generated, "KPD")
    if normalise:
        reference, generated = _max_normalised(reference, generated)
    rng = np.random.default_rng(seed)
    values = [
        _mmd2_unbiased(
            reference[rng.integers(0, len(reference), batch_size)],
            generated[rng.integers(0, len(generated), batch_size)],
            degree,
        )
        for _ in range(num_batches)
    ]
    low, high = np.percentile(values, [16, 84])
    return float(np.median(values)), float((high - low) / 2)


# -- the classifier test -------------------------------------------------------------------------------------------
#: The networks of the classifier test: the PFN (default) and the stronger ParticleNet-Lite.
CLASSIFIERS = ("pfn", "particlenet")


@dataclass
class ClassifierTest:
    """Held-out AUC of generated vs reference, the JSD estimate in bits, and the test sizes."""

    auc: float
    jsd: float
    test_jets: int
    train_jets: int


def classifier_test(
    reference: np.ndarray,
    reference_mask: np.ndarray,
    generated: np.ndarray,
    generated_mask: np.ndarray,
    *,
    epochs: int = 10,
    hidden: int = 64,
    batch_size: int = 256,
    test_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = False,
    network: str = "pfn",
) -> ClassifierTest:
    """Train a classifier to tell ``generated`` from ``reference`` clouds; score held-out jets.

    ``network``: ``pfn``, a particle-flow network (arXiv:1810.05165) with two layers of ``hidden``
    units in Φ and F, or ``particlenet``, ParticleNet-Lite (arXiv:1902.08570, Table 1: k = 7,
    EdgeConv channels (32, 32, 32), (64, 64, 64), 26k parameters), whose kNN graph on (Δη, Δφ) sees
    the prongs of a jet directly (``hidden`` does not apply). Both samples are cut to the same
    size, split in equal shares into training and test jets, and the per-particle features
    (Δη, Δφ, log pT_rel) are standardised on the training jets. AUC 0.5 and JSD 0 mean the
    classifier finds no difference. JSD = (ln 2 − BCE) / ln 2 with BCE the test cross entropy.
    """
    from sklearn.metrics import roc_auc_score

    from heplearn.data.in_memory import InMemoryJets
    from heplearn.data.jets import JetArrays
    from heplearn.models import registry
    from heplearn.run_config import LossTermConfig, TrainingConfig
    from heplearn.tasks import Classification
    from heplearn.training.losses import TermContext, build_terms
    from heplearn.training.trainer import InMemorySource, fit

    if network not in CLASSIFIERS:
        raise ConfigError(f"classifier test: unknown network {network!r}; choose one of {', '.join(CLASSIFIERS)}")
    reference, reference_mask = _check_clouds(reference, reference_mask)
    generated, generated_mask = _check_clouds(generated, generated_mask)
    size = min(len(reference), len(generated))
    if size < 20:
        raise DataError(
            f"classifier test: need at least 20 jets of each sample; got {len(reference)} reference, "
            f"{len(generated)} generated"
        )
    particles = max(reference.shape[1], generated.shape[1])
    rng = np.random.default_rng(seed)
    clouds = np.zeros((2 * size, particles, 3), np.float32)
    mask = np.zeros((2 * size, particles), bool)
    for offset, (values, real) in enumerate(((reference, reference_mask), (generated, generated_mask))):
        pick = rng.permutation(len(values))[:size]
        clouds[offset * size : (offset + 1) * size, : values.shape[1]] = values[pick, :, :3]
        mask[offset * size : (offset + 1) * size, : values.shape[1]] = real[pick]
    label = np.repeat([0, 1], size).astype(np.int64)  # class 0 reference, 1 generated
    points = np.where(mask[..., None], clouds[..., :2], 0.0).astype(np.float32)  # ParticleNet's kNN space
    clouds[..., 2] = np.where(mask, np.log(np.clip(clouds[..., 2], 1e-8, None)), 0.0)
    order = rng.permutation(2 * size)
    test_count = round(test_fraction * 2 * size)
    test, train = order[:test_count], order[test_count:]
    real_train = mask[train]
    mean, scale = clouds[train][real_train].mean(0), clouds[train][real_train].std(0) + 1e-6
    standardised = np.where(mask[..., None], (clouds - mean) / scale, 0.0).astype(np.float32)

    def arrays(index: np.ndarray) -> JetArrays:
        inputs = {"particles": standardised[index]}
        if network == "particlenet":
            inputs["points"] = points[index]
        return JetArrays(inputs, mask[index], label[index], np.ones(len(index), np.float32))

    training = TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=1e-3,
        weight_decay=1e-5,
        early_stopping_patience=None,
        seed=seed,
    )
    task = Classification(["reference", "generated"], signal_index=1)
    task.terms = build_terms([LossTermConfig(name="cross_entropy")], task, TermContext(training))
    import torch

    torch.manual_seed(seed)
    if network == "particlenet":
        model_class = registry.model_class("particlenet")
        classifier = model_class(2, {"particles": 3, "points": 2}, **model_class.presets["lite"])
    else:
        classifier = registry.model_class("pfn")(
            2, {"particles": 3}, phi_sizes=(hidden, hidden), f_sizes=(hidden, hidden)
        )
    fit(
        classifier,
        task,
        InMemorySource(InMemoryJets(arrays(train), task.class_names, None), batch_size, True, seed),
        None,
        training,
        progress=progress,
    )
    classifier.eval()
    probabilities = []
    with torch.no_grad():
        for batch in InMemoryJets(arrays(test), task.class_names, None).batches(4096):
            probabilities.append(torch.softmax(classifier(batch), -1)[:, 1].double().numpy())
    p = np.clip(np.concatenate(probabilities), 1e-7, 1 - 1e-7)
    truth = label[test]
    cross_entropy = -np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p))
    return ClassifierTest(
        float(roc_auc_score(truth, p)), float((math.log(2) - cross_entropy) / math.log(2)), len(test), len(train)
    )


# -- physics observables and plots ---------------------------------------------------------------------------------
def jet_observables(
    clouds: np.ndarray, mask: np.ndarray, jet_pt: np.ndarray, radius: float = 0.8
) -> dict[str, np.ndarray]:
    """Per jet: mass (GeV), τ21, τ32 (N-subjettiness, β = 1, fastjet-contrib via ``generate.substructure``),
    multiplicity; and per particle: pT (GeV). The jet axis is put at η = φ = 0 (τ_N and the mass
    only depend on rapidity and azimuth differences)."""
    import awkward as ak

    from heplearn.generate.substructure import jet_nsubjettiness

    clouds, mask = _check_clouds(clouds, mask)
    jet_pt = np.asarray(jet_pt, np.float64)
    pt = np.where(mask, clouds[..., 2], 0.0) * jet_pt[:, None]
    eta, phi = clouds[..., 0].astype(np.float64), clouds[..., 1].astype(np.float64)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = pt * np.cosh(eta)
    mass = np.sqrt(np.clip(energy.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2, 0, None))
    counts = mask.sum(1)
    constituents = ak.zip(
        {
            name: ak.unflatten(values[mask], counts)
            for name, values in (("px", px), ("py", py), ("pz", pz), ("E", energy))
        }
    )
    taus = jet_nsubjettiness(constituents, radius, orders=(1, 2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        tau21 = np.where(taus[:, 0] > 0, taus[:, 1] / taus[:, 0], 0.0)
        tau32 = np.where(taus[:, 1] > 0, taus[:, 2] / taus[:, 1], 0.0)
    return {
        "mass": mass,
        "tau21": tau21,
        "tau32": tau32,
        "multiplicity": counts.astype(np.float64),
        "particle_pt": pt[mask],
    }


def substructure_metrics(reference: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray]) -> dict[str, float]:
    """W1 (×10³) and medians of τ21 and τ32 of two samples' ``jet_observables``: the prong structure,
    which the jet mass and the particle features do not see (a jet without prongs has τ32 near 1)."""
    metrics = {}
    for name in ("tau21", "tau32"):
        metrics[f"w1_{name}_e3"] = 1e3 * wasserstein1(reference[name], generated[name])
        metrics[f"median_{name}"] = float(np.median(generated[name]))
        metrics[f"reference_median_{name}"] = float(np.median(reference[name]))
    return metrics


#: Axis labels (with units) and binning of the comparison plots.
PLOT_AXES: dict[str, tuple[str, np.ndarray]] = {
    "mass": ("jet mass [GeV]", np.linspace(0, 300, 41)),
    "tau21": (r"$\tau_{21}$", np.linspace(0, 1, 31)),
    "tau32": (r"$\tau_{32}$", np.linspace(0, 1, 31)),
    "multiplicity": ("particles per jet", np.arange(0.5, 131.5, 3.0)),
    "particle_pt": ("particle $p_T$ [GeV]", np.logspace(-1, 3, 41)),
}


def plot_comparison(
    reference: Mapping[str, np.ndarray],
    generated: Mapping[str, Mapping[str, np.ndarray]],
    path: str | os.PathLike[str],
    title: str = "",
    observables: Sequence[str] = tuple(PLOT_AXES),
) -> Path:
    """One column per observable: normalised histograms of the reference and of each model, and below
    the ratio model / reference with the reference's statistical band. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from heplearn.data.files import atomic_path

    figure, axes = plt.subplots(
        2, len(observables), figsize=(4 * len(observables), 5), gridspec_kw={"height_ratios": [3, 1]}, squeeze=False
    )
    for column, name in enumerate(observables):
        label, edges = PLOT_AXES[name]
        top, bottom = axes[0, column], axes[1, column]
        counts, _ = np.histogram(reference[name], edges)
        total = max(counts.sum(), 1)
        density = counts / total
        error = np.sqrt(counts) / total
        top.stairs(density, edges, color="black", label="Pythia 8", linewidth=1.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            band = np.where(density > 0, error / density, np.nan)
        bottom.stairs(1 + band, edges, baseline=1 - band, fill=True, color="grey", alpha=0.4)
        for model, values in generated.items():
            model_counts, _ = np.histogram(values[name], edges)
            model_density = model_counts / max(model_counts.sum(), 1)
            top.stairs(model_density, edges, label=model)
            with np.errstate(divide="ignore", invalid="ignore"):
                bottom.stairs(np.where(density > 0, model_density / density, np.nan), edges)
        if name == "particle_pt":
            top.set_xscale("log")
            bottom.set_xscale("log")
        top.set_ylabel("fraction per bin")
        top.legend(fontsize=7)
        bottom.set_ylim(0.5, 1.5)
        bottom.axhline(1, color="black", linewidth=0.5)
        bottom.set_ylabel("model / Pythia")
        bottom.set_xlabel(label)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(figure)
    return path


#: JetNet's W1-EFP set, energyflow's ``efpset(('n==', 4), ('d==', 4), ('p==', 1))``: the connected
#: (prime) graphs with four vertices and four edges, as indices into ``EFP_GRAPHS``.
W1_EFP_INDICES = (12, 14, 15, 16, 17)


def generation_metrics(
    reference: tuple[np.ndarray, np.ndarray],
    generated: tuple[np.ndarray, np.ndarray],
    *,
    classifier_epochs: int = 10,
    num_batches: int = 5,
    seed: int = 0,
    progress: bool = False,
    classifier: str = "pfn",
) -> dict[str, float]:
    """Every metric of one generated sample against the reference, each ``(clouds, mask)``.

    In JetNet's units: W1 of the relative jet mass m / pT_jet (×10³), of the particle features
    (Δη, Δφ, pT_rel) averaged (×10³), of the five n = 4, d = 4 prime EFPs averaged (×10⁵); FPD and
    KPD on the 36 d ≤ 4 EFPs (×10³; the FPD batches span half to all of the smaller sample, JetNet's
    20k–50k where the samples are that large); the classifier test's AUC and JSD (``classifier``:
    one of ``CLASSIFIERS``).
    """
    ref_clouds, ref_mask = _check_clouds(*reference)
    gen_clouds, gen_mask = _check_clouds(*generated)
    smaller = min(len(ref_clouds), len(gen_clouds))
    if smaller < 20:
        raise DataError(f"metrics: need at least 20 jets per sample; got {len(ref_clouds)} and {len(gen_clouds)}")

    def relative_mass(clouds: np.ndarray, mask: np.ndarray) -> np.ndarray:
        pt = np.where(mask, clouds[..., 2], 0.0).astype(np.float64)
        eta, phi = clouds[..., 0].astype(np.float64), clouds[..., 1].astype(np.float64)
        components = [
            (pt * np.cosh(eta)).sum(1),
            (pt * np.cos(phi)).sum(1),
            (pt * np.sin(phi)).sum(1),
            (pt * np.sinh(eta)).sum(1),
        ]
        return np.sqrt(
            np.clip(components[0] ** 2 - components[1] ** 2 - components[2] ** 2 - components[3] ** 2, 0, None)
        )

    metrics: dict[str, float] = {"reference_jets": len(ref_clouds), "generated_jets": len(gen_clouds)}
    w1m, w1m_error = w1_batches(
        relative_mass(ref_clouds, ref_mask), relative_mass(gen_clouds, gen_mask), num_batches=num_batches, seed=seed
    )
    metrics.update(w1m_e3=1e3 * float(w1m[0]), w1m_e3_error=1e3 * float(w1m_error[0]))
    w1p, w1p_error = w1_batches(
        ref_clouds[ref_mask][:, :3].astype(np.float64),
        gen_clouds[gen_mask][:, :3].astype(np.float64),
        num_batches=num_batches,
        seed=seed,
    )
    metrics.update(w1p_e3=1e3 * float(w1p.mean()), w1p_e3_error=1e3 * float(np.linalg.norm(w1p_error) / 3))
    ref_efps, gen_efps = efps(ref_clouds, ref_mask), efps(gen_clouds, gen_mask)
    w1efp, w1efp_error = w1_batches(
        ref_efps[:, W1_EFP_INDICES], gen_efps[:, W1_EFP_INDICES], num_batches=num_batches, seed=seed
    )
    metrics.update(
        w1efp_e5=1e5 * float(w1efp.mean()),
        w1efp_e5_error=1e5 * float(np.linalg.norm(w1efp_error) / len(W1_EFP_INDICES)),
    )
    largest, smallest = min(smaller, 50_000), min(smaller // 2, 20_000)
    value, error = fpd(
        ref_efps, gen_efps, min_samples=max(smallest, 10), max_samples=largest, num_batches=10, seed=seed
    )
    metrics.update(fpd_e3=1e3 * value, fpd_e3_error=1e3 * error)
    value, error = kpd(ref_efps, gen_efps, batch_size=min(smaller, 5_000), seed=seed)
    metrics.update(kpd_e3=1e3 * value, kpd_e3_error=1e3 * error)
    test = classifier_test(
        ref_clouds,
        ref_mask,
        gen_clouds,
        gen_mask,
        epochs=classifier_epochs,
        seed=seed,
        progress=progress,
        network=classifier,
    )
    metrics.update(auc=test.auc, jsd=test.jsd, classifier_test_jets=test.test_jets)
    return metrics
