"""The neural taggers: parameter counts, symmetries, padding, shapes, errors, export, learning.

Every registered network (``heplearn.models.registry.TORCH_MODELS``) is checked against one
common suite (as scikit-learn does for its estimators): permutation invariance for those whose
output ignores the particles' order, independence of the padding for all, and the ability to
learn a toy whose label lives in the particle-level structure. ``SUITE`` says, per registered
name, what the suite needs to know beyond the model class (the inputs come from its
``input_keys``); a registered network without an entry fails the suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from heplearn.errors import ConfigError
from heplearn.features.images import jet_images
from heplearn.models import registry
from heplearn.models.cnn import JetImageCNN
from heplearn.models.deepsets import EnergyFlowNetwork, ParticleFlowNetwork
from heplearn.models.nn_base import ParticleModel
from heplearn.models.part import ParticleTransformer
from heplearn.models.particlenet import ParticleNet
from heplearn.models.rnn import ParticleRNN
from tests.conftest import with_trained_batch_norms


@dataclasses.dataclass(frozen=True)
class Case:
    """What the common suite needs to know of a registered network, beyond its class."""

    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # on top of the "small" preset
    learning_rate: float = 3e-3  # of the learning check
    permutation_invariant: bool = True  # its output ignores the order of the particles
    classifier: bool = True  # learns labels (the learning check); an autoencoder rebuilds its inputs instead


SUITE: dict[str, Case] = {
    "mlp": Case(),
    "pfn": Case(),
    "efn": Case(),
    "particlenet": Case(),
    "part": Case(),
    "cnn": Case(),
    "rnn": Case(learning_rate=5e-3, permutation_invariant=False),  # it reads the particles in order
    "autoencoder": Case(classifier=False),  # tests/training/test_engine.py trains it on its own task
    "vae": Case(classifier=False),  # tests/methods/test_anomaly.py trains it on its own task
    "cicada": Case(overrides={"regions": (16, 16)}, classifier=False),  # tests/models/test_cicada.py trains it
}
ALL_MODELS: list[type[ParticleModel]] = [registry.model_class(name) for name in registry.TORCH_MODELS]


def case(cls: type[ParticleModel]) -> Case:
    return SUITE.get(cls.name, Case())


SET_MODELS: list[type[ParticleModel]] = [cls for cls in ALL_MODELS if case(cls).permutation_invariant]
CLASSIFIERS: list[type[ParticleModel]] = [cls for cls in ALL_MODELS if case(cls).classifier]
PARTICLE_KEYS = ("particles", "vectors", "points")
IMAGE_BINS = 16


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_registered_network_is_in_the_suite() -> None:
    assert set(SUITE) == set(registry.TORCH_MODELS), "give each registered network its entry in SUITE"
    assert [cls.name for cls in ALL_MODELS] == list(registry.TORCH_MODELS)
    for cls in ALL_MODELS:
        assert set(cls.input_keys) <= {*INPUT_DIMS, "mask"}, f"the toy batch lacks an input of {cls.name}"


def ids(models: list[type[ParticleModel]]) -> list[str]:
    return [model.name for model in models]


# --- toy jets -----------------------------------------------------------------------------------


def toy_jets(
    n: int, particles: int = 20, seed: int = 0, two_prong: np.ndarray | None = None
) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Jets as a model batch (float64) and their labels.

    Label 1: the particles form two prongs 0.4 apart in a random direction; label 0: one core.
    Both classes draw the multiplicity (6..particles) and the jet pT from the same distribution,
    so the jet-level sums carry no information. Particles are in decreasing pT; padding is zero.
    The ``jet`` group holds the sums and the girth (the pT-weighted mean distance to the axis):
    the summary of the structure that a model of jet-level features (``mlp``) is given.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n) if two_prong is None else two_prong.astype(np.int64)
    counts = rng.integers(6, particles + 1, n)
    mask = np.arange(particles)[None, :] < counts[:, None]
    share = rng.exponential(1.0, (n, particles)) * mask
    jet_pt = rng.uniform(400, 600, n)
    pt = -np.sort(-share / share.sum(axis=1, keepdims=True), axis=1) * jet_pt[:, None]
    core = rng.normal(0, 0.1, (n, particles, 2))
    angle = rng.uniform(0, 2 * np.pi, n)
    side = rng.choice([-1.0, 1.0], (n, particles))
    prongs = side[..., None] * 0.2 * np.stack([np.cos(angle), np.sin(angle)], -1)[:, None, :] + rng.normal(
        0, 0.04, (n, particles, 2)
    )
    points = np.where(labels[:, None, None] == 1, prongs, core) * mask[..., None]
    return make_batch(points, pt, mask), labels


def make_batch(points: np.ndarray, pt: np.ndarray, mask: np.ndarray) -> dict[str, torch.Tensor]:
    deta, dphi = points[..., 0], points[..., 1]
    vectors = np.stack([pt * np.cos(dphi), pt * np.sin(dphi), pt * np.sinh(deta), pt * np.cosh(deta)], -1)
    log_pt = np.log(np.where(mask, pt, 1.0))
    particles = np.stack([deta / 0.2, dphi / 0.2, (log_pt - 3.0) / 1.5, mask * 1.0], -1) * mask[..., None]
    girth = (pt * np.hypot(deta, dphi)).sum(axis=1) / pt.sum(axis=1)
    jet = np.stack([mask.sum(axis=1), pt.sum(axis=1), girth], -1)
    image = jet_images(deta, dphi, pt, mask, bins=IMAGE_BINS, extent=0.6)
    arrays = {
        "particles": particles,
        "vectors": vectors * mask[..., None],
        "points": points,
        "jet": jet,
        "image": image,
    }
    batch = {key: torch.tensor(value, dtype=torch.float64) for key, value in arrays.items()}
    batch["mask"] = torch.tensor(mask)
    return batch


INPUT_DIMS = {"particles": 4, "vectors": 4, "points": 2, "jet": 3, "image": 1}
JET_SUMS = slice(0, 2)  # the columns of ``jet`` that carry no information: multiplicity and pT


def float32(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.float() if value.is_floating_point() else value for key, value in batch.items()}


def take(batch: dict[str, torch.Tensor], rows: slice | torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in batch.items()}


def small_model(cls: type[ParticleModel], num_outputs: int = 2, **overrides: Any) -> ParticleModel:
    torch.manual_seed(0)
    return cls.from_preset("small", num_outputs, INPUT_DIMS, **{**case(cls).overrides, **overrides})


def evaluate(model: ParticleModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return model(batch)


# --- sizes and errors ---------------------------------------------------------------------------

# Exact counts with 7 particle features, 1 image channel and 2 outputs, and the published sizes:
# PFN 83,842 (~86k), ParticleNet 366,160 (366k), ParticleNet-Lite 26,416 (26k), ParT 2,139,758 (2.14M).
PAPER_COUNTS = [
    (ParticleFlowNetwork, "paper", 83_842, 86_000),
    (EnergyFlowNetwork, "paper", 83_202, 86_000),
    (ParticleNet, "paper", 366_160, 366_000),
    (ParticleNet, "lite", 26_416, 26_000),
    (ParticleTransformer, "paper", 2_139_758, 2_140_000),
    (ParticleTransformer, "lite", 341_070, None),
    (JetImageCNN, "paper", 137_442, None),
    (ParticleRNN, "paper", 60_994, None),
]


@pytest.mark.parametrize(
    ("cls", "preset", "exact", "published"), PAPER_COUNTS, ids=[f"{c.name}-{p}" for c, p, *_ in PAPER_COUNTS]
)
def test_parameter_counts_match_the_papers(
    cls: type[ParticleModel], preset: str, exact: int, published: int | None
) -> None:
    model = cls.from_preset(preset, 2, {"particles": 7, "points": 2, "vectors": 4, "image": 1})
    assert model.count_parameters() == exact
    if published is not None:
        assert abs(exact / published - 1) < 0.04


@pytest.mark.parametrize("cls", ALL_MODELS, ids=ids(ALL_MODELS))
@pytest.mark.parametrize("num_outputs", [1, 3, 5])
def test_output_shape_for_regression_and_multiclass(cls: type[ParticleModel], num_outputs: int) -> None:
    batch, _ = toy_jets(7, seed=1)
    output = evaluate(small_model(cls, num_outputs).double(), batch)
    assert output.shape == (7, num_outputs) and torch.isfinite(output).all()


@pytest.mark.parametrize("cls", ALL_MODELS, ids=ids(ALL_MODELS))
def test_missing_input_is_a_config_error_naming_the_key(cls: type[ParticleModel]) -> None:
    for key in cls.input_keys:
        if key == "mask":
            continue
        dims = {name: size for name, size in INPUT_DIMS.items() if name != key}
        with pytest.raises(ConfigError, match=repr(key)):
            cls.from_preset("small", 2, dims)
    batch, _ = toy_jets(3, seed=2)
    model = small_model(cls)
    missing = cls.input_keys[0]
    with pytest.raises(ConfigError, match=repr(missing)):
        model({key: value for key, value in batch.items() if key != missing})


@pytest.mark.parametrize("cls", ALL_MODELS, ids=ids(ALL_MODELS))
def test_unknown_preset_or_hyperparameter_is_a_config_error(cls: type[ParticleModel]) -> None:
    assert {"paper", "small"} <= set(cls.presets)
    with pytest.raises(ConfigError, match="huge"):
        cls.from_preset("huge", 2, INPUT_DIMS)
    with pytest.raises(ConfigError, match="no_such_option"):
        cls.from_preset("small", 2, INPUT_DIMS, no_such_option=3)
    with pytest.raises(ConfigError, match="num_outputs"):
        cls.from_preset("small", 0, INPUT_DIMS)
    model = cls.from_preset("small", 2, INPUT_DIMS)
    assert set(model.hyperparameters) == set(cls.hyperparameter_names())


def test_the_mlp_takes_a_smooth_activation_by_name() -> None:
    mlp = registry.model_class("mlp")
    assert {type(layer) for layer in mlp.from_preset("small", 2, INPUT_DIMS).modules()} >= {torch.nn.ReLU}
    silu = mlp.from_preset("small", 2, INPUT_DIMS, activation="silu")
    kinds = {type(layer) for layer in silu.modules()}
    assert torch.nn.SiLU in kinds and torch.nn.ReLU not in kinds
    with pytest.raises(ConfigError, match="model mlp: activation 'swish' is not one of relu, silu"):
        mlp.from_preset("small", 2, INPUT_DIMS, activation="swish")


def test_vectors_must_be_four_vectors() -> None:
    with pytest.raises(ConfigError, match="px, py, pz, E"):
        ParticleTransformer.from_preset("small", 2, {**INPUT_DIMS, "vectors": 3})


# --- symmetries and padding ---------------------------------------------------------------------


def shuffle_slots(batch: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every jet's slots (real and padded) in a random order: padding is no longer at the end."""
    generator = torch.Generator().manual_seed(seed)
    mask = batch["mask"]
    order = torch.stack([torch.randperm(mask.shape[1], generator=generator) for _ in range(mask.shape[0])])
    shuffled = dict(batch)
    shuffled["mask"] = torch.gather(mask, 1, order)
    for key in PARTICLE_KEYS:
        values = batch[key]
        shuffled[key] = torch.gather(values, 1, order.unsqueeze(-1).expand_as(values))
    return shuffled


