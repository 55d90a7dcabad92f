"""Prediction over files: chunks, NaN for unselected entries, friend trees, reruns, Dask."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from heplearn.data import io
from heplearn.errors import DataError
from heplearn.serving.export import ExportResult
from heplearn.serving.predict import predict_files
from heplearn.trained_model import TrainedModel
from tests.conftest import make_jets, write_rntuple
from tests.serving.conftest import SELECTION


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Unlabelled jets (data have no labels) as Parquet (several row groups), ROOT and HDF5."""
    folder = tmp_path_factory.mktemp("predict-inputs")
    jets = make_jets(500, seed=31)
    unlabelled = jets[[name for name in jets.fields if not name.startswith("label_")]]
    return {
        "parquet": io.write(unlabelled, folder / "a.parquet", row_group_size=120),
        "root": io.write(unlabelled, folder / "b.root"),
        "hdf5": io.write(unlabelled, folder / "c.h5"),
    }


def _expected(run_dir: Path, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the selected jets (PyTorch) and the selection mask of every entry."""
    model = TrainedModel.load(run_dir)
    jets = io.read(path)
    passed = ak.to_numpy(jets.jet_nparticles) > 8
    labelled = ak.with_field(
        ak.with_field(jets, np.zeros(len(jets), np.int64), "label_top"), np.ones(len(jets), np.int64), "label_qcd"
    )
    copy = path.with_name("labelled" + path.suffix)
    io.write(labelled, copy)
    probabilities, _ = model.predict_files([copy])
    copy.unlink()
    return probabilities, passed


def test_parquet_scores_match_pytorch_with_nan_for_unselected(
    pfn_export: ExportResult, inputs: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = pfn_export.onnx_path.parent
    (output,) = predict_files(run_dir, [inputs["parquet"]], tmp_path, chunk_size=100, progress=False)
    assert output == tmp_path / "a.scores.parquet"
    table = pq.read_table(output)
    assert table.column_names == ["score_top", "score_qcd", "jet_pt", "jet_sdmass"]
    assert table.num_rows == 500
    assert pq.ParquetFile(output).metadata.num_row_groups > 1
    expected, passed = _expected(run_dir, inputs["parquet"])
    scores = np.stack([table["score_top"].to_numpy(), table["score_qcd"].to_numpy()], axis=1)
    assert SELECTION == "jet_nparticles > 8" and 0 < (~passed).sum() < 500
    assert np.isnan(scores[~passed]).all()
    np.testing.assert_allclose(scores[passed], expected, atol=1e-5)
    source = io.read(inputs["parquet"], ["jet_pt"])
    np.testing.assert_array_equal(table["jet_pt"].to_numpy(), ak.to_numpy(source.jet_pt))

    before = output.stat().st_mtime_ns  # a rerun skips the finished file
    predict_files(run_dir, [inputs["parquet"]], tmp_path, progress=False)
    assert output.stat().st_mtime_ns == before
    assert [path.name for path in tmp_path.iterdir()] == ["a.scores.parquet"]  # no temporary left


def test_root_input_gives_an_aligned_friend_tree(
    pfn_export: ExportResult, inputs: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = pfn_export.onnx_path.parent
    onnx_out, torch_out = tmp_path / "onnx", tmp_path / "torch"
    (friend,) = predict_files(run_dir, [inputs["root"]], onnx_out, chunk_size=128, progress=False)
    (torch_friend,) = predict_files(run_dir, [inputs["root"]], torch_out, engine="torch", progress=False)
    assert friend.name == "b.scores.root"
    with uproot.open(inputs["root"]) as original, uproot.open(friend) as scored:
        assert set(scored.keys(cycle=False)) >= {"tree"}
        assert scored["tree"].num_entries == original["tree"].num_entries == 500
        values = scored["tree"].arrays(["score_top", "jet_pt"], library="np")
        np.testing.assert_array_equal(values["jet_pt"], original["tree"]["jet_pt"].array(library="np"))
    with uproot.open(torch_friend) as scored:
        torch_values = scored["tree"]["score_top"].array(library="np")
    expected, passed = _expected(run_dir, inputs["root"])
    np.testing.assert_allclose(values["score_top"][passed], expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(torch_values[passed], expected[:, 0], atol=1e-6)
    assert np.isnan(values["score_top"][~passed]).all() and np.isnan(torch_values[~passed]).all()


def test_hdf5_input_and_root_format(mlp_export: ExportResult, inputs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = mlp_export.onnx_path.parent
    (output,) = predict_files(run_dir, [inputs["hdf5"]], tmp_path, output_format="root", progress=False)
    assert output.name == "c.scores.root"
    with uproot.open(output) as scored:
        scores = scored["tree"].arrays(["score_top", "score_qcd"], library="np")
    expected, passed = _expected(run_dir, inputs["hdf5"])
    np.testing.assert_allclose(scores["score_qcd"][passed], expected[:, 1], atol=1e-5)


def test_rntuple_input_scores_like_the_ttree(mlp_export: ExportResult, inputs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = mlp_export.onnx_path.parent
    rntuple = write_rntuple(io.read(inputs["root"]), tmp_path / "rntuple.root", cluster_size=150)
    (from_rntuple,) = predict_files(run_dir, [rntuple], tmp_path / "out", chunk_size=100, progress=False)
    (from_ttree,) = predict_files(run_dir, [inputs["root"]], tmp_path / "out", chunk_size=100, progress=False)
    with uproot.open(from_rntuple) as scored, uproot.open(from_ttree) as reference:
        assert scored["tree"].num_entries == 500  # aligned entry by entry with the RNTuple read
        got, expected = (file["tree"].arrays(["score_top", "jet_pt"], library="np") for file in (scored, reference))
    np.testing.assert_array_equal(got["jet_pt"], expected["jet_pt"])
    np.testing.assert_allclose(got["score_top"], expected["score_top"], atol=1e-6, equal_nan=True)
    assert 0 < np.isnan(got["score_top"]).sum() < 500  # unselected jets keep their NaN


def test_dask_runs_give_identical_files(pfn_export: ExportResult, inputs: dict[str, Path], tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    run_dir = pfn_export.onnx_path.parent
    files = [inputs["parquet"], inputs["hdf5"]]
    single = predict_files(run_dir, files, tmp_path / "single", progress=False)
    local = predict_files(run_dir, files, tmp_path / "local", workers=2, progress=False)
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = predict_files(run_dir, files, tmp_path / "remote", scheduler=cluster.scheduler_address, progress=False)
    for one, two, three in zip(single, local, remote, strict=True):
        reference = pq.read_table(one).to_pydict()
        for other in (two, three):
            columns = pq.read_table(other).to_pydict()
            assert list(columns) == list(reference)
            for name, values in reference.items():  # bit for bit; NaN (unselected) in the same places
                np.testing.assert_array_equal(np.asarray(columns[name]), np.asarray(values))


def test_bad_inputs_are_clear_errors(
    pfn_export: ExportResult, cuts_run: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = pfn_export.onnx_path.parent
    with pytest.raises(DataError, match="no such file"):
        predict_files(run_dir, [tmp_path / "missing.parquet"], tmp_path)
    with pytest.raises(DataError, match="export the run first"):
        predict_files(cuts_run, [inputs["parquet"]], tmp_path, engine="onnx")
    (output,) = predict_files(cuts_run, [inputs["parquet"]], tmp_path, engine="torch", progress=False)
    assert pq.read_table(output).num_rows == 500


def test_onnx_engine_sorts_and_trims_batches_but_keeps_the_order(
    pfn_export: ExportResult, split_files: dict[str, str]
) -> None:
    """Batches of similar multiplicity, cut to their longest jet, give the same scores in input order."""
    from heplearn.data.in_memory import load_arrays
    from heplearn.serving.engines import OnnxEngine

    model = TrainedModel.load(pfn_export.onnx_path.parent)
    arrays, _ = load_arrays([split_files["test"]], model.config.data)
    assert arrays.mask is not None
    counts = arrays.mask.sum(axis=1)
    assert (counts < arrays.mask.shape[1]).sum() > 16 and counts.min() < counts.max()  # batches of 16 get cut
    expected = model.predict(arrays)
    for batch_size in (1, 16, 4096):
        np.testing.assert_allclose(
            OnnxEngine(pfn_export.onnx_path, batch_size=batch_size).predict(arrays), expected, atol=1e-5
        )


def test_an_output_of_another_run_is_refused_unless_overwrite(
    pfn_export: ExportResult, mlp_export: ExportResult, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 15: predicting with one run into a folder holding another run's scores exited 0 and kept them."""
    output_dir = tmp_path / "scores"
    pfn_run, mlp_run = pfn_export.onnx_path.parent, mlp_export.onnx_path.parent
    (output,) = predict_files(mlp_run, [inputs["parquet"]], output_dir, progress=False)
    mlp_scores = pq.read_table(output).column("score_top").to_numpy()
    made = output.stat().st_mtime_ns
    assert predict_files(mlp_run, [inputs["parquet"]], output_dir, progress=False) == [output]
    assert output.stat().st_mtime_ns == made  # same run, model and input: reused
    with pytest.raises(
        DataError,
        match=rf"{output.name} exists and was made by run .*{mlp_run.name} from "
        rf".*a\.parquet.*differs in: run, model_sha256.*--overwrite",
    ):
        predict_files(pfn_run, [inputs["parquet"]], output_dir, progress=False)
    np.testing.assert_array_equal(pq.read_table(output).column("score_top").to_numpy(), mlp_scores)
    predict_files(pfn_run, [inputs["parquet"]], output_dir, engine="onnx", progress=False, overwrite=True)
    provenance = io.open_source(output).provenance()
    assert provenance["run"] == str(pfn_run.resolve()) and provenance["engine"] == "onnx"
    assert not np.allclose(pq.read_table(output).column("score_top").to_numpy(), mlp_scores, equal_nan=True)
    foreign = output_dir / "b.scores.parquet"
    io.write(make_jets(5, seed=1), foreign)  # a file heplearn's predict did not make
    with pytest.raises(DataError, match="made by an unknown producer"):
        predict_files(pfn_run, [inputs["root"]], output_dir, output_format="parquet", progress=False)


def test_a_failed_predict_leaves_no_empty_output_folder(pfn_export: ExportResult, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError):
        predict_files(pfn_export.onnx_path.parent, [broken], tmp_path / "new-scores", progress=False)
    assert not (tmp_path / "new-scores").exists()
