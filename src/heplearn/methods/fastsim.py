"""Generative fast simulation of jets as particle clouds, conditioned on the jet class and pT.

A jet is a set of up to N particles, each (Δη, Δφ, pT / pT_jet) relative to the jet axis (JetNet's
representation, Kansal et al. arXiv:2106.11535), modelled in the standardised coordinates
(Δη, Δφ, log pT_rel). Every model is permutation equivariant: its layers are EPiC layers (Buhmann,
Kasieczka, Thaler, arXiv:2301.08128), which exchange information between the particles only through
a global vector updated from the mean and sum of the particles, so the cost is linear in N. The
flow's network can add self-attention blocks (``attention``: a transformer-encoder block after
each of the first EPiC layers, as the set transformers of PC-JeDi, Leigh et al. arXiv:2303.05376,
and PC-Droid, arXiv:2307.06836), in which every particle sees every other one: without them the
generated top jets lack their prongs (on 30-particle top jets the median τ32 was 0.78 against
Pythia's 0.35, τ21 0.69 against 0.49), since a pooled global vector tells a particle the jet's
summary but not where the other hard particles sit; with two blocks τ21 matches (0.51) and τ32
moves most of the way (0.56). Their cost is quadratic in N. ``pair_bias`` adds a learned function
of each pair's angular distance to the attention logits, as the Particle Transformer does. The
condition of a jet is its class (one-hot), its pT (standardised) and its number of particles n; n
itself is drawn from the training jets' multiplicities of the same class and pT bin. Trained on files
of several detector profiles (``heplearn generate --detector``: particle level, ``nominal``, ``alt``,
read from each file's provenance), a model is conditioned on the profile as well (its one-hot), its
tables are kept per class and profile, and ``sample_jets(detector=...)`` names the profile to
simulate: one network for the particle level and each detector.

Three generators, all trained by the engine's ``fit`` (tasks, named loss terms, step strategies):

- ``flow_matching`` (the main model): conditional flow matching (Lipman et al. arXiv:2210.02747)
  with the straight path x_t = (1 − t) x₀ + t x₁ from Gaussian noise x₀ to a jet x₁ and the target
  velocity x₁ − x₀ (σ_min = 0, the rectified-flow path); the velocity network is an EPiC network
  of (x_t, t, condition), as EPiC-FM (Buhmann et al. arXiv:2310.00049). Optionally
  (``ot_coupling``) noise and jets of a minibatch are paired by optimal transport, OT-CFM (Tong et
  al. arXiv:2302.00482), which straightens the paths so that few ODE steps suffice. Sampling
  integrates the ODE dx/dt = v(x, t) from t = 0 to 1 with Euler, the midpoint rule or Heun's
  method (``SOLVERS``). The model's output is each jet's flow-matching loss, and the loss term
  ``flow_matching`` averages it. Training draws t uniformly or (``time_sampling``) from a
  logit-normal; ``methods/fastsim_distil.py`` distils a trained flow into a one-step or
  straightened student;
- ``vae``: a set VAE: an EPiC encoder gives q(z | jet), an EPiC generator maps z and per-particle
  noise to a set, the reconstruction is scored by the symmetric Chamfer distance (sets have no
  order to compare slot by slot) and the loss terms are ``chamfer`` and ``latent_kl`` (weighted β);
- ``gan``: an EPiC-GAN: EPiC generator of per-particle and global noise, EPiC discriminator, the
  least-squares GAN losses (Mao et al. arXiv:1611.04076) as EPiC-GAN uses them, trained by the
  step strategy ``gan`` (the discriminator is a second network with its own optimiser). As in
  EPiC-GAN, every layer of both networks is weight-normalised and both learn at 1e-4.

The step strategy ``ema`` (and the ``gan`` step's ``ema`` setting) keeps an exponential moving
average of the generator's weights, which ``train_fastsim`` saves as the generator.

``train_fastsim`` writes a run directory (the engine's ``metrics.jsonl`` and checkpoints, plus
``fastsim.json`` and ``model.safetensors``); ``load_fastsim`` reads it back; ``sample_jets``
draws jets of a class at pT values inside the training range and ``write_jets`` writes them in
the JetClass schema of ``heplearn generate`` (kinematic ``part_*`` fields, ``jet_*`` with the
soft-drop mass and N-subjettiness from FastJet, one-hot ``label_*``), so a tagger trained on
kinematic inputs reads them unchanged. Particle identification, tracks and secondary vertices are
not modelled, so those fields are not written.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
from torch import nn
from typing_extensions import override

from heplearn.config import StrictModel
from heplearn.errors import ConfigError, DataError
from heplearn.tasks import TASKS, Batch, LossTerm, Task
from heplearn.training.losses import LossTermBase, register_loss_term, weighted_mean
from heplearn.training.steps import (
    SingleNetworkStep,
    StepContext,
    StepStrategy,
    autocast,
    optimise,
    register_step_strategy,
)

__all__ = [
    "MODELS",
    "MOMENTUM_CONSERVATION",
    "PARTICLE_LEVEL",
    "CloudScaling",
    "EPiCNetwork",
    "FastSim",
    "FlowMatchingJets",
    "GanStep",
    "JetClouds",
    "JetGeneration",
    "SetGAN",
    "SetVAE",
    "concatenate_clouds",
    "conserve_momentum",
    "detector_profile",
    "load_clouds",
    "load_fastsim",
    "load_sources",
    "sample_jets",
    "to_jetclass",
    "train_fastsim",
    "write_jets",
]

#: The generators ``train_fastsim`` knows.
MODELS = ("flow_matching", "vae", "gan")
FASTSIM_FILE = "fastsim.json"
WEIGHTS_FILE = "model.safetensors"
JET_RADIUS = 0.8  # the generator's default anti-kT radius: the R0 of τ_N and soft drop
_PT_BINS = 5  # pT bins (training quantiles) of the multiplicity tables
#: The detector profile of jets whose file names none: the generator's particle level.
PARTICLE_LEVEL = "particle"


# -- data --------------------------------------------------------------------------------------------------------
@dataclass
class JetClouds:
    """Jets as padded clouds of (Δη, Δφ, pT_rel), pT-ordered, with their class and jet kinematics."""

    clouds: np.ndarray  # (jets, particles, 3)
    mask: np.ndarray  # (jets, particles) bool, real particles first
    label: np.ndarray  # (jets,) class index
    class_names: list[str]
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    detector: np.ndarray | None = None  # (jets,) index into detector_names; None: all of detector_names[0]
    detector_names: list[str] = field(default_factory=lambda: [PARTICLE_LEVEL])

    def __len__(self) -> int:
        return len(self.label)

    @property
    def detector_index(self) -> np.ndarray:
        """Each jet's detector profile, as an index into ``detector_names``."""
        return np.zeros(len(self.label), np.int64) if self.detector is None else self.detector

    def take(self, index: np.ndarray) -> JetClouds:
        """The jets at ``index`` (indices or a boolean mask)."""
        return JetClouds(
            self.clouds[index],
            self.mask[index],
            self.label[index],
            self.class_names,
            self.jet_pt[index],
            self.jet_eta[index],
            self.detector_index[index],
            self.detector_names,
        )

    def of_class(self, name: str) -> JetClouds:
        """The jets of class ``name``."""
        return self.take(self.label == self.class_names.index(name))


def load_clouds(
    files: Sequence[str | os.PathLike[str]],
    num_particles: int = 30,
    max_jets: int | None = None,
    class_name: str | None = None,
) -> JetClouds:
    """The ``num_particles`` highest-pT particles of each jet of JetClass-schema ``files``.

    The class of a jet is its one-hot ``label_*``; files without labels (one process of the
    generator, e.g. its chunks) need ``class_name``, the class of all their jets. The detector
    profile of a file's jets is the one its provenance names (``detector_profile``).
    """
    from heplearn.data import io

    if num_particles < 1:
        raise ConfigError(f"fastsim: num_particles must be positive, got {num_particles}")
    parts: list[JetClouds] = []
    for path in files:
        source = io.open_source(path)
        names = source.field_names()
        labels = [] if class_name else sorted(name for name in names if name.startswith("label_"))
        needed = ["part_px", "part_py", "part_deta", "part_dphi", "jet_pt", "jet_eta"]
        missing = [name for name in needed if name not in names]
        if missing or not (labels or class_name):
            raise DataError(
                f"{path}: not a JetClass-schema jet file (missing {', '.join(missing) or 'label_*'}); "
                "a file of one class without labels needs its class named (CLASS=FILE)"
            )
        class_names = [class_name] if class_name else [name.removeprefix("label_") for name in labels]
        if parts and class_names != parts[0].class_names:
            raise DataError(f"{path}: classes {class_names} differ from the first file's {parts[0].class_names}")
        array = io.read(path, needed + labels)
        pt = np.hypot(array.part_px, array.part_py)
        order = ak.argsort(pt, axis=1, ascending=False)[:, :num_particles]
        jet_pt = ak.to_numpy(array.jet_pt).astype(np.float64)

        def padded(values: ak.Array, order: ak.Array = order) -> np.ndarray:
            return ak.to_numpy(ak.fill_none(ak.pad_none(values[order], num_particles, clip=True), 0.0)).astype(
                np.float64
            )

        clouds = np.stack([padded(array.part_deta), padded(array.part_dphi), padded(pt) / jet_pt[:, None]], -1)
        mask = ak.to_numpy(
            ak.fill_none(ak.pad_none(ak.ones_like(pt[order], dtype=bool), num_particles, clip=True), False)
        )
        label = (
            np.argmax(np.stack([ak.to_numpy(array[name]) for name in labels], -1), -1)
            if labels
            else np.zeros(len(array), np.int64)
        )
        parts.append(
            JetClouds(
                clouds.astype(np.float32),
                mask,
                label,
                class_names,
                jet_pt,
                ak.to_numpy(array.jet_eta).astype(np.float64),
                np.zeros(len(array), np.int64),
                [detector_profile(source.provenance())],
            )
        )
    if not parts:
        raise DataError("fastsim: no input files given")
    jets = concatenate_clouds(parts)
    if max_jets is not None and len(jets) > max_jets:
        jets = jets.take(np.arange(max_jets))
    if len(jets) == 0 or not jets.mask[:, 0].all():
        raise DataError(f"fastsim: no jets, or jets without particles, in {', '.join(map(str, files))}")
    return jets