def pad_with_garbage(batch: dict[str, torch.Tensor], length: int, seed: int) -> dict[str, torch.Tensor]:
    """More padded slots; every padded slot (old and new) holds random junk, NaN and inf."""
    generator = torch.Generator().manual_seed(seed)
    mask = batch["mask"]
    extra = length - mask.shape[1]
    padded = dict(batch)
    padded["mask"] = torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], dim=1)
    for key in PARTICLE_KEYS:
        values = batch[key]
        junk = 100 * torch.randn(values.shape[0], extra, values.shape[2], generator=generator, dtype=values.dtype)
        values = torch.cat([values, junk], dim=1)
        junk = torch.randn(values.shape, generator=generator, dtype=values.dtype) * 1e3
        junk[:, ::3] = float("nan")
        junk[:, 1::5] = float("inf")
        padded[key] = torch.where(padded["mask"].unsqueeze(-1), values, junk)
    return padded


@pytest.fixture(scope="module")
def short_jets() -> dict[str, torch.Tensor]:
    """Jets of 1 to 20 particles in 20 slots: some have fewer particles than ParticleNet's k."""
    batch, _ = toy_jets(12, seed=3)
    counts = torch.tensor([1, 2, 3, 5, 8, 9, 12, 16, 17, 19, 20, 20])
    batch["mask"] = torch.arange(20)[None, :] < counts[:, None]
    return batch


