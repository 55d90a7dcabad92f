"""Vectorised collider kinematics on NumPy arrays (GeV, radians)."""

from __future__ import annotations

import numpy as np


def pt(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Transverse momentum √(px² + py²)."""
    return np.hypot(px, py)


def pseudorapidity(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """η = asinh(pz / pT); ±large (not inf) for particles along the beam."""
    transverse = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / transverse)
    return np.where(transverse > 0, eta, np.sign(pz) * 1e5)


def azimuth(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Azimuth φ = atan2(py, px), in (−π, π]."""
    return np.arctan2(py, px)


def mass(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Invariant mass; a slightly negative m² from rounding gives 0."""
    m2 = energy**2 - px**2 - py**2 - pz**2
    return np.sqrt(np.maximum(m2, 0.0))


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Wrap an azimuthal difference into [-π, π)."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """ΔR = √(Δη² + Δφ²), with Δφ wrapped to [−π, π)."""
    return np.hypot(eta1 - eta2, wrap_phi(phi1 - phi2))
