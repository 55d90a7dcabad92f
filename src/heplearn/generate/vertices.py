"""Secondary vertices: displaced vertices per jet, fitted from measured tracks only.

The finder sees what an experiment sees: each charged constituent as a straight line through its
*measured* point of closest approach (``tracks.measured_impact_parameters``) along its momentum,
with the errors σ(d0) across the track in the transverse plane and σ(dz)·sin θ across it in the
other direction. The generator's vertices are never used. Per jet:

1. displaced tracks: pT > ``TRACK_PT_MIN`` and signed d0/σ(d0) > ``SEED_SIGNIFICANCE``;
2. the vertex x minimises Σᵢ (x − aᵢ)ᵀ Wᵢ (x − aᵢ) over those tracks (aᵢ a point of track i, Wᵢ
   its inverse covariance across the track, zero along it): x = (Σ Wᵢ)⁻¹ Σ Wᵢ aᵢ, with covariance
   (Σ Wᵢ)⁻¹ — the linear least-squares vertex fit (Frühwirth et al., "Vertex reconstruction and
   track bundling at the LEP collider using robust algorithms", Comput. Phys. Commun. 96 (1996) 189,
   without the robust weights);
3. the least compatible track is dropped while its χ² exceeds ``TRACK_CHI2_MAX`` (one per jet and
   pass, as the CMS inclusive vertex finder's outlier rejection), then the fit is redone;
4. the vertex is kept with at least two tracks, in front of the primary vertex along the jet
   (x_T · jet_T > 0), within ``MAX_FLIGHT`` of the beam line, and a transverse flight distance
   significance above ``FLIGHT_SIGNIFICANCE_MIN``;
5. the tracks of a kept vertex are removed and the search starts again from step 2 with the tracks
   left (the outliers of step 3 among them), up to ``MAX_VERTICES`` per jet, until a pass finds
   none — as the CMS inclusive vertex finder returns several vertices per jet (a b → c cascade
   gives two: CMS, "Identification of heavy-flavour jets with the CMS detector in pp collisions at
   13 TeV", JINST 13 (2018) P05011, Sec. 4.2).

Per jet: ``sv_n``, the number of vertices (a flat integer), and the jagged lists, one entry per
vertex ordered by decreasing ``sv_dxysig`` (as DeepJet and ParticleNet order their SV inputs):
``sv_ntracks``, ``sv_mass`` (tracks as charged pions), ``sv_pt``, ``sv_dxy``/``sv_dxysig``
(transverse flight distance and its significance), ``sv_d3d``/``sv_d3dsig``, ``sv_deltaR`` (of the
vertex momentum to the jet axis), ``sv_costhetasvpv`` (cosine between the flight direction and the
vertex momentum), ``sv_chi2`` and ``sv_normchi2``; names as in CMS's DeepJet / ParticleNet inputs.
The Parquet and ROOT writers keep the lists jagged (ROOT: one ``sv`` branch group with its counter
``nsv``, as the ``part_*`` fields; ``heplearn.data.io``).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from heplearn.generate import kinematics
from heplearn.generate.tracks import ImpactParameters

PION_MASS = 0.13957  # GeV
TRACK_PT_MIN = 1.0  # GeV
SEED_SIGNIFICANCE = 2.0
TRACK_CHI2_MAX = 9.0  # two degrees of freedom per track
FLIGHT_SIGNIFICANCE_MIN = 3.0
MAX_FLIGHT = 25.0  # mm: beyond, tracks start in the pixel layers (and cτ > 10 mm is stable here)
_MAX_PASSES = 50
MAX_VERTICES = 4  # per jet
SV_FIELDS = (
    "sv_n",
    "sv_ntracks",
    "sv_mass",
    "sv_pt",
    "sv_dxy",
    "sv_dxysig",
    "sv_d3d",
    "sv_d3dsig",
    "sv_deltaR",
    "sv_costhetasvpv",
    "sv_chi2",
    "sv_normchi2",
)


def track_weights(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, d0_error: np.ndarray, dz_error: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(unit directions (n, 3), inverse covariances across each track (n, 3, 3))."""
    p = np.maximum(np.sqrt(px**2 + py**2 + pz**2), 1e-12)
    pt = np.maximum(np.hypot(px, py), 1e-12)
    direction = np.stack([px / p, py / p, pz / p], axis=1)
    across = np.stack([-py / pt, px / pt, np.zeros_like(px)], axis=1)  # transverse, ⟂ the track
    other = np.cross(direction, across)  # ⟂ both; its z component is sin θ
    sin_theta = pt / p
    weight = (
        across[:, :, None] * across[:, None, :] / d0_error[:, None, None] ** 2
        + other[:, :, None] * other[:, None, :] / (dz_error * sin_theta)[:, None, None] ** 2
    )
    return direction, weight


