"""Pileup: Poisson(μ) minimum-bias interactions overlaid on every event, from a pool made once.

Minimum-bias events are Pythia's inelastic non-diffractive collisions (``SoftQCD:nonDiffractive``),
the bulk of what piles up at the LHC. Generating μ of them per hard event would cost μ times the
hard event (about 13 ms each at 14 TeV on the reference machine), so a pool of ``pool_size`` of
them is generated once per output folder (seeded from the global seed only, written atomically
to ``chunks/pileup-<hash>.parquet``) and every chunk draws from it: per event, n ~ Poisson(μ)
interactions chosen uniformly from the pool, each displaced along the beam by z ~ N(0, σ_z) with
the LHC luminous region's σ_z = 35 mm (the hard interaction stays at z = 0). A pool is reused
about μ × events / pool_size times, which keeps the cost per event near that of the overlay.

Pileup-dependent quantities, under their NanoAOD names: ``PV_npvs`` (1 + n: every interaction a
vertex, i.e. full vertex efficiency) and ``fixedGridRhoFastjetAll``, the median over a fixed
Δη × Δφ grid (|η| < 5, cells of 0.55 × 2π/11) of the summed pT per unit area — the CMS
fixed-grid ρ (the area-median idea of Cacciari and Salam, Phys. Lett. B 659 (2008) 119).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import awkward as ak
import numpy as np

import heplearn
from heplearn.data import io
from heplearn.generate import kinematics
from heplearn.generate.events import FinalState, PythiaGenerator
from heplearn.generate.processes import _COMMON_SETTINGS

BEAM_SPOT_SIGMA_Z = 35.0  # mm
RHO_ETA_MAX = 5.0
RHO_CELL_ETA = 0.55
RHO_CELLS_PHI = 11
DEFAULT_POOL_SIZE = 1000
_POOL_SEED_SALT = 0x9113


def pool_settings(sqrt_s: float, seed: int) -> list[str]:
    """The Pythia settings of the minimum-bias pool: soft QCD at ``sqrt_s`` GeV, seeded with ``seed``."""
    return [*_COMMON_SETTINGS, f"Random:seed = {seed}", f"Beams:eCM = {sqrt_s:.6g}", "SoftQCD:nonDiffractive = on"]


def pool_path(output_dir: Path, sqrt_s: float, seed: int, pool_size: int) -> Path:
    """Where the pool of this (√s, seed, size) lives; the name changes with any of them."""
    description = {
        "settings": pool_settings(sqrt_s, 0),
        "seed": seed,
        "size": pool_size,
        "heplearn": heplearn.__version__,
    }
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]
    return output_dir / "chunks" / f"pileup-{key}.parquet"


def make_pool(path: Path, sqrt_s: float, seed: int, pool_size: int) -> Path:
    """Generate ``pool_size`` minimum-bias events into ``path`` (atomically) unless it exists."""
    if path.exists():
        return path
    pythia_seed = int(np.random.SeedSequence([seed, _POOL_SEED_SALT]).generate_state(1)[0] % 900_000_000) + 1
    generator = PythiaGenerator(pool_settings(sqrt_s, pythia_seed))
    pieces = []
    made = 0
    while made < pool_size:
        _, particles = generator.next_batch(min(200, pool_size - made))
        pieces.append(_as_awkward(particles))
        made += particles.n_events
    pool = ak.concatenate(pieces)[:pool_size]
    io.write(
        pool,
        path,
        provenance={
            "generator": "heplearn.generate.pileup",
            "settings": pool_settings(sqrt_s, 0),
            "seed": seed,
            "pythia_seed": pythia_seed,
            "size": pool_size,
        },
    )
    return path


def _as_awkward(particles: FinalState) -> ak.Array:
    columns = {
        name: ak.unflatten(getattr(particles, name), particles.counts)
        for name in ("px", "py", "pz", "energy", "pid", "charge")
    }
    return ak.zip(columns, depth_limit=1)


class PileupPool:
    """A pool of minimum-bias final states, read once, overlaid on batches of events."""

    def __init__(self, path: str | Path) -> None:
        pool = io.open_source(path).read()
        self.counts = ak.to_numpy(ak.num(pool.px)).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.columns = {
            name: ak.to_numpy(ak.flatten(pool[name])) for name in ("px", "py", "pz", "energy", "pid", "charge")
        }

    def __len__(self) -> int:
        return len(self.counts)

    def overlay(self, particles: FinalState, mu: float, rng: np.random.Generator) -> tuple[FinalState, np.ndarray]:
        """The events with Poisson(μ) pool interactions added, and the interactions per event."""
        n_events = particles.n_events
        n_pileup = rng.poisson(mu, n_events)
        chosen = rng.integers(0, len(self), int(n_pileup.sum()))
        z_shift = rng.normal(0.0, BEAM_SPOT_SIGMA_Z, len(chosen))
        sizes = self.counts[chosen]
        # flat indices of the chosen interactions' particles, in order
        take = np.repeat(self.offsets[chosen] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) + np.arange(
            int(sizes.sum())
        )
        pileup_event = np.repeat(np.repeat(np.arange(n_events), n_pileup), sizes)
        hard_event = np.repeat(np.arange(n_events), particles.counts)
        event = np.concatenate([hard_event, pileup_event])
        order = np.argsort(event, kind="stable")  # hard particles first in each event, then pileup
        vx, vy, vz = particles.vertex()
        zeros = np.zeros(len(take))

        def merged(hard: np.ndarray, soft: np.ndarray) -> np.ndarray:
            return np.concatenate([hard, soft])[order]

        result = FinalState(
            **{
                name: merged(getattr(particles, name), self.columns[name][take])
                for name in ("px", "py", "pz", "energy", "pid", "charge")
            },
            counts=np.bincount(event, minlength=n_events).astype(np.int64),
            vx=merged(vx, zeros),
            vy=merged(vy, zeros),
            vz=merged(vz, np.repeat(z_shift, sizes)),
        )
        return result, n_pileup


def fixed_grid_rho(particles: FinalState) -> np.ndarray:
    """Per event: the median over the fixed |η| < 5 grid of Σ pT / cell area (GeV)."""
    event = np.repeat(np.arange(particles.n_events), particles.counts)
    eta = kinematics.pseudorapidity(particles.px, particles.py, particles.pz)
    phi = kinematics.azimuth(particles.px, particles.py)
    inside = np.abs(eta) < RHO_ETA_MAX
    n_eta = round(2 * RHO_ETA_MAX / RHO_CELL_ETA)
    cell_eta = 2 * RHO_ETA_MAX / n_eta
    cell_phi = 2 * np.pi / RHO_CELLS_PHI
    ieta = np.minimum(((eta[inside] + RHO_ETA_MAX) / cell_eta).astype(np.int64), n_eta - 1)
    iphi = np.minimum(((phi[inside] + np.pi) / cell_phi).astype(np.int64), RHO_CELLS_PHI - 1)
    cells = n_eta * RHO_CELLS_PHI
    flat = event[inside] * cells + ieta * RHO_CELLS_PHI + iphi
    pt = kinematics.pt(particles.px[inside], particles.py[inside])
    grid = np.bincount(flat, weights=pt, minlength=particles.n_events * cells).reshape(particles.n_events, cells)
    return np.median(grid, axis=1) / (cell_eta * cell_phi)
