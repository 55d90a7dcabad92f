from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
from tests.conftest import write_rntuple

from heplearn.data import io
from heplearn.errors import DataError


@pytest.mark.parametrize("kind", ["parquet", "root", "hdf5", "rntuple"])
def test_round_trip_keeps_every_field_and_value(kind: str, jets: ak.Array, jet_files: dict[str, Path]) -> None:
    source = io.open_source(jet_files[kind])
    assert source.num_entries == len(jets)
    assert set(source.field_names()) == set(jets.fields)
    back = source.read(None, 100, 250)
    for name in jets.fields:
        assert ak.all(back[name] == jets[name][100:250]), name
    assert source.provenance() == {"seed": 1}


def test_parquet_chunks_follow_row_groups(jet_files: dict[str, Path]) -> None:
    assert io.open_source(jet_files["parquet"]).chunk_boundaries() == [0, 200, 400, 600]


def test_parquet_is_written_without_dictionary_pages(tmp_path: Path, jets: ak.Array) -> None:
    import pyarrow.parquet as pq

    path = io.write(jets, tmp_path / "jets.parquet")
    metadata = pq.ParquetFile(path).metadata
    columns = [
        metadata.row_group(g).column(c) for g in range(metadata.num_row_groups) for c in range(metadata.num_columns)
    ]
    assert columns and not any(column.has_dictionary_page for column in columns)
    assert ak.all(io.read(path)["jet_pt"] == jets["jet_pt"])


def test_jetclass_root_layout_written_by_uproot(tmp_path: Path, jets: ak.Array) -> None:
    """A JetClass-style file: tree 'tree', jagged part_* branches with their own counters."""
    path = tmp_path / "jetclass.root"
    branches = {name: jets[name] for name in jets.fields}
    with uproot.recreate(path) as output:
        output.mktree("tree", {k: (v.type if v.ndim == 2 else v.type.content) for k, v in branches.items()})
        output["tree"].extend(branches)
    source = io.open_source(path)
    assert source.table_name == "tree"
    assert "part_px" in source.field_names()
    assert not any(name.startswith("npart") or name.startswith("n_") for name in source.field_names())
    assert ak.all(source.read(["part_px"])["part_px"] == jets["part_px"])


def write_toptagging(path: Path, n: int = 50, slots: int = 200, fmt: str = "fixed") -> pd.DataFrame:
    rng = np.random.default_rng(3)
    columns: dict[str, np.ndarray] = {}
    counts = rng.integers(3, 40, n)
    for i in range(slots):
        real = i < counts
        pt = np.where(real, rng.exponential(30, n) + 1, 0)
        eta = rng.normal(0.5, 0.2, n)
        phi = rng.normal(1.0, 0.2, n)
        columns[f"E_{i}"] = pt * np.cosh(eta) * real
        columns[f"PX_{i}"] = pt * np.cos(phi) * real
        columns[f"PY_{i}"] = pt * np.sin(phi) * real
        columns[f"PZ_{i}"] = pt * np.sinh(eta) * real
    columns["truthE"] = rng.uniform(0, 1000, n)
    columns["ttv"] = np.zeros(n)
    columns["is_signal_new"] = rng.integers(0, 2, n)
    frame = pd.DataFrame(columns)
    frame.to_hdf(path, key="table", mode="w", format=fmt)
    return frame