def secondary_vertices(
    jet_of: np.ndarray,
    n_jets: int,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    charged: np.ndarray,
    measured: ImpactParameters,
    jet_px: np.ndarray,
    jet_py: np.ndarray,
    jet_pz: np.ndarray,
) -> dict[str, np.ndarray | ak.Array]:
    """The ``sv_*`` fields of ``n_jets`` jets from their constituents (``jet_of``: jet of each entry):
    ``sv_n`` per jet, the other fields jagged (one entry per vertex)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        significance = np.where(charged, measured.d0val / measured.d0err, 0.0)
    candidate = np.flatnonzero(charged & (pt > TRACK_PT_MIN) & (significance > SEED_SIGNIFICANCE))
    jets = jet_of[candidate]
    _, weight = track_weights(
        px[candidate], py[candidate], pz[candidate], measured.d0err[candidate], measured.dzerr[candidate]
    )
    point = np.stack([measured.pca_x, measured.pca_y, measured.pca_z], axis=1)[candidate]
    available = np.ones(len(candidate), dtype=bool)
    searching = np.ones(n_jets, dtype=bool)
    passes: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    for _ in range(MAX_VERTICES):
        active = available & searching[jets]
        if np.bincount(jets[active], minlength=n_jets).max(initial=0) < 2:
            break
        active, values, found = _one_vertex(
            jets, active, weight, point, n_jets, candidate, px, py, pz, jet_px, jet_py, jet_pz
        )
        passes.append((values, found))
        available &= ~(active & found[jets])  # a found vertex's tracks; its outliers stay available
        searching &= found  # a jet whose pass found nothing has nothing left to find
    return _jagged_vertices(passes, n_jets)


def _one_vertex(
    jets: np.ndarray,
    active: np.ndarray,
    weight: np.ndarray,
    point: np.ndarray,
    n_jets: int,
    candidate: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    jet_px: np.ndarray,
    jet_py: np.ndarray,
    jet_pz: np.ndarray,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """One fit per jet over the ``active`` tracks with outlier rejection: (tracks kept, fields, found)."""
    active = active.copy()
    for _ in range(_MAX_PASSES):
        position, covariance, count = _fit(jets, active, weight, point, n_jets)
        chi2 = _chi2(position[jets], point, weight)
        worst = np.full(n_jets, -np.inf)
        np.maximum.at(worst, jets[active], chi2[active])
        drop = active & (chi2 == worst[jets]) & (chi2 > TRACK_CHI2_MAX)
        if not drop.any():
            break
        # one track per jet and pass, even on exact ties
        first = np.unique(jets[drop], return_index=True)[1]
        active[np.flatnonzero(drop)[first]] = False
    values, found = _vertex_fields(
        position, covariance, count, jets, active, chi2, candidate, px, py, pz, jet_px, jet_py, jet_pz
    )
    return active, values, found


def _jagged_vertices(
    passes: list[tuple[dict[str, np.ndarray], np.ndarray]], n_jets: int
) -> dict[str, np.ndarray | ak.Array]:
    """``sv_n`` and the jagged ``sv_*`` lists from the vertices of every pass, by decreasing ``sv_dxysig``."""
    names = [name for name in SV_FIELDS if name != "sv_n"]
    if not passes:
        empty = np.zeros(n_jets, dtype=np.int64)
        return {
            "sv_n": empty.astype(np.int32),
            **{name: ak.unflatten(np.zeros(0, dtype=_dtype(name)), empty) for name in names},
        }
    found = np.stack([f for _, f in passes])  # (passes, jets)
    pass_index, jet_index = np.nonzero(found)
    significance = np.stack([values["sv_dxysig"] for values, _ in passes])[pass_index, jet_index]
    order = np.lexsort((-significance, jet_index))
    pass_index, jet_index = pass_index[order], jet_index[order]
    counts = found.sum(axis=0)
    fields: dict[str, np.ndarray | ak.Array] = {"sv_n": counts.astype(np.int32)}
    for name in names:
        values = np.stack([v[name] for v, _ in passes])[pass_index, jet_index]
        fields[name] = ak.unflatten(np.nan_to_num(values).astype(_dtype(name)), counts)
    return fields


def _dtype(name: str) -> type:
    return np.int32 if name in ("sv_n", "sv_ntracks") else np.float32


def _fit(
    jets: np.ndarray, active: np.ndarray, weight: np.ndarray, point: np.ndarray, n_jets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    total = np.zeros((n_jets, 3, 3))
    pull = np.zeros((n_jets, 3))
    np.add.at(total, jets[active], weight[active])
    np.add.at(pull, jets[active], np.einsum("nij,nj->ni", weight[active], point[active]))
    count = np.bincount(jets[active], minlength=n_jets)
    covariance = np.zeros((n_jets, 3, 3))
    fitted = count >= 2
    covariance[fitted] = np.linalg.pinv(total[fitted])
    position = np.einsum("nij,nj->ni", covariance, pull)
    return position, covariance, count


def _chi2(position: np.ndarray, point: np.ndarray, weight: np.ndarray) -> np.ndarray:
    offset = position - point
    return np.einsum("ni,nij,nj->n", offset, weight, offset)


def _vertex_fields(
    position: np.ndarray,
    covariance: np.ndarray,
    count: np.ndarray,
    jets: np.ndarray,
    active: np.ndarray,
    chi2: np.ndarray,
    candidate: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    jet_px: np.ndarray,
    jet_py: np.ndarray,
    jet_pz: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The fields of each jet's fitted vertex (meaningful where ``found``) and ``found``."""
    n_jets = len(count)
    used = candidate[active]
    owner = jets[active]
    momentum = np.zeros((n_jets, 4))
    track_p = np.stack([px[used], py[used], pz[used]], axis=1)
    track_e = np.sqrt((track_p**2).sum(axis=1) + PION_MASS**2)
    np.add.at(momentum, owner, np.concatenate([track_p, track_e[:, None]], axis=1))
    total_chi2 = np.bincount(owner, weights=chi2[active], minlength=n_jets)

    transverse = position[:, :2]
    dxy = np.hypot(transverse[:, 0], transverse[:, 1])
    d3d = np.linalg.norm(position, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit_t = transverse / dxy[:, None]
        unit = position / d3d[:, None]
        dxy_error = np.sqrt(np.einsum("ni,nij,nj->n", unit_t, covariance[:, :2, :2], unit_t))
        d3d_error = np.sqrt(np.einsum("ni,nij,nj->n", unit, covariance, unit))
        dxysig, d3dsig = dxy / dxy_error, d3d / d3d_error
        sv_p = np.linalg.norm(momentum[:, :3], axis=1)
        cos_theta = np.einsum("ni,ni->n", unit, momentum[:, :3]) / sv_p
    downstream = transverse[:, 0] * jet_px + transverse[:, 1] * jet_py > 0
    found = (count >= 2) & downstream & (dxy < MAX_FLIGHT) & np.nan_to_num(dxysig > FLIGHT_SIGNIFICANCE_MIN)

    sv_eta = kinematics.pseudorapidity(momentum[:, 0], momentum[:, 1], momentum[:, 2])
    sv_phi = kinematics.azimuth(momentum[:, 0], momentum[:, 1])
    jet_eta = kinematics.pseudorapidity(jet_px, jet_py, jet_pz)
    jet_phi = kinematics.azimuth(jet_px, jet_py)
    ndof = np.maximum(2 * count - 3, 1)
    values = {
        "sv_n": found.astype(np.int32),
        "sv_ntracks": count,
        "sv_mass": kinematics.mass(*momentum.T),
        "sv_pt": np.hypot(momentum[:, 0], momentum[:, 1]),
        "sv_dxy": dxy,
        "sv_dxysig": dxysig,
        "sv_d3d": d3d,
        "sv_d3dsig": d3dsig,
        "sv_deltaR": kinematics.delta_r(sv_eta, sv_phi, jet_eta, jet_phi),
        "sv_costhetasvpv": cos_theta,
        "sv_chi2": total_chi2,
        "sv_normchi2": total_chi2 / ndof,
    }
    return values, found
