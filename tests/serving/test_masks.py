"""Any mask gives the scores of the plain onnxruntime session: real particles may sit anywhere.

The engines cut each call to its longest jet, which is right only when real particles come
first; ``left_aligned`` moves them there. Before it, a jet whose real particles were at the end
of the axis lost them to the cut and got another score (0.6126 instead of 0.5993, issue 15).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heplearn.models import registry
from heplearn.serving.engines import left_aligned, open_session, run_by_multiplicity
from heplearn.serving.export import export_network
from tests.serving.test_export import NETWORK_INPUTS, Positional

MODELS = ("pfn", "particlenet", "part")
SLOTS = 12


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[str], object]]:
    """Small untrained pfn, ParticleNet and ParT graphs exported with a dynamic particle axis."""
    folder = tmp_path_factory.mktemp("mask-models")
    found: dict[str, tuple[list[str], object]] = {}
    for name in MODELS:
        torch.manual_seed(0)
        network = registry.model_class(name).from_preset("small", 2, NETWORK_INPUTS).eval()
        keys = list(network.input_keys)
        example = [_feed(keys, np.ones((2, 6), bool), seed=0)[key] for key in keys]
        path = folder / f"{name}.onnx"
        export_network(
            Positional(network, keys, softmax=True),
            [torch.from_numpy(v) for v in example],
            keys,
            "probabilities",
            path,
            [
                {0: "batch", 1: "particles"} if example[i].ndim > 1 and example[i].shape[1] == 6 else {0: "batch"}
                for i in range(len(keys))
            ],
        )
        found[name] = (keys, open_session(path))
    return found


def _feed(keys: list[str], mask: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    jets, particles = mask.shape
    values = {
        "particles": rng.normal(size=(jets, particles, 3)),
        "points": rng.normal(size=(jets, particles, 2)) * 0.3,
        "vectors": rng.uniform(0, 10, (jets, particles, 4)) + np.array([0, 0, 0, 20.0]),
        "jet": rng.normal(size=(jets, 2)),
    }
    feed = {key: values[key].astype(np.float32) for key in keys if key != "mask"}
    feed["mask"] = mask
    return {key: feed[key] for key in keys}


def test_left_aligned_moves_real_particles_first_in_their_order() -> None:
    mask = np.array([[False, True, False, True], [True, True, False, False], [False, False, False, False]])
    particles = np.arange(24, dtype=np.float32).reshape(3, 4, 2)
    aligned = left_aligned({"particles": particles, "mask": mask, "jet": np.ones((3, 5), np.float32)})
    np.testing.assert_array_equal(
        aligned["mask"], [[True, True, False, False], [True, True, False, False], [False] * 4]
    )
    np.testing.assert_array_equal(aligned["particles"][0, :2], particles[0, [1, 3]])
    np.testing.assert_array_equal(aligned["particles"][1], particles[1])  # already aligned: untouched
    np.testing.assert_array_equal(aligned["jet"], np.ones((3, 5)))
    already = {"particles": particles[1:2], "mask": mask[1:2]}
    assert left_aligned(already) is already


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(MODELS),
    mask=hnp.arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, SLOTS))),
    batch_size=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_any_mask_gives_the_scores_of_the_plain_session(
    sessions: dict[str, tuple[list[str], object]], name: str, mask: np.ndarray, batch_size: int, seed: int
) -> None:
    mask[:, 0] |= ~mask.any(axis=1)  # every jet has a real particle (empty jets: see the next test)
    keys, session = sessions[name]
    feed = _feed(keys, mask, seed)
    expected = session.run(None, feed)[0]  # type: ignore[attr-defined]
    got = run_by_multiplicity(lambda batch: session.run(None, batch), feed, batch_size)[0]  # type: ignore[attr-defined]
    np.testing.assert_allclose(got, expected, atol=2e-5)
