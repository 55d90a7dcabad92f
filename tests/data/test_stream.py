"""The streaming pipeline sees every jet exactly once per epoch, whatever the sharding."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from tests.conftest import make_jets, write_rntuple

from heplearn.data import io
from heplearn.data.config import DataConfig, load_data_config
from heplearn.data.in_memory import InMemoryJets, load_arrays
from heplearn.data.pieces import plan_pieces, shard_pieces
from heplearn.data.stream import JetStream
from heplearn.data.stream_loader import stream_loader

SIZES = (130, 47, 260)  # unequal files; fewer files than shards in the 3 workers x 2 ranks case
# The 3-worker case asks for more workers than this 2-core machine has, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def id_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("stream")
    files = []
    first = 0
    for index, (size, suffix) in enumerate(zip(SIZES, (".parquet", ".root", ".parquet"), strict=True)):
        jets = make_jets(size, seed=10 + index)
        jets = ak.with_field(jets, np.arange(first, first + size, dtype=np.float64), "aux_id")
        files.append(io.write(jets, folder / f"part{index}{suffix}", row_group_size=40))
        first += size
    return files


def stream_config(files: list[Path]) -> DataConfig:
    return load_data_config(
        {
            "train": [str(f) for f in files],
            "chunk_size": 25,
            "inputs": {
                "particles": {"length": 16, "variables": ["part_deta", "part_logpt"]},
                "ids": {"variables": ["aux_id"], "standardize": False},
            },
        }
    )


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("world_size", [1, 2])
def test_each_jet_once_per_epoch(id_files: list[Path], workers: int, world_size: int) -> None:
    config = stream_config(id_files)
    seen_per_rank = []
    for rank in range(world_size):
        stream = JetStream(
            id_files,
            config,
            None,
            batch_size=16,
            shuffle=True,
            seed=5,
            buffer_size=40,
            rank=rank,
            world_size=world_size,
        )
        stream.set_epoch(1)
        ids = [batch["ids"][:, 0].numpy() for batch in stream_loader(stream, num_workers=workers)]
        seen_per_rank.append(np.concatenate(ids).astype(int))
    everything = np.concatenate(seen_per_rank)
    assert sorted(everything) == list(range(sum(SIZES)))
    if world_size == 2:
        assert not set(seen_per_rank[0]) & set(seen_per_rank[1])
        assert abs(len(seen_per_rank[0]) - len(seen_per_rank[1])) <= max(workers, 1)


def test_shuffling_mixes_files_and_changes_with_epoch(id_files: list[Path]) -> None:
    config = stream_config(id_files)
    stream = JetStream(id_files, config, None, batch_size=64, seed=1, buffer_size=200)
    first_batch = next(iter(stream))["ids"][:, 0].numpy()
    file_of = np.searchsorted(np.cumsum(SIZES), first_batch, side="right")
    assert len(set(file_of)) >= 2
    stream.set_epoch(1)
    assert not np.array_equal(next(iter(stream))["ids"][:, 0].numpy(), first_batch)


def test_shards_are_balanced() -> None:
    from heplearn.data.pieces import Piece

    pieces = [Piece("a", 0, 10), Piece("b", 0, 3), Piece("c", 0, 40)]
    for shards in (1, 2, 3, 5, 8):
        got = [shard_pieces(pieces, s, shards, shuffle=True, seed=0, epoch=2) for s in range(shards)]
        sizes = [sum(len(p) for p in g) for g in got]
        assert sum(sizes) == 53 and max(sizes) - min(sizes) <= 1


def test_stream_batches_match_in_memory(id_files: list[Path]) -> None:
    config = stream_config(id_files)
    arrays, classes = load_arrays(id_files, config)
    memory = InMemoryJets(arrays, classes, None)
    streamed = {
        int(i): row
        for batch in JetStream(id_files, config, None, 50, shuffle=False)
        for i, row in zip(batch["ids"][:, 0], batch["particles"].numpy(), strict=True)
    }
    for batch in memory.batches(100):
        for i, row in zip(batch["ids"][:, 0], batch["particles"].numpy(), strict=True):
            np.testing.assert_array_equal(streamed[int(i)], row)
    assert batch["mask"].dtype.is_floating_point is False
    assert set(batch) == {"particles", "ids", "mask", "label", "weight"}


def test_pieces_respect_storage_units(id_files: list[Path]) -> None:
    pieces = plan_pieces(id_files, 25)
    assert sum(len(p) for p in pieces) == sum(SIZES)
    assert all(len(p) <= 25 for p in pieces)
    first_file = [p for p in pieces if p.path == str(id_files[0])]
    assert [p.start for p in first_file][:3] == [0, 25, 40]  # row groups of 40 are not crossed


@pytest.fixture(scope="module")
def rntuple_files(id_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The files of ``id_files`` with the TTree one rewritten as an RNTuple (clusters of 40)."""
    folder = tmp_path_factory.mktemp("rntuple")
    return [
        write_rntuple(io.read(path), folder / "part1.root", cluster_size=40) if path.suffix == ".root" else path
        for path in id_files
    ]


