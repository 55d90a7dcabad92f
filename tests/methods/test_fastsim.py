"""Jet generators (heplearn.methods.fastsim): EPiC symmetry, training through the engine, sampling into
the JetClass schema, bad conditions, and the ``heplearn fastsim`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.errors import ConfigError, DataError
from heplearn.methods import fastsim
from heplearn.training.steps import STEP_STRATEGIES
from tests.conftest import make_jets
from tests.test_cli import run

TINY = {"hidden": 16, "global_size": 8, "layers": 1}


@pytest.fixture(scope="module")
def jet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return io.write(make_jets(300, seed=3), tmp_path_factory.mktemp("fastsim") / "jets.parquet")


@pytest.fixture(scope="module")
def clouds(jet_file: Path) -> fastsim.JetClouds:
    return fastsim.load_clouds([jet_file], num_particles=20)


def test_clouds_are_pt_ordered_relative_coordinates(clouds: fastsim.JetClouds) -> None:
    assert clouds.clouds.shape == (300, 20, 3) and clouds.class_names == ["qcd", "top"]
    pt_rel = np.where(clouds.mask, clouds.clouds[..., 2], -1)
    assert (np.diff(pt_rel, axis=1)[clouds.mask[:, 1:]] <= 0).all()
    assert (clouds.clouds[~clouds.mask] == 0).all()


def test_epic_network_is_permutation_equivariant_and_ignores_padding() -> None:
    torch.manual_seed(0)
    network = fastsim.EPiCNetwork(3, 2, 4, hidden=8, global_size=4, layers=2)
    x, condition = torch.randn(2, 6, 3), torch.randn(2, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    out, g = network(x, condition, mask)
    permutation = torch.tensor([3, 1, 0, 2, 4, 5])  # keeps the padded slots of jet 1 at the end
    out_permuted, g_permuted = network(x[:, permutation], condition, mask[:, permutation])
    torch.testing.assert_close(out_permuted, out[:, permutation])
    torch.testing.assert_close(g_permuted, g)
    x_changed = x.clone()
    x_changed[1, 4:] = 100.0  # the padding's values do not matter
    torch.testing.assert_close(network(x_changed, condition, mask)[1], g)


def test_chamfer_distance_of_a_set_and_its_permutation_is_zero() -> None:
    x = torch.randn(1, 5, 3)
    mask = torch.ones(1, 5, dtype=torch.bool)
    assert float(fastsim.chamfer(x, x[:, torch.randperm(5)], mask)) == pytest.approx(0.0, abs=1e-9)
    assert float(fastsim.chamfer(x, x + 1.0, mask)) > 0


@pytest.mark.parametrize("kind", fastsim.MODELS)
def test_each_generator_trains_on_the_engine_and_samples_jetclass_jets(
    kind: str, clouds: fastsim.JetClouds, tmp_path: Path
) -> None:
    training = fastsim.default_training(kind, epochs=1, batch_size=64)
    model = fastsim.train_fastsim(clouds, kind, hyperparameters=TINY, training=training, run_dir=tmp_path / kind)
    history = [json.loads(line) for line in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(history[-1]["train_loss"])
    if kind == "vae":
        assert {"train_loss_chamfer", "train_loss_latent_kl"} <= set(history[-1])
    if kind == "gan":  # the discriminator is the gan step's second network, with its own optimiser
        assert "gan" in STEP_STRATEGIES and "train_discriminator_loss" in history[-1]
    loaded = fastsim.load_fastsim(tmp_path / kind)
    for name, parameter in model.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[name], parameter)
    sampled = fastsim.sample_jets(loaded, {"top": 7, "qcd": 5}, steps=3, seed=1)
    path = fastsim.write_jets(sampled, tmp_path / f"{kind}.parquet")
    jets = io.read(path)
    assert len(jets) == 12 and int(ak.sum(jets.label_top)) == 7 and int(ak.sum(jets.label_qcd)) == 5
    for name in (
        "part_px",
        "part_py",
        "part_pz",
        "part_energy",
        "part_deta",
        "part_dphi",
        "jet_pt",
        "jet_eta",
        "jet_phi",
        "jet_energy",
        "jet_mass",
        "jet_nparticles",
        "jet_sdmass",
        "jet_tau1",
        "jet_tau4",
    ):
        assert name in jets.fields
    np.testing.assert_array_equal(ak.to_numpy(ak.num(jets.part_px)), ak.to_numpy(jets.jet_nparticles))
    # the particles sum to a jet of the conditioning pT direction: Δη, Δφ reproduce η, φ
    pt = np.hypot(jets.part_px, jets.part_py)
    assert ak.all(pt > 0)
    low, high = loaded.scaling.pt_range("top")
    jet_pt = ak.to_numpy(jets.jet_pt)
    assert ((jet_pt >= low - 1e-3) & (jet_pt <= high + 1e-3)).all()
    # the sampled file reads back as clouds, the form every evaluation takes
    again = fastsim.load_clouds([path], num_particles=20)
    assert len(again) == 12


def test_sampling_outside_the_training_range_or_of_an_unknown_class_is_refused(clouds: fastsim.JetClouds) -> None:
    model = fastsim.train_fastsim(
        clouds, "vae", hyperparameters=TINY, training=fastsim.default_training("vae", epochs=1, batch_size=150)
    )
    with pytest.raises(ConfigError, match="unknown class 'gluon'; this model knows qcd, top"):
        fastsim.sample_jets(model, {"gluon": 3})
    low, high = model.scaling.pt_range("top")
    with pytest.raises(ConfigError, match=r"outside the training range .* of class 'top'"):
        fastsim.sample_jets(model, {"top": 2}, pt={"top": np.array([low, 2 * high])})
    at_edges = fastsim.sample_jets(model, {"top": 2}, pt={"top": np.array([low, high])})
    np.testing.assert_allclose(at_edges.clouds.jet_pt, [low, high])


def _complete_jets(rng: np.random.Generator, jets: int, slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clouds of massless particles relative to their own E-scheme jet (Σ constituents = jet), with
    the jets' pseudorapidities; the first jet fills every slot, the others leave some empty."""
    counts = np.concatenate([[slots], rng.integers(2, slots, jets - 1)])
    mask = np.arange(slots)[None, :] < counts[:, None]
    pt = np.where(mask, rng.exponential(20.0, (jets, slots)), 0.0)
    eta = rng.normal(0.0, 0.3, (jets, slots)) + rng.uniform(-2, 2, (jets, 1))
    phi = rng.normal(0.0, 0.3, (jets, slots))
    px, py, pz = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1), (pt * np.sinh(eta)).sum(1)
    jet_pt, jet_phi = np.hypot(px, py), np.arctan2(py, px)
    jet_eta = np.arcsinh(pz / jet_pt)
    clouds = np.stack([eta - jet_eta[:, None], phi - jet_phi[:, None], pt / jet_pt[:, None]], -1)
    return np.where(mask[..., None], clouds, 0.0), mask, jet_eta


