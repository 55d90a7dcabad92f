from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from heplearn.config import apply_overrides
from heplearn.data import io
from heplearn.data.config import load_data_config
from heplearn.data.in_memory import InMemoryJets, fit_preprocessing, load_arrays
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import ConfigError, DataError, ExpressionError
from heplearn.features.particles import wrap_phi


def config_dict(files: list[str], **changes: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "train": files,
        "inputs": {
            "particles": {
                "length": 32,
                "variables": ["part_deta", "part_dphi", "part_logpt", "part_logptrel", "part_deltaR", "part_charge"],
            },
            "points": {"length": 32, "variables": ["part_deta", "part_dphi"], "standardize": False},
            "jet": {"variables": ["jet_pt", "jet_sdmass", "n_particles"]},
        },
        "new_variables": {"n_particles": "ak.num(part_px, axis=1)"},
        "labels": {"classes": ["label_top", "label_qcd"]},
        "observers": ["jet_pt"],
    }
    content.update(changes)
    return content


def test_typo_names_the_key() -> None:
    content = config_dict(["x.parquet"])
    content["inputs"]["particles"]["lenght"] = 10
    with pytest.raises(ConfigError, match=r"data\.inputs\.particles\.lenght: unknown key"):
        load_data_config(content)


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.chunk_size"):
        load_data_config(config_dict(["x.parquet"], chunk_size="many"))


def test_forbidden_expression_fails_at_load() -> None:
    with pytest.raises(ExpressionError, match=r"data\.selection.*'os\.system'"):
        load_data_config(config_dict(["x.parquet"], selection="os.system('rm')"))


def test_overrides_set_nested_keys() -> None:
    content = {"training": {"epochs": 10}}
    apply_overrides(content, ["training.epochs=3", "model.name=bdt", "data.clip=2.5"])
    assert content == {"training": {"epochs": 3}, "model": {"name": "bdt"}, "data": {"clip": 2.5}}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(content, ["training.epochs"])


def test_arrays_follow_the_config(jets: ak.Array, jet_files: dict[str, Path]) -> None:
    config = load_data_config(config_dict([str(jet_files["parquet"])]))
    arrays, classes = load_arrays([jet_files["parquet"]], config)
    assert classes == ["top", "qcd"]
    assert arrays.inputs["particles"].shape == (600, 32, 6)
    assert arrays.inputs["jet"].shape == (600, 3)
    counts = ak.to_numpy(ak.num(jets["part_px"]))
    assert (arrays.mask.sum(axis=1) == np.minimum(counts, 32)).all()
    np.testing.assert_array_equal(arrays.label, 1 - ak.to_numpy(jets["label_top"]))
    # pT ordering: the hardest particle first, the logpt column decreasing along each jet.
    logpt = arrays.inputs["particles"][..., 2]
    first = ak.to_numpy(ak.max(np.hypot(jets["part_px"], jets["part_py"]), axis=1))
    np.testing.assert_allclose(np.exp(logpt[:, 0]), first, rtol=1e-5)
    real = arrays.mask
    assert (np.diff(np.where(real, logpt, -1e9), axis=1)[real[:, 1:]] <= 1e-6).all()
    # derived features: ΔR, log(pT/pT_jet), the new variable.
    deta, dphi = arrays.inputs["particles"][..., 0], arrays.inputs["particles"][..., 1]
    np.testing.assert_allclose(arrays.inputs["particles"][..., 4][real], np.hypot(deta, dphi)[real], rtol=1e-5)
    np.testing.assert_allclose(arrays.inputs["jet"][:, 2], counts)
    np.testing.assert_allclose(arrays.observers["jet_pt"], ak.to_numpy(jets["jet_pt"]))


def test_dphi_is_wrapped_and_deta_signed() -> None:
    assert np.allclose(wrap_phi(np.array([3.5, -3.5, np.pi, 0.1])), [3.5 - 2 * np.pi, 2 * np.pi - 3.5, -np.pi, 0.1])
    from heplearn.features.particles import VariableTable

    particle_phi = 3.1
    chunk = ak.zip(
        {
            "part_px": [[np.cos(particle_phi)]],
            "part_py": [[np.sin(particle_phi)]],
            "part_pz": [[0.0]],
            "jet_eta": [0.5],
            "jet_phi": [-3.1],
        },
        depth_limit=1,
    )
    table = VariableTable(chunk, {})
    assert float(table["part_deta"][0][0]) == pytest.approx(-0.5)  # η_particle − η_jet, unflipped
    assert float(table["part_dphi"][0][0]) == pytest.approx(6.2 - 2 * np.pi, abs=1e-6)


