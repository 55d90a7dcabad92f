"""Event samples in the NanoAOD layout: coffea reads them, and the physics of wprime and Z → μμ."""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from typer.testing import CliRunner

from heplearn.data import io
from heplearn.errors import ConfigError, HeplearnError
from heplearn.generate.event_driver import generate_events_sample, write_nanoaod_root
from heplearn.generate.nanoaod import EventOptions, generate_events, get_event_card
from tests.generate.test_options_and_cli import make_app

NO_MPI = EventOptions(mpi=False)


@pytest.fixture(scope="module")
def zmumu() -> ak.Array:
    return generate_events(get_event_card("zmumu_jets"), NO_MPI, 50, seed=4)


@pytest.fixture(scope="module")
def wprime() -> ak.Array:
    return generate_events(get_event_card("wprime"), NO_MPI, 30, seed=5)


def pair_mass(events: ak.Array, collection: str) -> np.ndarray:
    """Invariant mass of the two leading objects of ``collection`` (massive four-vectors)."""
    pt, eta, phi, mass = (
        ak.to_numpy(events[f"{collection}_{name}"][:, :2]).astype(float) for name in ("pt", "eta", "phi", "mass")
    )
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    total = [values.sum(axis=1) for values in (energy, px, py, pz)]
    return np.sqrt(np.maximum(total[0] ** 2 - total[1] ** 2 - total[2] ** 2 - total[3] ** 2, 0.0))