@pytest.mark.parametrize("fmt", ["fixed", "table"])
def test_top_tagging_hdf5_becomes_jetclass_schema(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"top_{fmt}.h5"
    frame = write_toptagging(path, fmt=fmt)
    assert io.detect_format(path) == "toptagging"
    jets = io.read(path, None, 10, 20)
    energy = frame[[f"E_{i}" for i in range(200)]].to_numpy()[10:20]
    px = frame[[f"PX_{i}" for i in range(200)]].to_numpy()[10:20]
    py = frame[[f"PY_{i}" for i in range(200)]].to_numpy()[10:20]
    assert ak.to_list(jets["jet_nparticles"]) == list((energy > 0).sum(axis=1))
    np.testing.assert_allclose(ak.to_numpy(ak.sum(jets["part_energy"], axis=1)), energy.sum(1), rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(jets["jet_pt"]), np.hypot(px.sum(1), py.sum(1)), rtol=1e-5)
    assert ak.to_list(jets["label_Top"]) == list(frame["is_signal_new"][10:20])
    assert ak.all(jets["label_Top"] + jets["label_QCD"] == 1)
    # Δη, Δφ relative to the jet axis: constituents sit close to it.
    assert float(ak.max(abs(jets["part_dphi"]))) < 1.5
    assert float(abs(ak.mean(jets["part_deta"]))) < 0.2


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.parquet: no such file"):
        io.open_source(tmp_path / "missing.parquet")


@pytest.mark.parametrize("kind", ["parquet", "root", "hdf5"])
def test_truncated_file_is_a_clear_error(kind: str, tmp_path: Path, jet_files: dict[str, Path]) -> None:
    content = jet_files[kind].read_bytes()
    broken = tmp_path / f"broken{jet_files[kind].suffix}"
    broken.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=r"broken"):
        io.open_source(broken).read()


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("just some text")
    with pytest.raises(DataError, match="unknown file format"):
        io.open_source(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.root"
    path.touch()
    with pytest.raises(DataError, match="empty"):
        io.open_source(path)


def test_missing_branch_names_file_and_field(jet_files: dict[str, Path]) -> None:
    with pytest.raises(DataError, match=r"jets\.root: no field 'part_d0val'"):
        io.read(jet_files["root"], ["part_px", "part_d0val"])


def test_unknown_tree(jet_files: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="no TTree or RNTuple 'Events' \\(the file has TTrees: tree\\)"):
        io.open_source(jet_files["root"], tree="Events")


def test_rntuple_reads_like_the_ttree_of_the_same_jets(tmp_path: Path, jets: ak.Array) -> None:
    """uproot >= 5.7 writes an RNTuple for ``file[name] = {...}``: same fields, values, clusters."""
    path = write_rntuple(jets, tmp_path / "jets.root", cluster_size=250)
    with uproot.open(path) as file:
        assert file.classnames() == {"tree;1": "ROOT::RNTuple"}  # not a TTree: what the test is about
    source = io.open_source(path)
    ttree = io.open_source(io.write(jets, tmp_path / "ttree.root", row_group_size=250))
    assert (source.table_name, source.table_kind, ttree.table_kind) == ("tree", "RNTuple", "TTree")
    assert source.num_entries == len(jets)
    assert {f.name: f.type for f in source.fields()} == {f.name: f.type for f in ttree.fields()}
    assert source.chunk_boundaries() == ttree.chunk_boundaries() == [0, 250, 500, 600]
    back = source.read(None, 240, 510)  # across two cluster boundaries
    for name in jets.fields:
        assert ak.all(back[name] == jets[name][240:510]), name
    with pytest.raises(DataError, match=r"jets\.root: no field 'part_d0val'"):
        source.read(["part_d0val"])


def test_the_error_lists_ttrees_and_rntuples(tmp_path: Path, jets: ak.Array) -> None:
    path = tmp_path / "mixed.root"
    with uproot.recreate(path) as output:
        output["Jets"] = {"jet_pt": ak.to_numpy(jets["jet_pt"])}  # an RNTuple
        output.mktree("Events", {"x": np.float64})
        output["Events"].extend({"x": np.zeros(3)})
    with pytest.raises(DataError, match=r"no TTree or RNTuple 'tree' \(the file has TTrees: Events; RNTuples: Jets\)"):
        io.open_source(path)
    assert io.open_source(path, tree="Jets").table_kind == "RNTuple"
    assert io.open_source(path, tree="Events").table_kind == "TTree"
    only_rntuple = tmp_path / "other.root"
    with uproot.recreate(only_rntuple) as output:
        output["Jets"] = {"jet_pt": ak.to_numpy(jets["jet_pt"])}
    assert io.open_source(only_rntuple).table_name == "Jets"  # the only table is read by default
    with uproot.recreate(tmp_path / "none.root") as output:
        output["note"] = "no table here"
    with pytest.raises(DataError, match=r"the file has no TTree and no RNTuple"):
        io.open_source(tmp_path / "none.root")


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    bad = ak.Array([{"x": "text", "y": [1, 2]}])
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the writer raises
        io.write(bad, tmp_path / "out.root")
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path: Path, jets: ak.Array) -> None:
    import os

    umask = os.umask(0o022)
    try:
        path = io.write(jets[:5], tmp_path / "small.parquet")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_root_clusters_follow_the_row_group_size(tmp_path: Path, jets: ak.Array) -> None:
    """Readers decompress whole baskets: a chunk read must not decompress the whole file."""
    path = io.write(jets, tmp_path / "clusters.root", row_group_size=250)
    source = io.open_source(path)
    assert source.chunk_boundaries() == [0, 250, 500, 600]
    assert ak.all(source.read(["part_px"], 240, 260)["part_px"] == jets["part_px"][240:260])