def test_rntuple_pieces_respect_its_clusters(rntuple_files: list[Path]) -> None:
    pieces = [p for p in plan_pieces(rntuple_files, 25) if p.path == str(rntuple_files[1])]
    assert SIZES[1] == 47
    assert [(p.start, p.stop) for p in pieces] == [(0, 25), (25, 40), (40, 47)]  # the cluster at 40 is not crossed


@pytest.mark.parametrize("workers", [0, 2])
def test_each_jet_once_per_epoch_with_an_rntuple(rntuple_files: list[Path], workers: int) -> None:
    config = stream_config(rntuple_files)
    seen = []
    for rank in range(2):
        stream = JetStream(
            rntuple_files, config, None, batch_size=16, shuffle=True, seed=5, buffer_size=40, rank=rank, world_size=2
        )
        stream.set_epoch(2)
        seen.append(np.concatenate([b["ids"][:, 0].numpy() for b in stream_loader(stream, num_workers=workers)]))
    assert sorted(np.concatenate(seen).astype(int)) == list(range(sum(SIZES)))
    assert not set(seen[0]) & set(seen[1])


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    from heplearn.errors import DataError

    path = io.write(make_jets(5)[:0], tmp_path / "none.parquet")
    with pytest.raises(DataError, match=r"none\.parquet: the file contains no entries"):
        plan_pieces([path], 10)