def test_coffea_reads_the_root_file(zmumu: ak.Array, tmp_path: Path) -> None:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path = write_nanoaod_root(
        ak.with_field(
            ak.with_field(zmumu, np.ones(len(zmumu), np.uint32), "run"),
            np.ones(len(zmumu), np.uint32),
            "luminosityBlock",
        ),
        tmp_path / "events.root",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cross-references to collections we do not make
        events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
    assert ak.all(events.Jet.pt == zmumu.Jet_pt)
    assert ak.all(events.Muon.charge == zmumu.Muon_charge)
    assert ak.all(ak.num(events.Jet) == zmumu.nJet)
    # GenPart mothers are a working cross-reference: the Z's muons have the Z as mother.
    muons = events.GenPart[abs(events.GenPart.pdgId) == 13]
    assert ak.all(muons.parent.pdgId == 23)


def test_z_to_mumu_mass_peak(zmumu: ak.Array) -> None:
    assert np.all(ak.to_numpy(zmumu.nMuon) >= 2)
    mass = pair_mass(zmumu, "Muon")
    assert 88 < np.median(mass) < 94
    assert np.mean(np.abs(mass - 91.19) < 10) > 0.8
    charge = ak.to_numpy(zmumu.Muon_charge[:, 0] * zmumu.Muon_charge[:, 1])
    assert np.mean(charge == -1) > 0.9
    assert np.all(ak.to_numpy(zmumu.Muon_pfRelIso03_all[:, :2]) < 0.25)
    assert np.all(ak.to_numpy(ak.max(zmumu.GenPart_pdgId, axis=1)) >= 23)


def test_wprime_dijet_mass_and_subjet_masses(wprime: ak.Array) -> None:
    # The trigger-like cut of the LHC Olympics R&D sample, then the dijet mass near m_W' = 3.5 TeV
    # (FSR out of the R = 0.8 jets pulls it a little down) and the two soft-drop masses at m_X, m_Y.
    assert np.all(ak.to_numpy(wprime.FatJet_pt[:, 0]) > 1200)
    mjj = pair_mass(wprime, "FatJet")
    assert 3000 < np.median(mjj) < 3600
    groomed = np.sort(ak.to_numpy(wprime.FatJet_msoftdrop[:, :2]), axis=1)
    found_y = (groomed[:, 0] > 70) & (groomed[:, 0] < 130)
    found_x = (groomed[:, 1] > 420) & (groomed[:, 1] < 560)
    assert np.mean(found_x & found_y) > 0.5, groomed
    assert np.all(ak.to_numpy(wprime.genWeight) == 1)


def test_driver_resumes_and_writes_labels(tmp_path: Path) -> None:
    arguments = {"seed": 3, "chunk_size": 3, "fractions": (0.5, 0.5, 0.0), "options": NO_MPI, "progress": False}
    first = generate_events_sample(["zmumu_jets"], 6, tmp_path, **arguments)
    again = generate_events_sample(["zmumu_jets"], 6, tmp_path, **arguments)
    assert first.chunks_generated == 2 and again.chunks_skipped == 2 and again.chunks_generated == 0
    events = io.open_source(tmp_path / "train.parquet").read()
    assert len(events) == 3 and np.all(ak.to_numpy(events.label_zmumu_jets))
    provenance = io.open_source(tmp_path / "train.parquet").provenance()
    assert provenance["layout"] == "CMS NanoAOD" and provenance["options"]["mpi"] is False
    ids = {
        (int(lumi), int(number))
        for lumi, number in zip(ak.to_numpy(events.luminosityBlock), ak.to_numpy(events.event), strict=True)
    }
    assert len(ids) == 3  # (luminosityBlock, event) identifies an event


@pytest.mark.slow  # Dask start-up; the jet driver's twin of this test runs by default
def test_same_events_with_one_and_two_workers(tmp_path: Path) -> None:
    arguments = {"seed": 8, "chunk_size": 2, "fractions": (0.5, 0.25, 0.25), "options": NO_MPI, "progress": False}
    generate_events_sample(["zmumu_jets"], 4, tmp_path / "one", workers=1, **arguments)
    generate_events_sample(["zmumu_jets"], 4, tmp_path / "two", workers=2, **arguments)
    for split in ("train", "val", "test"):
        one = io.open_source(tmp_path / "one" / f"{split}.parquet").read()
        two = io.open_source(tmp_path / "two" / f"{split}.parquet").read()
        assert ak.array_equal(one, two), split


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x_mass": 3000.0, "y_mass": 600.0}, "W' → X Y is closed"),
        ({"y_mass": 5.0}, "at least 20 GeV"),
        ({"wprime_mass": 20_000.0}, "out of reach"),
        ({"variation": "fsr-sideways"}, "unknown variation"),
    ],
)
def test_bad_event_options(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EventOptions(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("events", "gravitino", "--events", "5"), "unknown event process 'gravitino'"),
        (("events", "wprime"), "--events N"),
        (("events", "wprime", "--events", "5", "--x-mass", "3400"), "W' → X Y is closed"),
        (("events", "zmumu_jets", "--events", "5", "--pythia", "Foo:bar=1"), "Pythia rejected"),
        (("events", "zmumu_jets", "--events", "5", "--format", "hdf5"), "unknown event file format"),
    ],
)
def test_cli_bad_event_input(tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    result = CliRunner().invoke(make_app(), ["generate", *arguments, "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, HeplearnError), result.output  # type: ignore[attr-defined]
    assert message in str(result.exception)  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()


def test_cli_events_root(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        make_app(),
        [
            "generate",
            "events",
            "zmumu_jets",
            "--events",
            "4",
            "--no-mpi",
            "--no-progress",
            "--split",
            "0.5,0.5,0",
            "--format",
            "root",
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 events" in result.output
    import uproot

    with uproot.open(tmp_path / "train.root") as file:
        tree = file["Events"]
        assert {
            "nJet",
            "Jet_pt",
            "nMuon",
            "Muon_pfRelIso03_all",
            "MET_pt",
            "GenPart_genPartIdxMother",
            "run",
            "luminosityBlock",
            "event",
        } <= set(tree.keys())


def test_tau_decay_modes_follow_the_branching_fractions() -> None:
    events = generate_events(get_event_card("ztautau"), NO_MPI, 150, seed=2)
    assert np.all(ak.to_numpy(events.nGenVisTau) == 2)  # both τ hadronic
    assert np.all(ak.to_numpy(ak.prod(events.GenVisTau_charge, axis=1)) == -1)
    mode = ak.to_numpy(ak.flatten(events.GenVisTau_status))
    mass = ak.to_numpy(ak.flatten(events.GenVisTau_mass))
    # PDG 2024 τ branching fractions over the hadronic total (64.8%): h±ν 11.5%, h±π⁰ν 25.9%,
    # 3h±ν 9.8%, i.e. 0.18, 0.40 and 0.15 of hadronic τ decays; ±0.08 is ≈ 3σ for 300 τ.
    for decay_mode, fraction in ((0, 0.18), (1, 0.40), (10, 0.15)):
        assert abs(np.mean(mode == decay_mode) - fraction) < 0.08, (decay_mode, np.mean(mode == decay_mode))
    np.testing.assert_allclose(np.median(mass[mode == 0]), 0.1396, atol=1e-3)  # one charged pion
    assert 0.6 < np.median(mass[mode == 1]) < 0.9  # the ρ(770)
    assert 0.9 < np.median(mass[mode == 10]) < 1.4  # the a1(1260)
