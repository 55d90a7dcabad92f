"""tt̄H / tt̄bb / tt̄lf event samples: CMS's genTtbarId, single-lepton decays and the b-jet multiplicity."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from typer.testing import CliRunner

from heplearn.errors import ConfigError, HeplearnError
from heplearn.generate.nanoaod import (
    BTAG_EFFICIENCY,
    EventOptions,
    btag_flags,
    generate_events,
    get_event_card,
    provenance_settings,
)
from heplearn.generate.ttbar import _additional_code, heavy_quark_sign
from tests.generate.test_options_and_cli import make_app

NO_MPI = EventOptions(mpi=False)


def test_heavy_quark_sign_follows_the_pdg_numbering() -> None:
    # B⁰ = d b̄, B⁺ = u b̄, Λb = u d b, B̄⁰ = b d̄; D⁰ = c ū, D⁻ = d c̄, Λc = u d c; Υ and J/ψ hold both.
    pid = np.array([511, 521, 5122, -511, 421, -411, 4122, 553, 443])
    quark = np.array([5, 5, 5, 5, 4, 4, 4, 5, 4])
    signs = [int(heavy_quark_sign(pid[i : i + 1], int(quark[i]))[0]) for i in range(len(pid))]
    assert signs == [-1, -1, 1, 1, 1, -1, 1, 0, 0]


def test_additional_jet_codes_follow_cms() -> None:
    # (additional jets, of which with ≥ 2 hadrons, with 1 hadron) → CMS GenTtbarCategorizer code
    cases = {(0, 0, 0): 0, (1, 0, 1): 51, (1, 1, 0): 52, (2, 0, 2): 53, (3, 1, 2): 54, (2, 2, 0): 55}
    n_jets, n_rich, n_single = (np.array(column) for column in zip(*cases, strict=True))
    assert _additional_code(n_jets, n_rich, n_single, 50).tolist() == list(cases.values())
    assert _additional_code(n_jets, n_rich, n_single, 40).tolist() == [0, 41, 42, 43, 44, 45]


def test_btag_working_point_rates() -> None:
    flavour = ak.Array([[5, 4, 0, 5], [0, 0], [5]] * 5000)
    eta = ak.Array([[0.1, -1.0, 2.0, 3.0], [0.5, -2.4], [2.6]] * 5000)
    tagged = btag_flags(flavour, eta, np.random.default_rng(1))
    flat_flavour, flat_tagged = ak.to_numpy(ak.flatten(flavour)), ak.to_numpy(ak.flatten(tagged))
    central = np.abs(ak.to_numpy(ak.flatten(eta))) < 2.5
    assert not flat_tagged[~central].any()  # no tracker beyond |η| = 2.5
    for value, efficiency in BTAG_EFFICIENCY.items():
        rate = flat_tagged[central & (flat_flavour == value)].mean()
        assert abs(rate - efficiency) < 4 * np.sqrt(efficiency * (1 - efficiency) / 5000), (value, rate)


@pytest.fixture(scope="module")
def samples() -> dict[str, ak.Array]:
    return {
        name: generate_events(get_event_card(name), NO_MPI, n, seed=7)
        for name, n in (("tth", 30), ("ttlf", 20), ("ttbb", 4))
    }


def b_jets(events: ak.Array) -> np.ndarray:
    """b jets (hadron flavour 5) with pT > 25 GeV and |η| < 2.4 per event."""
    selected = (events.Jet_hadronFlavour == 5) & (events.Jet_pt > 25) & (abs(events.Jet_eta) < 2.4)
    return ak.to_numpy(ak.sum(selected, axis=1))


def test_tth_single_lepton(samples: dict[str, ak.Array]) -> None:
    events = samples["tth"]
    # Truth: exactly one W → ℓν (e or μ) per event, the other W → qq̄'; the Higgs decays to bb̄.
    lepton = (abs(events.GenPart_pdgId) == 11) | (abs(events.GenPart_pdgId) == 13)
    assert np.all(ak.to_numpy(ak.sum(lepton, axis=1)) == 1)
    # The decay quarks (status 23): b b̄ of the tops, b b̄ of the Higgs, q q̄' of the hadronic W.
    quark = (abs(events.GenPart_pdgId) <= 5) & (events.GenPart_status == 23)
    assert np.all(ak.to_numpy(ak.sum(quark, axis=1)) == 6)
    assert np.all(ak.to_numpy(ak.sum(quark & (abs(events.GenPart_pdgId) == 5), axis=1)) >= 4)
    # Reconstructed: exactly one isolated lepton in most events (acceptance and isolation lose ~20%),
    # two only when a b-hadron decay lepton happens to be isolated.
    n_leptons = ak.to_numpy(events.nMuon + events.nElectron)
    assert np.mean(n_leptons == 1) > 0.6 and np.mean(n_leptons >= 2) < 0.15, np.bincount(n_leptons)
    # Both charges: the two Pythia instances take turns.
    charge = ak.to_numpy(ak.flatten(events.GenPart_pdgId[lepton]))
    assert (charge > 0).any() and (charge < 0).any()


def test_b_jet_multiplicity_and_gen_ttbar_id(samples: dict[str, ak.Array]) -> None:
    tth, ttbb, ttlf = samples["tth"], samples["ttbb"], samples["ttlf"]
    additional = {name: ak.to_numpy(events.genTtbarId) % 100 for name, events in samples.items()}
    assert np.all(additional["ttlf"] == 0) and np.all((additional["ttbb"] >= 51) & (additional["ttbb"] <= 55))
    # tt̄H(bb̄): the Higgs b's are additional b jets in most events (53: two of them).
    assert np.mean(additional["tth"] >= 51) > 0.8 and np.mean(additional["tth"] == 53) > 0.4
    # ≤ 2 b jets from the tops in tt̄lf (no additional b jet above 20 GeV in |η| < 2.4), more in tt̄H, tt̄bb.
    n_b = {name: b_jets(events) for name, events in (("tth", tth), ("ttbb", ttbb), ("ttlf", ttlf))}
    assert np.all(n_b["ttlf"] <= 2)
    assert n_b["tth"].mean() > n_b["ttlf"].mean() + 0.8 and n_b["ttbb"].mean() > n_b["ttlf"].mean(), n_b
    tagged = {name: ak.to_numpy(ak.sum(events.Jet_btagged, axis=1)) for name, events in samples.items()}
    assert tagged["tth"].mean() > tagged["ttlf"].mean() + 0.5, tagged
    # The generated-event numbers of tt̄bb̄ skip the rejected tt̄ events (about 98%).
    assert ak.to_numpy(ttbb.event)[-1] > 3 * len(ttbb)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"higgs_mass": 9.0}, "H → bb̄ is closed"), ({"higgs_mass": 12_900.0}, "tt̄H is out of reach")],
)
def test_bad_higgs_mass(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EventOptions(**changes)  # type: ignore[arg-type]


def test_cli_bad_higgs_mass(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        make_app(), ["generate", "events", "tth", "--events", "5", "--higgs-mass", "8", "-o", str(tmp_path / "out")]
    )
    assert isinstance(result.exception, HeplearnError), result.output
    assert "H → bb̄ is closed" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_provenance_records_both_charge_conjugate_instances() -> None:
    settings = provenance_settings(get_event_card("ttlf"), NO_MPI)
    assert "24:onPosIfAny = 11 13" in settings and "24:onNegIfAny = 11 13" in settings
    assert "24:onNegIfAny = 11 13" not in provenance_settings(get_event_card("zmumu_jets"), NO_MPI)