def test_momentum_conservation_undoes_a_rotation_scale_and_shift_of_complete_jets() -> None:
    rng = np.random.default_rng(4)
    clouds, mask, jet_eta = _complete_jets(rng, 50, 12)
    # Σ constituents = jet already: the projection changes nothing
    np.testing.assert_allclose(fastsim.conserve_momentum(clouds, mask, jet_eta, 12), clouds, atol=2e-6)
    distorted = clouds.copy()
    distorted[..., 0] += np.where(mask, rng.normal(0, 0.1, (50, 1)), 0.0)  # the whole jet moved in η,
    distorted[..., 1] += np.where(mask, rng.normal(0, 0.1, (50, 1)), 0.0)  # turned in φ
    distorted[..., 2] *= rng.uniform(0.5, 2.0, (50, 1))  # and its pT sum off by up to 2x
    projected = fastsim.conserve_momentum(distorted, mask, jet_eta, 12)
    # jet 0 fills all 12 slots (its softer particles would be missing: truncated) and stays as it was
    np.testing.assert_array_equal(projected[0], distorted[0].astype(np.float32))
    np.testing.assert_allclose(projected[1:], clouds[1:], atol=2e-5)
    assert (projected[~mask] == 0).all()
    # "scale" repairs the pT sum's magnitude only: z as the original's, the angles as distorted
    scaled = fastsim.conserve_momentum(distorted, mask, jet_eta, 12, "scale")
    np.testing.assert_allclose(scaled[1:, :, 2], clouds[1:, :, 2], atol=2e-6)
    np.testing.assert_allclose(scaled[1:, :, :2], distorted[1:, :, :2], atol=2e-6)
    np.testing.assert_allclose(fastsim.conserve_momentum(distorted, mask, jet_eta, 12, "none"), distorted, atol=1e-6)
    with pytest.raises(ConfigError, match="unknown momentum conservation 'exact'"):
        fastsim.conserve_momentum(distorted, mask, jet_eta, 12, "exact")


