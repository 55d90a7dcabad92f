"""Jet images: centring, normalisation, rotation to the principal axis, flips, padding."""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.errors import ConfigError, DataError
from heplearn.features.images import jet_images


def random_jets(n: int, particles: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, particles + 1, n)
    mask = np.arange(particles)[None, :] < counts[:, None]
    deta = rng.normal(0, 0.15, (n, particles)) * mask
    dphi = rng.normal(0, 0.25, (n, particles)) * mask
    pt = rng.exponential(20.0, (n, particles)) * mask
    return deta, dphi, pt, mask


def two_prong_jet(angle: float, separation: float = 0.4, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Two tight prongs of unequal pT on opposite sides of the centre, along ``angle``."""
    rng = np.random.default_rng(seed)
    side = np.repeat([1.0, -1.0], 10)
    along = side * separation / 2 + rng.normal(0, 0.01, 20)
    across = rng.normal(0, 0.01, 20)
    pt = np.where(side > 0, 30.0, 10.0) * rng.uniform(0.9, 1.1, 20)
    deta = along * np.cos(angle) - across * np.sin(angle)
    dphi = along * np.sin(angle) + across * np.cos(angle)
    return deta[None], dphi[None], pt[None], np.ones((1, 20), dtype=bool)


@pytest.mark.parametrize("bins", [25, 40])
@pytest.mark.parametrize("rotate", [True, False])
def test_single_particle_lands_in_the_centre_pixel(bins: int, rotate: bool) -> None:
    # Off the jet axis: centring on the pT centroid moves it to the centre.
    image = jet_images(
        np.array([[0.13]]), np.array([[-0.21]]), np.array([[50.0]]), np.array([[True]]), bins=bins, rotate=rotate
    )
    assert image.shape == (1, 1, bins, bins) and image.dtype == np.float32
    assert image[0, 0, bins // 2, bins // 2] == pytest.approx(1.0)
    assert image.sum() == pytest.approx(1.0)


def test_axis_centring_keeps_the_offset() -> None:
    image = jet_images(
        np.array([[0.3]]),
        np.array([[-0.5]]),
        np.array([[1.0]]),
        bins=16,
        extent=0.8,
        rotate=False,
        flip=False,
        centre="axis",
    )
    row, column = np.unravel_index(image[0, 0].argmax(), (16, 16))
    assert (row, column) == (int((-0.5 + 0.8) / 0.1), int((0.3 + 0.8) / 0.1))


def test_each_image_sums_to_one_and_outside_particles_are_dropped() -> None:
    deta, dphi, pt, mask = random_jets(50, 30, seed=1)
    images = jet_images(deta, dphi, pt, mask, bins=20, extent=0.3)
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    raw = jet_images(deta, dphi, pt, mask, bins=20, extent=0.3, normalise=False)
    assert np.all(raw.sum(axis=(1, 2, 3)) <= pt.sum(axis=1) + 1e-3)  # some fell outside ±0.3
    assert np.any(raw.sum(axis=(1, 2, 3)) < pt.sum(axis=1) - 1.0)


def test_empty_jet_gives_an_empty_image() -> None:
    deta, dphi, pt, mask = random_jets(3, 10, seed=2)
    mask[1] = False
    images = jet_images(deta, dphi, pt, mask)
    assert np.all(images[1] == 0) and np.all(np.isfinite(images))


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.3, -2.0])
def test_rotation_puts_two_prongs_on_the_vertical_axis(angle: float) -> None:
    image = jet_images(*two_prong_jet(angle), bins=33, extent=0.8)[0, 0]
    rows, columns = np.indices(image.shape)
    column_spread = np.sqrt((image * (columns - 16) ** 2).sum())
    row_spread = np.sqrt((image * (rows - 16) ** 2).sum())
    assert column_spread < 1.0
    assert row_spread > 3.0
    # The harder prong is flipped to the top (high row index).
    assert image[17:].sum() > 0.7


def test_images_do_not_depend_on_orientation_or_reflection() -> None:
    deta, dphi, pt, mask = random_jets(40, 25, seed=3)
    reference = jet_images(deta, dphi, pt, mask)
    for angle in (0.7, 2.5, -1.1):
        cos, sin = np.cos(angle), np.sin(angle)
        rotated = jet_images(deta * cos - dphi * sin, deta * sin + dphi * cos, pt, mask)
        np.testing.assert_allclose(rotated, reference, atol=1e-6)
    for sign_eta, sign_phi in ((-1, 1), (1, -1), (-1, -1)):
        mirrored = jet_images(sign_eta * deta, sign_phi * dphi, pt, mask)
        np.testing.assert_allclose(mirrored, reference, atol=1e-6)


def test_flip_puts_the_harder_half_top_right() -> None:
    deta, dphi, pt, mask = random_jets(40, 25, seed=4)
    images = jet_images(deta, dphi, pt, mask, bins=40)[:, 0]  # even bins: the centre is a pixel edge
    assert np.all(images[:, 20:, :].sum(axis=(1, 2)) >= images[:, :20, :].sum(axis=(1, 2)))
    assert np.all(images[:, :, 20:].sum(axis=(1, 2)) >= images[:, :, :20].sum(axis=(1, 2)))


def test_padding_does_not_change_the_image() -> None:
    deta, dphi, pt, mask = random_jets(20, 15, seed=5)
    reference = jet_images(deta, dphi, pt, mask)
    garbage = np.full((20, 10), np.nan)
    padded = jet_images(
        np.hstack([np.where(mask, deta, 7.0), garbage]),
        np.hstack([dphi, garbage]),
        np.hstack([np.where(mask, pt, 1e3), garbage]),
        np.hstack([mask, garbage > 0]),
    )
    np.testing.assert_array_equal(padded, reference)


def test_bad_input_is_reported() -> None:
    with pytest.raises(DataError, match="one shape"):
        jet_images(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="bins"):
        jet_images(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)), bins=0)
    with pytest.raises(ConfigError, match="centre"):
        jet_images(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)), centre="middle")  # type: ignore[arg-type]
