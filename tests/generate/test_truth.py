"""Truth finding on a hand-made event record shaped like Pythia's (t → W b, W → q q̄')."""

from __future__ import annotations

import numpy as np

from heplearn.generate.events import EventRecord
from heplearn.generate.truth import find_hard_partons, find_resonances, last_copies, match_jets


def record(rows: list[tuple[int, int, int, int, int, float, float]]) -> EventRecord:
    """One event of (pdg id, status, mother1, daughter1, daughter2, η, φ) with pT = 100."""
    pid, status, mother, d1, d2, eta, phi = (np.array(column) for column in zip(*rows, strict=True))
    px, py, pz = 100 * np.cos(phi), 100 * np.sin(phi), 100 * np.sinh(eta)
    return EventRecord(
        pid=pid.astype(np.int64),
        status=status.astype(np.int64),
        mother1=mother.astype(np.int64),
        daughter1=d1.astype(np.int64),
        daughter2=d2.astype(np.int64),
        px=px,
        py=py,
        pz=pz,
        energy=np.sqrt(px**2 + py**2 + pz**2 + np.where(np.abs(pid) == 6, 172.5**2, 0.0)),
        offsets=np.array([0, len(rows)]),
        pthat=np.array([600.0]),
    )


# index: 0 system, 1 top (hard process), 2 its recoil copy, 3 final copy (decays), 4 W, 5 b,
# 6 W copy, 7 and 8 the W's quarks, 9 a gluon from the hard process, 10 a final-state pion.
TOP_EVENT = [
    (90, -11, 0, 0, 0, 0.0, 0.0),
    (6, -22, 0, 2, 2, 0.50, 0.10),
    (6, -44, 1, 3, 3, 0.52, 0.12),
    (6, -62, 2, 4, 5, 0.53, 0.13),
    (24, -22, 3, 6, 6, 0.60, 0.20),
    (5, -23, 3, 0, 0, 0.40, 0.00),
    (24, -44, 4, 7, 8, 0.61, 0.21),
    (2, -23, 6, 0, 0, 0.80, 0.30),
    (-1, -23, 6, 0, 0, 0.45, 0.35),
    (21, 23, 0, 0, 0, -1.0, 3.0),
    (211, 91, 0, 0, 0, 0.5, 0.1),
]


def test_last_copies_follow_the_chain() -> None:
    event = record(TOP_EVENT)
    assert last_copies(event, np.array([1, 4, 5])).tolist() == [3, 6, 5]


def test_top_and_its_three_quarks() -> None:
    tops = find_resonances(record(TOP_EVENT), 6)
    assert len(tops) == 1
    assert abs(tops.eta[0] - 0.53) < 1e-9  # the last copy, not the hard-process one
    np.testing.assert_allclose(np.sort(tops.daughter_eta[0]), [0.40, 0.45, 0.80])
    np.testing.assert_allclose(tops.mass, [172.5], rtol=1e-9)


def test_containment_decides_the_label() -> None:
    tops = find_resonances(record(TOP_EVENT), 6)
    jet_event, jet_eta, jet_phi = np.array([0, 0]), np.array([0.55, 0.55]), np.array([0.15, 0.15])
    wide = match_jets(jet_event, jet_eta, jet_phi, tops, 0.8, contained=True, allowed_ids=None)
    narrow = match_jets(jet_event, jet_eta, jet_phi, tops, 0.2, contained=True, allowed_ids=None)
    assert wide.keep.tolist() == [True, True] and wide.pdgid.tolist() == [6, 6]
    assert wide.max_daughter_dr[0] > 0.25
    assert narrow.keep.tolist() == [False, False]  # the quarks stick out of an R = 0.2 jet


def test_hard_partons_and_flavour_requirement() -> None:
    partons = find_hard_partons(record(TOP_EVENT))
    assert 21 in partons.pdgid.tolist()
    jet = (np.array([0]), np.array([-1.0]), np.array([3.05]))
    gluon = match_jets(*jet, partons, 0.4, contained=False, allowed_ids=frozenset({21}))
    quark = match_jets(*jet, partons, 0.4, contained=False, allowed_ids=frozenset({1, 2, 3}))
    inclusive = match_jets(*jet, partons, 0.4, contained=False, allowed_ids=None)
    assert gluon.keep.tolist() == [True] and quark.keep.tolist() == [False]
    assert inclusive.keep.tolist() == [True] and inclusive.pdgid.tolist() == [21]
    far = match_jets(np.array([0]), np.array([2.0]), np.array([-1.0]), partons, 0.4, contained=False, allowed_ids=None)
    assert far.keep.tolist() == [True] and far.pdgid.tolist() == [0]  # kept, no truth match