def detector_profile(provenance: Mapping[str, Any]) -> str:
    """The detector profile a file's provenance names: the generator's ``options.detector`` (its
    ``name``: ``nominal``, ``alt``, a YAML profile's), ``heplearn fastsim sample``'s ``detector``, or
    ``PARTICLE_LEVEL`` where neither names one (no detector, or a file from elsewhere)."""
    options = provenance.get("options")
    detector = options.get("detector") if isinstance(options, Mapping) else provenance.get("detector")
    if isinstance(detector, Mapping):
        return str(detector.get("name") or "custom")
    return str(detector) if detector else PARTICLE_LEVEL


def concatenate_clouds(parts: Sequence[JetClouds]) -> JetClouds:
    """One sample of several; the classes and the detector profiles are the unions of the parts' (in
    order of appearance)."""
    names: list[str] = []
    detectors: list[str] = []
    for part in parts:
        names.extend(name for name in part.class_names if name not in names)
        detectors.extend(name for name in part.detector_names if name not in detectors)
    labels = [np.asarray([names.index(part.class_names[i]) for i in part.label], np.int64) for part in parts]
    profiles = [
        np.asarray([detectors.index(name) for name in part.detector_names])[part.detector_index] for part in parts
    ]
    particles = max(part.clouds.shape[1] for part in parts)
    if any(part.clouds.shape[1] != particles for part in parts):
        raise DataError("fastsim: samples with different numbers of particles per jet")
    return JetClouds(
        np.concatenate([p.clouds for p in parts]),
        np.concatenate([p.mask for p in parts]),
        np.concatenate(labels),
        names,
        np.concatenate([p.jet_pt for p in parts]),
        np.concatenate([p.jet_eta for p in parts]),
        np.concatenate(profiles),
        detectors,
    )


def load_sources(sources: Sequence[str], num_particles: int = 30, max_jets_per_class: int | None = None) -> JetClouds:
    """Jets from ``sources``: labelled JetClass files, or ``CLASS=FILE`` for a file of one class."""
    parts = []
    for source in sources:
        name, separator, path = str(source).rpartition("=")
        parts.append(load_clouds([path], num_particles, class_name=name if separator else None))
    jets = concatenate_clouds(parts)
    if max_jets_per_class is not None:
        keep = np.concatenate(
            [np.flatnonzero(jets.label == index)[:max_jets_per_class] for index in range(len(jets.class_names))]
        )
        jets = jets.take(np.sort(keep))
    return jets


