"""Systematic-aware training: a network whose binned output minimises the expected uncertainty on
the parameter of interest, nuisances profiled (INFERNO, de Castro & Dorigo, arXiv:1806.04743; the
same Hessian loss as neos, Simpson & Heinrich, arXiv:2203.05570, and CMS SANNT, arXiv:2003.07186).

The loss term ``inferno`` (a term of the ``summary_statistic`` task, whose network has one output
per bin) is the expected variance of the signal yield s from the binned Asimov likelihood. A run
config trains it like any task (``heplearn train``): ``data.labels.type: summary_statistic`` (the
signal first), ``training.bins`` outputs, the up/down samples of each nuisance in ``data.variations``
and the term's settings (yields, temperature, one nuisance per variation) in ``training.loss``::

    data:
      labels: {type: summary_statistic, classes: [label_top, label_qcd]}
      variations:
        fsr: {up: {train: fsr_up/train.parquet, val: fsr_up/val.parquet}, down: {...}}
    training:
      bins: 10
      loss: [{name: inferno, signal_yield: 150, background_yield: 3000, temperature: 0.1,
              nuisances: [{name: fsr, step: 1.0, constraint: 1.0}]}]

The loss, step by step:

1. soft histogram: each event falls in bin i with weight softmax(f(x)/τ)_i (paper eq. 6), so the
   signal and background templates ŝ_i, b̂_i are differentiable in the network's weights;
2. nuisances are up/down templates: the events of a variation carry its code in an observer
   (``variation``: 0 nominal, +k the up variation of nuisance k, −k its down one). A template at
   nuisance value θ_k is the quadratic interpolation through (down, nominal, up) at θ_k = −δ_k, 0,
   +δ_k (``int_quad_lin`` of paper-inferno's ``template_model.py`` inside ±δ). For a nuisance that
   shifts the inputs (the synthetic problem's r and λ) the up/down templates are the same events
   with shifted inputs, and the interpolation's slope is the central difference of the shift;
3. expected counts ν_i(s, θ, b) = s·ŝ_i(θ) + b·b̂_i(θ), each template normalised to unit sum;
4. the Asimov negative log-likelihood Σ_i [ν_i(p) − n_i log ν_i(p)] with n = ν(p₀), plus
   Gaussian constraints (θ_k/σ_k)²/2 and ((b − b₀)/σ_b)²/2; its Hessian in p = (s, θ…, b) by
   ``torch.autograd.functional.hessian`` (differentiable: ``create_graph``), inverted: the loss is
   [H⁻¹]_ss, the variance of s with every other parameter profiled (paper eq. 7). n stays attached
   to the network's graph (the paper's stop-gradient applies only while taking the Hessian).

For evaluation, ``binned_uncertainty`` computes the same σ(s) from hard bins (the argmax of the
network, or any binned score: a cross-entropy classifier's output in uniform bins).

The synthetic 3-D problem of the paper (section 5), as its code (``synthetic_3D_example.py``)
defines it: background N((2 + r, 0), diag(5, 9)) × Exp(λ) with r = 0, λ = 3 nominal; signal
N((0, 0), I) × Exp(2); s = 50, b = 1000; exponentials by rate. ``fisher_bound`` integrates the
Fisher information of the unbinned extended likelihood: the lowest σ(s) any summary statistic can
reach on benchmarks B0–B4 (``BENCHMARKS``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic
import torch
from typing_extensions import override

from heplearn.config import StrictModel
from heplearn.data.config import VARIATION_OBSERVER
from heplearn.data.jets import observer_key
from heplearn.errors import ConfigError, DataError, FitError
from heplearn.tasks import Batch, Task
from heplearn.training.losses import LossTermBase, TermContext

#: the synthetic problem's nominal background exponential rate (paper section 5)
NOMINAL_RATE = 3.0


# -- the differentiable histogram and the Asimov Hessian


def soft_memberships(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per event, its weight in each bin: softmax(logits/τ) (INFERNO eq. 6); τ = 0: the argmax bin."""
    if temperature < 0:
        raise ValueError(f"soft_memberships: temperature {temperature} < 0")
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / temperature, dim=-1)