def test_read_ahead_threads_keep_the_order(id_files: list[Path]) -> None:
    config = stream_config(id_files)
    runs = []
    for threads in (1, 3):
        stream = JetStream(id_files, config, None, batch_size=32, seed=2, buffer_size=64, read_threads=threads)
        runs.append(np.concatenate([batch["ids"][:, 0].numpy() for batch in stream]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_trim_padding_cuts_only_padding() -> None:
    import torch

    from heplearn.data.batches import trim_padding

    mask = torch.tensor([[True, True, False, False, False], [True, True, True, False, False]])
    batch = {"particles": torch.randn(2, 5, 3), "mask": mask, "jet": torch.randn(2, 4), "label": torch.tensor([0, 1])}
    trimmed = trim_padding(batch)
    assert trimmed["particles"].shape == (2, 3, 3) and trimmed["mask"].shape == (2, 3)
    assert torch.equal(trimmed["particles"], batch["particles"][:, :3]) and torch.equal(trimmed["jet"], batch["jet"])
    assert trim_padding({"mask": torch.zeros(2, 4, dtype=torch.bool)})["mask"].shape == (2, 1)


def test_stopping_early_with_workers_does_not_wait_for_them(id_files: list[Path]) -> None:
    import time

    stream = JetStream(id_files, stream_config(id_files), None, batch_size=4, buffer_size=8)
    start = time.perf_counter()
    for batch in stream_loader(stream, num_workers=2):
        assert len(batch["label"]) == 4
        break
    assert time.perf_counter() - start < 4  # a worker left waiting for a buffer would hold 5 s
    assert stream.handover is None


def test_handover_round_trip() -> None:
    import gc
    from multiprocessing import get_context

    import torch

    from heplearn.data.batches import to_batch
    from heplearn.data.handover import Handover, SharedBlock
    from heplearn.data.jets import RaggedJets

    rng = np.random.default_rng(0)
    counts = np.array([3, 0, 5, 1])
    jets = RaggedJets(
        ("particles", "jet"),
        {"particles": rng.normal(size=(9, 2)).astype(np.float32)},
        counts,
        6,
        {"particles": -1.0, "jet": 0.0},
        {"jet": rng.normal(size=(4, 4)).astype(np.float32)},
        np.array([1, 0, 1, 1]),
        np.ones(4, np.float32),
        {"aux": np.arange(4)},
    )
    handover = Handover(1, 2, get_context())
    indices = [np.array([2, 0]), np.array([3, 1]), np.array([1])]

    def check(batches: list[dict[str, torch.Tensor]]) -> None:
        for batch, index in zip(batches, indices, strict=True):
            expected = to_batch(jets.padded(index))
            assert batch.keys() == expected.keys()
            assert all(torch.equal(batch[key], expected[key]) for key in batch)

    buffers = {}
    for round_ in range(3):  # the same buffer, given back each time its batches are gone
        block = handover.send(jets, indices, 0)
        assert isinstance(block, SharedBlock) and block.slot == 0
        assert (block.buffer is None) == (round_ > 0)  # sent once
        buffers.setdefault(0, block.buffer)
        check(block.batches(buffers[0], handover))
        gc.collect()
    first = handover.send(jets, indices, 0)
    second = handover.send(jets, indices, 0)
    assert isinstance(first, SharedBlock) and isinstance(second, SharedBlock) and second.slot == 1
    assert second.buffer is not None
    held = first.batches(buffers[0], handover), second.batches(second.buffer, handover)  # a consumer keeping them
    overflow = handover.send(jets, indices, 0)
    assert isinstance(overflow, list)  # ordinary tensors rather than waiting
    check(overflow)
    check(held[0])
    del held
    gc.collect()
    assert list(handover.in_use.get_obj()) == [0, 0]


def test_padding_a_selection_equals_selecting_padded_jets() -> None:
    from heplearn.data.jets import RaggedJets

    rng = np.random.default_rng(1)
    counts = rng.integers(0, 6, 20)
    jets = RaggedJets(
        ("p",),
        {"p": rng.normal(size=(int(counts.sum()), 3)).astype(np.float32)},
        counts,
        6,
        {"p": 7.0},
        {},
        np.arange(20),
        np.ones(20, np.float32),
    )
    everything = jets.padded()
    assert (everything.inputs["p"][~everything.mask] == 7.0).all()
    for index in (rng.permutation(20)[:9], slice(4, 13), np.array([], int)):
        part = jets.padded(index)
        np.testing.assert_array_equal(part.inputs["p"], everything.inputs["p"][index])
        np.testing.assert_array_equal(part.mask, everything.mask[index])
        np.testing.assert_array_equal(jets.take(np.arange(20)[index]).padded().inputs["p"], part.inputs["p"])


def epoch_ids(loader: object) -> np.ndarray:
    return np.concatenate([batch["ids"][:, 0].numpy() for batch in loader]).astype(int)  # type: ignore[attr-defined]


def test_workers_persist_across_epochs_and_follow_the_epoch(id_files: list[Path]) -> None:
    config = stream_config(id_files)
    loader = stream_loader(JetStream(id_files, config, None, batch_size=16, seed=3, buffer_size=40), num_workers=2)
    orders, worker_ids = [], []
    for epoch in range(3):
        loader.set_epoch(epoch)
        orders.append(epoch_ids(loader))
        worker_ids.append([worker.pid for worker in loader._loader._iterator._workers])  # type: ignore[union-attr]
        fresh = JetStream(id_files, config, None, batch_size=16, seed=3, buffer_size=40)
        fresh.set_epoch(epoch)  # a new loader for this epoch gives the same order
        np.testing.assert_array_equal(orders[-1], epoch_ids(stream_loader(fresh, num_workers=2)))
    assert all(sorted(order) == list(range(sum(SIZES))) for order in orders)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert worker_ids[0] == worker_ids[1] == worker_ids[2]
    loader.close()
    assert loader.stream.handover is None and loader.stream.shared_epoch is None


def test_an_epoch_left_early_restarts_the_workers(id_files: list[Path]) -> None:
    loader = stream_loader(
        JetStream(id_files, stream_config(id_files), None, batch_size=16, buffer_size=40), num_workers=2
    )
    for _ in loader:
        break
    assert loader.stream.handover is None  # stopped: blocks in flight held their buffers
    loader.set_epoch(1)
    assert sorted(epoch_ids(loader)) == list(range(sum(SIZES)))
    loader.close()


def test_workers_may_prefetch_the_blocks_of_one_piece(id_files: list[Path]) -> None:
    from heplearn.data.pieces import Piece

    stream = JetStream(id_files, stream_config(id_files), None, batch_size=2, buffer_size=40)
    assert max(len(piece) for piece in stream.pieces) == 25
    assert stream_loader(stream, num_workers=2).prefetch_blocks() == 2  # 25 jets in blocks of 8 × 2: at least 2
    stream.batch_size = 1
    assert stream_loader(stream, num_workers=2).prefetch_blocks() == 4  # blocks of 8 jets
    stream.pieces = [Piece("large.parquet", 0, 10_000)]
    assert stream_loader(stream, num_workers=2).prefetch_blocks() == 16  # at most max_prefetch
