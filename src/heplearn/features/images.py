"""Jet images: the pT deposited by the constituents on a fixed grid in (Δη, Δφ).

The preprocessing is the standard one of the jet-image literature (Cogan, Kagan, Strauss,
Schwartzman, arXiv:1407.5675; de Oliveira et al., "Jet-images — deep learning edition",
arXiv:1511.05190; Macaluso, Shih, arXiv:1803.00107), each step removing a symmetry the network
would otherwise have to learn:

1. centre: move the pT-weighted centroid (or keep the jet axis) to the image centre;
2. rotate: turn the principal axis of the pT-weighted second-moment matrix to the vertical;
3. flip: reflect so that the half with more pT is at the top and the right;
4. pixelise: sum the particles' pT into ``bins`` × ``bins`` pixels covering
   [−extent, extent]² (particles outside are dropped) and normalise each image to unit sum.

Layout: ``image[jet, 0, row, column]``; rows follow the vertical coordinate (the principal axis
after rotation, Δφ without it), columns the horizontal one (Δη), both increasing with the index.
A particle exactly at the centre lands in pixel (bins // 2, bins // 2).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heplearn.errors import ConfigError, DataError

#: Jets processed at once (bounds the temporary arrays to a few hundred MB).
CHUNK_JETS = 20_000


def jet_images(
    deta: ArrayLike,
    dphi: ArrayLike,
    pt: ArrayLike,
    mask: ArrayLike | None = None,
    bins: int = 40,
    extent: float = 0.8,
    rotate: bool = True,
    flip: bool = True,
    normalise: bool = True,
    centre: Literal["centroid", "axis"] = "centroid",
) -> NDArray[np.float32]:
    """Images ``(jets, 1, bins, bins)`` from padded per-particle arrays ``(jets, particles)``.

    ``deta``, ``dphi`` are the particles' offsets from the jet axis (radians, Δφ wrapped),
    ``pt`` their transverse momenta (GeV), ``mask`` True for real particles (default: all).
    ``extent`` is the half-width of the image in Δη and Δφ. ``centre="axis"`` keeps the jet
    axis at the centre instead of the pT-weighted centroid.
    """
    arrays = [np.asarray(values, dtype=np.float64) for values in (deta, dphi, pt)]
    real = np.ones(arrays[0].shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    shapes = {array.shape for array in (*arrays, real)}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise DataError(
            "jet_images: deta, dphi, pt and mask must be 2-D arrays (jets, particles) of one shape, "
            f"got {[array.shape for array in (*arrays, real)]}"
        )
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ConfigError(f"jet_images: bins must be a positive integer, got {bins!r}")
    if not extent > 0:
        raise ConfigError(f"jet_images: extent must be positive, got {extent!r}")
    if centre not in ("centroid", "axis"):
        raise ConfigError(f"jet_images: centre must be 'centroid' or 'axis', got {centre!r}")

    n_jets = arrays[0].shape[0]
    images = np.zeros((n_jets, 1, bins, bins), dtype=np.float32)
    for start in range(0, n_jets, CHUNK_JETS):
        part = slice(start, start + CHUNK_JETS)
        weights = np.where(real[part], arrays[2][part], 0.0)
        horizontal = np.where(real[part], arrays[0][part], 0.0)
        vertical = np.where(real[part], arrays[1][part], 0.0)
        if centre == "centroid":
            horizontal, vertical = _centre(horizontal, vertical, weights)
        if rotate:
            horizontal, vertical = _rotate(horizontal, vertical, weights)
        if flip:
            horizontal, vertical = _flip(horizontal, weights), _flip(vertical, weights)
        images[part, 0] = _pixelise(horizontal, vertical, weights, real[part], bins, extent)
    if normalise:
        totals = images.sum(axis=(1, 2, 3), keepdims=True)
        np.divide(images, totals, out=images, where=totals > 0)
    return images


def _weighted_sum(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    return (values * weights).sum(axis=1)


def _centre(
    horizontal: NDArray[np.float64], vertical: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Offsets from the pT-weighted centroid."""
    total = weights.sum(axis=1)
    total = np.where(total > 0, total, 1.0)
    return (
        horizontal - (_weighted_sum(horizontal, weights) / total)[:, None],
        vertical - (_weighted_sum(vertical, weights) / total)[:, None],
    )