def test_multiplicity_follows_the_training_table(clouds: fastsim.JetClouds) -> None:
    scaling = fastsim.CloudScaling.fit(clouds)
    rng = np.random.default_rng(0)
    top = clouds.of_class("top")
    drawn = scaling.sample_multiplicity("top", top.jet_pt, rng)
    assert abs(drawn.mean() - top.mask.sum(1).mean()) < 1.0
    assert drawn.min() >= 1 and drawn.max() <= 20


def test_unlabelled_file_needs_its_class(tmp_path: Path) -> None:
    jets = make_jets(30, seed=4)
    path = io.write(jets[[name for name in jets.fields if not name.startswith("label_")]], tmp_path / "one.parquet")
    with pytest.raises(DataError, match="CLASS=FILE"):
        fastsim.load_clouds([path])
    assert fastsim.load_sources([f"top={path}"], 10).class_names == ["top"]


def test_cli_train_sample_and_bad_requests(jet_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        [
            "fastsim",
            "train",
            "--train",
            str(jet_file),
            "--model",
            "vae",
            "--particles",
            "20",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--layers",
            "1",
            "--threads",
            "1",
            "--name",
            "vae",
            "--runs-dir",
            str(tmp_path),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert out.startswith(f"run: {tmp_path / 'vae'}")
    output = tmp_path / "sampled.parquet"
    code, out, err = run(
        ["fastsim", "sample", str(tmp_path / "vae"), "-o", str(output), "--jets", "4", "--class", "top"], capsys
    )
    assert code == 0, err
    assert len(io.read(output)) == 4
    for arguments, message in (
        (["--class", "gluon"], "unknown class 'gluon'"),
        (["--pt", "5000"], "outside the training range"),
        (["--momentum-conservation", "exact"], "unknown momentum conservation 'exact'"),
    ):
        code, out, err = run(
            ["fastsim", "sample", str(tmp_path / "vae"), "-o", str(tmp_path / "bad.parquet"), *arguments], capsys
        )
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad.parquet").exists()
    code, _, err = run(["fastsim", "sample", str(tmp_path / "nothing"), "-o", str(output)], capsys)
    assert code == 2 and "not a fastsim run" in err
    evaluation = tmp_path / "eval"
    code, _, err = run(
        [
            *("fastsim", "evaluate", "--reference", str(jet_file), "--generated", f"vae:{output}"),
            *("-o", str(evaluation), "--particles", "20", "--classifier", "bdt"),
        ],
        capsys,
    )
    assert code == 2 and "unknown classifier 'bdt'" in err and len(err.strip().splitlines()) == 1, err
    assert not evaluation.exists()


@pytest.mark.slow
def test_cli_evaluate_writes_metrics_and_plots(
    jet_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = io.write(make_jets(300, seed=5), tmp_path / "other.parquet")
    code, out, err = run(
        [
            "fastsim",
            "evaluate",
            "--reference",
            str(jet_file),
            "--generated",
            f"pythia:{other}",
            "-o",
            str(tmp_path / "eval"),
            "--particles",
            "20",
            "--classifier-epochs",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "top pythia: W1M×10³" in out
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    row = results["classes"]["top"]["pythia"]
    assert 0.3 < row["auc"] < 0.7 and row["w1m_e3"] >= 0 and np.isfinite(row["fpd_e3"])
    assert row["w1_tau32_e3"] >= 0 and 0 <= row["median_tau21"] <= 1 and "W1τ32×10³" in out
    assert (tmp_path / "eval" / "top.png").exists() and (tmp_path / "eval" / "qcd.png").exists()