def test_selection_weights_and_expression_labels(jet_files: dict[str, Path], jets: ak.Array) -> None:
    config = load_data_config(
        config_dict(
            [str(jet_files["root"])],
            selection="jet_sdmass > 100",
            weights="jet_pt / 100",
            labels={"classes": {"heavy": "jet_sdmass > 150", "light": "jet_sdmass <= 150"}},
        )
    )
    arrays, classes = load_arrays([jet_files["root"]], config)
    keep = ak.to_numpy(jets["jet_sdmass"]) > 100
    assert len(arrays) == keep.sum()
    assert classes == ["heavy", "light"]
    np.testing.assert_allclose(arrays.weight, ak.to_numpy(jets["jet_pt"])[keep] / 100, rtol=1e-6)
    np.testing.assert_array_equal(arrays.label, (ak.to_numpy(jets["jet_sdmass"])[keep] <= 150).astype(int))


def test_an_rntuple_loads_like_the_ttree_of_the_same_jets(jet_files: dict[str, Path]) -> None:
    config = load_data_config(config_dict([str(jet_files["root"])], selection="jet_sdmass > 100"))
    (from_ttree, classes), (from_rntuple, rntuple_classes) = (
        load_arrays([jet_files[kind]], config) for kind in ("root", "rntuple")
    )
    assert classes == rntuple_classes and len(from_ttree) == len(from_rntuple) > 0
    np.testing.assert_array_equal(from_ttree.label, from_rntuple.label)
    for name, values in from_ttree.inputs.items():
        np.testing.assert_array_equal(values, from_rntuple.inputs[name])


def test_regression_targets(jet_files: dict[str, Path], jets: ak.Array) -> None:
    config = load_data_config(
        config_dict([str(jet_files["hdf5"])], labels={"type": "regression", "targets": {"mass": "jet_sdmass"}})
    )
    arrays, _ = load_arrays([jet_files["hdf5"]], config)
    np.testing.assert_allclose(arrays.label[:, 0], ak.to_numpy(jets["jet_sdmass"]))


def test_nothing_left_after_selection(jet_files: dict[str, Path]) -> None:
    config = load_data_config(config_dict([str(jet_files["parquet"])], selection="jet_pt < 0"))
    with pytest.raises(DataError, match=r"no jets left after data\.selection 'jet_pt < 0'"):
        load_arrays([jet_files["parquet"]], config)


def test_missing_field_for_an_input(jet_files: dict[str, Path]) -> None:
    content = config_dict([str(jet_files["parquet"])])
    content["inputs"]["particles"]["variables"].append("part_d0val")
    with pytest.raises(DataError, match=r"jets\.parquet: no field 'part_d0val'"):
        load_arrays([jet_files["parquet"]], load_data_config(content))


def test_wrong_type_of_field(tmp_path: Path, jets: ak.Array) -> None:
    path = io.write(ak.with_field(jets, ak.Array(["x"] * len(jets)), "jet_tag"), tmp_path / "t.parquet")
    content = config_dict([str(path)])
    content["inputs"]["jet"]["variables"].append("jet_tag")
    with pytest.raises(DataError, match=r"'jet_tag' holds string, not numbers"):
        load_arrays([path], load_data_config(content))


def nan_file(tmp_path: Path, jets: ak.Array) -> Path:
    sdmass = ak.to_numpy(jets["jet_sdmass"]).copy()
    sdmass[[3, 7]] = [np.nan, np.inf]
    return io.write(ak.with_field(jets, sdmass, "jet_sdmass"), tmp_path / "nan.parquet")


def test_nan_is_an_error_by_default(tmp_path: Path, jets: ak.Array) -> None:
    path = nan_file(tmp_path, jets)
    with pytest.raises(DataError, match=r"nan\.parquet.*2 NaN or infinite values in 'jet_sdmass'"):
        load_arrays([path], load_data_config(config_dict([str(path)])))


def test_nan_can_be_replaced_and_counted(tmp_path: Path, jets: ak.Array, caplog: pytest.LogCaptureFixture) -> None:
    path = nan_file(tmp_path, jets)
    config = load_data_config(config_dict([str(path)], nonfinite="replace", nonfinite_value=-1.0))
    arrays, _ = load_arrays([path], config)
    assert arrays.inputs["jet"][3, 1] == -1 and arrays.inputs["jet"][7, 1] == -1
    assert "replaced 2 NaN/inf values in 'jet_sdmass'" in caplog.text


