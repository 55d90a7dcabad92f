"""Observers travel with every batch: the file's values of exactly the batch's jets, in its dtype."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from tests.conftest import make_jets

from heplearn.data import io
from heplearn.data.batches import batch_observers, to_batch, trim_padding
from heplearn.data.config import DataConfig, load_data_config
from heplearn.data.in_memory import InMemoryJets, fit_preprocessing
from heplearn.data.jets import OBSERVER_PREFIX, observer_key
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.stream import JetStream
from heplearn.data.stream_loader import StreamLoader
from heplearn.errors import ConfigError, DataError

SIZES = (130, 47, 260)  # 437 jets: an odd number, so equal shares of two ranks leave one out
OBSERVERS = ("aux_id", "jet_sdmass", "aux_truth", "aux_flag")  # int64, float32, float64, bool
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def files_and_values(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, np.ndarray]]:
    """Three files (Parquet, ROOT, Parquet) whose jet ``i`` of all has ``aux_id == i``, and the
    observers' values as the files hold them, by ``aux_id``."""
    folder = tmp_path_factory.mktemp("observers")
    rng = np.random.default_rng(7)
    files, parts = [], []
    first = 0
    for index, (size, suffix) in enumerate(zip(SIZES, (".parquet", ".root", ".parquet"), strict=True)):
        jets = make_jets(size, seed=20 + index)
        jets = ak.with_field(jets, np.arange(first, first + size, dtype=np.int64), "aux_id")
        jets = ak.with_field(jets, rng.normal(0, 1, size), "aux_truth")  # float64 values float32 cannot hold
        jets = ak.with_field(jets, rng.integers(0, 2, size).astype(bool), "aux_flag")
        files.append(io.write(jets, folder / f"part{index}{suffix}", row_group_size=40))
        parts.append({name: ak.to_numpy(jets[name]) for name in OBSERVERS})
        first += size
    return files, {name: np.concatenate([part[name] for part in parts]) for name in OBSERVERS}


def observer_config(files: list[Path], observers: tuple[str, ...] = OBSERVERS) -> DataConfig:
    return load_data_config(
        {
            "train": [str(f) for f in files],
            "chunk_size": 25,
            "inputs": {
                "particles": {"length": 16, "variables": ["part_deta", "part_logpt"]},
                "ids": {"variables": ["aux_id"], "standardize": False},
                "jet": {"variables": ["jet_pt", "jet_sdmass"]},
            },  # standardised; the observer is not
            "observers": list(observers),
        }
    )


@pytest.fixture(scope="module")
def preprocessing(files_and_values: tuple[list[Path], dict[str, np.ndarray]]) -> Preprocessing:
    files, _ = files_and_values
    return fit_preprocessing(observer_config(files), files)


def check_batch(batch: dict[str, torch.Tensor], expected: dict[str, np.ndarray]) -> np.ndarray:
    """The ``aux_id`` of the batch's jets (read from its ``ids`` input), after checking that every
    observer holds the file's values of exactly these jets, in the file's dtype."""
    ids = batch["ids"][:, 0].numpy().astype(np.int64)
    observers = batch_observers(batch)
    assert set(observers) == set(OBSERVERS)
    assert all(batch[observer_key(name)] is observers[name] for name in OBSERVERS)
    for name in OBSERVERS:
        wanted = torch.from_numpy(expected[name][ids])
        assert observers[name].shape == (len(ids),)
        assert observers[name].dtype == wanted.dtype, name
        assert torch.equal(observers[name], wanted), name
    return ids


def test_observer_keys() -> None:
    assert OBSERVER_PREFIX == "observer:"
    assert observer_key("jet_sdmass") == "observer:jet_sdmass"
    batch = {"label": torch.zeros(2), observer_key("a"): torch.ones(2), observer_key("b:c"): torch.zeros(2)}
    assert set(batch_observers(batch)) == {"a", "b:c"}
    assert batch_observers({"label": torch.zeros(2)}) == {}


def test_in_memory_batches_carry_observers(
    files_and_values: tuple[list[Path], dict[str, np.ndarray]], preprocessing: Preprocessing
) -> None:
    files, expected = files_and_values
    config = observer_config(files)
    memory = InMemoryJets.from_files(files, config, preprocessing)
    assert memory.arrays.observers["jet_sdmass"].dtype == np.float32
    assert memory.arrays.observers["aux_truth"].dtype == np.float64
    seen = [check_batch(batch, expected) for batch in memory.batches(32, shuffle=True, seed=3, epoch=1)]
    everything = np.concatenate(seen)
    assert not np.array_equal(everything, np.sort(everything))  # shuffled
    assert sorted(everything) == list(range(sum(SIZES)))
    # the standardised jet input differs from the raw observer of the same field
    batch = next(memory.batches(32))
    assert not torch.equal(batch["jet"][:, 1], batch[observer_key("jet_sdmass")])


