"""The exported graph's clean-up: a slice that takes one input of a concatenation reads that input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from heplearn.serving.graph_passes import fold_concat_slices, prune, simplify  # noqa: E402

END = np.iinfo(np.int64).max


def concat_then_slice(start: int, end: int, step: int = 1) -> onnx.ModelProto:
    """y = Slice(Concat(2·a, b, b[:, :2]; axis 1), start, end, axis 1, step); a, b of shape (N, 2), (N, 3)."""
    nodes = [
        helper.make_node("Slice", ["b", "zero", "two", "axes", "steps"], ["sum"]),
        helper.make_node("Add", ["a", "a"], ["twice"]),
        helper.make_node("Concat", ["twice", "b", "sum"], ["cat"], axis=1),
        helper.make_node("Slice", ["cat", "starts", "ends", "axes", "steps"], ["y"]),
        helper.make_node("Concat", ["a", "a"], ["wide"], axis=1),  # a branch no output reads
        helper.make_node("Mul", ["wide", "wide"], ["unused"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([value], dtype=np.int64), name)
        for name, value in (("starts", start), ("ends", end), ("axes", 1), ("steps", step), ("zero", 0), ("two", 2))
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return onnx.shape_inference.infer_shapes(model)


def run(model: onnx.ModelProto, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a, "b": b})[0]


@pytest.mark.parametrize(
    ("start", "end", "source"),
    [(0, 2, "twice"), (2, 5, "b"), (5, 7, "sum"), (5, END, "sum")],
)
def test_a_slice_of_exactly_one_input_reads_it(start: int, end: int, source: str) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    model = concat_then_slice(start, end)
    expected = run(model, a, b)
    assert fold_concat_slices(model) == 1
    folded = next(node for node in model.graph.node if node.output[0] == "y")
    assert (folded.op_type, list(folded.input)) == ("Identity", [source])
    # the concatenation is no longer read, nor is the unused branch, nor what only they read
    assert prune(model) == {"twice": 4, "b": 5, "sum": 4}[source]
    assert "Concat" not in [node.op_type for node in model.graph.node]
    np.testing.assert_array_equal(run(model, a, b), expected)


@pytest.mark.parametrize(("start", "end", "step"), [(1, 3, 1), (2, 4, 1), (0, 2, 2), (2, 6, 1)])
def test_slices_across_inputs_or_with_steps_stay(start: int, end: int, step: int) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(3, 3)).astype(np.float32)
    model = concat_then_slice(start, end, step)
    expected = run(model, a, b)
    assert fold_concat_slices(model) == 0
    simplify(model)
    assert "Concat" in [node.op_type for node in model.graph.node]
    np.testing.assert_array_equal(run(model, a, b), expected)


@pytest.mark.parametrize("score", ["mse", pytest.param("latent_norm", marks=pytest.mark.slow)])
def test_the_exported_vae_scorer_has_no_concatenation(score: str, tmp_path: Path) -> None:
    import torch

    from heplearn.models.vae import EventVAE
    from heplearn.serving.export import DeployableModel, export_network
    from heplearn.tasks import VariationalReconstruction

    torch.manual_seed(0)
    features, latent = 6, 2
    network = EventVAE(features + 2 * latent, {"jet": features}, hidden=(8,), latent=latent, score=score).eval()
    task = VariationalReconstruction("jet", features, latent, score=score)
    module = DeployableModel(network, ["jet"], None, task.postprocess).eval()
    path = tmp_path / f"{score}.onnx"
    export_network(module, [torch.randn(2, features)], ["jet"], "anomaly_score", path, [{0: "batch"}])
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    x = np.random.default_rng(2).normal(size=(50, features)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    got = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"jet": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not {"Concat", "Slice", "Expand"} & set(ops), ops
    # the MSE scorer: encoder and decoder (2 + 2 layers); the latent score: the encoder alone
    assert ops.count("Gemm") == (4 if score == "mse" else 2)