def test_standardisation_is_robust_clipped_and_round_trips(jet_files: dict[str, Path], tmp_path: Path) -> None:
    config = load_data_config(config_dict([str(jet_files["parquet"])]))
    preprocessing = fit_preprocessing(config)
    raw, _ = load_arrays([jet_files["parquet"]], config)
    logpt = raw.inputs["particles"][..., 2][raw.mask]
    low, median, high = np.percentile(logpt, [16, 50, 84])
    scaling = preprocessing.groups["particles"][2]
    assert scaling.centre == pytest.approx(median) and scaling.scale == pytest.approx((high - low) / 2)
    assert preprocessing.groups["points"][0].scale == 1.0  # standardize: false
    preprocessing.save(tmp_path / "preprocessing.json")
    again = Preprocessing.load(tmp_path / "preprocessing.json")
    assert again == preprocessing
    assert json.loads((tmp_path / "preprocessing.json").read_text())["class_names"] == ["top", "qcd"]
    dataset = InMemoryJets(raw, ["top", "qcd"], again)
    particles = dataset.arrays.inputs["particles"]
    assert (particles[~raw.mask] == 0).all()
    assert np.abs(particles).max() <= config.clip
    assert np.median(particles[..., 2][raw.mask]) == pytest.approx(0, abs=1e-5)


def test_bad_preprocessing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        Preprocessing.load(path)


def test_image_inputs_for_the_cnn(jet_files: dict[str, Path]) -> None:
    config = load_data_config(
        config_dict([str(jet_files["parquet"])], inputs={"image": {"image": {"bins": 16, "extent": 0.8}}})
    )
    arrays, _ = load_arrays([jet_files["parquet"]], config)
    images = arrays.inputs["image"]
    assert images.shape == (600, 1, 16, 16)
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), 1, rtol=1e-5)  # normalised intensities
    preprocessing = fit_preprocessing(config)
    assert preprocessing.groups["image"] == []
    np.testing.assert_array_equal(preprocessing.apply(arrays).inputs["image"], images)


def test_image_group_takes_no_variables() -> None:
    with pytest.raises(ConfigError, match=r"data\.inputs\.image: .*takes `image` settings only"):
        load_data_config(config_dict(["x.parquet"], inputs={"image": {"image": {}, "variables": ["part_pt"]}}))


def test_pt_order_matches_a_stable_awkward_sort_with_ties_and_nan() -> None:
    from heplearn.data.transform import descending_order

    pt = ak.Array([[3.0, 5.0, 5.0, 1.0], [4.0, 2.0], [], [1.0, np.nan, 2.0, np.nan, 2.0], [7.0]])
    counts = ak.to_numpy(ak.num(pt))
    flat = ak.to_numpy(ak.flatten(pt))
    order = descending_order(flat, counts)
    assert order is not None
    expected = ak.to_numpy(ak.flatten(ak.argsort(pt, ascending=False, stable=True) + (np.cumsum(counts) - counts)))
    np.testing.assert_array_equal(order.full(len(flat)), expected)
    assert descending_order(np.array([3.0, 2.0, 2.0, 5.0, 1.0]), np.array([3, 2])) is None


def test_blocks_of_particles_give_the_whole_column_result(
    jet_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The derived particle inputs computed block by block (blocks far smaller than a chunk,
    ending inside jets) equal the whole-column computation, bit for bit."""
    from heplearn.data import transform
    from heplearn.data.transform import ChunkTransformer
    from heplearn.features.particles import FlatParticles, VariableTable

    config = load_data_config(config_dict([str(jet_files["parquet"])]))
    chunk = io.open_source(jet_files["parquet"]).read()
    transformer = ChunkTransformer(config)
    variables = config.inputs["particles"].variables
    particles = FlatParticles.of(VariableTable(chunk, config.new_variable_expressions), "part_deta", 32, "test")
    whole = transformer._particle_columns_checked(particles, variables, "test")
    monkeypatch.setattr(transform, "ROW_BLOCK", 97)
    assert particles.total > 10 * 97
    blocks = transformer._particle_columns(particles, "particles", variables, "test")
    np.testing.assert_array_equal(blocks, whole)
    np.testing.assert_array_equal(whole[:, variables.index("part_logpt")], particles["part_logpt"])