def test_in_memory_shards_carry_observers(
    files_and_values: tuple[list[Path], dict[str, np.ndarray]], preprocessing: Preprocessing
) -> None:
    files, expected = files_and_values
    memory = InMemoryJets.from_files(files, observer_config(files), preprocessing)
    per_rank = [
        np.concatenate(
            [
                check_batch(batch, expected)
                for batch in memory.batches(32, shuffle=True, seed=3, epoch=1, rank=rank, world_size=2)
            ]
        )
        for rank in range(2)
    ]
    share = sum(SIZES) // 2
    assert [len(ids) for ids in per_rank] == [share, share]
    assert not set(per_rank[0]) & set(per_rank[1])
    order = np.random.default_rng([3, 1]).permutation(sum(SIZES))  # the jets of the equal shares
    assert sorted(np.concatenate(per_rank)) == sorted(order[: 2 * share])


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("world_size", [1, 2])
def test_streamed_batches_carry_observers(
    files_and_values: tuple[list[Path], dict[str, np.ndarray]],
    preprocessing: Preprocessing,
    workers: int,
    world_size: int,
) -> None:
    files, expected = files_and_values
    config = observer_config(files)
    # blocks of two batches: each worker fills several per epoch, reusing its shared buffers and
    # their layouts within the epoch and in the next one (the workers persist)
    loaders = [
        StreamLoader(
            JetStream(
                files,
                config,
                preprocessing,
                batch_size=16,
                shuffle=True,
                seed=5,
                buffer_size=40,
                rank=rank,
                world_size=world_size,
            ),
            num_workers=workers,
            batches_per_transfer=2,
        )
        for rank in range(world_size)
    ]
    for epoch in range(2):
        per_rank = []
        for loader in loaders:
            loader.set_epoch(epoch)
            per_rank.append(np.concatenate([check_batch(batch, expected) for batch in loader]))
            assert bool(loader._mapped) == bool(workers)  # with workers: views of their shared blocks
        assert sorted(np.concatenate(per_rank)) == list(range(sum(SIZES)))  # every jet once per epoch
        if world_size == 2:
            assert not set(per_rank[0]) & set(per_rank[1])
    for loader in loaders:
        loader.close()


def test_the_shared_block_layout_holds_the_observers() -> None:
    from multiprocessing import get_context

    from heplearn.data.handover import Handover, SharedBlock
    from heplearn.data.jets import RaggedJets

    rng = np.random.default_rng(0)
    counts = np.array([3, 0, 5, 1, 2])
    observers = {
        "truth": rng.normal(size=5),
        "flag": np.array([True, False, True, True, False]),
        "id": np.arange(5, dtype=np.int64),
    }
    jets = RaggedJets(
        ("particles",),
        {"particles": rng.normal(size=(11, 2)).astype(np.float32)},
        counts,
        6,
        {"particles": 0.0},
        {},
        np.array([1, 0, 1, 1, 0]),
        np.ones(5, np.float32),
        observers,
    )
    shapes = jets.padded_shapes(3)
    assert shapes[observer_key("truth")] == ((3,), np.dtype(np.float64))
    assert shapes[observer_key("flag")] == ((3,), np.dtype(bool))
    indices = [np.array([4, 2, 0]), np.array([3, 1])]
    handover = Handover(1, 2, get_context())
    block = handover.send(jets, indices, 0)
    assert isinstance(block, SharedBlock) and block.buffer is not None
    assert all(observer_key(name) in layout for layout in block.layouts for name in observers)
    for batch, index in zip(block.batches(block.buffer, handover), indices, strict=True):
        for name, values in observers.items():
            assert torch.equal(batch[observer_key(name)], torch.from_numpy(values[index]))
        assert batch.keys() == to_batch(jets.padded(index)).keys()


def test_no_observers_means_no_observer_keys(files_and_values: tuple[list[Path], dict[str, np.ndarray]]) -> None:
    files, _ = files_and_values
    config = observer_config(files, observers=())
    memory = InMemoryJets.from_files(files, config, None)
    streamed = next(iter(JetStream(files, config, None, batch_size=16, buffer_size=40)))
    from_workers = next(iter(StreamLoader(JetStream(files, config, None, batch_size=16, buffer_size=40), 2)))
    for batch in (next(memory.batches(16)), streamed, from_workers):
        assert set(batch) == {"particles", "ids", "jet", "mask", "label", "weight"}
        assert batch_observers(batch) == {}


def test_trim_padding_leaves_observers_untouched() -> None:
    mask = torch.tensor([[True, False, False], [True, True, False]])
    mass = torch.tensor([80.5, 172.25], dtype=torch.float64)
    batch = {
        "particles": torch.randn(2, 3, 2),
        "mask": mask,
        "label": torch.tensor([0, 1]),
        observer_key("jet_sdmass"): mass,
    }
    trimmed = trim_padding(batch)
    assert trimmed["particles"].shape == (2, 2, 2)
    assert trimmed[observer_key("jet_sdmass")] is mass


@pytest.mark.parametrize(
    ("observers", "message"),
    [
        (["jet_pt", "jet_sdmass", "jet_pt"], r"observer 'jet_pt' is listed more than once"),
        (["jet_pt", "jet"], r"observer 'jet' is also the name of an input group"),
    ],
)
def test_observer_names_are_checked(observers: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_data_config({"inputs": {"jet": {"variables": ["jet_pt"]}}, "observers": observers})


def test_an_observer_must_hold_numbers() -> None:
    from heplearn.data.transform import ChunkTransformer

    jets = ak.with_field(make_jets(4), ["a", "b", "c", "d"], "aux_name")
    config = load_data_config({"inputs": {"jet": {"variables": ["jet_pt"]}}, "observers": ["aux_name"]})
    with pytest.raises(DataError, match=r"here: 'aux_name' holds string, not numbers"):
        ChunkTransformer(config).ragged(jets, "here")
