"""Detector-profile conditioning of the jet generators: the profile read from each file's provenance,
tables per class and profile, the profile's one-hot in the condition, sampling at a named profile, and
the refusals."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.errors import ConfigError, DataError
from heplearn.methods import fastsim
from heplearn.methods.fastsim_distil import teacher_pairs
from tests.conftest import make_jets
from tests.test_cli import run

TINY = {"hidden": 32, "global_size": 8, "layers": 2}
ALT_PARTICLES = 12  # the "alt" detector sees at most this many particles of a jet
ALT_ANGULAR_RESOLUTION = 0.3  # and measures their directions (Δη, Δφ) with this resolution


def _alt_detector(jets: ak.Array, seed: int = 0) -> ak.Array:
    """The jets as a coarse detector would see them: at most 12 particles, their directions smeared, and
    the jet made of what is seen (its pT the vector sum of the particles kept, as a reconstructed jet's)."""
    rng = np.random.default_rng(seed)
    fields = {name: jets[name] for name in jets.fields}
    for name in ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi"):
        fields[name] = jets[name][:, :ALT_PARTICLES]
    counts = ak.num(fields["part_deta"])
    for name in ("part_deta", "part_dphi"):
        smearing = rng.normal(0.0, ALT_ANGULAR_RESOLUTION, int(ak.sum(counts))).astype(np.float32)
        fields[name] = fields[name] + ak.unflatten(smearing, counts)
    fields["jet_pt"] = np.hypot(ak.sum(fields["part_px"], axis=1), ak.sum(fields["part_py"], axis=1))
    return ak.zip(fields, depth_limit=1)


@pytest.fixture(scope="module")
def profile_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("detector")
    particle = io.write(make_jets(400, seed=3), directory / "particle.parquet", {"options": {"detector": None}})
    alt = io.write(
        _alt_detector(make_jets(400, seed=4)),
        directory / "alt.parquet",
        {"options": {"detector": {"name": "alt", "tracking_efficiency": [0.9, 0.8]}}},
    )
    return particle, alt


@pytest.fixture(scope="module")
def two_profile_model(profile_files: tuple[Path, Path]) -> fastsim.FastSim:
    jets = fastsim.load_sources([str(path) for path in profile_files], num_particles=20)
    training = fastsim.default_training("flow_matching", epochs=50, batch_size=64)  # 12 leave the spread 0.29, not 0.20
    return fastsim.train_fastsim(jets, hyperparameters=TINY, training=training, seed=1)


def test_the_profile_is_the_one_the_provenance_names(profile_files: tuple[Path, Path]) -> None:
    assert fastsim.detector_profile({"options": {"detector": None}}) == fastsim.PARTICLE_LEVEL
    assert fastsim.detector_profile({"options": {"detector": {"name": "nominal"}}}) == "nominal"
    assert fastsim.detector_profile({"generator": "heplearn fastsim", "detector": "alt"}) == "alt"
    assert fastsim.detector_profile({}) == fastsim.PARTICLE_LEVEL  # a file from elsewhere
    jets = fastsim.load_sources([str(path) for path in profile_files], num_particles=20)
    assert jets.detector_names == [fastsim.PARTICLE_LEVEL, "alt"]
    np.testing.assert_array_equal(np.bincount(jets.detector_index), [400, 400])
    alt = jets.take(jets.detector_index == 1)
    assert alt.mask.sum(1).max() == ALT_PARTICLES and jets.take(jets.detector_index == 0).mask.sum(1).max() > 12
    assert alt.take(np.arange(3)).detector_names == jets.detector_names  # take keeps the profiles


def test_a_model_of_two_profiles_samples_each_profiles_jets(
    two_profile_model: fastsim.FastSim, profile_files: tuple[Path, Path]
) -> None:
    model = two_profile_model
    scaling = model.scaling
    assert scaling.detectors == [fastsim.PARTICLE_LEVEL, "alt"]
    assert scaling.condition_size == len(scaling.class_names) + 2 + 2
    assert set(scaling.multiplicity) == {f"{name}@{d}" for name in scaling.class_names for d in scaling.detectors}
    counts = dict.fromkeys(scaling.class_names, 300)
    alt = fastsim.sample_jets(model, counts, steps=4, seed=2, detector="alt").clouds
    particle = fastsim.sample_jets(model, counts, steps=4, seed=2, detector=fastsim.PARTICLE_LEVEL).clouds
    assert alt.detector_names == ["alt"]
    # the multiplicities follow the profile's own table: the alt detector never has more than 12
    assert alt.mask.sum(1).max() <= ALT_PARTICLES < particle.mask.sum(1).max()
    # the network learnt each profile's particles: the alt jets' wider angular spread and harder pT
    # fractions (fewer particles share the jet), as far apart as in the training jets
    training = fastsim.load_sources([str(path) for path in profile_files], num_particles=20)

    def summary(jets: fastsim.JetClouds) -> np.ndarray:
        return np.array([jets.clouds[..., 0][jets.mask].std(), np.log(jets.clouds[..., 2][jets.mask]).mean()])

    expected = summary(training.take(training.detector_index == 1)) - summary(
        training.take(training.detector_index == 0)
    )
    found = summary(alt) - summary(particle)
    assert expected[0] > 0.03 and expected[1] > 0.3, expected  # the profiles differ
    np.testing.assert_allclose(found, expected, rtol=0.3)


def test_the_profile_must_be_named_and_known(two_profile_model: fastsim.FastSim, tmp_path: Path) -> None:
    counts = {"top": 3}
    with pytest.raises(ConfigError, match="conditioned on the detector profile; name one of particle, alt"):
        fastsim.sample_jets(two_profile_model, counts, steps=1)
    with pytest.raises(ConfigError, match="unknown detector profile 'nominal'; this model knows particle, alt"):
        fastsim.sample_jets(two_profile_model, counts, steps=1, detector="nominal")
    with pytest.raises(ConfigError, match="conditioned on the detector profile"):
        two_profile_model.scaling.pt_range("top")  # each profile has its own range
    assert two_profile_model.scaling.pt_range("top", "alt") != two_profile_model.scaling.pt_range("top", "particle")
    single = fastsim.FastSim(
        "vae",
        fastsim.build_network("vae", 4, TINY),
        fastsim.CloudScaling.fit(fastsim.load_clouds([_one_profile_file(tmp_path)], num_particles=20)),
        dict(TINY),
    )
    assert single.scaling.detectors == ["nominal"] and single.scaling.condition_size == 4
    assert len(fastsim.sample_jets(single, counts, detector="nominal").clouds) == 3
    with pytest.raises(ConfigError, match="detector profile 'nominal' only, not 'alt'; it is not conditioned"):
        fastsim.sample_jets(single, counts, detector="alt")


def _one_profile_file(directory: Path) -> Path:
    return io.write(
        make_jets(60, seed=5), directory / "nominal.parquet", {"options": {"detector": {"name": "nominal"}}}
    )


def test_fine_tuning_and_validation_keep_the_profiles(
    two_profile_model: fastsim.FastSim, profile_files: tuple[Path, Path]
) -> None:
    particle_only = fastsim.load_sources([str(profile_files[0])], num_particles=20)
    training = fastsim.default_training("flow_matching", epochs=1, batch_size=64)
    with pytest.raises(ConfigError, match="trained on the detector profiles particle, alt; these jets have particle"):
        fastsim.train_fastsim(particle_only, training=training, init=two_profile_model)
    both = fastsim.load_sources([str(path) for path in profile_files], num_particles=20)
    nominal = fastsim.load_clouds([_one_profile_file(profile_files[0].parent)], num_particles=20)
    with pytest.raises(DataError, match="jets of the detector profile 'nominal'; the model knows particle, alt"):
        fastsim.train_fastsim(both, hyperparameters=TINY, training=training, val=nominal)


def test_sampled_files_name_their_profile_and_teacher_pairs_share_the_profiles(
    two_profile_model: fastsim.FastSim, tmp_path: Path
) -> None:
    sampled = fastsim.sample_jets(two_profile_model, {"qcd": 5}, steps=1, detector="alt")
    path = fastsim.write_jets(sampled, tmp_path / "alt.parquet", substructure=False)
    assert fastsim.load_clouds([path], num_particles=20).detector_names == ["alt"]
    pairs = teacher_pairs(two_profile_model, 9, steps=1, solver="euler")
    profiles = pairs.condition[:, -2:]  # the profile's one-hot closes the condition
    assert len(pairs) == 18 and set(np.unique(profiles.sum(1))) == {1.0}
    np.testing.assert_array_equal(profiles.sum(0), [8, 10])  # 4 and 5 of each class per profile


def test_cli_trains_on_two_profiles_and_samples_one(
    profile_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        [
            *("fastsim", "train", "--train", str(profile_files[0]), "--train", str(profile_files[1])),
            *("--model", "vae", "--particles", "20", "--epochs", "1", "--hidden", "16", "--layers", "1"),
            *("--threads", "1", "--name", "vae", "--runs-dir", str(tmp_path), "--no-progress"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "detector profiles particle, alt" in out
    output = tmp_path / "alt.parquet"
    code, _, err = run(["fastsim", "sample", str(tmp_path / "vae"), "-o", str(output), "--detector", "alt"], capsys)
    assert code == 0, err
    assert io.open_source(output).provenance()["detector"] == "alt"
    for arguments, message in (
        ([], "conditioned on the detector profile; name one of particle, alt"),
        (["--detector", "cms"], "unknown detector profile 'cms'"),
    ):
        bad = tmp_path / "bad.parquet"
        code, _, err = run(["fastsim", "sample", str(tmp_path / "vae"), "-o", str(bad), *arguments], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not bad.exists()