@pytest.mark.parametrize("cls", SET_MODELS, ids=ids(SET_MODELS))
def test_set_models_are_permutation_invariant(cls: type[ParticleModel], short_jets: dict[str, torch.Tensor]) -> None:
    model = small_model(cls).double()
    reference = evaluate(model, short_jets)
    for seed in range(3):
        torch.testing.assert_close(evaluate(model, shuffle_slots(short_jets, seed)), reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", ALL_MODELS, ids=ids(ALL_MODELS))
def test_outputs_do_not_depend_on_padding(cls: type[ParticleModel], short_jets: dict[str, torch.Tensor]) -> None:
    model = small_model(cls).double()
    reference = evaluate(model, short_jets)
    assert torch.isfinite(reference).all()
    torch.testing.assert_close(evaluate(model, pad_with_garbage(short_jets, 32, seed=0)), reference, rtol=0, atol=1e-5)
    # Each jet alone (its own padding length) gives the same as in the batch.
    single = take(short_jets, slice(4, 5))
    single = {key: (value[:, :8] if key in (*PARTICLE_KEYS, "mask") else value) for key, value in single.items()}
    torch.testing.assert_close(evaluate(model, single), reference[4:5], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", [ParticleNet, ParticleTransformer], ids=["particlenet", "part"])
def test_batch_norm_statistics_ignore_padding(cls: type[ParticleModel], short_jets: dict[str, torch.Tensor]) -> None:
    """In training mode too, the batch statistics use the real particles (and pairs) only."""
    model = small_model(cls, dropout=0.0).double().train()
    reference = model(short_jets)
    torch.testing.assert_close(model(pad_with_garbage(short_jets, 32, seed=1)), reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", ALL_MODELS, ids=ids(ALL_MODELS))
def test_jet_without_particles_gives_a_finite_output(
    cls: type[ParticleModel], short_jets: dict[str, torch.Tensor]
) -> None:
    batch = dict(short_jets)
    batch["mask"] = batch["mask"].clone()
    batch["mask"][0] = False
    model = small_model(cls).double()
    output = evaluate(model, batch)
    assert torch.isfinite(output).all()
    torch.testing.assert_close(output[1:], evaluate(model, short_jets)[1:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", [ParticleNet, ParticleTransformer], ids=["particlenet", "part"])
def test_real_entries_only_give_the_padded_result(cls: type[ParticleModel], monkeypatch: pytest.MonkeyPatch) -> None:
    """ParticleNet forms only real edges; ParT embeds only real pairs and attends in groups of
    similar-length jets, each cut to its own longest jet.

    Output and gradients must equal the plain computation on the padded batch (the path that
    export takes), in training mode too, batch statistics included.
    """
    batch, _ = toy_jets(100, particles=20, seed=5)  # ParT: 3 groups of about 33 jets
    batch["mask"][7] = False  # a jet without particles (its output is arbitrary: left out below)
    real = batch["mask"].any(dim=1)
    model = small_model(cls, dropout=0.0).double().train()

    def output_and_gradients() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        output = model(batch)[real]
        output[:, 1].pow(2).sum().backward()
        gradients = [parameter.grad.clone() for parameter in model.parameters() if parameter.grad is not None]
        return output.detach(), gradients

    grouped, grouped_gradients = output_and_gradients()
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    padded, padded_gradients = output_and_gradients()
    torch.testing.assert_close(grouped, padded, rtol=0, atol=1e-10)
    assert len(grouped_gradients) == len(padded_gradients) == len(list(model.parameters()))
    for ours, reference in zip(grouped_gradients, padded_gradients, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-8, atol=1e-10)


# --- inference mode and export ------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_MODELS, ids=ids(ALL_MODELS))
@pytest.mark.filterwarnings("ignore:The tensor attributes self.recurrent")  # nn.GRU's own weights, a torch quirk
def test_export_with_a_dynamic_batch_size(cls: type[ParticleModel], short_jets: dict[str, torch.Tensor]) -> None:
    model = small_model(cls).eval()
    inputs = {key: value for key, value in float32(short_jets).items() if key in cls.input_keys}
    batch_size = torch.export.Dim("batch", min=1, max=4096)
    exported = torch.export.export(model, (inputs,), dynamic_shapes={"batch": {key: {0: batch_size} for key in inputs}})
    fewer = take(inputs, slice(2, 7))
    torch.testing.assert_close(exported.module()(fewer), evaluate(model, fewer), rtol=1e-5, atol=1e-5)


# --- learning particle-level structure ----------------------------------------------------------


@pytest.fixture(scope="module")
def toy_sample() -> tuple[dict[str, torch.Tensor], np.ndarray, dict[str, torch.Tensor], np.ndarray]:
    train, train_labels = toy_jets(512, seed=10)
    validation, validation_labels = toy_jets(256, seed=11)
    return float32(train), train_labels, float32(validation), validation_labels


def test_jet_level_sums_cannot_separate_the_toy(toy_sample: tuple[Any, ...]) -> None:
    train, train_labels, validation, validation_labels = toy_sample
    classifier = LogisticRegression().fit(train["jet"][:, JET_SUMS].numpy(), train_labels)
    auc = roc_auc_score(validation_labels, classifier.predict_proba(validation["jet"][:, JET_SUMS].numpy())[:, 1])
    assert abs(auc - 0.5) < 0.1


@pytest.mark.parametrize("cls", CLASSIFIERS, ids=ids(CLASSIFIERS))
def test_every_model_learns_the_prong_structure(cls: type[ParticleModel], toy_sample: tuple[Any, ...]) -> None:
    train, train_labels, validation, validation_labels = toy_sample
    model = small_model(cls)
    optimiser = torch.optim.Adam(model.parameters(), lr=case(cls).learning_rate)
    labels = torch.tensor(train_labels)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(160):
        rows = torch.randint(0, len(labels), (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(take(train, rows)), labels[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    scores = torch.softmax(evaluate(model, validation), dim=-1)[:, 1].numpy()
    assert roc_auc_score(validation_labels, scores) > 0.8


# --- the exported (eval-mode) graphs -----------------------------------------------------------


@pytest.mark.parametrize("cls", [ParticleNet, ParticleTransformer], ids=["particlenet", "part"])
@pytest.mark.parametrize("slots", [20, 19, 9, 2, 1])
def test_exported_eval_path_gives_the_eval_outputs(
    cls: type[ParticleModel], slots: int, short_jets: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph that export traces in eval mode (batch norms folded into the dense layers;
    ParticleNet's edges as one matrix; ParT's pairs embedded once each in the rolled layout, its
    attention written out) gives the eval outputs, for even and odd particle axes, for jets
    with fewer particles than ParticleNet's k, and for a single slot."""
    model = with_trained_batch_norms(small_model(cls).double()).eval()
    batch = {key: value[:, :slots] if key in (*PARTICLE_KEYS, "mask") else value for key, value in short_jets.items()}
    batch = pad_with_garbage(batch, 24, seed=2) if slots == 20 else batch  # junk, NaN and inf in the padding
    expected = evaluate(model, batch)
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    torch.testing.assert_close(evaluate(model, batch), expected, rtol=0, atol=1e-10)


# --- the PFN with jet-level inputs --------------------------------------------------------------


def test_a_pfn_with_jet_inputs_learns_what_only_the_jet_group_carries() -> None:
    """Labels that only a jet-level variable knows (the particles are the same for both classes):
    the PFN reading its ``jet`` group learns them, the plain PFN cannot."""
    batch, _ = toy_jets(768, seed=12, two_prong=np.zeros(768))
    labels = np.random.default_rng(13).integers(0, 2, 768)
    jet = batch["jet"].clone()
    jet[:, -1] = torch.tensor(labels, dtype=jet.dtype) + 0.3 * torch.randn(
        768, generator=torch.Generator().manual_seed(1)
    )
    batch = float32({**batch, "jet": jet})
    train, validation = take(batch, slice(0, 512)), take(batch, slice(512, None))
    aucs = {}
    for jet_inputs in (False, True):
        model = small_model(ParticleFlowNetwork, jet_inputs=jet_inputs)
        assert ("jet" in model.input_keys) is jet_inputs  # what export and attacks read from the instance
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        targets = torch.tensor(labels[:512])
        generator = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(160):
            rows = torch.randint(0, 512, (64,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(take(train, rows)), targets[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        scores = torch.softmax(evaluate(model, validation), dim=-1)[:, 1].numpy()
        aucs[jet_inputs] = roc_auc_score(labels[512:], scores)
    assert aucs[True] > 0.9 and abs(aucs[False] - 0.5) < 0.1


def test_jet_inputs_need_a_jet_group_and_are_a_pfn_option() -> None:
    dims = {key: size for key, size in INPUT_DIMS.items() if key != "jet"}
    with pytest.raises(ConfigError, match="jet_inputs needs a 'jet' input group"):
        ParticleFlowNetwork.from_preset("small", 2, dims, jet_inputs=True)
    with pytest.raises(ConfigError, match="jet_inputs is a PFN option"):
        EnergyFlowNetwork.from_preset("small", 2, INPUT_DIMS, jet_inputs=True)


def test_a_pfn_with_jet_inputs_exports_with_its_jet_group(short_jets: dict[str, torch.Tensor]) -> None:
    """Export reads the keys from the instance: the jet group goes into the exported graph."""
    model = small_model(ParticleFlowNetwork, jet_inputs=True).eval()
    inputs = {key: value for key, value in float32(short_jets).items() if key in model.input_keys}
    assert set(inputs) == {"particles", "jet", "mask"}
    batch_size = torch.export.Dim("batch", min=1, max=4096)
    exported = torch.export.export(model, (inputs,), dynamic_shapes={"batch": {key: {0: batch_size} for key in inputs}})
    fewer = take(inputs, slice(2, 7))
    torch.testing.assert_close(exported.module()(fewer), evaluate(model, fewer), rtol=1e-5, atol=1e-5)
    moved = dict(fewer, jet=fewer["jet"] + 1.0)
    assert not torch.allclose(evaluate(model, moved), evaluate(model, fewer))
