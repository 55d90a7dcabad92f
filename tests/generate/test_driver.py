"""The driver: reproducible whatever the workers, restartable, atomic, class-balanced mixtures."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.generate import chunk as chunk_module
from heplearn.generate.driver import generate
from heplearn.generate.processes import GeneratorOptions

# Small and quick: MPI off, two processes, 24 jets each in chunks of 12.
FAST = GeneratorOptions(mpi=False)
PROCESSES = ["w", "qcd"]
JETS = 24
CHUNK = 12


def run(output: Path, **kwargs: object) -> object:
    arguments: dict[str, object] = {"seed": 7, "workers": 1, "chunk_size": CHUNK, "options": FAST, "progress": False}
    arguments.update(kwargs)
    return generate(PROCESSES, JETS, output, **arguments)  # type: ignore[arg-type]


def read_splits(directory: Path, suffix: str = ".parquet") -> dict[str, ak.Array]:
    return {split: io.open_source(directory / f"{split}{suffix}").read() for split in ("train", "val", "test")}


def chunk_files(directory: Path) -> list[Path]:
    return sorted((directory / "chunks").rglob("chunk-*.parquet"))


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("one_worker")
    run(output)
    return output


@pytest.mark.heavy  # Pythia in two worker processes
def test_same_events_with_one_and_two_workers(one_worker: Path, tmp_path: Path) -> None:
    summary = run(tmp_path, workers=2)
    assert summary.chunks_generated == 4  # type: ignore[attr-defined]
    first, second = read_splits(one_worker), read_splits(tmp_path)
    for split in first:
        assert ak.array_equal(first[split], second[split]), split


def test_mixture_is_balanced_labelled_and_shuffled(one_worker: Path) -> None:
    splits = read_splits(one_worker)
    assert {name: len(jets) for name, jets in splits.items()} == {"train": 38, "val": 4, "test": 6}
    train = splits["train"]
    assert int(ak.sum(train.label_w)) == int(ak.sum(train.label_qcd)) == 19
    assert ak.all(train.label_w != train.label_qcd)  # one-hot
    labels = ak.to_numpy(train.label_w).astype(int)
    assert np.sum(np.abs(np.diff(labels))) > 5  # classes interleaved, not in blocks
    # Each class is split alone (19 / 2 / 3 of 24), so every split is balanced.
    assert int(ak.sum(splits["val"].label_w)) == int(ak.sum(splits["val"].label_qcd)) == 2
    assert int(ak.sum(splits["test"].label_w)) == int(ak.sum(splits["test"].label_qcd)) == 3
    # Every jet appears once across the splits.
    every = ak.concatenate(list(splits.values()))
    keys = set(
        zip(
            every.label_w.tolist(),
            every.aux_chunk.tolist(),
            every.aux_event.tolist(),
            every.jet_pt.tolist(),
            strict=True,
        )
    )
    assert len(keys) == 2 * JETS


def test_provenance_in_file_metadata(one_worker: Path) -> None:
    provenance = io.open_source(one_worker / "train.parquet").provenance()
    assert provenance["seed"] == 7
    assert provenance["processes"] == PROCESSES
    assert provenance["options"]["mpi"] is False
    assert provenance["split"] == "train"
    assert {"pythia8mc", "fastjet", "awkward"} <= set(provenance["packages"])
    assert provenance["heplearn_version"]
    assert len(provenance["chunk_seeds"]["w"]) == 2
    assert any("HardQCD:all" in line for line in provenance["pythia_settings"]["qcd"])


def test_rerun_skips_finished_chunks(one_worker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = read_splits(one_worker)
    stamps = {path: path.stat().st_mtime_ns for path in chunk_files(one_worker)}

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished chunk was generated again")

    monkeypatch.setattr(chunk_module, "generate_jets", must_not_run)
    summary = run(one_worker)
    assert summary.chunks_skipped == 4 and summary.chunks_generated == 0  # type: ignore[attr-defined]
    assert {path: path.stat().st_mtime_ns for path in chunk_files(one_worker)} == stamps
    after = read_splits(one_worker)
    assert all(ak.array_equal(before[split], after[split]) for split in before)


def test_other_settings_do_not_reuse_chunks(one_worker: Path, tmp_path: Path) -> None:
    summary = run(tmp_path, chunk_size=CHUNK, options=FAST.with_changes(pt_min=560.0))
    assert summary.chunks_generated == 4  # type: ignore[attr-defined]
    key = {path.parent.name for path in chunk_files(one_worker)}
    assert key.isdisjoint({path.parent.name for path in chunk_files(tmp_path)})


def test_interrupt_leaves_no_partial_file_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = chunk_module.generate_jets
    calls = {"n": 0}

    def interrupted(*args: object, **kwargs: object) -> ak.Array:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chunk_module, "generate_jets", interrupted)
    (tmp_path / "chunks").mkdir()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert len(chunk_files(tmp_path)) == 2
    assert not [path for path in tmp_path.rglob("*") if ".tmp" in path.name]
    assert not (tmp_path / "train.parquet").exists()

    # Interrupted while writing: the temporary file goes, no chunk file appears.
    monkeypatch.setattr(chunk_module, "generate_jets", real)

    def write_half(array: ak.Array, path: Path, *args: object) -> None:
        path.write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "_write_parquet", write_half)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert len(chunk_files(tmp_path)) == 2
    assert not [path for path in tmp_path.rglob("*") if ".tmp" in path.name]

    monkeypatch.undo()
    summary = run(tmp_path)
    assert summary.chunks_skipped == 2 and summary.chunks_generated == 2  # type: ignore[attr-defined]


def test_stale_temporary_files_are_removed(one_worker: Path) -> None:
    directory = chunk_files(one_worker)[0].parent
    stale = directory / ".chunk-00009-n12.parquet.abc.tmp.parquet"
    stale.write_bytes(b"half")
    run(one_worker)
    assert not stale.exists()


def test_root_output(tmp_path: Path) -> None:
    summary = generate(
        ["w"], 6, tmp_path, seed=3, options=FAST, fractions=(0.5, 0.5, 0.0), file_format="root", progress=False
    )
    assert set(summary.files) == {"train", "val"}
    jets = io.open_source(summary.files["train"]).read()
    assert len(jets) == 3
    assert {"part_px", "jet_sdmass", "label_w"} <= set(jets.fields)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"processes": ["tau"]}, "unknown process 'tau'"),
        ({"processes": []}, "no process"),
        ({"processes": ["w", "w"]}, "more than once"),
        ({"jets_per_process": 0}, "jets_per_process"),
        ({"workers": 0}, "workers"),
        ({"chunk_size": -5}, "chunk_size"),
        ({"seed": -1}, "seed"),
        ({"fractions": (0.8, 0.1)}, "three"),
        ({"fractions": (0.8, 0.3, 0.1)}, "add up to 1"),
        ({"file_format": "csv"}, "unknown file format"),
        ({"pt_min": 700.0}, "pt_max"),
        ({"colour": "red"}, "unknown generator option colour"),
    ],
)
def test_bad_arguments(tmp_path: Path, arguments: dict[str, object], message: str) -> None:
    call: dict[str, object] = {"processes": ["w"], "jets_per_process": 4, "output_dir": tmp_path, "progress": False}
    call.update(arguments)
    with pytest.raises(ConfigError, match=message):
        generate(**call)  # type: ignore[arg-type]
    assert not (tmp_path / "chunks").exists()
