"""ONNX export: preprocessing in the graph, metadata, agreement with PyTorch, Triton repositories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from heplearn.data.in_memory import load_arrays
from heplearn.models import registry
from heplearn.serving.engines import OnnxEngine, open_session, session_options
from heplearn.serving.export import ExportError, ExportResult, export_network, export_run, read_metadata
from heplearn.trained_model import TrainedModel
from tests.conftest import with_trained_batch_norms
from tests.serving.conftest import LENGTH


def test_export_embeds_preprocessing_and_metadata(pfn_export: ExportResult) -> None:
    result = pfn_export
    run_dir = result.onnx_path.parent
    assert result.onnx_path == run_dir / "model.onnx"
    assert result.max_difference is not None and result.max_difference <= 1e-5
    assert result.checked_jets > 100 and result.check_files[0].name == "test.parquet"
    model = onnx.load(str(result.onnx_path))
    onnx.checker.check_model(model)
    assert next(entry.version for entry in model.opset_import if entry.domain in {"", "ai.onnx"}) >= 17
    assert [item.name for item in model.graph.input] == ["particles", "mask"]
    assert [item.name for item in model.graph.output] == ["probabilities"]
    particle_dims = model.graph.input[0].type.tensor_type.shape.dim
    assert particle_dims[0].dim_param and particle_dims[1].dim_param and particle_dims[2].dim_value == 3
    metadata = read_metadata(result.onnx_path)
    assert metadata["class_names"] == ["top", "qcd"]
    assert metadata["model"] == "pfn" and metadata["version"]
    assert metadata["config"]["data"]["selection"] == "jet_nparticles > 8"
    assert metadata["preprocessing"]["groups"]["particles"]["variables"][0]["name"] == "part_deta"

    # raw (unstandardised) jets in, the same probabilities as PyTorch out, for any jet and particle count
    trained = TrainedModel.load(run_dir)
    arrays, _ = load_arrays(result.check_files, trained.config.data, 50)
    expected = trained.predict(arrays)
    got = OnnxEngine(result.onnx_path).predict(arrays)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    session = onnxruntime.InferenceSession(str(result.onnx_path))
    longer = np.concatenate([arrays.inputs["particles"], np.zeros((len(arrays), 10, 3), np.float32)], axis=1)
    mask = np.concatenate([arrays.mask, np.zeros((len(arrays), 10), bool)], axis=1)
    padded = session.run(None, {"particles": longer[:7], "mask": mask[:7]})[0]
    np.testing.assert_allclose(padded, expected[:7], atol=1e-5)


def test_triton_repository_parses_as_model_config(pfn_export: ExportResult) -> None:
    folder = pfn_export.triton_model
    assert folder is not None and (folder / "1" / "model.onnx").is_file()
    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "pfn" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 1024
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    inputs = {tensor.name: tensor for tensor in config.input}
    assert list(inputs["particles"].dims) == [-1, 3]
    assert inputs["particles"].data_type == model_config_pb2.TYPE_FP32
    assert list(inputs["mask"].dims) == [-1] and inputs["mask"].data_type == model_config_pb2.TYPE_BOOL
    (output,) = config.output
    assert output.name == "probabilities" and list(output.dims) == [2]


NETWORK_INPUTS = {"particles": 3, "points": 2, "vectors": 4, "jet": 2, "image": 1}


def _batch(keys: tuple[str, ...], jets: int, particles: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, particles + 1, (jets, 1), generator=generator)
    values = {
        "particles": torch.randn(jets, particles, 3, generator=generator),
        "points": torch.randn(jets, particles, 2, generator=generator) * 0.3,
        "vectors": torch.rand(jets, particles, 4, generator=generator) * 10 + torch.tensor([0, 0, 0, 20.0]),
        "mask": torch.arange(particles)[None, :] < counts,
        "jet": torch.randn(jets, 2, generator=generator),
        "image": torch.rand(jets, 1, 16, 16, generator=generator),
    }
    return [values[key] for key in keys]


class Positional(torch.nn.Module):
    """A network called with its input tensors in ``keys`` order, as an ONNX graph receives them."""

    def __init__(self, network: torch.nn.Module, keys: tuple[str, ...] | list[str], softmax: bool = False) -> None:
        super().__init__()
        self.network = network
        self.keys = list(keys)
        self.softmax = softmax

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        outputs = self.network(dict(zip(self.keys, tensors, strict=True)))
        return torch.softmax(outputs, dim=-1) if self.softmax else outputs


# ParT's dynamic axes run with -m slow (the CI budget): test_export_agreement exports ParT at every multiplicity
@pytest.mark.parametrize(
    "name",
    [
        "mlp",
        "pfn",
        "efn",
        "particlenet",
        pytest.param("part", marks=pytest.mark.slow),
        "cnn",
        pytest.param("rnn", marks=pytest.mark.slow),
    ],
)
def test_every_network_exports_with_dynamic_axes(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = registry.model_class(name).from_preset("small", 3, NETWORK_INPUTS).eval()
    keys = network.input_keys

    wrapper = Positional(network, keys, softmax=True)
    axes = [
        {0: "batch", 1: "particles"} if key in {"particles", "points", "vectors", "mask"} else {0: "batch"}
        for key in keys
    ]  # the CNN's adaptive pooling fixes its image size; its batch stays dynamic
    path = tmp_path / f"{name}.onnx"
    export_network(wrapper, _batch(keys, 2, 12, seed=1), list(keys), "probabilities", path, axes)
    session = onnxruntime.InferenceSession(str(path))
    for jets, particles in ((5, 20), (1, 3)):
        batch = _batch(keys, jets, particles, seed=jets)
        got = session.run(None, {key: tensor.numpy() for key, tensor in zip(keys, batch, strict=True)})[0]
        with torch.inference_mode():
            expected = wrapper(*batch).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


# ParT's optimised graphs run with -m slow (the CI budget; its export agreement stays in CI)
@pytest.mark.parametrize("name", ["particlenet", pytest.param("part", marks=pytest.mark.slow)])
def test_optimised_graphs_agree_with_pytorch_and_the_unoptimised_graph(name: str, tmp_path: Path) -> None:
    """ParticleNet and ParT export a graph of their own in eval mode (batch norms folded, fewer
    ops; see the models): it must give PyTorch's eval logits, before and after onnxruntime's
    fusions (Gemm + ReLU, BiasGelu, ...), for odd and even particle counts and for one particle."""
    torch.manual_seed(0)
    network = registry.model_class(name).from_preset("small", 3, NETWORK_INPUTS).eval()
    network = with_trained_batch_norms(network, seed=1)
    keys = network.input_keys

    logits = Positional(network, keys)
    path = tmp_path / f"{name}.onnx"
    export_network(
        logits, _batch(keys, 2, 12, seed=1), list(keys), "logits", path, [{0: "batch", 1: "particles"} for _ in keys]
    )
    unoptimised = onnxruntime.SessionOptions()
    unoptimised.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference_session = onnxruntime.InferenceSession(str(path), unoptimised, providers=["CPUExecutionProvider"])
    session = open_session(path)
    for jets, particles in ((6, 21), (5, 20), (3, 9), (1, 1)):
        batch = _batch(keys, jets, particles, seed=jets + particles)
        feed = {key: tensor.numpy() for key, tensor in zip(keys, batch, strict=True)}
        with torch.inference_mode():
            expected = logits(*batch).numpy()
        np.testing.assert_allclose(reference_session.run(None, feed)[0], expected, atol=1e-5)
        np.testing.assert_allclose(session.run(None, feed)[0], expected, atol=1e-5)


def test_every_session_gets_heplearns_options(pfn_export: ExportResult) -> None:
    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session_options().intra_op_num_threads == 0  # every core
    engine = OnnxEngine(pfn_export.onnx_path, threads=2)
    assert engine.session.get_session_options().intra_op_num_threads == 2


def test_cuts_are_not_exportable(cuts_run: Path) -> None:
    with pytest.raises(ExportError, match="cuts classifier is not exportable"):
        export_run(cuts_run)
    assert not (cuts_run / "model.onnx").exists()


def test_bdt_exports_through_onnxmltools(split_files: dict[str, str], tmp_path: Path) -> None:
    from tests.serving.conftest import _train

    run = _train(split_files, tmp_path, {"name": "bdt", "n_estimators": 5})
    result = export_run(run)
    assert result.max_difference is not None and result.max_difference <= 1e-5
    assert [spec.name for spec in result.inputs] == ["jet"]


def test_disagreement_is_an_error_and_writes_nothing(mlp_export: ExportResult, tmp_path: Path) -> None:
    run_dir = mlp_export.onnx_path.parent
    with pytest.raises(ExportError, match="differ by up to"):
        export_run(run_dir, output=tmp_path / "bad.onnx", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_length_is_not_baked_in(pfn_export: ExportResult) -> None:
    session = onnxruntime.InferenceSession(str(pfn_export.onnx_path))
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and isinstance(shape[1], str) and shape[2] == 3
    assert LENGTH == 24


def test_cnn_run_on_jet_images_exports(split_files: dict[str, str], tmp_path: Path) -> None:
    from heplearn.run_config import load_run_config
    from heplearn.training.from_config import train

    content = {
        "data": {
            **split_files,
            "inputs": {"image": {"image": {"bins": 16}}},
            "labels": {"classes": ["label_top", "label_qcd"]},
        },
        "model": {"name": "cnn", "preset": "small"},
        "training": {"epochs": 1},
    }
    run = train(load_run_config(content), name="cnn", runs_dir=tmp_path, progress=False).run_dir
    result = export_run(run)
    assert [(spec.name, tuple(spec.shape)) for spec in result.inputs] == [("image", (-1, 1, 16, 16))]
    assert result.max_difference is not None and result.max_difference <= 1e-5


def test_run_by_multiplicity_cuts_each_call_and_keeps_the_order() -> None:
    from heplearn.serving.engines import run_by_multiplicity

    rng = np.random.default_rng(4)
    counts = rng.integers(0, 20, 75)
    mask = np.arange(24) < counts[:, None]
    particles = np.where(mask[..., None], rng.normal(size=(75, 24, 3)), 0).astype(np.float32)
    feed = {"particles": particles, "mask": mask, "jet": rng.normal(size=(75, 2)).astype(np.float32)}
    calls: list[tuple[int, int, int]] = []

    def run(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append((len(batch["mask"]), batch["particles"].shape[1], int(batch["mask"].sum(axis=1).max())))
        assert batch["jet"].shape == (len(batch["mask"]), 2)
        return [batch["particles"].sum(axis=(1, 2)), batch["mask"].sum(axis=1)]

    sums, lengths = run_by_multiplicity(run, feed, 32)
    np.testing.assert_allclose(sums, particles.sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_array_equal(lengths, counts)
    assert [size for size, _, _ in calls] == [32, 32, 11]
    assert all(width == max(longest, 1) for _, width, longest in calls)  # each call cut to its longest jet
    assert calls[0][1] <= calls[1][1] <= calls[2][1]  # sorted by multiplicity