def _rotate(
    horizontal: NDArray[np.float64], vertical: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rotate about the centre so the principal axis of the pT-weighted second moments is vertical.

    The principal axis of [[Sxx, Sxy], [Sxy, Syy]] makes the angle θ = ½ atan2(2 Sxy, Sxx − Syy)
    with the horizontal; a rotation by π/2 − θ brings it to the vertical.
    """
    sxx = _weighted_sum(horizontal * horizontal, weights)
    syy = _weighted_sum(vertical * vertical, weights)
    sxy = _weighted_sum(horizontal * vertical, weights)
    angle = (0.5 * np.pi - 0.5 * np.arctan2(2.0 * sxy, sxx - syy))[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    return horizontal * cos - vertical * sin, horizontal * sin + vertical * cos


def _flip(coordinate: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Reflect ``coordinate`` where the negative half carries more pT than the positive half."""
    positive = (weights * (coordinate > 0)).sum(axis=1)
    negative = (weights * (coordinate < 0)).sum(axis=1)
    return coordinate * np.where(negative > positive, -1.0, 1.0)[:, None]


def _pixelise(
    horizontal: NDArray[np.float64],
    vertical: NDArray[np.float64],
    weights: NDArray[np.float64],
    real: NDArray[np.bool_],
    bins: int,
    extent: float,
) -> NDArray[np.float64]:
    """Sum ``weights`` into (jets, bins, bins) pixels covering [−extent, extent)² (rows: vertical)."""
    column = np.floor((horizontal + extent) / (2.0 * extent) * bins).astype(np.int64)
    row = np.floor((vertical + extent) / (2.0 * extent) * bins).astype(np.int64)
    inside = real & (column >= 0) & (column < bins) & (row >= 0) & (row < bins)
    n_jets = horizontal.shape[0]
    jet = np.broadcast_to(np.arange(n_jets)[:, None], horizontal.shape)
    flat = (jet * bins + row) * bins + column
    counts = np.bincount(flat[inside], weights=weights[inside], minlength=n_jets * bins * bins)
    return counts.reshape(n_jets, bins, bins)


#: CICADA's input: the calorimeter trigger's regions, 18 in φ (20° each) × 14 in η (|η| < 3).
CALORIMETER_REGIONS = (18, 14)


def calorimeter_images(
    eta: ArrayLike,
    phi: ArrayLike,
    et: ArrayLike,
    mask: ArrayLike | None = None,
    regions: tuple[int, int] = CALORIMETER_REGIONS,
    eta_max: float = 3.0,
) -> NDArray[np.float32]:
    """Whole-event images ``(events, 1, φ regions, η regions)`` of transverse energy (GeV).

    The CMS calorimeter layer-1 trigger sums its towers into 18 × 14 regions of Δφ = 20° and
    Δη ≈ 0.35 over |η| < 3 (the CICADA anomaly detector's input). Here the deposits are the event's
    objects (jets, electrons, photons: ``eta``, ``phi``, ``et``, padded ``(events, objects)``, ``mask``
    True for real ones); each adds its ET to the region holding its direction. Objects with
    |η| ≥ ``eta_max`` are outside the barrel and endcap regions and are dropped. Rows follow φ from
    −π, columns η from −``eta_max``.
    """
    arrays = [np.asarray(values, dtype=np.float64) for values in (eta, phi, et)]
    real = np.ones(arrays[0].shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    shapes = {array.shape for array in (*arrays, real)}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise DataError(
            "calorimeter_images: eta, phi, et and mask must be 2-D arrays (events, objects) of one "
            f"shape, got {[array.shape for array in (*arrays, real)]}"
        )
    phi_regions, eta_regions = regions
    if min(phi_regions, eta_regions) < 1:
        raise ConfigError(f"calorimeter_images: regions must be positive (φ, η) counts, got {regions!r}")
    if not eta_max > 0:
        raise ConfigError(f"calorimeter_images: eta_max must be positive, got {eta_max!r}")
    column = np.floor((arrays[0] + eta_max) / (2.0 * eta_max) * eta_regions).astype(np.int64)
    wrapped = np.mod(arrays[1] + np.pi, 2.0 * np.pi)  # φ in [0, 2π) from −π
    row = np.minimum(np.floor(wrapped / (2.0 * np.pi) * phi_regions).astype(np.int64), phi_regions - 1)
    inside = real & (column >= 0) & (column < eta_regions)
    events = arrays[0].shape[0]
    event = np.broadcast_to(np.arange(events)[:, None], arrays[0].shape)
    flat = (event * phi_regions + row) * eta_regions + column
    sums = np.bincount(flat[inside], weights=arrays[2][inside], minlength=events * phi_regions * eta_regions)
    return sums.reshape(events, 1, phi_regions, eta_regions).astype(np.float32)