def soft_histogram(logits: torch.Tensor, temperature: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The (weighted) soft counts per bin of events with network outputs ``logits`` (N, bins)."""
    memberships = soft_memberships(logits, temperature)
    if weight is not None:
        memberships = memberships * weight[:, None]
    return memberships.sum(0)


@dataclass(frozen=True)
class Nuisance:
    """A nuisance with up/down templates at ±``step`` (in its own units) from nominal; ``constraint``
    is the σ of its Gaussian constraint, ``None`` for a free one."""

    name: str
    step: float
    constraint: float | None = None


@dataclass(frozen=True)
class Templates:
    """Unit-normalised templates (bins,) of one sample: nominal, and up/down (nuisances, bins)."""

    nominal: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor

    def at(self, offsets: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """The template at nuisance offsets θ: the quadratic through (down, nominal, up) at (−δ, 0, +δ)."""
        alpha = (offsets / steps)[:, None]
        slope = (self.up - self.down) / 2
        curvature = (self.up + self.down) / 2 - self.nominal
        return self.nominal + (alpha * slope + alpha**2 * curvature).sum(0)


def templates(
    memberships: torch.Tensor, weight: torch.Tensor, variation: torch.Tensor, nuisances: int, what: str
) -> Templates:
    """A sample's templates from its events' bin memberships and variation codes (0, ±k).

    A nuisance without up/down events in the sample leaves it unchanged (its templates are the
    nominal one): a background-only systematic needs no signal variations.
    """

    def shape(selected: torch.Tensor) -> torch.Tensor:
        counts = (memberships[selected] * weight[selected, None]).sum(0)
        return counts / counts.sum()

    nominal_events = variation == 0
    if not bool(nominal_events.any()):
        raise DataError(f"inferno: no nominal {what} events in the batch")
    nominal = shape(nominal_events)
    up, down = [], []
    for k in range(1, nuisances + 1):
        up_events, down_events = variation == k, variation == -k
        if bool(up_events.any()) != bool(down_events.any()):
            raise DataError(f"inferno: the {what} events have only one of the up/down variations of nuisance {k}")
        up.append(shape(up_events) if bool(up_events.any()) else nominal)
        down.append(shape(down_events) if bool(down_events.any()) else nominal)
    empty = nominal.new_zeros((0, len(nominal)))
    return Templates(nominal, torch.stack(up) if up else empty, torch.stack(down) if down else empty)


@dataclass(frozen=True)
class AsimovModel:
    """Expected counts ν(s, θ, b) = s·ŝ(θ) + b·b̂(θ) and their Asimov NLL (module doc, steps 3–4).

    ``background_uncertainty``: σ_b of a Gaussian-constrained background yield (a parameter of the
    fit), ``None`` to keep b fixed at ``background_yield``.
    """

    signal: Templates
    background: Templates
    nuisances: Sequence[Nuisance]
    signal_yield: float
    background_yield: float
    background_uncertainty: float | None = None

    def nominal_parameters(self) -> torch.Tensor:
        """p₀ = (s₀, 0 for each nuisance offset, b₀ if b is a parameter)."""
        values = [self.signal_yield, *[0.0] * len(self.nuisances)]
        if self.background_uncertainty is not None:
            values.append(self.background_yield)
        return torch.tensor(values, dtype=self.signal.nominal.dtype)

    def expected(self, parameters: torch.Tensor) -> torch.Tensor:
        """ν_i at parameters p = (s, θ…, [b])."""
        steps = torch.tensor([n.step for n in self.nuisances], dtype=parameters.dtype)
        offsets = parameters[1 : 1 + len(self.nuisances)]
        b = parameters[-1] if self.background_uncertainty is not None else self.background_yield
        return parameters[0] * self.signal.at(offsets, steps) + b * self.background.at(offsets, steps)

    def nll(self, parameters: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Poisson NLL of ``observed`` counts (constants dropped) plus the Gaussian constraints."""
        expected = self.expected(parameters).clamp_min(1e-9)
        value = (expected - observed * torch.log(expected)).sum()
        for index, nuisance in enumerate(self.nuisances, start=1):
            if nuisance.constraint is not None:
                value = value + 0.5 * (parameters[index] / nuisance.constraint) ** 2
        if self.background_uncertainty is not None:
            value = value + 0.5 * ((parameters[-1] - self.background_yield) / self.background_uncertainty) ** 2
        return value

    def covariance(self, create_graph: bool = True) -> torch.Tensor:
        """H⁻¹ of the Asimov NLL at p₀: the expected covariance of every parameter (profiled).

        Differentiable in the templates (``create_graph``), so a network trains through it; without
        ``create_graph`` (validation) a plain number.
        """
        nominal = self.nominal_parameters()
        observed = self.expected(nominal)  # the Asimov data: attached to the network's graph
        hessian = torch.autograd.functional.hessian(lambda p: self.nll(p, observed), nominal, create_graph=create_graph)
        return torch.linalg.inv(hessian)

    def poi_variance(self, create_graph: bool = True) -> torch.Tensor:
        """[H⁻¹]_ss: the expected variance of the signal yield, nuisances profiled (INFERNO eq. 7)."""
        return self.covariance(create_graph)[0, 0]


# -- the task and the loss term


class SummaryStatistic(Task):
    """A network with one output per bin of a learned summary statistic (INFERNO's network): the
    softmax gives each event's bin memberships; its label says signal (``signal_index``) or not."""

    kind = "summary_statistic"
    output_tensor = "bin_probabilities"
    default_loss = "inferno"

    def __init__(
        self, bins: int, terms: Sequence[Any] = (), signal_index: int = 0, class_names: Sequence[str] = ()
    ) -> None:
        super().__init__(bins, terms)
        self.signal_index = signal_index
        self.class_names = list(class_names)  # the labels' classes (a run's), for templates per class

    @override
    def target(self, batch: Batch) -> torch.Tensor:
        return batch["label"]

    @override
    def postprocess(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.softmax(outputs.float(), dim=-1)

    def score(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The expected bin index over ``bins − 1``, in [0, 1] (differentiable)."""
        centres = torch.arange(self.num_outputs, dtype=torch.float32) / max(self.num_outputs - 1, 1)
        return self.postprocess(outputs, batch) @ centres

    @property
    @override
    def output_names(self) -> list[str]:
        return [f"bin_{index}" for index in range(self.num_outputs)]

    @override
    def settings(self) -> dict[str, Any]:
        return {"signal_index": self.signal_index, "class_names": self.class_names}

    @classmethod
    @override
    def from_settings(cls, num_outputs: int, settings: Any) -> Task:
        return cls(
            num_outputs, signal_index=int(settings.get("signal_index", 0)), class_names=settings.get("class_names", ())
        )


class NuisanceSettings(StrictModel):
    """One nuisance of ``inferno``: its name, the offset ``step`` of its up/down events, its constraint."""

    name: str
    step: float = pydantic.Field(gt=0)
    constraint: float | None = pydantic.Field(default=None, gt=0)


class InfernoSettings(StrictModel):
    """``inferno``'s settings: yields, temperature, nuisances, the observer carrying variation codes."""

    signal_yield: float = pydantic.Field(default=50.0, gt=0)
    background_yield: float = pydantic.Field(default=1000.0, gt=0)
    background_uncertainty: float | None = pydantic.Field(default=None, gt=0)
    temperature: float = pydantic.Field(default=0.1, gt=0)
    nuisances: list[NuisanceSettings] = []
    variation_observer: str = "variation"


def asimov_model(
    logits: torch.Tensor, batch: Batch, signal_index: int, settings: InfernoSettings, temperature: float
) -> AsimovModel:
    """The Asimov model of a batch's outputs: signal and background templates, the nuisances."""
    nuisances = [Nuisance(n.name, n.step, n.constraint) for n in settings.nuisances]
    key = observer_key(settings.variation_observer)
    if nuisances and key not in batch:
        raise ConfigError(
            f"training.loss: inferno reads the variation codes from the observer "
            f"{settings.variation_observer!r}; add it to the batch (data.observers)"
        )
    variation = batch[key].long() if key in batch else torch.zeros(len(logits), dtype=torch.long)
    if bool((variation.abs() > len(nuisances)).any()):
        raise DataError(f"inferno: variation codes up to ±{int(variation.abs().max())} for {len(nuisances)} nuisances")
    memberships = soft_memberships(logits.double(), temperature)
    weight = batch["weight"].double()
    signal = batch["label"] == signal_index
    return AsimovModel(
        templates(memberships[signal], weight[signal], variation[signal], len(nuisances), "signal"),
        templates(memberships[~signal], weight[~signal], variation[~signal], len(nuisances), "background"),
        nuisances,
        settings.signal_yield,
        settings.background_yield,
        settings.background_uncertainty,
    )


class InfernoTerm(LossTermBase):
    """The expected variance of the signal yield, nuisances profiled (``inferno``; module doc)."""

    name = "inferno"
    tasks = (SummaryStatistic,)
    needs = "the summary_statistic task (heplearn.methods.inferno.SummaryStatistic)"
    Settings = InfernoSettings
    settings: InfernoSettings

    def __init__(self, weight: float, settings: Any, task: Task, context: TermContext) -> None:
        super().__init__(weight, settings, task, context)
        self.signal_index = getattr(task, "signal_index", 0)
        self.codes = variation_codes(settings, context.data)

    @override
    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        if self.codes is not None:  # the data's variation codes, in the order of the nuisances
            key = observer_key(self.settings.variation_observer)
            batch = {**batch, key: self.codes[batch[key].long() + len(self.codes) // 2]}
        model = asimov_model(outputs, batch, self.signal_index, self.settings, self.settings.temperature)
        return model.poi_variance(create_graph=outputs.requires_grad).float()


def variation_codes(settings: InfernoSettings, data: Any) -> torch.Tensor | None:
    """For a run config with ``data.variations``: the nuisance code of each data code (index: data code
    + number of variations), the nuisances matched to the variations by name; ``None`` without a
    data config (in-memory training, the codes are the nuisances' own)."""
    if data is None:
        return None
    names = [nuisance.name for nuisance in settings.nuisances]
    variations = list(data.variations)
    if not variations:
        if names and settings.variation_observer not in data.observers:
            raise ConfigError(
                f"training.loss: inferno's nuisances ({', '.join(names)}) need their up/down samples: "
                "give them in data.variations (or their codes in an observer, variation_observer)"
            )
        return None
    if settings.variation_observer != VARIATION_OBSERVER:
        raise ConfigError(
            f"training.loss: inferno's variation_observer is {settings.variation_observer!r}, but the "
            f"jets of data.variations carry their codes in {VARIATION_OBSERVER!r}"
        )
    unknown = [name for name in names if name not in variations]
    missing = [name for name in variations if name not in names]
    if unknown or missing:
        raise ConfigError(
            f"training.loss: inferno's nuisances ({', '.join(names) or 'none'}) must be the "
            f"data.variations ({', '.join(variations)}), one nuisance (name, step, constraint) each"
        )
    codes = torch.zeros(2 * len(variations) + 1, dtype=torch.long)
    for index, name in enumerate(variations, start=1):
        codes[len(variations) + index] = names.index(name) + 1
        codes[len(variations) - index] = -(names.index(name) + 1)
    return codes


def binned_uncertainty(
    bin_index: np.ndarray,
    label: np.ndarray,
    variation: np.ndarray,
    bins: int,
    settings: InfernoSettings,
    weight: np.ndarray | None = None,
    signal_index: int = 0,
) -> float:
    """σ(s) from hard bins (evaluation): each event's ``bin_index`` in [0, bins), its label and
    variation code; the same Asimov Hessian as the loss, on counts instead of soft counts."""
    bin_index = np.asarray(bin_index)
    if bin_index.min() < 0 or bin_index.max() >= bins:
        raise DataError(f"binned_uncertainty: bin indices outside [0, {bins})")
    filled = np.unique(bin_index)  # bins no event (of any variation) falls in carry no information
    logits = torch.nn.functional.one_hot(torch.as_tensor(np.searchsorted(filled, bin_index)), len(filled)).double()
    batch = {
        "label": torch.as_tensor(label),
        "weight": torch.as_tensor(np.ones(len(label)) if weight is None else weight),
        observer_key(settings.variation_observer): torch.as_tensor(variation),
    }
    model = asimov_model(logits, batch, signal_index, settings, temperature=0.0)
    empty = model.expected(model.nominal_parameters()) <= 0
    if bool(empty.any()):
        raise FitError(
            f"binned_uncertainty: bins {filled[empty.numpy()].tolist()} have varied events but no "
            "nominal ones; use fewer bins"
        )
    variance = float(model.poi_variance().detach())
    if not variance > 0:
        raise FitError(f"binned_uncertainty: the Hessian is not positive definite (variance {variance})")
    return math.sqrt(variance)


# -- the synthetic 3-D problem (paper section 5)

#: the paper's benchmarks: which nuisances are free (None) or constrained (σ), and b's constraint
BENCHMARKS: dict[str, dict[str, Any]] = {
    "B0": {"nuisances": {}, "background_uncertainty": None},
    "B1": {"nuisances": {"r": None}, "background_uncertainty": None},
    "B2": {"nuisances": {"r": None, "lambda": None}, "background_uncertainty": None},
    "B3": {"nuisances": {"r": 0.4, "lambda": 1.0}, "background_uncertainty": None},
    "B4": {"nuisances": {"r": 0.4, "lambda": 1.0}, "background_uncertainty": 100.0},
}

#: the up/down offsets of the synthetic nuisances' variations (r: shift of x0; λ: the x2 rate)
VARIATION_STEPS = {"r": 0.2, "lambda": 0.5}


def benchmark_settings(
    benchmark: str, temperature: float = 0.1, steps: dict[str, float] | None = None
) -> InfernoSettings:
    """``inferno``'s settings for a benchmark of the synthetic problem (s = 50, b = 1000)."""
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"benchmark {benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
    spec, steps = BENCHMARKS[benchmark], steps or VARIATION_STEPS
    nuisances = [
        NuisanceSettings(name=name, step=steps[name], constraint=sigma) for name, sigma in spec["nuisances"].items()
    ]
    return InfernoSettings(
        signal_yield=50.0,
        background_yield=1000.0,
        temperature=temperature,
        background_uncertainty=spec["background_uncertainty"],
        nuisances=nuisances,
    )


def synthetic_3d(
    n_signal: int, n_background: int, rng: np.random.Generator, r: float = 0.0, rate: float = NOMINAL_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """Events (N, 3) of the problem and their labels (0 signal, 1 background: heplearn's signal is class 0),
    the background generated at (r, λ = ``rate``)."""
    signal = np.column_stack([rng.normal(0.0, 1.0, (n_signal, 2)), rng.exponential(1 / 2.0, n_signal)])
    background = np.column_stack(
        [
            rng.normal(2.0 + r, math.sqrt(5.0), n_background),
            rng.normal(0.0, 3.0, n_background),
            rng.exponential(1 / rate, n_background),
        ]
    )
    events = np.concatenate([signal, background]).astype(np.float32)
    return events, np.repeat(np.array([0, 1]), [n_signal, n_background])


def shift_background(events: np.ndarray, r: float = 0.0, rate: float = NOMINAL_RATE) -> np.ndarray:
    """Nominal background events moved to (r, λ): x0 + r and x2·λ₀/λ (paper section 5)."""
    moved = events.copy()
    moved[:, 0] += r
    moved[:, 2] *= NOMINAL_RATE / rate
    return moved


def with_variations(
    events: np.ndarray, label: np.ndarray, nuisances: Sequence[NuisanceSettings], signal_index: int = 0
) -> dict[str, np.ndarray]:
    """The events plus, per nuisance k, the background moved up (code +k) and down (−k):
    ``features``, ``label``, ``variation`` and ``event`` (the index of the nominal event a row comes from)."""
    background = np.flatnonzero(label != signal_index)
    rows = [events]
    labels, codes, origin = [label], [np.zeros(len(label), dtype=np.int64)], [np.arange(len(label))]
    for k, nuisance in enumerate(nuisances, start=1):
        if nuisance.name not in VARIATION_STEPS:
            raise ConfigError(f"nuisance {nuisance.name!r}: the synthetic problem has r and lambda")
        for sign in (1, -1):
            offset = sign * nuisance.step
            moved = (
                shift_background(events[background], r=offset)
                if nuisance.name == "r"
                else shift_background(events[background], rate=NOMINAL_RATE + offset)
            )
            rows.append(moved)
            labels.append(label[background])
            codes.append(np.full(len(background), sign * k, dtype=np.int64))
            origin.append(background)
    return {
        "features": np.concatenate(rows),
        "label": np.concatenate(labels),
        "variation": np.concatenate(codes),
        "event": np.concatenate(origin),
    }


@dataclass
class GroupedBatches:
    """A ``BatchSource`` whose batches keep every variation of an event together (their finite
    differences then see the same events), shuffled by event each epoch. ``rows`` holds the
    ``with_variations`` arrays; the batch has ``jet``, ``label``, ``weight`` and the variation observer."""

    rows: dict[str, np.ndarray]
    events_per_batch: int
    seed: int = 0
    shuffle: bool = True
    observer: str = "variation"

    def __post_init__(self) -> None:
        order = np.argsort(self.rows["event"], kind="stable")
        self._order = order
        counts = np.bincount(self.rows["event"])
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._events = len(counts)

    def batches_per_epoch(self) -> int:
        """Batches in one pass over the events."""
        return math.ceil(self._events / self.events_per_batch)

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of epoch ``epoch`` (events in a new order each epoch, seeded by (seed, epoch))."""
        events = (
            np.random.default_rng([self.seed, epoch]).permutation(self._events)
            if self.shuffle
            else np.arange(self._events)
        )
        for first in range(0, self._events, self.events_per_batch):
            chosen = events[first : first + self.events_per_batch]
            starts, stops = self._starts[chosen], self._starts[chosen + 1]
            index = self._order[np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])]
            yield {
                "jet": torch.from_numpy(self.rows["features"][index]),
                "label": torch.from_numpy(self.rows["label"][index]),
                "weight": torch.ones(len(index)),
                observer_key(self.observer): torch.from_numpy(self.rows["variation"][index]),
            }


def network(outputs: int, seed: int, hidden: tuple[int, ...] = (100, 100)) -> torch.nn.Module:
    """The paper's network on the three features: dense ReLU layers (2 × 100), ``outputs`` logits."""
    from heplearn.models.mlp import JetMLP

    torch.manual_seed(seed)
    return JetMLP(outputs, {"jet": 3}, hidden=hidden, dropout=0.0, batch_norm=False)


def train_inferno(
    rows: dict[str, np.ndarray],
    settings: InfernoSettings,
    *,
    bins: int = 10,
    epochs: int = 20,
    learning_rate: float = 1e-3,
    events_per_batch: int = 4000,
    seed: int = 0,
    progress: bool = False,
) -> torch.nn.Module:
    """A ``bins``-output network trained with the ``inferno`` term alone on ``with_variations`` rows,
    through the trainer's one in-memory ``fit`` (Adam at a constant rate)."""
    from heplearn.run_config import LossTermConfig, TrainingConfig
    from heplearn.training.losses import build_terms
    from heplearn.training.trainer import fit

    config = TrainingConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        weight_decay=0.0,
        schedule="constant",
        warmup_fraction=0.0,
        early_stopping_patience=None,
        seed=seed,
        loss=[LossTermConfig(name="inferno", **settings.model_dump())],
    )
    task = SummaryStatistic(bins)
    task.terms = build_terms(config.loss, task, TermContext(config))
    model = network(bins, seed)
    fit(
        model,
        task,
        GroupedBatches(rows, events_per_batch, seed=seed, observer=settings.variation_observer),
        None,
        config,
        progress=progress,
    )
    return model


def train_cross_entropy(
    events: np.ndarray,
    label: np.ndarray,
    *,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> torch.nn.Module:
    """The baseline: the same network with two outputs trained by cross entropy on nominal events."""
    from heplearn.run_config import TrainingConfig
    from heplearn.tasks import Classification
    from heplearn.training.losses import CrossEntropy, NoSettings
    from heplearn.training.trainer import fit

    config = TrainingConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        weight_decay=0.0,
        schedule="constant",
        warmup_fraction=0.0,
        early_stopping_patience=None,
        seed=seed,
    )
    task = Classification(["signal", "background"])
    task.terms = [CrossEntropy(1.0, NoSettings(), task, TermContext(config))]
    rows = {
        "features": events,
        "label": label,
        "variation": np.zeros(len(label), dtype=np.int64),
        "event": np.arange(len(label)),
    }
    model = network(2, seed)
    fit(model, task, GroupedBatches(rows, batch_size, seed=seed), None, config, progress=progress)
    return model


@torch.inference_mode()
def network_bins(model: torch.nn.Module, features: np.ndarray, bins: int = 10) -> np.ndarray:
    """Each event's bin: the argmax of a summary-statistic network (``bins`` outputs), or for a
    two-class classifier its signal probability in ``bins`` uniform bins of [0, 1]."""
    model.eval()
    outputs = torch.cat(
        [
            model({"jet": torch.from_numpy(chunk)})
            for chunk in np.array_split(features, max(1, len(features) // 100_000))
        ]
    )
    if outputs.shape[-1] == bins:
        return outputs.argmax(-1).numpy()
    signal = torch.softmax(outputs, -1)[:, 0].numpy()
    return np.clip((signal * bins).astype(np.int64), 0, bins - 1)


def fisher_bound(benchmark: str, nodes: int = 80) -> float:
    """The lowest σ(s) of the synthetic problem on ``benchmark``: √[(I⁻¹)_ss] with the Fisher
    information of the extended unbinned likelihood I_jk = ∫ ∂_jν ∂_kν / ν dx, ν(x) = s f_s(x) +
    b f_b(x | r, λ), integrated by Gauss–Legendre quadrature (``nodes`` per axis), plus the
    constraints' 1/σ² on the diagonal."""
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"benchmark {benchmark!r}: choose one of {', '.join(BENCHMARKS)}")

    def axis(low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        x, w = np.polynomial.legendre.leggauss(nodes)
        return (low + high) / 2 + (high - low) / 2 * x, (high - low) / 2 * w

    def normal(x: np.ndarray, mean: float, variance: float) -> np.ndarray:
        return np.exp(-((x - mean) ** 2) / (2 * variance)) / math.sqrt(2 * math.pi * variance)

    (x0, w0), (x1, w1), (x2, w2) = axis(-14, 18), axis(-20, 20), axis(0, 20)
    x0, x1, x2 = np.meshgrid(x0, x1, x2, indexing="ij")
    w = w0[:, None, None] * w1[None, :, None] * w2[None, None, :]
    s, b, rate = 50.0, 1000.0, NOMINAL_RATE
    f_s = normal(x0, 0, 1) * normal(x1, 0, 1) * 2 * np.exp(-2 * x2)
    f_b = normal(x0, 2, 5) * normal(x1, 0, 9) * rate * np.exp(-rate * x2)
    nu = s * f_s + b * f_b
    # ∂ν/∂s, ∂ν/∂r (the x0 mean), ∂ν/∂λ (the x2 rate), ∂ν/∂b
    derivatives = {"s": f_s, "r": b * f_b * (x0 - 2) / 5, "lambda": b * f_b * (1 / rate - x2), "b": f_b}
    spec = BENCHMARKS[benchmark]
    names = ["s", *spec["nuisances"]] + (["b"] if spec["background_uncertainty"] is not None else [])
    information = np.array([[np.sum(w * derivatives[j] * derivatives[k] / nu) for k in names] for j in names])
    sigmas = [*spec["nuisances"].values()] + (
        [spec["background_uncertainty"]] if spec["background_uncertainty"] is not None else []
    )
    information[1:, 1:] += np.diag([0.0 if sigma is None else 1 / sigma**2 for sigma in sigmas])
    return float(math.sqrt(np.linalg.inv(information)[0, 0]))


__all__ = [
    "BENCHMARKS",
    "AsimovModel",
    "GroupedBatches",
    "InfernoSettings",
    "InfernoTerm",
    "Nuisance",
    "NuisanceSettings",
    "SummaryStatistic",
    "Templates",
    "benchmark_settings",
    "binned_uncertainty",
    "fisher_bound",
    "network",
    "network_bins",
    "shift_background",
    "soft_histogram",
    "soft_memberships",
    "synthetic_3d",
    "templates",
    "train_cross_entropy",
    "train_inferno",
    "variation_codes",
    "with_variations",
]
