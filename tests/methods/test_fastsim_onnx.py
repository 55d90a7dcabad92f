"""Sampling a flow through onnxruntime (heplearn.methods.fastsim_onnx): the float graph is the network,
int8 weights change it a little, the export happens once per generator, bad backends are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods import fastsim
from tests.conftest import make_jets
from tests.test_cli import run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TINY = {"hidden": 16, "global_size": 8, "layers": 2, "attention": 2, "pair_bias": 4}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> fastsim.FastSim:
    clouds = fastsim.load_clouds([io.write(make_jets(200, seed=6), tmp_path_factory.mktemp("onnx") / "j.parquet")], 20)
    scaling = fastsim.CloudScaling.fit(clouds)
    torch.manual_seed(0)
    network = fastsim.build_network("flow_matching", scaling.condition_size, TINY)
    return fastsim.FastSim("flow_matching", network, scaling, dict(TINY))


@pytest.mark.heavy
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
def test_onnxruntime_samples_the_networks_jets_and_int8_nearly(flow: fastsim.FastSim) -> None:
    counts = {"top": 120, "qcd": 120}  # multiplicities 5-20 of 20 slots: padded and unpadded batches
    torch_jets = fastsim.sample_jets(flow, counts, steps=2, solver="midpoint", seed=3)
    assert not torch_jets.clouds.mask.all() and torch_jets.clouds.mask.all(1).any()
    onnx_jets = fastsim.sample_jets(flow, counts, steps=2, solver="midpoint", seed=3, backend="onnx")
    np.testing.assert_array_equal(onnx_jets.clouds.mask, torch_jets.clouds.mask)
    np.testing.assert_allclose(onnx_jets.clouds.clouds, torch_jets.clouds.clouds, atol=1e-5)
    # two graphs: a padded batch runs the one that masks; the other skips the masking, so it would attend
    # to the padding (its velocity on the real particles differs), which only an unpadded batch may do
    runtime = flow._runtimes[("onnx", 20)]
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(6, 20, 3, generator=generator)
    condition = torch.randn(6, flow.network.condition_size + fastsim._TIME_FEATURES, generator=generator)
    mask = torch.arange(20)[None, :] < torch.tensor([[20], [3], [12], [20], [7], [19]])
    with torch.no_grad():
        expected = flow.network.velocity(x, condition, mask, 20)[0].numpy()
    np.testing.assert_allclose(runtime(x, condition, mask)[0].numpy(), expected, atol=1e-5)
    feeds = {"x": x.numpy(), "condition": condition.numpy(), "mask": mask.numpy()}
    unmasked = runtime.unpadded.run(None, feeds)[0]
    assert np.abs(unmasked - expected)[mask.numpy()].max() > 1e-3
    full = mask.all(1)
    np.testing.assert_allclose(unmasked[full.numpy()], expected[full.numpy()], atol=1e-5)
    # int8 weights: a different function, close to the float one
    draws = fastsim.draw_conditions(flow.scaling, counts, None, np.random.default_rng(1))
    noise = np.random.default_rng(2).standard_normal((*draws.mask.shape, 3)).astype(np.float32)
    exact = flow.generate(draws.condition, draws.mask, 2, noise=noise)
    quantized = flow.generate(draws.condition, draws.mask, 2, noise=noise, backend="onnx-int8")
    error = np.sqrt(np.mean((quantized - exact)[draws.mask] ** 2))
    assert 1e-4 < error < 0.05 * np.sqrt(np.mean(exact[draws.mask] ** 2)), error
    assert set(flow._runtimes) == {("onnx", 20), ("onnx-int8", 20)}  # exported once each, then kept


def test_unknown_backend_and_a_vae_are_refused(flow: fastsim.FastSim, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'; choose one of torch, onnx, onnx-int8"):
        fastsim.sample_jets(flow, {"top": 2}, steps=1, backend="tensorrt")
    vae = fastsim.FastSim("vae", fastsim.build_network("vae", 4, {"hidden": 8}), flow.scaling, {"hidden": 8})
    with pytest.raises(ConfigError, match="the onnx backends sample flow matching, not a SetVAE"):
        fastsim.sample_jets(vae, {"top": 2}, backend="onnx")


def test_cli_refuses_an_unknown_backend(
    flow: fastsim.FastSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow.save(tmp_path / "fm")
    output = tmp_path / "bad.parquet"
    code, _, err = run(["fastsim", "sample", str(tmp_path / "fm"), "-o", str(output), "--backend", "gpu"], capsys)
    assert code == 2 and "unknown backend 'gpu'" in err and len(err.strip().splitlines()) == 1, err
    assert not output.exists()
