"""The compiled padding kernel against a plain numpy padding and ``Preprocessing.scale``."""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.data.jets import JetArrays, RaggedJets
from heplearn.data.padding import pad_particles, row_pattern
from heplearn.data.preprocessing import Preprocessing, VariableScaling


def numpy_padding(
    flat: np.ndarray, counts: np.ndarray, index: np.ndarray, length: int, pad_value: float
) -> tuple[np.ndarray, np.ndarray]:
    starts = np.cumsum(counts) - counts
    out = np.full((len(index), length, flat.shape[1]), pad_value, np.float32)
    mask = np.zeros((len(index), length), bool)
    for slot, jet in enumerate(index):
        out[slot, : counts[jet]] = flat[starts[jet] : starts[jet] + counts[jet]]
        mask[slot, : counts[jet]] = True
    return out, mask


def preprocessing(clip: float | None) -> Preprocessing:
    scalings = [
        VariableScaling("a", 0.3, 1.7, clip),
        VariableScaling("b", -2.0, 0.05, clip),
        VariableScaling("c", 0.0, 1.0, None),
    ]
    return Preprocessing({"p": scalings}, {"p": 0.0}, {"p": 6}, ["x", "y"])


@pytest.fixture
def jets() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 7, 40)  # empty jets and jets filling all 6 slots included
    counts[:2] = (0, 6)
    flat = (rng.standard_cauchy(size=(int(counts.sum()), 3)) * 10).astype(np.float32)  # tails to clip
    flat[0, 2] = -0.0
    return flat, counts


@pytest.mark.parametrize("pad_value", [0.0, -3.5, np.nan])
def test_unscaled_padding_equals_numpy(jets: tuple[np.ndarray, np.ndarray], pad_value: float) -> None:
    flat, counts = jets
    index = np.random.default_rng(0).integers(0, len(counts), 25)  # repeats too
    out, mask = np.empty((25, 6, 3), np.float32), np.empty((25, 6), bool)
    pad_particles(flat, np.cumsum(counts) - counts, counts, index, row_pattern(None, 6, 3), pad_value, out, mask)
    expected, expected_mask = numpy_padding(flat, counts, index, 6, pad_value)
    np.testing.assert_array_equal(mask, expected_mask)
    assert out.tobytes() == expected.tobytes()  # bit for bit: NaN padding and -0.0 included


@pytest.mark.parametrize("clip", [None, 2.5])
def test_scaled_padding_equals_preprocessing_scale(jets: tuple[np.ndarray, np.ndarray], clip: float | None) -> None:
    flat, counts = jets
    scaler = preprocessing(clip)
    ragged = RaggedJets(
        ("p",),
        {"p": flat},
        counts,
        6,
        {"p": 0.0},
        {},
        np.zeros(len(counts), np.int64),
        np.ones(len(counts), np.float32),
        scaling={"p": scaler.constants("p")},
    )
    raw = RaggedJets(
        ("p",),
        {"p": flat},
        counts,
        6,
        {"p": 0.0},
        {},
        np.zeros(len(counts), np.int64),
        np.ones(len(counts), np.float32),
    )
    index = np.random.default_rng(1).permutation(len(counts))
    scaled = ragged.padded(index)
    expected = scaler.apply(JetArrays(raw.padded(index).inputs, raw.padded(index).mask, scaled.label, scaled.weight))
    assert scaled.inputs["p"].tobytes() == expected.inputs["p"].tobytes()
    if clip is not None:
        assert np.abs(scaled.inputs["p"][..., :2]).max() == np.float32(clip)  # the clip did act
    real = scaled.inputs["p"][scaled.mask]
    assert not np.array_equal(real, flat[: len(real)])  # standardised, not copied


def test_empty_jets_and_an_empty_batch() -> None:
    """Jets with no particles at all, and a batch of none."""
    flat = np.empty((0, 2), np.float32)
    counts = np.zeros(3, np.int64)
    out, mask = np.empty((3, 4, 2), np.float32), np.ones((3, 4), bool)
    pad_particles(flat, np.zeros(3, np.int64), counts, np.arange(3), row_pattern(None, 4, 2), 9.0, out, mask)
    assert (out == 9.0).all() and not mask.any()
    pad_particles(flat, np.zeros(3, np.int64), counts, np.arange(0), row_pattern(None, 4, 2), 9.0, out[:0], mask[:0])


def test_more_particles_than_slots_is_refused() -> None:
    with pytest.raises(ValueError, match="up to 5 particles for 4 slots"):
        RaggedJets(
            ("p",),
            {"p": np.zeros((6, 1), np.float32)},
            np.array([1, 5]),
            4,
            {"p": 0.0},
            {},
            np.zeros(2, np.int64),
            np.ones(2, np.float32),
        )


def test_concatenating_into_an_arena_reuses_its_memory() -> None:
    rng = np.random.default_rng(9)
    scaler = preprocessing(None)

    def piece(n: int) -> RaggedJets:
        counts = rng.integers(0, 7, n)
        return RaggedJets(
            ("p",),
            {"p": rng.normal(size=(int(counts.sum()), 3)).astype(np.float32)},
            counts,
            6,
            {"p": 0.0},
            {},
            np.zeros(n, np.int64),
            np.ones(n, np.float32),
            scaling={"p": scaler.constants("p")},
        )

    arena: dict[str, np.ndarray] = {}
    first_pieces = [piece(30), piece(20)]
    first = RaggedJets.concatenate(first_pieces, arena)
    np.testing.assert_array_equal(first.padded().inputs["p"], RaggedJets.concatenate(first_pieces).padded().inputs["p"])
    memory = arena["p"]
    assert np.shares_memory(first.particles["p"], memory)
    second_pieces = [piece(10), piece(25)]  # fewer particles: the same memory again
    second = RaggedJets.concatenate(second_pieces, arena)
    assert arena["p"] is memory and np.shares_memory(second.particles["p"], memory)
    np.testing.assert_array_equal(
        second.padded().inputs["p"], RaggedJets.concatenate(second_pieces).padded().inputs["p"]
    )


def test_jets_out_of_range_are_refused_and_negative_ones_count_from_the_end() -> None:
    counts = np.array([2, 1, 3])
    jets = RaggedJets(
        ("p",),
        {"p": np.arange(12, dtype=np.float32).reshape(6, 2)},
        counts,
        4,
        {"p": 0.0},
        {},
        np.arange(3),
        np.ones(3, np.float32),
    )
    with pytest.raises(IndexError, match="out of range for 3 jets"):
        jets.padded(np.array([0, 3]))
    with pytest.raises(IndexError, match="out of range for 3 jets"):
        jets.padded(np.array([-4]))
    np.testing.assert_array_equal(jets.padded(np.array([-1])).inputs["p"], jets.padded(np.array([2])).inputs["p"])
