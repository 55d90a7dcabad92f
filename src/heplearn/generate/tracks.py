"""Track impact parameters: the JetClass ``part_d0val, part_d0err, part_dzval, part_dzerr`` fields.

Each charged constituent is a straight line from its production vertex v along its momentum p
(the curvature in the field is negligible over the millimetres of a b-hadron flight). Its point
of closest approach to the beam line (the z axis, where the primary vertex sits) gives

- the transverse impact parameter |d0| = |v_T − (v_T · p̂_T) p̂_T|, the distance in the transverse
  plane, and
- the longitudinal one dz = v_z − (v_T · p̂_T) p_z / p_T, the z of that point.

Both are *lifetime-signed* with respect to the jet axis, as b-tagging does: positive when the
point of closest approach lies downstream along the jet (d0: its transverse vector has a positive
projection on the jet's transverse direction; dz: the same sign as the jet's p_z), so the tracks
of a b-hadron decay inside the jet are mostly positive and resolution effects are symmetric.
Measured values add a Gaussian error σ = a ⊕ b/pT (``DetectorConfig.d0_resolution`` and
``dz_resolution``; CMS-like defaults, see ``heplearn.generate.detector``); the errors are stored
as ``*err``. Neutral constituents have no track: all four fields are 0, as in JetClass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import awkward as ak
import numpy as np

from heplearn.generate.clustering import Jets, stored_constituents

if TYPE_CHECKING:
    from heplearn.generate.detector import DetectorConfig
    from heplearn.generate.events import FinalState


@dataclass
class ImpactParameters:
    """Measured (smeared, signed) impact parameters and their errors, mm."""

    d0val: np.ndarray
    d0err: np.ndarray
    dzval: np.ndarray
    dzerr: np.ndarray
    pca_x: np.ndarray  # the measured point of closest approach to the beam line (unsigned, mm)
    pca_y: np.ndarray
    pca_z: np.ndarray


def true_impact_parameters(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    jet_px: np.ndarray,
    jet_py: np.ndarray,
    jet_pz: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(d0, dz) of straight tracks from (vx, vy, vz) along p, signed along the jet axis (mm)."""
    pt = np.maximum(np.hypot(px, py), 1e-12)
    ux, uy = px / pt, py / pt
    along = vx * ux + vy * uy  # transverse distance from v to the point of closest approach
    closest_x, closest_y = vx - along * ux, vy - along * uy
    d0 = np.hypot(closest_x, closest_y)
    d0_sign = np.where(closest_x * jet_px + closest_y * jet_py < 0, -1.0, 1.0)
    z0 = vz - along * pz / pt
    dz_sign = np.where(z0 * jet_pz < 0, -1.0, 1.0)
    return d0_sign * d0, dz_sign * np.abs(z0)


def resolution(pt: np.ndarray, terms: tuple[float, float]) -> np.ndarray:
    """σ = a ⊕ b/pT (mm) for ``terms`` = (a, b), pT in GeV."""
    constant, multiple_scattering = terms
    return np.hypot(constant, multiple_scattering / np.maximum(pt, 1e-3))


def measured_impact_parameters(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    charged: np.ndarray,
    jet_px: np.ndarray,
    jet_py: np.ndarray,
    jet_pz: np.ndarray,
    *,
    d0_resolution: tuple[float, float],
    dz_resolution: tuple[float, float],
    rng: np.random.Generator,
) -> ImpactParameters:
    """Signed, smeared impact parameters of the charged entries (zeros for the neutral ones).

    The measurement moves the point of closest approach sideways (across the track, in the
    transverse plane) by σ(d0)·N(0, 1) and along z by σ(dz)·N(0, 1); the measured point is kept
    (``pca_*``) for the vertex finder.
    """
    pt = np.maximum(np.hypot(px, py), 1e-12)
    ux, uy = px / pt, py / pt
    along = vx * ux + vy * uy
    lateral = uy * -vx + ux * vy  # the closest point is lateral × n, n = (−u_y, u_x)
    z0 = vz - along * pz / pt
    d0_error, dz_error = resolution(pt, d0_resolution), resolution(pt, dz_resolution)
    noise = rng.standard_normal((2, len(pt)))
    lateral_measured = lateral + d0_error * noise[0]
    z_measured = z0 + dz_error * noise[1]
    d0_sign = np.where(-uy * jet_px + ux * jet_py < 0, -1.0, 1.0)  # sign of n · jet
    dz_sign = np.where(jet_pz < 0, -1.0, 1.0)
    return ImpactParameters(
        d0val=np.where(charged, d0_sign * lateral_measured, 0.0),
        d0err=np.where(charged, d0_error, 0.0),
        dzval=np.where(charged, dz_sign * z_measured, 0.0),
        dzerr=np.where(charged, dz_error, 0.0),
        pca_x=-uy * lateral_measured,
        pca_y=ux * lateral_measured,
        pca_z=z_measured,
    )


def track_fields(
    particles: FinalState, jets: Jets, max_particles: int, detector: DetectorConfig, rng: np.random.Generator
) -> dict[str, ak.Array | np.ndarray]:
    """``part_d0val, part_d0err, part_dzval, part_dzerr`` of the stored constituents of each jet, and
    the jet's secondary vertex (``sv_*``, ``heplearn.generate.vertices``) fitted from those tracks."""
    from heplearn.generate.vertices import secondary_vertices

    index, stored, jet_of = stored_constituents(jets, max_particles)
    vx, vy, vz = particles.vertex()
    values = measured_impact_parameters(
        particles.px[index],
        particles.py[index],
        particles.pz[index],
        vx[index],
        vy[index],
        vz[index],
        particles.charge[index] != 0,
        jets.px[jet_of],
        jets.py[jet_of],
        jets.pz[jet_of],
        d0_resolution=detector.d0_resolution,
        dz_resolution=detector.dz_resolution,
        rng=rng,
    )
    fields: dict[str, ak.Array | np.ndarray] = {
        f"part_{name}": ak.unflatten(getattr(values, name).astype(np.float32), stored)
        for name in ("d0val", "d0err", "dzval", "dzerr")
    }
    fields.update(
        secondary_vertices(
            jet_of,
            len(jets),
            particles.px[index],
            particles.py[index],
            particles.pz[index],
            particles.charge[index] != 0,
            values,
            jets.px,
            jets.py,
            jets.pz,
        )
    )
    return fields
