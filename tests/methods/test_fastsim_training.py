"""Fast-simulation training and sampling machinery (heplearn.methods.fastsim): the ODE solvers against
their analytic answers, the minibatch optimal-transport coupling, the weights' moving average, the
split EPiC layer and the stabilised GAN, with their bad settings."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods import fastsim
from tests.conftest import make_jets
from tests.test_cli import run

TINY = {"hidden": 16, "global_size": 8, "layers": 1}


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> fastsim.JetClouds:
    path = io.write(make_jets(200, seed=11), tmp_path_factory.mktemp("fastsim_training") / "jets.parquet")
    return fastsim.load_clouds([path], num_particles=10)


class DecayFlow(fastsim.FlowMatchingJets):
    """A flow whose velocity is v(x, t) = −x: the ODE solution is x(1) = x(0) / e."""

    def velocity_at(
        self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None
    ) -> torch.Tensor:
        return -x


class _Drift(fastsim.FlowMatchingJets):
    """v(x, t) = 1000 c₀ on real particles: the ODE ends at x(0) + 1000 c₀ whatever the solver."""

    def velocity_at(
        self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None
    ) -> torch.Tensor:
        return 1000.0 * condition[:, :1, None].expand_as(x) * mask.unsqueeze(-1)


@pytest.mark.parametrize(
    ("solver", "factor"),
    [
        ("euler", lambda h: 1 - h),  # x ← x + h v(x)
        ("midpoint", lambda h: 1 - h + h * h / 2),  # x ← x + h v(x + h/2 v(x))
        ("heun", lambda h: 1 - h + h * h / 2),  # x ← x + h/2 (v(x) + v(x + h v(x))), the same on a linear field
    ],
)
def test_each_solver_takes_its_analytic_step_and_converges(solver: str, factor: object) -> None:
    flow = DecayFlow(condition_size=2)
    mask = torch.ones(4, 5, dtype=torch.bool)
    condition = torch.zeros(4, 2)
    errors = []
    for steps in (2, 4, 8):
        torch.manual_seed(1)
        start = torch.randn(4, 5, 3)
        torch.manual_seed(1)
        end = flow.sample(condition, mask, steps, solver)
        expected = start * factor(1.0 / steps) ** steps  # type: ignore[operator]
        torch.testing.assert_close(end, expected)
        errors.append(float((end - start / math.e).abs().max() / start.abs().max()))
    order = {"euler": 1, "midpoint": 2, "heun": 2}[solver]
    # halving the step divides the global error by about 2^order
    assert errors[1] / errors[2] == pytest.approx(2**order, rel=0.25)


def test_unknown_solver_or_no_steps_is_refused() -> None:
    flow = fastsim.FlowMatchingJets(condition_size=2, **TINY)
    mask, condition = torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 2)
    with pytest.raises(ConfigError, match="unknown ODE solver 'rk9'; choose one of euler, midpoint, heun"):
        flow.sample(condition, mask, 5, "rk9")
    with pytest.raises(ConfigError, match="at least one step, got 0"):
        flow.sample(condition, mask, 0)


def test_ot_coupling_recovers_a_permutation_within_each_condition_group() -> None:
    generator = torch.Generator().manual_seed(2)
    data = torch.randn(12, 4, 3, generator=generator)
    mask = torch.ones(12, 4, dtype=torch.bool)
    mask[6:, 3] = False  # two multiplicity groups: jets 0-5 with 4 particles, 6-11 with 3
    data = data * mask.unsqueeze(-1)
    condition = torch.zeros(12, 4)  # two classes, pT, n/N
    condition[::2, 0] = 1.0
    condition[1::2, 1] = 1.0
    # the noise is the data shuffled within each (class, multiplicity) group: OT pairs each jet with itself
    permutation = torch.tensor([4, 3, 0, 5, 2, 1, 8, 11, 10, 9, 6, 7])
    noise = data[permutation]
    index = fastsim.minibatch_ot_pairing(noise, data, condition, mask)
    torch.testing.assert_close(noise[index], data)
    assert sorted(index.tolist()) == list(range(12))
    # noise never crosses a group: the coupled noise of a jet comes from a jet of its class and multiplicity
    groups = condition[:, :2].argmax(-1) * 10 + mask.sum(1)
    random_noise = torch.randn(12, 4, 3, generator=generator)
    index = fastsim.minibatch_ot_pairing(random_noise, data, condition, mask)
    assert torch.equal(groups[index], groups)
    # and it never costs more than the independent pairing
    cost = ((random_noise[index] - data).square() * mask.unsqueeze(-1)).sum()
    assert float(cost) <= float(((random_noise - data).square() * mask.unsqueeze(-1)).sum())


def test_moving_average_update_is_the_weighted_mean() -> None:
    average, current = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = average.weight.detach().clone()
    fastsim.update_average(average, current, 0.9, step_index=1000)  # warm-up over: d = 0.9
    torch.testing.assert_close(average.weight, 0.9 * before + 0.1 * current.weight.detach())
    once = average.weight.detach().clone()
    fastsim.update_average(average, current, 0.999, step_index=0)  # first step: d = min(0.999, 1/10)
    torch.testing.assert_close(average.weight, 0.1 * once + 0.9 * current.weight.detach())


def test_split_linear_equals_the_concatenated_layer() -> None:
    torch.manual_seed(3)
    linear = torch.nn.Linear(5 + 3, 4)
    particles, per_jet = torch.randn(2, 6, 5), torch.randn(2, 3)
    expected = linear(torch.cat([particles, per_jet.unsqueeze(1).expand(-1, 6, -1)], -1))
    torch.testing.assert_close(fastsim._split_linear(linear, particles, per_jet), expected)


def test_ema_training_keeps_the_average_and_ot_flow_samples(clouds: fastsim.JetClouds, tmp_path: Path) -> None:
    training = fastsim.default_training("flow_matching", epochs=1, batch_size=50, ema=0.9)
    assert training.step.name == "ema"
    model = fastsim.train_fastsim(
        clouds, hyperparameters={**TINY, "ot_coupling": 1}, training=training, run_dir=tmp_path / "fm"
    )
    loaded = fastsim.load_fastsim(tmp_path / "fm")
    assert loaded.hyperparameters["ot_coupling"] == 1
    for name, tensor in model.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[name], tensor)
    sampled = fastsim.sample_jets(loaded, {"top": 5}, steps=2, solver="euler")
    assert np.isfinite(sampled.clouds.clouds).all() and len(sampled.clouds) == 5
    # the particle-level file leaves FastJet's fields out and agrees with the full one on the rest
    light = io.read(fastsim.write_jets(sampled, tmp_path / "light.parquet", substructure=False))
    full = io.read(fastsim.write_jets(sampled, tmp_path / "full.parquet"))
    assert set(full.fields) - set(light.fields) == {"jet_sdmass", "jet_tau1", "jet_tau2", "jet_tau3", "jet_tau4"}
    np.testing.assert_array_equal(ak.to_numpy(light.jet_mass), ak.to_numpy(full.jet_mass))
    with pytest.raises(ConfigError, match="unknown ODE solver"):
        fastsim.sample_jets(loaded, {"top": 5}, solver="rk4")
    with pytest.raises(ConfigError, match=r"EMA decay must lie in \(0, 1\), got 1.5"):
        fastsim.train_fastsim(
            clouds,
            hyperparameters=TINY,
            training=fastsim.default_training("flow_matching", epochs=1, batch_size=50, ema=1.5),
        )


def test_gan_is_weight_normalised_and_keeps_its_generator_average(clouds: fastsim.JetClouds, tmp_path: Path) -> None:
    training = fastsim.default_training("gan", epochs=1, batch_size=50, ema=0.9)
    assert training.learning_rate == pytest.approx(1e-4)  # EPiC-GAN's rate for both networks
    model = fastsim.train_fastsim(clouds, "gan", hyperparameters=TINY, training=training, run_dir=tmp_path / "gan")
    assert any("parametrizations" in name for name in model.network.state_dict())
    loaded = fastsim.load_fastsim(tmp_path / "gan")
    sampled = fastsim.sample_jets(loaded, {"qcd": 4})
    assert np.isfinite(sampled.clouds.clouds).all()
    with pytest.raises(ConfigError, match=r"EMA decay must lie in \(0, 1\), got 0.0"):
        fastsim.train_fastsim(
            clouds, "gan", hyperparameters=TINY, training=fastsim.default_training("gan", epochs=1, ema=0.0)
        )


def test_cli_refuses_ot_for_other_models_and_unknown_solvers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = io.write(make_jets(60, seed=12), tmp_path / "jets.parquet")
    code, _, err = run(
        ["fastsim", "train", "--train", str(path), "--model", "vae", "--ot", "--runs-dir", str(tmp_path)], capsys
    )
    assert code == 2 and "--ot couples noise and jets of flow matching, not of vae" in err
    code, _, err = run(
        ["fastsim", "train", "--train", str(path), "--model", "gan", "--attention", "1", "--runs-dir", str(tmp_path)],
        capsys,
    )
    assert code == 2 and "--attention is a block of the flow-matching network, not of gan" in err
    code, _, err = run(
        ["fastsim", "train", "--train", str(path), "--attention", "2", "--layers", "1", "--runs-dir", str(tmp_path)],
        capsys,
    )
    assert code == 2 and "attention blocks must number 0 to layers (1), got 2" in err, err
    assert not any(tmp_path.glob("fastsim-*"))
    arguments = ["--train", str(path), "--particles", "8", "--epochs", "1", "--hidden", "8", "--layers", "1"]
    arguments += ["--attention", "1", "--global-size", "4"]
    code, _, err = run(
        ["fastsim", "train", *arguments, "--name", "fm", "--runs-dir", str(tmp_path), "--no-progress", "--ema", "0.9"],
        capsys,
    )
    assert code == 0, err
    assert fastsim.load_fastsim(tmp_path / "fm").hyperparameters == {
        "hidden": 8,
        "layers": 1,
        "global_size": 4,
        "attention": 1,
    }
    output = tmp_path / "bad.parquet"
    code, _, err = run(["fastsim", "sample", str(tmp_path / "fm"), "-o", str(output), "--solver", "rk4"], capsys)
    assert code == 2 and "unknown ODE solver 'rk4'" in err and len(err.strip().splitlines()) == 1, err
    assert not output.exists()


@pytest.mark.parametrize("pair_bias", [0, 1, 8])
def test_attention_blocks_keep_the_network_permutation_equivariant_and_blind_to_padding(pair_bias: int) -> None:
    torch.manual_seed(0)
    network = fastsim.EPiCNetwork(3, 2, 4, hidden=8, global_size=4, layers=2, attention=2, pair_bias=pair_bias)
    x, condition = torch.randn(2, 6, 3), torch.randn(2, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    out, g = network(x, condition, mask)
    permutation = torch.tensor([3, 1, 0, 2, 4, 5])
    out_permuted, g_permuted = network(x[:, permutation], condition, mask[:, permutation])
    torch.testing.assert_close(out_permuted, out[:, permutation])
    torch.testing.assert_close(g_permuted, g)
    x_changed = x.clone()
    x_changed[1, 4:] = 100.0
    torch.testing.assert_close(network(x_changed, condition, mask)[0], out)
    assert (out[1, 4:] == 0).all()
    with pytest.raises(ConfigError, match="attention blocks must number 0 to layers"):
        fastsim.EPiCNetwork(3, 2, 4, layers=2, attention=3)
    with pytest.raises(ConfigError, match="not a multiple of the 4 heads"):
        fastsim.SelfAttention(6)
    with pytest.raises(ConfigError, match="the pair bias is a part of the attention blocks; it needs attention > 0"):
        fastsim.EPiCNetwork(3, 2, 4, layers=2, pair_bias=1)


def test_pair_bias_makes_attention_follow_the_particles_distances() -> None:
    torch.manual_seed(3)
    block = fastsim.SelfAttention(8, heads=2, pair_bias=16)
    with torch.no_grad():  # bias = -4 ln(ΔR² + ε) in both heads: a particle attends to its close neighbours
        block.pair_bias[0].weight.fill_(1.0)
        block.pair_bias[0].bias.zero_()
        block.pair_bias[2].weight.fill_(-4.0 / 16)
        block.pair_bias[2].bias.zero_()
    hidden, mask = torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool)
    positions = torch.tensor([[[0.0, 0.0], [0.01, 0.0], [1.0, 1.0], [1.0, 1.01]]])  # two pairs of neighbours
    close = fastsim.log_distances(positions)
    swapped = fastsim.log_distances(positions[:, [2, 3, 0, 1]])  # the same hidden states, the neighbours exchanged
    out_close, out_swapped = block(hidden, mask, close), block(hidden, mask, swapped)
    assert not torch.allclose(out_close, out_swapped, atol=1e-3)
    # particle 0 listens to its neighbour 1, hardly to the far particle 2
    neighbour, far = hidden.clone(), hidden.clone()
    neighbour[0, 1] += 1.0
    far[0, 2] += 1.0
    moved_by_neighbour = (block(neighbour, mask, close) - out_close)[0, 0].abs().max()
    moved_by_far = (block(far, mask, close) - out_close)[0, 0].abs().max()
    assert moved_by_far < 1e-3 * moved_by_neighbour
    plain = fastsim.SelfAttention(8, heads=2)
    torch.testing.assert_close(plain(hidden, mask, close), plain(hidden, mask, swapped))
    with pytest.raises(ValueError, match="needs the particles' distances"):
        block(hidden, mask)
    # the cheap form: one slope and offset per head
    linear = fastsim.SelfAttention(8, heads=2, pair_bias=1)
    assert isinstance(linear.pair_bias, torch.nn.Linear) and linear.pair_bias.weight.shape == (2, 1)
    assert not torch.allclose(linear(hidden, mask, close), linear(hidden, mask, swapped))
    with pytest.raises(ConfigError, match="hidden units must be 0 or more, got -1"):
        fastsim.SelfAttention(8, pair_bias=-1)


@pytest.mark.parametrize("pair_bias", [1, 16])
def test_head_major_pair_bias_is_the_module_applied_to_each_pair(pair_bias: int) -> None:
    torch.manual_seed(4)
    block = fastsim.SelfAttention(8, heads=2, pair_bias=pair_bias)
    distances = fastsim.log_distances(torch.randn(3, 5, 2))
    assert distances.shape == (3, 1, 5, 5)
    pair = fastsim.log_distances(torch.tensor([[[0.0, 0.0], [0.3, 0.4]]]))  # ΔR² = 0.25
    same, apart = math.log(1e-4), math.log(0.25 + 1e-4)
    torch.testing.assert_close(pair[0, 0], torch.tensor([[same, apart], [apart, same]]))
    assert block.pair_bias is not None
    each_pair = block.pair_bias(distances.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, heads, N, N)
    torch.testing.assert_close(block.pair_logits(distances), each_pair)


def _textbook_attention_block(
    block: fastsim.SelfAttention, x: torch.Tensor, mask: torch.Tensor, distances: torch.Tensor
) -> torch.Tensor:
    """The block written out with torch's scaled_dot_product_attention: softmax(q kᵀ / √d + b) v, padded
    keys at -∞, then the residual feed-forward network."""
    batch, particles, width = x.shape
    q, k, v = block.project(block.norm(x)).view(batch, particles, 3, block.heads, -1).permute(2, 0, 3, 1, 4)
    bias = torch.zeros(batch, block.heads, particles, particles)
    if block.pair_bias is not None:
        bias = block.pair_bias(distances.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    x = x + block.combine(attended.transpose(1, 2).reshape(batch, particles, width))
    return (x + block.feed(x)) * mask.unsqueeze(-1)


@pytest.mark.parametrize("pair_bias", [0, 16])
@pytest.mark.parametrize("padded", [False, True])
def test_attention_block_is_the_textbook_attention_in_value_and_gradient(pair_bias: int, padded: bool) -> None:
    torch.manual_seed(5)
    block = fastsim.SelfAttention(8, heads=2, pair_bias=pair_bias)
    x = torch.randn(3, 7, 8, requires_grad=True)
    mask = torch.ones(3, 7, dtype=torch.bool)
    if padded:
        mask[0, 5:] = False
        mask[2, 1:] = False
    x_masked = x * mask.unsqueeze(-1)
    distances = fastsim.log_distances(torch.randn(3, 7, 2))
    ours, textbook = block(x_masked, mask, distances), _textbook_attention_block(block, x_masked, mask, distances)
    torch.testing.assert_close(ours, textbook)
    weights = torch.randn_like(ours)
    (ours_grad,) = torch.autograd.grad((ours * weights).sum(), x, retain_graph=True)
    (textbook_grad,) = torch.autograd.grad((textbook * weights).sum(), x)
    torch.testing.assert_close(ours_grad, textbook_grad)
    assert ours_grad.abs().sum() > 0


@pytest.mark.parametrize("attention", [0, 1])
def test_cutting_the_trailing_padding_leaves_the_network_unchanged(attention: int) -> None:
    torch.manual_seed(2)
    network = fastsim.EPiCNetwork(3, 3, 5, hidden=8, global_size=4, layers=2, attention=attention)
    mask = torch.arange(10)[None, :] < torch.tensor([[3], [6], [1], [5]])
    x, condition = torch.randn(4, 10, 3) * mask.unsqueeze(-1), torch.randn(4, 5)
    full, g = network(x, condition, mask)
    cut, g_cut = network(x[:, :6], condition, mask[:, :6], slots=10)
    torch.testing.assert_close(cut, full[:, :6])
    torch.testing.assert_close(g_cut, g)
    assert not torch.allclose(network(x[:, :6], condition, mask[:, :6])[1], g)  # without slots the 1/N differs


def test_generate_batches_jets_by_multiplicity_and_returns_them_in_order() -> None:
    flow = _Drift(condition_size=2)
    scaling = fastsim.CloudScaling(["top"], 12, [0.0] * 3, [1.0] * 3, 0.0, 1.0, {}, {}, {})
    model = fastsim.FastSim("flow_matching", flow, scaling, {})
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 13, 200)
    mask = np.arange(12)[None, :] < counts[:, None]
    condition = np.stack([rng.uniform(1, 2, 200), np.zeros(200)], -1).astype(np.float32)
    torch.manual_seed(0)
    clouds = model.generate(condition, mask, steps=2, batch_size=16, solver="euler")
    assert clouds.shape == (200, 12, 3)
    assert (clouds[~mask] == 0).all()
    # each jet's particles sit at 1000 c₀ of its own condition (plus N(0, 1) noise), every one of them generated
    np.testing.assert_allclose(clouds[mask], np.repeat(1000.0 * condition[:, :1], counts, 0).repeat(3, 1), atol=6.0)


def test_fine_tuning_starts_from_the_initial_generator_and_keeps_its_architecture(
    clouds: fastsim.JetClouds, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = fastsim.train_fastsim(
        clouds,
        hyperparameters={**TINY, "attention": 1, "ot_coupling": 1},
        training=fastsim.default_training("flow_matching", epochs=1, batch_size=50),
    )
    # at a vanishing rate the continued network is the initial one; a fresh network would not be
    still = fastsim.default_training("flow_matching", epochs=1, batch_size=50, learning_rate=1e-12)
    continued = fastsim.train_fastsim(
        clouds, hyperparameters={"time_sampling": "logit_normal"}, training=still, init=first
    )
    assert continued.hyperparameters == {**TINY, "attention": 1, "time_sampling": "logit_normal"}
    assert continued.scaling == first.scaling
    for name, tensor in first.network.state_dict().items():
        torch.testing.assert_close(continued.network.state_dict()[name], tensor, rtol=0, atol=1e-8)
    fresh = fastsim.train_fastsim(clouds, hyperparameters={**TINY, "attention": 1}, training=still, seed=1)
    assert any(
        not torch.allclose(fresh.network.state_dict()[name], tensor)
        for name, tensor in first.network.state_dict().items()
    )
    with pytest.raises(ConfigError, match=r"fine-tuning keeps the architecture; asked for hidden 32 \(the initial"):
        fastsim.train_fastsim(clouds, hyperparameters={"hidden": 32}, training=still, init=first)
    with pytest.raises(ConfigError, match="the initial generator is a flow_matching, not a vae"):
        fastsim.train_fastsim(clouds, "vae", training=still, init=first)
    fewer = dataclasses.replace(clouds, clouds=clouds.clouds[:, :6], mask=clouds.mask[:, :6])
    names = ", ".join(clouds.class_names)
    with pytest.raises(ConfigError, match=f"trained on {names} jets of 10 particles; these are {names} jets of 6"):
        fastsim.train_fastsim(fewer, training=still, init=first)
    student = fastsim.FastSim("flow_matching", first.network, first.scaling, {**TINY, "time_sampling": "start"})
    with pytest.raises(ConfigError, match="one-step student; train its teacher instead"):
        fastsim.train_fastsim(clouds, training=still, init=student)
    # the command line: --init continues a run and names it in init.json; a new architecture is refused
    path = io.write(make_jets(60, seed=13), tmp_path / "jets.parquet")
    arguments = ["fastsim", "train", "--train", str(path), "--particles", "8", "--epochs", "1", "--no-progress"]
    arguments += ["--runs-dir", str(tmp_path)]
    code, _, err = run([*arguments, "--hidden", "8", "--layers", "1", "--global-size", "4", "--name", "a"], capsys)
    assert code == 0, err
    code, _, err = run([*arguments, "--init", str(tmp_path / "a"), "--learning-rate", "1e-4", "--name", "b"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "b" / fastsim.INIT_FILE).read_text()) == {
        "init": str(tmp_path / "a"),
        "epochs": 1,
        "learning_rate": 1e-4,
    }
    assert fastsim.load_fastsim(tmp_path / "b").hyperparameters == {"hidden": 8, "layers": 1, "global_size": 4}
    code, _, err = run([*arguments, "--init", str(tmp_path / "a"), "--attention", "1", "--name", "c"], capsys)
    assert code == 2 and "asked for attention 1 (the initial generator's is 0)" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    code, _, err = run([*arguments, "--init", str(tmp_path / "a"), "--attention", "0", "--name", "e"], capsys)
    assert code == 0, err  # no attention blocks: what the initial generator has
    code, _, err = run([*arguments, "--init", str(tmp_path / "nowhere"), "--name", "d"], capsys)
    assert code == 2 and "not a fastsim run" in err and not (tmp_path / "d").exists()