@dataclass
class CloudScaling:
    """What the models were trained on: feature standardisation, the condition's ranges and the
    per-class tables that sampling draws from (pT and η quantiles, multiplicities per pT bin).

    ``detectors``: the detector profiles of the training jets (``load_clouds``). Trained on more than
    one, a model is conditioned on the profile too (its one-hot joins the condition), and its tables
    are kept per class and profile (``table_key``): a detector changes the multiplicities (merged
    calorimeter cells, lost tracks) as well as the particles."""

    class_names: list[str]
    num_particles: int
    feature_mean: list[float]
    feature_scale: list[float]
    pt_mean: float
    pt_scale: float
    pt_quantiles: dict[str, list[float]]  # 101 quantiles of the training jets' pT per class (and profile)
    eta_quantiles: dict[str, list[float]]
    multiplicity: dict[str, list[list[float]]]  # per class (and profile): per pT bin, the frequency of n = 1 … N
    detectors: list[str] = field(default_factory=lambda: [PARTICLE_LEVEL])

    @classmethod
    def fit(cls, jets: JetClouds) -> CloudScaling:
        """The scaling of the training ``jets``."""
        features = _to_model_coordinates(jets.clouds)[jets.mask]
        levels = np.linspace(0, 1, 101)
        pt_quantiles, eta_quantiles, multiplicity = {}, {}, {}
        detectors = list(jets.detector_names)
        for name in jets.class_names:
            for index, detector in enumerate(detectors):
                members = jets.take((jets.label == jets.class_names.index(name)) & (jets.detector_index == index))
                which = repr(name) if len(detectors) == 1 else f"{name!r} with the detector profile {detector!r}"
                if len(members) < 10:
                    raise DataError(f"fastsim: class {which} has {len(members)} training jets; at least 10 needed")
                key = _table_key(name, detector, detectors)
                pt_quantiles[key] = np.quantile(members.jet_pt, levels).tolist()
                eta_quantiles[key] = np.quantile(members.jet_eta, levels).tolist()
                edges = np.quantile(members.jet_pt, np.linspace(0, 1, _PT_BINS + 1))
                bins = np.clip(np.searchsorted(edges, members.jet_pt, side="right") - 1, 0, _PT_BINS - 1)
                counts = members.mask.sum(1)
                table = [
                    np.bincount(counts[bins == b] - 1, minlength=jets.clouds.shape[1]).astype(float) + 1e-9
                    for b in range(_PT_BINS)
                ]
                multiplicity[key] = [(row / row.sum()).tolist() for row in table]
        return cls(
            list(jets.class_names),
            jets.clouds.shape[1],
            features.mean(0).tolist(),
            (features.std(0) + 1e-6).tolist(),
            float(jets.jet_pt.mean()),
            float(jets.jet_pt.std() + 1e-6),
            pt_quantiles,
            eta_quantiles,
            multiplicity,
            detectors,
        )

    @property
    def condition_size(self) -> int:
        """One-hot class, standardised pT and n / N; then the one-hot detector profile where there are several."""
        return len(self.class_names) + 2 + (len(self.detectors) if len(self.detectors) > 1 else 0)

    def class_index(self, name: str) -> int:
        """The index of class ``name``; an unknown class is a ConfigError naming the known ones."""
        if name not in self.class_names:
            raise ConfigError(f"fastsim: unknown class {name!r}; this model knows {', '.join(self.class_names)}")
        return self.class_names.index(name)

    def resolve_detector(self, detector: str | None) -> str:
        """The detector profile of a sample: ``detector``, which a model trained on several profiles needs
        and one trained on one may only repeat; a ConfigError naming the model's profiles otherwise."""
        if len(self.detectors) == 1:
            if detector not in (None, self.detectors[0]):
                raise ConfigError(
                    f"fastsim: this model was trained on jets of the detector profile {self.detectors[0]!r} only, "
                    f"not {detector!r}; it is not conditioned on the detector"
                )
            return self.detectors[0]
        if detector is None:
            raise ConfigError(
                f"fastsim: this model is conditioned on the detector profile; name one of {', '.join(self.detectors)}"
            )
        if detector not in self.detectors:
            raise ConfigError(
                f"fastsim: unknown detector profile {detector!r}; this model knows {', '.join(self.detectors)}"
            )
        return detector

    def table_key(self, name: str, detector: str) -> str:
        """The key of the tables of class ``name`` with the detector profile ``detector``."""
        return _table_key(name, detector, self.detectors)

    def pt_range(self, name: str, detector: str | None = None) -> tuple[float, float]:
        """The training jets' pT range of class ``name`` (GeV), with the detector profile ``detector``."""
        quantiles = self.pt_quantiles[
            self.table_key(self.class_names[self.class_index(name)], self.resolve_detector(detector))
        ]
        return quantiles[0], quantiles[-1]

    def condition(
        self, label: np.ndarray, jet_pt: np.ndarray, counts: np.ndarray, detector: np.ndarray | None = None
    ) -> np.ndarray:
        """The condition vectors ``(jets, condition_size)``; ``detector``: each jet's profile (an index into
        ``detectors``), needed where there are several."""
        one_hot = np.eye(len(self.class_names), dtype=np.float32)[label]
        pt = ((jet_pt - self.pt_mean) / self.pt_scale).astype(np.float32)[:, None]
        parts = [one_hot, pt, (counts / self.num_particles).astype(np.float32)[:, None]]
        if len(self.detectors) > 1:
            if detector is None:
                raise ValueError("fastsim: a model of several detector profiles needs each jet's profile")
            parts.append(np.eye(len(self.detectors), dtype=np.float32)[detector])
        return np.concatenate(parts, -1)

    def standardise(self, clouds: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(Δη, Δφ, pT_rel) → standardised (Δη, Δφ, log pT_rel); padding stays zero."""
        values = (_to_model_coordinates(clouds) - np.asarray(self.feature_mean)) / np.asarray(self.feature_scale)
        return np.where(mask[..., None], values, 0.0).astype(np.float32)

    def unstandardise(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The inverse of ``standardise``: (Δη, Δφ, pT_rel), padding zero."""
        raw = values * np.asarray(self.feature_scale) + np.asarray(self.feature_mean)
        raw[..., 2] = np.exp(np.clip(raw[..., 2], -30, 5))
        return np.where(mask[..., None], raw, 0.0).astype(np.float32)

    def sample_multiplicity(
        self, name: str, jet_pt: np.ndarray, rng: np.random.Generator, detector: str | None = None
    ) -> np.ndarray:
        """n for each jet, drawn from the training multiplicities of class ``name`` (with the detector
        profile ``detector``) in its pT bin."""
        key = self.table_key(name, self.resolve_detector(detector))
        quantiles = np.asarray(self.pt_quantiles[key])
        edges = np.quantile(quantiles, np.linspace(0, 1, _PT_BINS + 1))
        bins = np.clip(np.searchsorted(edges, jet_pt, side="right") - 1, 0, _PT_BINS - 1)
        counts = np.empty(len(jet_pt), np.int64)
        for b, frequencies in enumerate(self.multiplicity[key]):
            chosen = bins == b
            counts[chosen] = rng.choice(self.num_particles, size=int(chosen.sum()), p=frequencies) + 1
        return counts


def _table_key(name: str, detector: str, detectors: Sequence[str]) -> str:
    """A class's tables are under its name; with several detector profiles, under ``name@detector``."""
    return name if len(detectors) == 1 else f"{name}@{detector}"


def _to_model_coordinates(clouds: np.ndarray) -> np.ndarray:
    values = np.asarray(clouds, np.float64).copy()
    values[..., 2] = np.log(np.clip(values[..., 2], 1e-12, None))
    return values


# -- the EPiC backbone -----------------------------------------------------------------------------------------------
def _split_linear(linear: nn.Linear, particles: torch.Tensor, per_jet: torch.Tensor) -> torch.Tensor:
    """``linear(cat[particles, per_jet broadcast over the particles])`` without the broadcast copy:
    ``particles (B, N, p)``, ``per_jet (B, q)``, ``linear`` of p + q inputs."""
    width = particles.shape[-1]
    local = nn.functional.linear(particles, linear.weight[:, :width])
    shared = nn.functional.linear(per_jet, linear.weight[:, width:], linear.bias)
    return local.add_(shared.unsqueeze(1))  # in place: linear's backward does not need its output


class EPiCLayer(nn.Module):
    """One EPiC layer (arXiv:2301.08128, eq. 2): the global vector is updated from the mean and the
    (1/N-scaled) sum of the particles, then every particle from itself, the global vector and the
    condition; both with residual connections. Padded particles neither contribute nor change: the
    input ``x`` is zero on padding (``EPiCNetwork`` masks its embedding), and so is the output."""

    def __init__(self, hidden: int, global_size: int, condition_size: int) -> None:
        super().__init__()
        self.global_net = nn.Sequential(
            nn.Linear(2 * hidden + global_size + condition_size, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, global_size),
        )
        self.local_net = nn.Sequential(
            nn.Linear(hidden + global_size + condition_size, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, hidden)
        )

    def forward(
        self, x: torch.Tensor, g: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``slots``: the N of the sum's 1/N scale (default: ``x``'s particle axis; a caller that
        trimmed trailing padding passes the untrimmed N, so the layer computes the same function)."""
        weight = mask.unsqueeze(-1).to(x.dtype)
        total = x.sum(1)  # x arrives masked (zero on padding) from the embedding or the previous layer
        mean = total / weight.sum(1).clamp_min(1.0)
        g = g + self.global_net(torch.cat([mean, total / (slots or x.shape[1]), g, condition], -1))
        # local_net(cat[x, g, condition]) with its first layer split: the (g, condition) part is the
        # same for every particle of a jet, so it is computed once per jet and broadcast (the same
        # function and parameters as the concatenation, at a fraction of the cost)
        x = x + self.local_net[2](self.local_net[1](_split_linear(self.local_net[0], x, torch.cat([g, condition], -1))))
        return x * weight, g


class SelfAttention(nn.Module):
    """A pre-norm transformer-encoder block over the particles of a jet (multi-head self-attention,
    then a feed-forward network, both residual), the particle–particle interaction of the set
    transformers of PC-JeDi (Leigh et al. arXiv:2303.05376) and PC-Droid (arXiv:2307.06836).
    Padded particles are neither attended to nor changed (their output is zero).

    ``pair_bias``: each head's attention logits also get a learned function of the two particles'
    angular distance, b_h(ln(ΔR²_ij + ε)), the pairwise-interaction bias of the Particle Transformer
    (Qu, Li & Qu arXiv:2202.03772, eq. 2 with the ΔR feature), so that a particle can attend to its
    neighbours, the particles of its own prong. ``pair_bias = 1``: b_h is linear in ln(ΔR² + ε), one
    slope and offset per head (the cheap form); ``k > 1``: an MLP with k hidden units."""

    def __init__(self, hidden: int, heads: int = 4, pair_bias: int = 0) -> None:
        super().__init__()
        if hidden % heads:
            raise ConfigError(f"self-attention: the width {hidden} is not a multiple of the {heads} heads")
        if pair_bias < 0:
            raise ConfigError(f"self-attention: the pair bias's hidden units must be 0 or more, got {pair_bias}")
        self.heads = heads
        self.pair_bias: nn.Module | None = None
        if pair_bias == 1:
            self.pair_bias = nn.Linear(1, heads)
        elif pair_bias > 1:
            self.pair_bias = nn.Sequential(nn.Linear(1, pair_bias), nn.LeakyReLU(0.01), nn.Linear(pair_bias, heads))
        self.norm = nn.LayerNorm(hidden)
        self.project = nn.Linear(hidden, 3 * hidden)
        self.combine = nn.Linear(hidden, hidden)
        self.feed = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.LeakyReLU(0.01), nn.Linear(2 * hidden, hidden)
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        distances: torch.Tensor | None = None,
        unpadded: bool | None = None,
    ) -> torch.Tensor:
        """``distances`` ``(B, 1, N, N)``: ln(ΔR²_ij + ε) of the particles (``log_distances``), needed with
        ``pair_bias``; ``unpadded``: whether ``mask`` is all true (None: look; an exported graph,
        which cannot look, masks unless told)."""
        batch, particles, width = x.shape
        size = width // self.heads
        query, key, value = (
            self.project(self.norm(x))
            .view(batch, particles, 3, self.heads, size)
            .permute(2, 0, 3, 1, 4)
            .reshape(3, batch * self.heads, particles, size)
        )
        # padded keys are blocked; a batch without padding (most, once sampling sorts jets by multiplicity
        # and trims the padding) needs no mask; an exported graph cannot look, so fastsim_onnx exports two
        if unpadded is None:
            unpadded = not torch.compiler.is_exporting() and bool(mask.all())
        blocked = None if unpadded else ~mask[:, None, None, :]
        bias: torch.Tensor | None = None
        if self.pair_bias is not None:
            if distances is None:
                raise ValueError("self-attention with a pair bias needs the particles' distances")
            bias = self.pair_logits(distances)
            if blocked is not None:
                bias = bias.masked_fill_(blocked, float("-inf"))
        elif blocked is not None:
            bias = torch.zeros(batch, 1, 1, particles, dtype=x.dtype).masked_fill_(blocked, float("-inf"))
            bias = bias.expand(batch, self.heads, particles, particles)
        # softmax(q kᵀ / √d + bias) v with the bias as the matrix product's addend: at a jet's few dozen
        # particles this ran 2× faster on one core than scaled_dot_product_attention with a float mask
        scale = size**-0.5
        if bias is None:
            logits = torch.bmm(query, key.transpose(1, 2)).mul_(scale)
        else:
            logits = torch.baddbmm(
                bias.reshape(batch * self.heads, particles, particles), query, key.transpose(1, 2), alpha=scale
            )
        attended = torch.bmm(torch.softmax(logits, -1), value).view(batch, self.heads, particles, size)
        x = x + self.combine(attended.transpose(1, 2).reshape(batch, particles, width))
        return (x + self.feed(x)) * mask.unsqueeze(-1).to(x.dtype)

    def pair_logits(self, distances: torch.Tensor) -> torch.Tensor:
        """The pair bias b_h ``(B, heads, N, N)`` at ``distances`` ``(B, 1, N, N)``: ``pair_bias`` applied to
        each pair, computed head-major (the MLP's hidden units as channels, then one matrix product over
        them), so that nothing is permuted or copied on the way to the attention logits."""
        assert self.pair_bias is not None
        if isinstance(self.pair_bias, nn.Linear):
            slope, offset = self.pair_bias.weight.view(1, -1, 1, 1), self.pair_bias.bias.view(1, -1, 1, 1)
            return torch.addcmul(offset, distances, slope)
        first, _, second = self.pair_bias
        batch, _, particles, _ = distances.shape
        hidden = torch.addcmul(first.bias.view(1, -1, 1, 1), distances, first.weight.view(1, -1, 1, 1))
        hidden = nn.functional.leaky_relu_(hidden, 0.01).view(batch, -1, particles * particles)
        logits = torch.baddbmm(
            second.bias.view(1, -1, 1).expand(batch, -1, 1), second.weight.expand(batch, -1, -1), hidden
        )
        return logits.view(batch, -1, particles, particles)


def log_distances(positions: torch.Tensor) -> torch.Tensor:
    """ln(ΔR²_ij + 10⁻⁴) ``(B, 1, N, N)`` of particles at ``positions`` ``(B, N, 2)`` (Δη, Δφ)."""
    # Δη² + Δφ² as two (B, 1, N, N) differences, not one (B, 1, N, N, 2): the same sums, and onnxruntime's
    # broadcast over a trailing axis of 2 took 5 % of the exported pass
    eta, phi = positions[:, None, :, 0], positions[:, None, :, 1]
    squared = (eta[..., :, None] - eta[..., None, :]).square() + (phi[..., :, None] - phi[..., None, :]).square()
    return torch.log(squared + 1e-4)


class EPiCNetwork(nn.Module):
    """Per-particle inputs → EPiC layers → per-particle outputs and the final global vector.

    ``attention`` > 0 puts a self-attention block (``SelfAttention``) after each of the first
    ``attention`` EPiC layers: the EPiC layers exchange information between particles only through
    the pooled global vector, which cannot say where each particle sits relative to the others; the
    attention blocks can (the generated jets' prongs need it, see ``FlowMatchingJets``). Its cost is
    quadratic in the number of particles. ``pair_bias`` adds a function of the particles' angular
    distances (of the first two input features) to the attention logits (``SelfAttention``)."""

    def __init__(
        self,
        inputs: int,
        outputs: int,
        condition_size: int,
        hidden: int = 64,
        global_size: int = 16,
        layers: int = 3,
        attention: int = 0,
        pair_bias: int = 0,
    ) -> None:
        super().__init__()
        if hidden < 1 or global_size < 1 or layers < 1:
            raise ConfigError(
                f"EPiC network: hidden, global_size and layers must be positive; got {hidden}, {global_size}, {layers}"
            )
        if not 0 <= attention <= layers:
            raise ConfigError(f"EPiC network: attention blocks must number 0 to layers ({layers}), got {attention}")
        self.embed = nn.Sequential(nn.Linear(inputs + condition_size, hidden), nn.LeakyReLU(0.01))
        self.initial_global = nn.Linear(hidden + condition_size, global_size)
        self.layers = nn.ModuleList(EPiCLayer(hidden, global_size, condition_size) for _ in range(layers))
        if pair_bias and not attention:
            raise ConfigError("EPiC network: the pair bias is a part of the attention blocks; it needs attention > 0")
        self.attention = nn.ModuleList(SelfAttention(hidden, pair_bias=pair_bias) for _ in range(attention))
        self.output = nn.Linear(hidden, outputs)

    @override
    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor,
        mask: torch.Tensor,
        slots: int | None = None,
        unpadded: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-particle outputs (zero on padding) and the global vector; ``slots`` as ``EPiCLayer``'s,
        ``unpadded`` as ``SelfAttention``'s."""
        weight = mask.unsqueeze(-1).to(x.dtype)
        hidden = self.embed[1](_split_linear(self.embed[0], x, condition)) * weight
        g = self.initial_global(torch.cat([hidden.sum(1) / weight.sum(1).clamp_min(1.0), condition], -1))
        needs_distances = any(block.pair_bias is not None for block in self.attention)
        distances = log_distances(x[..., :2]) if needs_distances else None  # once for every block
        for index, layer in enumerate(self.layers):
            hidden, g = layer(hidden, g, condition, mask, slots)
            if index < len(self.attention):
                hidden = self.attention[index](hidden, mask, distances, unpadded)
        return self.output(hidden) * weight, g


def _time_features(t: torch.Tensor) -> torch.Tensor:
    """t and sin/cos of 2^k π t (k = 0…3): a smooth embedding of the flow time."""
    frequencies = math.pi * 2.0 ** torch.arange(4, dtype=t.dtype)
    angles = t[:, None] * frequencies
    return torch.cat([t[:, None], angles.sin(), angles.cos()], -1)


_TIME_FEATURES = 9


class FlowMatchingJets(nn.Module):
    """EPiC-FM: the velocity field v(x_t, t | c) of conditional flow matching on particle clouds.

    ``forward(batch)`` returns each jet's flow-matching loss ``(B, 1)``: the mean over its real
    particles of ‖v(x_t, t) − (x₁ − x₀)‖², t ~ U(0, 1), x₀ ~ N(0, I) (Lipman et al., eq. 23 with
    σ_min = 0). ``sample`` integrates the ODE from noise. ``attention`` self-attention blocks go into
    the velocity network (``EPiCNetwork``); without them the generated jets have no prongs.
    """

    input_keys = ("particles", "jet", "mask")
    objectives = ("flow_matching",)

    def __init__(
        self,
        condition_size: int,
        hidden: int = 64,
        global_size: int = 16,
        layers: int = 3,
        features: int = 3,
        ot_coupling: int = 0,
        attention: int = 0,
        time_sampling: str = "uniform",
        pair_bias: int = 0,
    ) -> None:
        super().__init__()
        if time_sampling not in TIME_SAMPLINGS:
            raise ConfigError(
                f"fastsim: unknown time sampling {time_sampling!r}; choose one of {', '.join(TIME_SAMPLINGS)}"
            )
        self.features, self.condition_size = features, condition_size
        self.ot_coupling = bool(ot_coupling)
        self.time_sampling = time_sampling
        self.velocity = EPiCNetwork(
            features, features, condition_size + _TIME_FEATURES, hidden, global_size, layers, attention, pair_bias
        )

    def draw_time(self, jets: int, dtype: torch.dtype) -> torch.Tensor:
        """The flow times of a batch: U(0, 1); ``logit_normal``: σ(N(0, 1)), which puts more of the
        training at the middle of the path, where the velocity is hardest to learn (Esser et al.
        arXiv:2403.03206, Sec. 3.1); ``start``: t = 0 only, the one-step student of distillation
        (x₀ + v(x₀, 0) is its jet; Luhman & Luhman arXiv:2101.02388)."""
        if self.time_sampling == "logit_normal":
            return torch.sigmoid(torch.randn(jets, dtype=dtype))
        if self.time_sampling == "start":
            return torch.zeros(jets, dtype=dtype)
        return torch.rand(jets, dtype=dtype)

    def velocity_at(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        condition: torch.Tensor,
        mask: torch.Tensor,
        slots: int | None = None,
        network: Callable[..., tuple[torch.Tensor, Any]] | None = None,
    ) -> torch.Tensor:
        """v(x, t | condition) per particle (``slots``: ``EPiCLayer``'s); ``network``: the velocity network
        in another runtime (``fastsim_onnx.OnnxVelocity``), by default ``self.velocity``."""
        velocity = self.velocity if network is None else network
        return velocity(x, torch.cat([condition, _time_features(t)], -1), mask, slots)[0]

    @override
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x1, condition, mask = batch["particles"].float(), batch["jet"].float(), batch["mask"]
        t = self.draw_time(len(x1), x1.dtype)
        if "noise" in batch:  # distillation: the noise the teacher's ODE started from (fastsim_distil)
            x0 = batch["noise"].float()
        else:
            x0 = torch.randn_like(x1)
            if self.ot_coupling and self.training:
                x0 = x0[minibatch_ot_pairing(x0, x1, condition, mask)]
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        return per_jet_squared_error(self.velocity_at(xt, t, condition, mask), x1 - x0, mask).unsqueeze(-1)

    def check_sampler(self, steps: int, solver: str) -> None:
        """A ConfigError unless ``steps`` steps of ``solver`` can sample this flow."""
        if solver not in SOLVERS:
            raise ConfigError(f"fastsim: unknown ODE solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        if steps < 1:
            raise ConfigError(f"fastsim: the ODE needs at least one step, got {steps}")
        if self.time_sampling == "start" and (steps, solver) != (1, "euler"):
            raise ConfigError(
                f"fastsim: this generator was distilled to one Euler step; {steps} {solver} steps are not defined "
                "for it (sample it with --steps 1 --solver euler)"
            )

    @torch.no_grad()
    def sample(
        self,
        condition: torch.Tensor,
        mask: torch.Tensor,
        steps: int = 25,
        solver: str = "midpoint",
        slots: int | None = None,
        noise: torch.Tensor | None = None,
        network: Callable[..., tuple[torch.Tensor, Any]] | None = None,
    ) -> torch.Tensor:
        """Clouds from the ODE dx/dt = v(x, t), t: 0 → 1, in ``steps`` steps of ``solver``
        (``SOLVERS``: Euler, one network pass per step; the midpoint rule and Heun's method, two),
        starting from ``noise`` (default: drawn from N(0, I)); ``slots``: ``EPiCLayer``'s; ``network``:
        ``velocity_at``'s. A one-step student (``time_sampling="start"``) only knows t = 0: it takes one
        Euler step, nothing else."""
        self.check_sampler(steps, solver)
        x = (noise if noise is not None else torch.randn(*mask.shape, self.features)) * mask.unsqueeze(-1)
        dt = 1.0 / steps
        velocity_at = self.velocity_at if network is None else functools.partial(self.velocity_at, network=network)
        for step in range(steps):
            t = torch.full((len(x),), step * dt)
            velocity = velocity_at(x, t, condition, mask, slots)
            if solver == "euler":
                x = x + dt * velocity
            elif solver == "midpoint":
                half = x + 0.5 * dt * velocity
                x = x + dt * velocity_at(half, t + 0.5 * dt, condition, mask, slots)
            else:  # Heun: the trapezoid of the velocities at both ends of an Euler step
                end = velocity_at(x + dt * velocity, t + dt, condition, mask, slots)
                x = x + 0.5 * dt * (velocity + end)
        return x * mask.unsqueeze(-1)


def per_jet_squared_error(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """‖prediction − target‖² per jet ``(B,)``: the mean over its real particles and the features."""
    weight = mask.to(prediction.dtype)
    error = ((prediction - target).square().sum(-1) * weight).sum(1)
    return error / (weight.sum(1).clamp_min(1.0) * prediction.shape[-1])


#: ODE solvers of flow-matching sampling, with their network passes per step.
SOLVERS = {"euler": 1, "midpoint": 2, "heun": 2}

#: How flow-matching training draws its times (``FlowMatchingJets.draw_time``).
TIME_SAMPLINGS = ("uniform", "logit_normal", "start")


def minibatch_ot_pairing(
    noise: torch.Tensor, data: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The minibatch optimal-transport coupling of OT-CFM (Tong et al. arXiv:2302.00482, Sec. 3.2):
    ``index`` such that ``noise[index][i]`` goes with ``data[i]``, minimising the summed squared
    distance over each jet's real particles (an exact assignment, the Hungarian algorithm).

    Noise is only permuted among jets of the same condition group (class and multiplicity n): the
    jets' noise of one group stays an unbiased draw of N(0, I) at its own mask, so the coupled
    path still ends in the noise distribution that sampling starts from (its pT is continuous and
    shared across the group; within a minibatch its spread is small against the noise's)."""
    from scipy.optimize import linear_sum_assignment

    weight = mask.to(data.dtype).unsqueeze(-1)
    index = torch.arange(len(data))
    classes = condition[:, :-2].argmax(-1) if condition.shape[1] > 2 else torch.zeros(len(data), dtype=torch.long)
    groups = classes * (mask.shape[1] + 1) + mask.sum(1)
    for group in torch.unique(groups):
        members = torch.nonzero(groups == group).squeeze(-1)
        if len(members) < 2:
            continue
        # cost[i, j]: data jet i with the noise of jet j, over the particles of jet i (its mask = j's)
        difference = data[members].unsqueeze(1) - noise[members].unsqueeze(0)
        cost = (difference.square() * weight[members].unsqueeze(1)).sum((-1, -2))
        rows, columns = linear_sum_assignment(cost.detach().numpy())
        index[members[rows]] = members[columns]
    return index


class SetGenerator(nn.Module):
    """EPiC generator: per-particle noise and a global latent vector (with the condition) → a cloud."""

    def __init__(
        self,
        condition_size: int,
        latent: int = 16,
        noise: int = 8,
        hidden: int = 64,
        global_size: int = 16,
        layers: int = 3,
        features: int = 3,
    ) -> None:
        super().__init__()
        self.latent, self.noise, self.features = latent, noise, features
        self.network = EPiCNetwork(noise, features, condition_size + latent, hidden, global_size, layers)

    def forward(
        self, latent: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None
    ) -> torch.Tensor:
        """A cloud per jet of fresh per-particle noise (``slots``: ``EPiCLayer``'s)."""
        noise = torch.randn(*mask.shape, self.noise)
        return self.network(noise, torch.cat([condition, latent], -1), mask, slots)[0]


def chamfer(first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance per jet: the mean over real particles of each set of the squared
    distance to the nearest real particle of the other set (both sets share ``mask``)."""
    distances = torch.cdist(first, second).square()
    missing = ~(mask.unsqueeze(1) & mask.unsqueeze(2))
    distances = distances.masked_fill(missing, float("inf"))
    weight = mask.to(first.dtype)
    count = weight.sum(1).clamp_min(1.0)
    forward = torch.nan_to_num(distances.min(2).values, posinf=0.0)
    backward = torch.nan_to_num(distances.min(1).values, posinf=0.0)
    return ((forward * weight).sum(1) + (backward * weight).sum(1)) / count


class SetVAE(nn.Module):
    """A set VAE: EPiC encoder → q(z | jet) = N(μ, σ²); EPiC generator of z and particle noise → jet.

    ``forward(batch)`` returns ``(B, 2)``: the Chamfer reconstruction distance and
    D_KL(q(z | x) ‖ N(0, I)) per jet (Kingma & Welling, arXiv:1312.6114).
    """

    input_keys = ("particles", "jet", "mask")
    objectives = ("chamfer", "latent_kl")

    def __init__(
        self,
        condition_size: int,
        hidden: int = 64,
        global_size: int = 16,
        layers: int = 3,
        latent: int = 16,
        features: int = 3,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = EPiCNetwork(features, hidden, condition_size, hidden, global_size, layers)
        self.posterior = nn.Linear(global_size, 2 * latent)
        self.decoder = SetGenerator(condition_size, latent, 8, hidden, global_size, layers, features)

    @override
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        from heplearn.tasks import kl_divergence

        x, condition, mask = batch["particles"].float(), batch["jet"].float(), batch["mask"]
        mu, log_variance = self.posterior(self.encoder(x, condition, mask)[1]).chunk(2, -1)
        log_variance = log_variance.clamp(-10, 10)
        z = mu + torch.randn_like(mu) * (0.5 * log_variance).exp()
        reconstruction = self.decoder(z, condition, mask)
        return torch.stack([chamfer(reconstruction, x, mask), kl_divergence(mu, log_variance)], -1)

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None) -> torch.Tensor:
        """Clouds decoded from z ~ N(0, I)."""
        return self.decoder(torch.randn(len(condition), self.latent), condition, mask, slots)


class SetGAN(nn.Module):
    """The EPiC-GAN generator (the product network of the ``gan`` step; its discriminator lives in the step).

    ``forward(batch)`` generates one cloud for each jet of the batch (its condition and mask).
    """

    input_keys = ("jet", "mask")
    objectives = ("generator",)

    def __init__(
        self,
        condition_size: int,
        hidden: int = 64,
        global_size: int = 16,
        layers: int = 3,
        latent: int = 16,
        features: int = 3,
        weight_norm: int = 1,
    ) -> None:
        super().__init__()
        self.latent, self.condition_size = latent, condition_size
        self.generator = SetGenerator(condition_size, latent, 8, hidden, global_size, layers, features)
        if weight_norm:  # EPiC-GAN (arXiv:2301.08128) weight-normalises every layer of both networks
            apply_weight_norm(self.generator)

    @override
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        condition, mask = batch["jet"].float(), batch["mask"]
        return self.generator(torch.randn(len(condition), self.latent), condition, mask)

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None) -> torch.Tensor:
        """Clouds of fresh noise."""
        return self.generator(torch.randn(len(condition), self.latent), condition, mask, slots)


def apply_weight_norm(module: nn.Module) -> nn.Module:
    """Weight normalisation (Salimans & Kingma, arXiv:1602.07868) of every linear layer of ``module``."""
    for child in list(module.modules()):
        if isinstance(child, nn.Linear):
            nn.utils.parametrizations.weight_norm(child)
    return module


class Discriminator(nn.Module):
    """EPiC discriminator: a score per jet from its cloud and condition (weight-normalised, as EPiC-GAN's).

    ``attention`` and ``pair_bias``: self-attention blocks in its network, as ``EPiCNetwork``'s, so that
    it can see where the particles sit relative to each other (a jet's prongs), which the pooled
    global vector of the EPiC layers alone hardly can."""

    def __init__(
        self,
        condition_size: int,
        hidden: int = 64,
        global_size: int = 16,
        layers: int = 3,
        features: int = 3,
        weight_norm: bool = True,
        attention: int = 0,
        pair_bias: int = 0,
    ) -> None:
        super().__init__()
        self.network = EPiCNetwork(features, hidden, condition_size, hidden, global_size, layers, attention, pair_bias)
        self.head = nn.Linear(global_size, 1)
        if weight_norm:
            apply_weight_norm(self)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.network(x, condition, mask)[1]).squeeze(-1)


# -- the task, its loss terms and the GAN step -----------------------------------------------------------------------
class JetGeneration(Task):
    """A generator of jets: the raw outputs are per-jet training objectives (named ``objectives``)."""

    kind = "jet_generation"
    output_tensor = "objectives"
    default_loss = "flow_matching"

    def __init__(self, objectives: Sequence[str], terms: Sequence[LossTerm] = ()) -> None:
        super().__init__(len(objectives), terms)
        self.objectives = list(objectives)

    @override
    def target(self, batch: Batch) -> torch.Tensor:
        return batch["particles"]

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return outputs

    @property
    @override
    def output_names(self) -> list[str]:
        return list(self.objectives)

    @override
    def settings(self) -> dict[str, Any]:
        return {"objectives": self.objectives}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Mapping[str, Any]) -> Task:
        return cls(settings["objectives"])


TASKS[JetGeneration.kind] = JetGeneration


class _Objective(LossTermBase):
    """The weighted mean over jets of the model's per-jet objective of the same name."""

    tasks = (JetGeneration,)
    needs = "a jet-generation task (heplearn fastsim)"

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        objectives = getattr(task, "objectives", [])
        if self.name not in objectives:
            raise ConfigError(f"training.loss: {self.name} is not an objective of this model ({', '.join(objectives)})")
        return weighted_mean(outputs[:, objectives.index(self.name)].float(), batch["weight"])


class FlowMatchingLoss(_Objective):
    """Conditional flow matching: E_t,x₀,x₁ ‖v(x_t, t) − (x₁ − x₀)‖² (arXiv:2210.02747)."""

    name = "flow_matching"


class ChamferLoss(_Objective):
    """The VAE's reconstruction term: the Chamfer distance of input and decoded clouds."""

    name = "chamfer"


class LatentKL(_Objective):
    """The VAE's D_KL(q(z | x) ‖ N(0, I)); its weight is the β of a β-VAE."""

    name = "latent_kl"


for _term in (FlowMatchingLoss, ChamferLoss, LatentKL):
    register_loss_term(_term)


class GanSettings(StrictModel):
    """``training.step: {name: gan, ...}``: the discriminator's size, learning rate and updates per step."""

    hidden: int = 64
    layers: int = 3
    learning_rate: float | None = None
    discriminator_steps: int = 1
    weight_norm: bool = True
    ema: float | None = None  # the decay of a moving average of the generator's weights (its product)


class GanStep(StepStrategy):
    """EPiC-GAN training: discriminator and generator in alternation with least-squares losses.

    L_D = ½ E[(D(x) − 1)²] + ½ E[D(G(z))²] and L_G = ½ E[(D(G(z)) − 1)²] (Mao et al.,
    arXiv:1611.04076), as EPiC-GAN (arXiv:2301.08128) trains. ``loss`` is L_G, beside
    ``discriminator_loss``.
    """

    name = "gan"
    Settings = GanSettings

    def __init__(self, context: StepContext, settings: GanSettings) -> None:
        super().__init__()
        if not isinstance(context.model, SetGAN):
            raise ConfigError("training.step: gan trains a fastsim SetGAN generator")
        self.training, self.settings = context.training, settings
        self.generator = context.wrap(context.model)
        if settings.ema is not None and not 0.0 < settings.ema < 1.0:
            raise ConfigError(f"training.step.ema: the EMA decay must lie in (0, 1), got {settings.ema}")
        discriminator = Discriminator(
            context.model.condition_size, settings.hidden, 16, settings.layers, weight_norm=settings.weight_norm
        )
        self.discriminator = context.wrap(discriminator)
        discriminator_training = context.training.model_copy(
            update={"learning_rate": settings.learning_rate or context.training.learning_rate}
        )
        self.add_module("model", context.model, context.training, context.total_steps)
        self.add_module(
            "discriminator", discriminator, discriminator_training, context.total_steps * settings.discriminator_steps
        )
        if settings.ema is not None:
            self.modules["ema"] = copy.deepcopy(context.model).requires_grad_(False)

    @override
    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        real, condition, mask = batch["particles"].float(), batch["jet"].float(), batch["mask"]
        discriminator_loss = torch.zeros(())
        for _ in range(self.settings.discriminator_steps):
            with torch.no_grad(), autocast(self.training):
                fake = self.generator(batch)
            discriminator_loss = update_discriminator(
                self, self.discriminator, real, fake, condition, mask, self.training.gradient_clip
            )
        with autocast(self.training):
            fake = self.generator(batch)
        generator_loss = 0.5 * (self.discriminator(fake, condition, mask) - 1).square().mean()
        optimise(
            generator_loss,
            self.modules["model"],
            self.optimizers["model"],
            self.schedulers["model"],
            self.training.gradient_clip,
        )
        if self.settings.ema is not None:
            update_average(self.modules["ema"], self.modules["model"], self.settings.ema, step_index)
        return {"loss": float(generator_loss.detach()), "discriminator_loss": float(discriminator_loss.detach())}


register_step_strategy(GanStep)


def update_discriminator(
    strategy: StepStrategy,
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    condition: torch.Tensor,
    mask: torch.Tensor,
    gradient_clip: float | None,
) -> torch.Tensor:
    """One update of ``strategy``'s module ``discriminator`` (``discriminator``: it, as the trainer
    wraps it) on the least-squares loss ½ E[(D(real) − 1)²] + ½ E[D(fake)²] (Mao et al.
    arXiv:1611.04076), its gradients clipped at ``gradient_clip``; returns that loss."""
    loss = 0.5 * (
        (discriminator(real, condition, mask) - 1).square().mean()
        + discriminator(fake, condition, mask).square().mean()
    )
    optimise(
        loss,
        strategy.modules["discriminator"],
        strategy.optimizers["discriminator"],
        strategy.schedulers["discriminator"],
        gradient_clip,
    )
    return loss


@torch.no_grad()
def update_average(average: nn.Module, current: nn.Module, decay: float, step_index: int) -> None:
    """θ̄ ← d θ̄ + (1 − d) θ over every floating-point tensor of the state; the first steps average over
    fewer updates, d = min(decay, (1 + step) / (10 + step)), as the usual EMA warm-up."""
    decay = min(decay, (1.0 + step_index) / (10.0 + step_index))
    for mean, value in zip(average.state_dict().values(), current.state_dict().values(), strict=True):
        if mean.is_floating_point():
            mean.lerp_(value, 1.0 - decay)
        else:
            mean.copy_(value)


class EmaSettings(StrictModel):
    """``training.step: {name: ema, decay: ...}``: the decay of the weights' moving average."""

    decay: float = 0.999


class EmaStep(SingleNetworkStep):
    """The single-network step, plus an exponential moving average of the weights (Polyak averaging),
    θ̄ ← d θ̄ + (1 − d) θ after every step, as diffusion and flow-matching models are sampled
    (e.g. EPiC-FM, arXiv:2310.00049; Karras et al. arXiv:2312.02696 on why it matters). The average is
    the module ``ema``; ``train_fastsim`` keeps it as the generator's weights."""

    name = "ema"
    Settings = EmaSettings

    def __init__(self, context: StepContext, settings: EmaSettings) -> None:
        if not 0.0 < settings.decay < 1.0:
            raise ConfigError(f"training.step.decay: the EMA decay must lie in (0, 1), got {settings.decay}")
        super().__init__(context)
        self.decay = settings.decay
        average = copy.deepcopy(context.model)
        average.requires_grad_(False)
        self.modules["ema"] = average  # checkpointed with the run; no optimiser of its own

    @override
    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        figures = super().step(batch, step_index)
        update_average(self.modules["ema"], self.modules["model"], self.decay, step_index)
        return figures


register_step_strategy(EmaStep)


# -- training, saving, sampling --------------------------------------------------------------------------------------
@dataclass
class FastSim:
    """A trained generator with its scaling and hyper-parameters."""

    kind: str
    network: nn.Module = field(repr=False)
    scaling: CloudScaling
    hyperparameters: dict[str, int | str]
    _runtimes: dict[tuple[str, int], Any] = field(default_factory=dict, init=False, repr=False)

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """``fastsim.json`` and ``model.safetensors`` into ``run_dir`` (each written atomically)."""
        from safetensors.torch import save_file

        from heplearn.data.files import atomic_path, write_json

        run_dir = Path(run_dir)
        with atomic_path(run_dir / WEIGHTS_FILE) as temporary:
            save_file({k: v.contiguous() for k, v in self.network.state_dict().items()}, str(temporary))
        write_json(
            run_dir / FASTSIM_FILE,
            {"kind": self.kind, "hyperparameters": self.hyperparameters, "scaling": asdict(self.scaling)},
        )
        return run_dir

    def generate(
        self,
        condition: np.ndarray,
        mask: np.ndarray,
        steps: int = 25,
        batch_size: int = 256,
        solver: str = "midpoint",
        noise: np.ndarray | None = None,
        progress: bool = False,
        backend: str = "torch",
    ) -> np.ndarray:
        """Standardised clouds for ``condition`` and ``mask`` (the network alone, in batches; ``steps``,
        ``solver`` and the starting ``noise``, shaped like the clouds, are flow matching's; ``backend``:
        ``fastsim_onnx.BACKENDS``, flow matching's network in PyTorch or exported to onnxruntime, with
        float or int8 weights). Jets are
        batched in order of multiplicity and each batch is cut to its last real particle, so the
        network runs over the jets' particles rather than the padding (at 128 particles the jets hold
        63-79 on average: 1.6-2× fewer rows); the layers' 1/N sum scale keeps the full N, so every
        jet's function is the one of the padded input. Batches of a few hundred jets keep each
        layer's activations in the CPU cache: on one core 256 jets ran ≈ 1.3× faster than 2048.
        ``progress``: a progress bar over the batches."""
        from heplearn.memory import retain_freed_memory
        from heplearn.methods.fastsim_onnx import BACKENDS, onnx_velocity
        from heplearn.progress import progress_bar

        if isinstance(self.network, FlowMatchingJets):
            self.network.check_sampler(steps, solver)  # before any batch or progress bar
        if backend not in BACKENDS:
            raise ConfigError(f"fastsim: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        mask = np.asarray(mask, bool)
        velocity = None
        if backend != "torch":  # exported once per generator, backend and particle count, then kept
            key = (backend, mask.shape[1])
            if key not in self._runtimes:
                self._runtimes[key] = onnx_velocity(self.network, mask.shape[1], backend == "onnx-int8")
            velocity = self._runtimes[key]
        retain_freed_memory()  # the batches' buffers are reused, not faulted in again (1.1-1.3× on one core)
        self.network.eval()
        slots = mask.shape[1]
        result = np.zeros((*mask.shape, 3), np.float32)
        last = np.where(mask.any(1), slots - np.argmax(mask[:, ::-1], axis=1), 0)  # one past each jet's last particle
        order = np.argsort(last, kind="stable")
        starts = progress_bar(
            range(0, len(order), batch_size), desc="sampling jets", unit="batch", disable=not progress
        )
        with torch.inference_mode():
            for start in starts:
                index = order[start : start + batch_size]
                width = max(int(last[index].max()), 1)
                c = torch.from_numpy(np.ascontiguousarray(condition[index]))
                m = torch.from_numpy(np.ascontiguousarray(mask[index, :width]))
                if isinstance(self.network, FlowMatchingJets):
                    start_noise = None
                    if noise is not None:
                        start_noise = torch.from_numpy(np.ascontiguousarray(noise[index, :width], np.float32))
                    clouds = self.network.sample(c, m, steps, solver, slots=slots, noise=start_noise, network=velocity)
                else:
                    clouds = self.network.sample(c, m, slots=slots)  # type: ignore[operator]
                result[index, :width] = clouds.numpy()
        return result


def build_network(kind: str, condition_size: int, hyperparameters: Mapping[str, int | str]) -> nn.Module:
    """The untrained network of generator ``kind``."""
    if kind not in MODELS:
        raise ConfigError(f"fastsim: unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    cls = {"flow_matching": FlowMatchingJets, "vae": SetVAE, "gan": SetGAN}[kind]
    return cls(condition_size, **hyperparameters)


def default_training(
    kind: str,
    epochs: int = 30,
    batch_size: int = 128,
    learning_rate: float | None = None,
    ema: float | None = None,
) -> Any:
    """The training settings of each generator (``gan``: the ``gan`` step, Adam-like rates of EPiC-GAN;
    ``ema``: the decay of a moving average of the weights, the ``ema`` step, for flow matching and the VAE)."""
    from heplearn.run_config import LossTermConfig, StepConfig, TrainingConfig

    losses: dict[str, list[LossTermConfig] | Literal["auto"]] = {
        "flow_matching": [LossTermConfig(name="flow_matching")],
        "vae": [LossTermConfig(name="chamfer"), LossTermConfig(name="latent_kl", weight=0.01)],
        "gan": "auto",
    }
    loss = losses[kind]
    if kind == "gan":  # EPiC-GAN's recipe: both networks at 1e-4, the generator's average (if asked) kept
        step = StepConfig.model_validate({"name": "gan", "ema": ema})
    else:
        step = StepConfig.model_validate({"name": "ema", "decay": ema}) if ema else StepConfig()
    rate = learning_rate or (1e-4 if kind == "gan" else 1e-3)
    return TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=rate,
        weight_decay=1e-5,
        early_stopping_patience=None,
        loss=loss,
        step=step,
        gradient_clip=1.0 if kind != "gan" else 5.0,
    )


def _arrays(jets: JetClouds, scaling: CloudScaling) -> Any:
    from heplearn.data.jets import JetArrays

    unknown = sorted(set(jets.detector_names) - set(scaling.detectors))
    if unknown:
        raise DataError(
            f"fastsim: jets of the detector profile {unknown[0]!r}; the model knows {', '.join(scaling.detectors)}"
        )
    detector = np.asarray([scaling.detectors.index(name) for name in jets.detector_names])[jets.detector_index]
    condition = scaling.condition(jets.label, jets.jet_pt, jets.mask.sum(1), detector)
    return JetArrays(
        {"particles": scaling.standardise(jets.clouds, jets.mask), "jet": condition},
        jets.mask,
        jets.label.astype(np.int64),
        np.ones(len(jets), np.float32),
    )


def train_fastsim(
    train: JetClouds,
    kind: str = "flow_matching",
    *,
    val: JetClouds | None = None,
    hyperparameters: Mapping[str, int | str] | None = None,
    training: Any = None,
    run_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = False,
    init: FastSim | None = None,
) -> FastSim:
    """Train generator ``kind`` on ``train`` jets through the engine's ``fit``; save it to ``run_dir``.

    ``init``: continue training that generator (fine-tuning, e.g. more epochs at a lower rate): its
    network, weights and scaling are kept, and ``hyperparameters`` may only change how it trains
    (``TRAINING_HYPERPARAMETERS``), not its architecture."""
    if kind not in MODELS:
        raise ConfigError(f"fastsim: unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    training = training or default_training(kind)
    if init is None:
        hyper: dict[str, int | str] = {key: ARCHITECTURE_DEFAULTS[key] for key in ("hidden", "global_size", "layers")}
        hyper |= hyperparameters or {}
        scaling = CloudScaling.fit(train)
    else:
        hyper, scaling = initialised_hyperparameters(init, kind, train, hyperparameters or {}), init.scaling
    torch.manual_seed(seed)
    network = build_network(kind, scaling.condition_size, hyper)
    if init is not None:
        network.load_state_dict(init.network.state_dict())
    validation = None
    if val is not None and kind != "gan":  # a GAN has no held-out objective without its discriminator
        validation = _arrays(val, scaling)
    fit_generator(network, _arrays(train, scaling), train.class_names, training, validation, run_dir, seed, progress)
    model = FastSim(kind, network, scaling, hyper)
    if run_dir is not None:
        model.save(run_dir)
    return model


#: The architecture of a new generator where not asked otherwise (no attention blocks, no pair bias).
ARCHITECTURE_DEFAULTS: dict[str, int] = {"hidden": 64, "global_size": 16, "layers": 3, "attention": 0, "pair_bias": 0}

#: The file of a fine-tuning run that names the run it continued.
INIT_FILE = "init.json"

#: Hyper-parameters that say how a generator trains, not what it is: a fine-tuning run may change them.
TRAINING_HYPERPARAMETERS = ("ot_coupling", "time_sampling")


def initialised_hyperparameters(
    init: FastSim, kind: str, train: JetClouds, requested: Mapping[str, int | str]
) -> dict[str, int | str]:
    """The hyper-parameters of a run that continues ``init`` on ``train``: ``init``'s, with the
    ``requested`` training ones; a ConfigError for another kind, other classes or particles, a
    different architecture, or a one-step student (which ordinary flow matching would undo)."""
    if init.kind != kind:
        raise ConfigError(f"fastsim: the initial generator is a {init.kind}, not a {kind}")
    if list(train.class_names) != list(init.scaling.class_names) or train.mask.shape[1] != init.scaling.num_particles:
        raise ConfigError(
            f"fastsim: the initial generator was trained on {', '.join(init.scaling.class_names)} jets of "
            f"{init.scaling.num_particles} particles; these are {', '.join(train.class_names)} jets of "
            f"{train.mask.shape[1]}"
        )
    if list(train.detector_names) != list(init.scaling.detectors):
        raise ConfigError(
            f"fastsim: the initial generator was trained on the detector profiles {', '.join(init.scaling.detectors)}; "
            f"these jets have {', '.join(train.detector_names)}"
        )
    if init.hyperparameters.get("time_sampling") == "start":
        raise ConfigError("fastsim: the initial generator is a one-step student; train its teacher instead")
    conflicts = [
        f"{key} {value} (the initial generator's is {init.hyperparameters.get(key, ARCHITECTURE_DEFAULTS.get(key))})"
        for key, value in requested.items()
        if key not in TRAINING_HYPERPARAMETERS
        and init.hyperparameters.get(key, ARCHITECTURE_DEFAULTS.get(key)) != value
    ]
    if conflicts:
        raise ConfigError(f"fastsim: fine-tuning keeps the architecture; asked for {', '.join(conflicts)}")
    hyper = {key: value for key, value in init.hyperparameters.items() if key not in TRAINING_HYPERPARAMETERS}
    return {**hyper, **{key: requested[key] for key in TRAINING_HYPERPARAMETERS if key in requested}}


def fit_generator(
    network: nn.Module,
    train: Any,
    class_names: Sequence[str],
    training: Any,
    validation: Any = None,
    run_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> None:
    """Train ``network`` in place on ``train`` (``JetArrays``: the standardised ``particles``, the
    condition ``jet`` and whatever else the network reads) through the engine's ``fit``; with the
    ``ema`` step, the network ends holding the moving average of its weights."""
    from heplearn.data import InMemoryJets
    from heplearn.training.losses import TermContext, build_terms
    from heplearn.training.trainer import InMemorySource, fit

    task = JetGeneration(network.objectives)  # type: ignore[arg-type]
    if training.loss != "auto":
        task.terms = build_terms(training.loss, task, TermContext(training))
    source = InMemorySource(InMemoryJets(train, list(class_names), None), training.batch_size, True, seed)
    held_out = None
    if validation is not None:
        held_out = InMemorySource(InMemoryJets(validation, list(class_names), None), 1024, False, seed)
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    result = fit(
        network, task, source, held_out, training, run_dir=Path(run_dir) if run_dir else None, progress=progress
    )
    strategy = result.trainer.strategy
    if strategy is not None and "ema" in strategy.modules:  # the EMA step: its average is the generator
        network.load_state_dict(strategy.modules["ema"].state_dict())


def load_fastsim(run_dir: str | os.PathLike[str]) -> FastSim:
    """The generator saved in ``run_dir`` by ``train_fastsim``."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    if not (run_dir / FASTSIM_FILE).is_file() or not (run_dir / WEIGHTS_FILE).is_file():
        raise DataError(
            f"{run_dir}: not a fastsim run (no {FASTSIM_FILE} and {WEIGHTS_FILE}); train one with "
            "heplearn fastsim train"
        )
    info = json.loads((run_dir / FASTSIM_FILE).read_text())
    scaling = CloudScaling(**info["scaling"])
    network = build_network(info["kind"], scaling.condition_size, info["hyperparameters"])
    network.load_state_dict(load_file(str(run_dir / WEIGHTS_FILE)))
    network.eval()
    return FastSim(info["kind"], network, scaling, info["hyperparameters"])


def conserve_momentum(
    clouds: np.ndarray, mask: np.ndarray, jet_eta: np.ndarray, num_particles: int, mode: str = "full"
) -> np.ndarray:
    """Project generated jets that hold all their constituents onto momentum conservation.

    A jet of n < ``num_particles`` particles is complete, and its constituents sum to the jet:
    Σ z_i (cos Δφ_i, sin Δφ_i) = (1, 0) and Σ z_i sinh(η_J + Δη_i) = sinh η_J for massless
    particles, z = pT / pT_jet (E-scheme anti-kT jets; the generator's Pythia jets obey it to 1e-8).
    Networks only learn it approximately (the vector pT sum of generated 128-particle jets spread
    over 0.5–2). ``mode="scale"`` scales the cloud's z by 1 / |pT sum|, which fixes the magnitude;
    ``"full"`` also rotates the cloud in φ by the angle of its pT sum and shifts its Δη by the δ that
    solves A cosh δ + B sinh δ = sinh η_J (A, B: the z-weighted sums of sinh and cosh of η_J + Δη_i;
    a quadratic in e^δ with one positive root), so the direction is the jet's too. Either way the
    particles' relative angles and pT ratios are kept, so the jet mass / pT and the EFPs only see
    the scale. Truncated jets (n = ``num_particles``: their softer particles are missing) are
    returned unchanged, as is every padded slot.
    """
    if mode not in MOMENTUM_CONSERVATION:
        raise ConfigError(
            f"fastsim: unknown momentum conservation {mode!r}; choose one of {', '.join(MOMENTUM_CONSERVATION)}"
        )
    clouds = np.array(clouds, np.float64)
    mask = np.asarray(mask, bool)
    if mode == "none":
        return clouds.astype(np.float32)
    complete = mask.sum(1) < num_particles
    z = np.where(mask, clouds[..., 2], 0.0)
    phi = clouds[..., 1]
    vector = np.stack([(z * np.cos(phi)).sum(1), (z * np.sin(phi)).sum(1)], -1)
    size = np.linalg.norm(vector, axis=1)
    complete &= size > 0
    scale = np.where(complete, 1.0 / np.where(size > 0, size, 1.0), 1.0)
    clouds[..., 2] = np.where(mask, clouds[..., 2] * scale[:, None], clouds[..., 2])
    if mode == "scale":
        return clouds.astype(np.float32)
    angle = np.arctan2(vector[:, 1], vector[:, 0])
    clouds[..., 1] = np.where(mask & complete[:, None], phi - angle[:, None], phi)
    eta = np.asarray(jet_eta, np.float64)[:, None] + clouds[..., 0]
    z = np.where(mask, clouds[..., 2], 0.0)
    a, b = (z * np.sinh(eta)).sum(1), (z * np.cosh(eta)).sum(1)
    target = np.sinh(np.asarray(jet_eta, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        root = (target + np.sqrt(target**2 + b**2 - a**2)) / (a + b)
        shift = np.where(complete & (root > 0), np.log(np.where(root > 0, root, 1.0)), 0.0)
    clouds[..., 0] = np.where(mask, clouds[..., 0] + shift[:, None], clouds[..., 0])
    return clouds.astype(np.float32)


#: ``conserve_momentum``'s modes: nothing, the pT sum's magnitude, or magnitude and direction.
MOMENTUM_CONSERVATION = ("none", "scale", "full")


@dataclass
class SampledJets:
    """Generated jets of one or more classes, as clouds with their kinematics."""

    clouds: JetClouds
    jet_phi: np.ndarray


def sample_jets(
    model: FastSim,
    counts: Mapping[str, int],
    *,
    pt: Mapping[str, np.ndarray] | None = None,
    steps: int = 25,
    seed: int = 0,
    solver: str = "midpoint",
    momentum_conservation: str = "scale",
    progress: bool = False,
    detector: str | None = None,
    backend: str = "torch",
) -> SampledJets:
    """``counts[class]`` jets of each class; their pT from ``pt[class]`` (GeV, inside the training range)
    or drawn from the training pT distribution, their multiplicity from the training table. Jets that
    hold all their particles are projected onto momentum conservation: ``conserve_momentum`` with
    mode ``momentum_conservation`` (``scale``, the default: the pT sum's magnitude; ``full``;
    ``none``); ``progress``: a progress bar over the network's batches; ``detector``: the detector
    profile of the jets, which a model trained on several needs (``CloudScaling.resolve_detector``);
    ``backend``: ``FastSim.generate``'s."""
    scaling = model.scaling
    if momentum_conservation not in MOMENTUM_CONSERVATION:
        raise ConfigError(
            f"fastsim: unknown momentum conservation {momentum_conservation!r}; "
            f"choose one of {', '.join(MOMENTUM_CONSERVATION)}"
        )
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    draws = draw_conditions(scaling, counts, pt, rng, detector)
    generated = model.generate(draws.condition, draws.mask, steps, solver=solver, progress=progress, backend=backend)
    clouds = scaling.unstandardise(generated, draws.mask)
    clouds = conserve_momentum(clouds, draws.mask, draws.jet_eta, scaling.num_particles, momentum_conservation)
    # pT order, as the generator stores particles
    order_in_jet = np.argsort(np.where(draws.mask, -clouds[..., 2], np.inf), axis=1, kind="stable")
    clouds = np.take_along_axis(clouds, order_in_jet[..., None], 1)
    jets = JetClouds(
        clouds,
        draws.mask,
        draws.label,
        list(scaling.class_names),
        draws.jet_pt,
        draws.jet_eta,
        np.zeros(len(draws.label), np.int64),
        [draws.detector],
    )
    return SampledJets(jets, rng.uniform(-np.pi, np.pi, len(draws.label)))


@dataclass
class ConditionDraws:
    """What a sample of jets is conditioned on: class, pT, η and multiplicity (as the mask), and the
    network's condition vector built from them."""

    label: np.ndarray
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    mask: np.ndarray
    condition: np.ndarray
    detector: str = PARTICLE_LEVEL


def draw_conditions(
    scaling: CloudScaling,
    counts: Mapping[str, int],
    pt: Mapping[str, np.ndarray] | None,
    rng: np.random.Generator,
    detector: str | None = None,
) -> ConditionDraws:
    """``counts[class]`` jets' conditions: pT from ``pt[class]`` (checked against the training range) or
    drawn from the training pT distribution, η from the training η distribution, the multiplicity
    from the training table of the class and pT bin; all with the detector profile ``detector``
    (``CloudScaling.resolve_detector``: needed by a model of several profiles)."""
    detector = scaling.resolve_detector(detector)
    labels, pts, etas = [], [], []
    for name, count in counts.items():
        index = scaling.class_index(name)
        key = scaling.table_key(name, detector)
        if count < 0:
            raise ConfigError(f"fastsim: a negative number of {name} jets ({count}) requested")
        low, high = scaling.pt_range(name, detector)
        if pt is not None and name in pt:
            values = np.asarray(pt[name], np.float64)
            if len(values) != count:
                raise ConfigError(f"fastsim: {len(values)} pT values for {count} {name} jets")
            outside = (values < low) | (values > high)
            if outside.any():
                raise ConfigError(
                    f"fastsim: conditioning pT {values[outside][0]:.4g} GeV is outside the training "
                    f"range [{low:.4g}, {high:.4g}] GeV of class {name!r}"
                )
        else:
            values = np.interp(rng.uniform(0, 1, count), np.linspace(0, 1, 101), scaling.pt_quantiles[key])
        labels.append(np.full(count, index))
        pts.append(values)
        etas.append(np.interp(rng.uniform(0, 1, count), np.linspace(0, 1, 101), scaling.eta_quantiles[key]))
    label, jet_pt = np.concatenate(labels).astype(np.int64), np.concatenate(pts)
    multiplicity = (
        np.concatenate(
            [
                scaling.sample_multiplicity(scaling.class_names[index], jet_pt[label == index], rng, detector)
                for index in dict.fromkeys(label.tolist())
            ]
        )
        if len(label)
        else np.zeros(0, int)
    )
    # sample_multiplicity went class by class in order of appearance: restore the jets' order
    order = (
        np.concatenate([np.flatnonzero(label == index) for index in dict.fromkeys(label.tolist())])
        if len(label)
        else np.zeros(0, int)
    )
    counts_per_jet = np.empty(len(label), np.int64)
    counts_per_jet[order] = multiplicity
    mask = np.arange(scaling.num_particles)[None, :] < counts_per_jet[:, None]
    profile = np.full(len(label), scaling.detectors.index(detector), np.int64)
    condition = scaling.condition(label, jet_pt, counts_per_jet, profile)
    return ConditionDraws(label, jet_pt, np.concatenate(etas), mask, condition, detector)


def to_jetclass(sampled: SampledJets, radius: float = JET_RADIUS, *, substructure: bool = True) -> ak.Array:
    """The jets as a JetClass-schema record array: ``part_px, part_py, part_pz, part_energy,
    part_deta, part_dphi``, ``jet_pt, jet_eta, jet_phi, jet_energy, jet_mass, jet_nparticles,
    jet_sdmass, jet_tau1..4`` and one-hot ``label_*`` (massless particles; jet pT, η, φ are the
    conditioning values, mass and energy those of the generated constituents). ``substructure=False``
    leaves out ``jet_sdmass`` and ``jet_tau1..4``, FastJet's part of the cost (≈ 0.35 ms a jet)."""
    from heplearn.generate.substructure import substructure_fields

    jets = sampled.clouds
    mask, counts = jets.mask, jets.mask.sum(1)
    pt = jets.clouds[..., 2] * jets.jet_pt[:, None]
    eta = jets.jet_eta[:, None] + jets.clouds[..., 0]
    phi = np.mod(sampled.jet_phi[:, None] + jets.clouds[..., 1] + np.pi, 2 * np.pi) - np.pi
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = pt * np.cosh(eta)

    def jagged(values: np.ndarray) -> ak.Array:
        return ak.unflatten(values[mask].astype(np.float32), counts)

    sums = [np.where(mask, values, 0).sum(1) for values in (px, py, pz, energy)]
    mass = np.sqrt(np.clip(sums[3] ** 2 - sums[0] ** 2 - sums[1] ** 2 - sums[2] ** 2, 0, None))
    constituents = ak.zip({"px": jagged(px), "py": jagged(py), "pz": jagged(pz), "E": jagged(energy)})
    groomed = substructure_fields(constituents, radius) if len(jets) and substructure else {}
    fields: dict[str, Any] = {
        "part_px": jagged(px),
        "part_py": jagged(py),
        "part_pz": jagged(pz),
        "part_energy": jagged(energy),
        "part_deta": jagged(jets.clouds[..., 0]),
        "part_dphi": jagged(jets.clouds[..., 1]),
        "jet_pt": jets.jet_pt.astype(np.float32),
        "jet_eta": jets.jet_eta.astype(np.float32),
        "jet_phi": sampled.jet_phi.astype(np.float32),
        "jet_energy": np.sqrt(mass**2 + (jets.jet_pt * np.cosh(jets.jet_eta)) ** 2).astype(np.float32),
        "jet_mass": mass.astype(np.float32),
        "jet_nparticles": counts.astype(np.int64),
        **groomed,
    }
    for index, name in enumerate(jets.class_names):
        fields[f"label_{name}"] = (jets.label == index).astype(np.int64)
    return ak.zip(fields, depth_limit=1)


def write_jets(
    sampled: SampledJets,
    path: str | os.PathLike[str],
    provenance: Mapping[str, Any] | None = None,
    *,
    substructure: bool = True,
) -> Path:
    """Write the jets in the JetClass schema (format from the suffix), atomically; ``substructure=False``
    without the FastJet soft-drop mass and τ_N. The provenance names the jets' detector profile, so
    that ``load_clouds`` reads it back."""
    from heplearn.data import io

    detector = ", ".join(sampled.clouds.detector_names)
    return io.write(
        to_jetclass(sampled, substructure=substructure),
        path,
        {"generator": "heplearn fastsim", "detector": detector, **(provenance or {})},
    )


def evaluate_generated(
    reference: JetClouds,
    generated: Mapping[str, JetClouds],
    output_dir: str | os.PathLike[str],
    *,
    classifier_epochs: int = 10,
    seed: int = 0,
    progress: bool = False,
    classifier: str = "pfn",
) -> dict[str, Any]:
    """JetNet's metrics of each generated sample against the reference, class by class (and the W1
    and medians of τ21, τ32: ``substructure_metrics``), with the physics plots (``<class>.png``)
    and ``metrics.json`` in ``output_dir``; ``classifier`` is the network of the classifier test
    (``pfn`` or ``particlenet``)."""
    from heplearn.data.files import write_json
    from heplearn.methods.fastsim_metrics import (
        CLASSIFIERS,
        generation_metrics,
        jet_observables,
        plot_comparison,
        substructure_metrics,
    )

    if classifier not in CLASSIFIERS:  # before any metric is computed
        raise ConfigError(
            f"fastsim evaluate: unknown classifier {classifier!r}; choose one of {', '.join(CLASSIFIERS)}"
        )
    output_dir = Path(output_dir)
    results: dict[str, Any] = {
        "classes": {},
        "particles_per_jet": reference.clouds.shape[1],
        "classifier": classifier,
    }
    figures = []
    for name in reference.class_names:
        ref = reference.of_class(name)
        ref_observables = jet_observables(ref.clouds, ref.mask, ref.jet_pt)
        rows, observables = {}, {}
        for model, jets in generated.items():
            if name not in jets.class_names or not (jets.label == jets.class_names.index(name)).any():
                continue
            gen = jets.of_class(name)
            rows[model] = generation_metrics(
                (ref.clouds, ref.mask),
                (gen.clouds, gen.mask),
                classifier_epochs=classifier_epochs,
                seed=seed,
                progress=progress,
                classifier=classifier,
            )
            observables[model] = jet_observables(gen.clouds, gen.mask, gen.jet_pt)
            rows[model].update(substructure_metrics(ref_observables, observables[model]))
        if not rows:
            continue
        results["classes"][name] = rows
        title = f"{name} jets, {ref.clouds.shape[1]} particles"
        figures.append(plot_comparison(ref_observables, observables, output_dir / f"{name}.png", title=title))
    if not results["classes"]:
        raise DataError(
            f"fastsim evaluate: no generated jets of the reference's classes ({', '.join(reference.class_names)})"
        )
    results["figures"] = [str(path) for path in figures]
    write_json(output_dir / "metrics.json", results)
    return results
