"""Pythia variations (`--pythia`, `--variation`) and detector profiles (`--detector nominal|alt|FILE`)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from typer.testing import CliRunner

from heplearn.data import io
from heplearn.errors import ConfigError, HeplearnError
from heplearn.generate import clustering, kinematics
from heplearn.generate.chunk import generate_jets
from heplearn.generate.detector import DETECTOR_PROFILES, HCAL_CELL_PDGID, apply_detector, load_detector
from heplearn.generate.driver import _settings_key
from heplearn.generate.events import FinalState, PythiaGenerator
from heplearn.generate.processes import GeneratorOptions, get_card, pythia_settings
from heplearn.generate.variations import VARIATIONS, check_settings, parse_setting, variation_settings
from tests.generate.test_options_and_cli import make_app

# A cheap jet sample: R = 0.4 QCD jets of 150-200 GeV without MPI.
SMALL = GeneratorOptions(pt_min=150.0, pt_max=200.0, radius=0.4, mpi=False)


# ----------------------------------------------------------------------------- settings
def test_named_variations_are_pythia_settings() -> None:
    assert variation_settings("fsr-up") == ("TimeShower:renormMultFac = 0.25",)
    assert variation_settings("FSR-Down") == ("TimeShower:renormMultFac = 4",)
    assert variation_settings("isr-up") == ("SpaceShower:renormMultFac = 0.25",)
    assert variation_settings("fsr-alphas-up") == ("TimeShower:alphaSvalue = 0.16",)
    assert {line.split(" = ")[0] for line in variation_settings("hadronization")} == {"StringZ:aLund", "StringZ:bLund"}
    assert variation_settings(None) == variation_settings("nominal") == ()
    check_settings([line for lines in VARIATIONS.values() for line in lines])  # Pythia reads them all
    with pytest.raises(ConfigError, match=r"unknown variation 'fsr-sideways': choose from nominal, fsr-up"):
        variation_settings("fsr-sideways")


def test_parse_setting() -> None:
    assert parse_setting("TimeShower:alphaSvalue=0.16") == "TimeShower:alphaSvalue = 0.16"
    assert parse_setting(" 25:onMode = off ") == "25:onMode = off"
    for bad in ("TimeShower:alphaSvalue", "=0.1", "StringZ:aLund="):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            parse_setting(bad)


def test_user_settings_come_last_and_change_the_chunk_hash() -> None:
    card = get_card("qcd")
    options = GeneratorOptions(variation="fsr-up", pythia=("TimeShower:renormMultFac=0.5", "StringZ:aLund=0.6"))
    settings = pythia_settings(card, options, seed=3)
    assert settings[-3:] == [
        "TimeShower:renormMultFac = 0.25",
        "TimeShower:renormMultFac = 0.5",
        "StringZ:aLund = 0.6",
    ]  # the user's value is read last and wins
    assert options.describe()["variation"] == "fsr-up"
    assert options.describe()["pythia"] == ["TimeShower:renormMultFac = 0.5", "StringZ:aLund = 0.6"]
    keys = {
        _settings_key("qcd", 0, 100, o)
        for o in (
            GeneratorOptions(),
            options,
            GeneratorOptions(variation="fsr-up"),
            GeneratorOptions(variation="nominal"),
        )
    }
    assert len(keys) == 3  # "nominal" is the default; every change of settings is a new chunk folder


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Foo:bar = 1", "input string not found"),
        ("TimeShower:alphaSvalue = 5", "out of range"),
        ("TimeShower:alphaSvalue = abc", "value not meaningful"),
        ("PartonLevel:MPI = maybe", "on/off"),
    ],
)
def test_pythia_rejects(line: str, message: str, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        check_settings([line])
    assert repr(line) in str(caught.value) and "\n" not in str(caught.value)
    assert "PYTHIA" not in capfd.readouterr().out  # Pythia's own report is captured, not printed


def test_the_generator_reads_the_variation() -> None:
    generator = PythiaGenerator(pythia_settings(get_card("qcd"), GeneratorOptions(variation="fsr-alphas-up"), 1))
    assert generator._pythia.settings.parm("TimeShower:alphaSvalue") == pytest.approx(0.16)


# ----------------------------------------------------------------------------- physics
@pytest.fixture(scope="module")
def fsr_samples() -> dict[str, ak.Array]:
    card = get_card("qcd")
    return {
        name: generate_jets(card, SMALL.with_changes(variation=name), 250, seed=17) for name in ("fsr-up", "fsr-down")
    }


def test_more_fsr_gives_more_constituents_and_mass(fsr_samples: dict[str, ak.Array]) -> None:
    # μ_R × ½ raises α_s in every branching: more, wider radiation inside the jet (at 150-200 GeV,
    # R = 0.4, no MPI: about 29 vs 25 constituents and 21 vs 19 GeV mass).
    def mean(name: str, field: str) -> tuple[float, float]:
        values = ak.to_numpy(fsr_samples[name][field]).astype(float)
        return float(values.mean()), float(values.std() / np.sqrt(len(values)))

    up, up_error = mean("fsr-up", "aux_jet_nconstituents")
    down, down_error = mean("fsr-down", "aux_jet_nconstituents")
    assert up - down > 3 * np.hypot(up_error, down_error), (up, down)
    assert up > 1.08 * down
    (up_mass, up_error), (down_mass, down_error) = mean("fsr-up", "jet_mass"), mean("fsr-down", "jet_mass")
    assert up_mass - down_mass > 1.5 * np.hypot(up_error, down_error), (up_mass, down_mass)


# ----------------------------------------------------------------------------- detector profiles
def one_particle_per_event(pid: int, energy: float, n: int, seed: int = 0) -> FinalState:
    rng = np.random.default_rng(seed)
    eta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = energy / np.cosh(eta)
    return FinalState(
        px=pt * np.cos(phi),
        py=pt * np.sin(phi),
        pz=pt * np.sinh(eta),
        energy=np.full(n, energy),
        pid=np.full(n, pid),
        charge=np.zeros(n),
        counts=np.ones(n, dtype=np.int64),
    )


@pytest.mark.parametrize("profile", ["nominal", "alt"])
def test_hcal_response_and_resolution_are_the_profiles(profile: str) -> None:
    config = DETECTOR_PROFILES[profile]
    energy = 100.0
    result = apply_detector(one_particle_per_event(2112, energy, 20_000), config, np.random.default_rng(3))
    assert np.all(result.pid == HCAL_CELL_PDGID) and len(result) == 20_000
    response = result.energy / energy
    stochastic, constant = config.hcal_stochastic[0], config.hcal_constant[0]
    expected_sigma = np.hypot(stochastic / np.sqrt(energy), constant)  # σ(E)/E = S/√E ⊕ C
    assert response.mean() == pytest.approx(config.hcal_scale, abs=4 * expected_sigma / np.sqrt(len(response)))
    assert response.std() == pytest.approx(expected_sigma, rel=0.03)


def test_alt_profile_differs_from_nominal() -> None:
    nominal, alt = DETECTOR_PROFILES["nominal"], DETECTOR_PROFILES["alt"]
    assert alt.hcal_scale == 0.92 and alt.ecal_scale == 0.98 and nominal.hcal_scale == 1.0
    assert alt.tracking_efficiency == (0.90, 0.80)
    np.testing.assert_allclose(alt.track_resolution_constant, 1.5 * np.asarray(nominal.track_resolution_constant))
    assert load_detector("ALT") is alt and load_detector(None) is None
    assert alt.describe()["name"] == "alt"


def test_jet_response_under_the_alt_detector() -> None:
    """Same Pythia events through both profiles: the alt jets respond lower and spread wider."""
    generator = PythiaGenerator(pythia_settings(get_card("qcd"), SMALL, 11))
    _, particles = generator.next_batch(150)
    truth = clustering.cluster(particles, 0.4, "antikt", 60.0)
    responses = {}
    for profile in ("nominal", "alt"):
        measured = apply_detector(particles, DETECTOR_PROFILES[profile], np.random.default_rng(5))
        jets = clustering.cluster(measured, 0.4, "antikt", 20.0)
        responses[profile] = matched_response(truth, jets)
    for values in responses.values():
        assert len(values) > 150
    median = {name: float(np.median(values)) for name, values in responses.items()}
    spread = {name: float(np.subtract(*np.percentile(values, [84, 16])) / 2) for name, values in responses.items()}
    assert median["alt"] < median["nominal"] - 0.01, median
    assert spread["alt"] > 1.1 * spread["nominal"], spread


def matched_response(truth: clustering.Jets, jets: clustering.Jets) -> np.ndarray:
    """pT(measured) / pT(true) of each true jet with a measured jet within ΔR < 0.2 in its event."""
    values = []
    for index in range(len(truth)):
        same = np.flatnonzero(jets.event == truth.event[index])
        if len(same) == 0:
            continue
        dr = kinematics.delta_r(truth.eta[index], truth.phi[index], jets.eta[same], jets.phi[same])
        nearest = int(np.argmin(dr))
        if dr[nearest] < 0.2:
            values.append(jets.pt[same][nearest] / truth.pt[index])
    return np.asarray(values)


def test_yaml_profile(tmp_path: Path) -> None:
    path = tmp_path / "pseudo-data.yaml"
    path.write_text("base: alt\nhcal_scale: 0.85\ntracking_efficiency: [0.7, 0.6]\n")
    config = load_detector(path)
    assert config is not None and config.name == "pseudo-data"
    assert config.hcal_scale == 0.85 and config.tracking_efficiency == (0.7, 0.6)
    assert config.ecal_scale == DETECTOR_PROFILES["alt"].ecal_scale  # the rest from the base
    path.write_text("hcal_scael: 0.9\n")
    with pytest.raises(ConfigError, match="unknown field hcal_scael"):
        load_detector(path)
    path.write_text("hcal_scale: -1\n")
    with pytest.raises(ConfigError, match=r"pseudo-data.yaml: detector.hcal_scale"):
        load_detector(path)
    with pytest.raises(ConfigError, match="unknown detector 'perfect'"):
        load_detector("perfect")


# ----------------------------------------------------------------------------- command line
def invoke(*arguments: str) -> object:
    return CliRunner().invoke(make_app(), ["generate", *arguments])


CHEAP = (
    "--jets",
    "4",
    "--pt-min",
    "150",
    "--pt-max",
    "200",
    "--radius",
    "0.4",
    "--no-mpi",
    "--no-progress",
    "--split",
    "0.5,0.25,0.25",
)


def test_cli_records_the_variation_and_the_detector(tmp_path: Path) -> None:
    result = invoke(
        "qcd",
        *CHEAP,
        "-o",
        str(tmp_path),
        "--variation",
        "fsr-up",
        "--pythia",
        "StringZ:aLund=0.6",
        "--detector",
        "alt",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    provenance = io.open_source(tmp_path / "train.parquet").provenance()
    assert provenance["options"]["variation"] == "fsr-up"
    assert provenance["options"]["pythia"] == ["StringZ:aLund = 0.6"]
    assert provenance["options"]["detector"]["name"] == "alt"
    assert provenance["pythia_settings"]["qcd"][-2:] == ["TimeShower:renormMultFac = 0.25", "StringZ:aLund = 0.6"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--pythia", "Foo:bar=1"), "Pythia rejected the setting 'Foo:bar = 1'"),
        (("--pythia", "TimeShower:alphaSvalue=5"), "out of range"),
        (("--pythia", "TimeShower:alphaSvalue"), "expected KEY=VALUE"),
        (("--variation", "fsr-sideways"), "unknown variation"),
        (("--detector", "perfect"), "unknown detector 'perfect'"),
    ],
)
def test_cli_bad_variations(tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    result = invoke("qcd", *CHEAP, *arguments, "-o", str(tmp_path / "out"))
    assert isinstance(result.exception, HeplearnError), result.output  # type: ignore[attr-defined]
    assert message in str(result.exception)  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()
